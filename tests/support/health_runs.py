"""Real training runs made to go wrong in known ways, and healthy ones.

Each function trains a small Keras model for real and logs it with
WeightHealthCallback (every step) or `tb_weightnorm.log`, into `logdir/<name>`.
It returns the step at which the trouble starts (the onset), or None for a
healthy run. `python tests/health_runs.py LOGDIR` writes them all, to look at.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

STEPS = 150
BATCH = 32

# Run name -> what WeightHealthCallback found by itself at the end of training.
CALLBACK_FINDINGS = {}


def _keras():
    import keras

    return keras


def _regression(n=BATCH * STEPS // 3, features=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    w = rng.normal(size=(features, 1)).astype("float32")
    y = np.tanh(x @ w) + 0.1 * rng.normal(size=(n, 1)).astype("float32")
    return x, y.astype("float32")


def _classes(n=BATCH * STEPS // 3, features=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    centers = rng.normal(size=(classes, features)).astype("float32") * 1.5
    y = np.argmax(x @ centers.T, axis=1)
    return x, y


def _fit(name, logdir, model, x, y, loss, optimizer, callbacks=(), epochs=3):
    import tb_weightnorm

    keras = _keras()
    keras.utils.set_random_seed(1)
    model.compile(optimizer=optimizer, loss=loss)
    health = tb_weightnorm.WeightHealthCallback(
        os.path.join(logdir, name),
        every_n_steps=1,
        histogram_every_n_steps=0,
        kernel_grid_every_n_epochs=0,
        report=None,
    )
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[health, *callbacks])
    CALLBACK_FINDINGS[name] = health.findings


def _mlp(widths, activation="relu", out=1, **dense):
    keras = _keras()
    layers = [keras.Input((16,))]
    layers += [
        keras.layers.Dense(w, activation=activation, name=f"hidden_{i}", **dense)
        for i, w in enumerate(widths)
    ]
    layers += [keras.layers.Dense(out, name="output")]
    return keras.Sequential(layers)


def _at_batch(batch, action):
    """A Keras callback that runs `action(model)` once, before the training
    batch with 0-based index `batch` counted over all epochs: the update it
    affects is step batch + 1."""
    keras = _keras()

    class AtBatch(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_begin(self, b, logs=None):
            if self.seen == batch:
                action(self.model)
            self.seen += 1

    return AtBatch()


# -- healthy runs ---------------------------------------------------------------


def healthy_cnn(logdir):
    from tb_weightnorm.demo import images

    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = images.shapes(1024, size=24, seed=0)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(images.CLASSES)),
        ]
    )
    _fit("healthy_cnn", logdir, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True), keras.optimizers.Adam(1e-3), epochs=5)


def healthy_mlp_sgd(logdir):
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    _fit("healthy_mlp_sgd", logdir, _mlp([64, 64, 32]), x, y, "mse", keras.optimizers.SGD(0.02, momentum=0.9))


def healthy_bn_cnn(logdir):
    from tb_weightnorm.demo import images

    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = images.shapes(1024, size=24, seed=1)
    layers = [keras.Input(x.shape[1:])]
    for filters in (8, 16):
        layers += [
            keras.layers.Conv2D(filters, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
        ]
    layers += [keras.layers.Flatten(), keras.layers.Dense(len(images.CLASSES))]
    _fit("healthy_bn_cnn", logdir, keras.Sequential(layers), x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True), keras.optimizers.Adam(1e-3), epochs=5)


def healthy_lstm(logdir):
    keras = _keras()
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(2)
    x = rng.integers(1, 40, size=(BATCH * STEPS // 3, 12))
    y = (x == 7).any(axis=1).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(40, 16),
            keras.layers.LSTM(24),
            keras.layers.Dense(2),
        ]
    )
    _fit("healthy_lstm", logdir, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True), keras.optimizers.Adam(3e-3))


# -- sick runs --------------------------------------------------------------------


def high_learning_rate(logdir):
    """SGD with a learning rate far too high: the run diverges from the start."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    _fit("high_learning_rate", logdir, _mlp([64, 64]), x, y, "mse", keras.optimizers.SGD(0.6, momentum=0.9))
    return 1


