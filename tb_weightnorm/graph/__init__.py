"""In-step statistics: TensorFlow code that runs inside the training step.

Pure functions of tensors (`stats`, `histograms`, `kernel_grid`), the table
plan that says which rows and columns a step computes (`table`,
`model_variables`), and the few variables tb_weightnorm keeps in the graph
(`tf_state`). This is the part a Keras backend other than TensorFlow would
replace; everything after it (the writer's host side, the wire format, the
reader) works on numpy arrays.
"""
