"""Writing a run's weight health: `log()`, `WeightHealthCallback` and the parts it drives.

`summary` writes the plugin's summaries (shaped like `tf.summary.*`);
`optimizer_hook` and `model_optimizers` take the statistics inside the
optimizer's own update; `callback` is the Keras callback, and `cost_budget`,
`alerts` and `healthy_weights` are features it drives.
"""