def deep_sigmoid(logdir):
    """Twelve sigmoid layers: the gradient fades on its way to the first ones."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _classes()
    model = _mlp([32] * 12, activation="sigmoid", out=4)
    _fit("deep_sigmoid", logdir, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True), keras.optimizers.SGD(0.1))
    return 1


DEAD_AT = 60
DEAD_LAYER = "hidden_1"


def dead_relu(logdir):
    """A ReLU layer killed mid-run by a large negative bias."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    model = _mlp([64, 64, 32])
    hidden = model.get_layer(DEAD_LAYER)

    def kill(model):
        hidden.bias.assign(np.full(hidden.bias.shape, -100.0, "float32"))

    _fit("dead_relu", logdir, model, x, y, "mse", keras.optimizers.SGD(0.01), callbacks=[_at_batch(DEAD_AT, kill)])
    return DEAD_AT + 1


NAN_AT = 80


def nan_injected(logdir):
    """A NaN written into one kernel mid-run."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    model = _mlp([32, 32])
    target = model.get_layer("hidden_1")

    def poison(model):
        kernel = target.kernel.numpy()
        kernel[0, 0] = np.nan
        target.kernel.assign(kernel)

    _fit("nan_injected", logdir, model, x, y, "mse", keras.optimizers.Adam(1e-3), callbacks=[_at_batch(NAN_AT, poison)])
    return NAN_AT + 1


def tiny_learning_rate(logdir):
    """A learning rate so small the layers barely move."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    _fit("tiny_learning_rate", logdir, _mlp([64, 32]), x, y, "mse", keras.optimizers.SGD(1e-6))
    return 1


def weight_growth(logdir):
    """A loss that rewards large weights, with no weight decay."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    model = _mlp([16], activation=None)

    def unbounded(y_true, y_pred):
        # Lowered by making the output ever larger in the direction of y.
        return -keras.ops.mean(y_pred * keras.ops.sign(y_true))

    _fit("weight_growth", logdir, model, x, y, unbounded, keras.optimizers.SGD(0.05, momentum=0.9))
    return 1


FROZEN_LAYER = "frozen"


def frozen_zero_lr(logdir):
    """A custom loop where one layer is left trainable but handed to an
    optimizer with a learning rate of 0."""
    import tensorflow as tf

    import tb_weightnorm

    keras = _keras()
    keras.utils.set_random_seed(1)
    x, y = _regression()
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu", name="first"),
            keras.layers.Dense(32, activation="relu", name=FROZEN_LAYER),
            keras.layers.Dense(1, name="head"),
        ]
    )
    frozen = {id(v) for v in model.get_layer(FROZEN_LAYER).trainable_variables}
    variables = model.trainable_variables
    mine = [i for i, v in enumerate(variables) if id(v) not in frozen]
    theirs = [i for i, v in enumerate(variables) if id(v) in frozen]
    learning, stuck = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(0.0)
    learning.build([variables[i] for i in mine])
    stuck.build([variables[i] for i in theirs])
    writer = tf.summary.create_file_writer(os.path.join(logdir, "frozen_zero_lr", "train"))
    loss_fn = keras.losses.MeanSquaredError()

    @tf.function
    def train_step(xb, yb, step):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, variables)
        learning.apply([grads[i] for i in mine], [variables[i] for i in mine])
        stuck.apply([grads[i] for i in theirs], [variables[i] for i in theirs])
        with writer.as_default():
            tb_weightnorm.log(model, gradients=grads, step=step)

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()
    for step, (xb, yb) in enumerate(data.take(STEPS), start=1):
        train_step(xb, yb, tf.constant(step, tf.int64))
    writer.flush()
    return 1


HEALTHY = (healthy_cnn, healthy_mlp_sgd, healthy_bn_cnn, healthy_lstm)
SICK = {
    "high_learning_rate": (high_learning_rate, ("exploding_gradients", "update_ratio_high")),
    "deep_sigmoid": (deep_sigmoid, ("vanishing_gradients",)),
    "dead_relu": (dead_relu, ("dead_units",)),
    "frozen_zero_lr": (frozen_zero_lr, ("stagnant_layer",)),
    "nan_injected": (nan_injected, ("nonfinite",)),
    "tiny_learning_rate": (tiny_learning_rate, ("update_ratio_low",)),
    "weight_growth": (weight_growth, ("weight_norm_growth",)),
}


def write_all(logdir):
    """Trains every run into `logdir`; returns {run name: onset step or None}."""
    onsets = {}
    for make in HEALTHY:
        make(logdir)
        onsets[make.__name__] = None
    for name, (make, _) in SICK.items():
        onsets[name] = make(logdir)
    return onsets


if __name__ == "__main__":
    print(write_all(sys.argv[1]))
