"""Writing a run's weight health: `log()`, `WeightHealthCallback` and the parts it drives.

`custom_loop` is `log()`, for custom training loops; `summary` writes the
plugin's norm tables and histograms (shaped like `tf.summary.*`) for both.
`optimizer_hook` and `model_optimizers` take the statistics inside the
optimizer's own update (TensorFlow). `callback` is the Keras callback; the
features it drives are, one a module, `logged_steps` (the host side of the
logging step), `cost_budget`, `kernel_grids`, `snapshots`, `report` and
`alert_watch` (with `alerts` and `healthy_weights`).
"""
