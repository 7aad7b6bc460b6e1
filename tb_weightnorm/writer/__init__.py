"""Writing a run's weight health: `log()`, `WeightHealthCallback` and the parts it drives.

`summary` writes the plugin's summaries (shaped like `tf.summary.*`);
`optimizer_hook` takes the statistics inside the optimizer's own update (in
the training step, with `graph.update_recordings`); on the host,
`update_recorder` decides which steps log and drains what they recorded,
`train_function` runs the model's logging train function, and
`model_optimizers` gives each of a model's optimizers a recorder and merges
their tables; `callback` is the Keras callback, and `cost_budget`, `alerts`
and `healthy_weights` are features it drives.
"""
