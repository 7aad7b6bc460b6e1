"""In-step statistics: TensorFlow code that runs inside the training step.

Pure functions of tensors (`stats`, `histograms`, `kernel_grid`, and the
grouping they share, `tensor_groups`), the table plan that says which rows
and columns a step computes (`table`, `model_variables`), what a logged step
records of an optimizer's update and the buffers it keeps it in until the
host reads it (`update_recordings`, `record_buffers`), and the few variables
tb_weightnorm keeps in the graph (`tf_state`). This is the part a Keras
backend other than TensorFlow would replace, with the optimizer hook
(`writer.optimizer_hook`); everything after it (the writer's host side, the
wire format, the reader) works on numpy arrays.
"""
