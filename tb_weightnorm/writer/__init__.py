"""Writing a run's weight health: `log()`, `WeightHealthCallback` and the parts it drives.

`custom_loop` is `log()`, for custom training loops; `summary` writes the
plugin's norm tables and histograms (shaped like `tf.summary.*`) for both.
`optimizer_hook` installs the statistics into the optimizer's own update (in
the training step, with `graph.update_recordings`); on the host,
`update_recorder` decides which steps log and drains what they recorded,
`train_function` runs the model's logging train function, and
`model_optimizers` gives each of a model's optimizers a recorder and merges
their tables. `callback` is the Keras callback; the features it drives are,
one a module, `logged_steps` (the host side of the logging step),
`cost_budget`, `kernel_grids`, `snapshots`, `report` and `alert_watch` (with
`alerts` and `healthy_weights`).
"""
