"""Small real training runs for the plugin's route tests, and their numbers.

Each function trains a tiny Keras model for real and logs it, with
`WeightHealthCallback` or `tb_weightnorm.log` in a custom loop, into
`logdir/<run>`; the constants say what was logged so tests can check the
routes against it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# A Conv2D model on RGB images, WeightHealthCallback every step.
CNN_RUN = "cnn/train"
CNN_LEARNING_RATE = 0.05
# The same model, data and initial weights at a higher learning rate: a run
# whose layers and variables have the same names as CNN_RUN's.
CNN_HIGH_RUN = "cnn_lr_high/train"
CNN_HIGH_LEARNING_RATE = 0.5
CNN_EPOCHS = 3
CNN_BATCHES = 4  # per epoch
CNN_HISTOGRAM_EVERY = 2
CNN_BINS = 8
CNN_CONVS = {  # variable -> (layer, mode, filters)
    "rgb_cnn/rgb_conv/kernel": ("rgb_conv", "rgb", 4),
    "rgb_cnn/deep_conv/kernel": ("deep_conv", "diverging", 6),
}
CNN_VARIABLE_SIZES = {
    "rgb_cnn/rgb_conv/kernel": 3 * 3 * 3 * 4,
    "rgb_cnn/rgb_conv/bias": 4,
    "rgb_cnn/deep_conv/kernel": 3 * 3 * 4 * 6,
    "rgb_cnn/deep_conv/bias": 6,
    "rgb_cnn/out/kernel": 6 * 2,
    "rgb_cnn/out/bias": 2,
}

# A model whose LSTM layer (one row per gate) has a name that is HTML, fit
# with WeightHealthCallback every step, histograms every step; the run is
# named without "/train".
HOSTILE_RUN = "hostile"
HOSTILE_LAYER = "<img src=x onerror=alert(1)>"
HOSTILE_STEPS = 4
HOSTILE_BINS = 8
HOSTILE_LAYERS = [HOSTILE_LAYER, "out"]

# A Dense model in a custom loop with `tb_weightnorm.log`, every step.
LOOP_RUN = "loop"
LOOP_STEPS = 120
LOOP_HISTOGRAM_EVERY = 10
LOOP_VARIABLES = ["loop_mlp/hidden/kernel", "loop_mlp/hidden/bias", "loop_mlp/head/kernel", "loop_mlp/head/bias"]

# A linear Dense model fit with WeightHealthCallback every step, one kernel
# element set to NaN before batch NAN_AT_BATCH (0-based) of 20: step
# NAN_AT_BATCH + 1 is the first logged with NaN, and from it every weight and
# gradient of every layer is NaN.
NAN_RUN = "nan/train"
NAN_AT_BATCH = 5
NAN_STEPS = 20


def train_cnn(logdir: str, run: str = CNN_RUN, learning_rate: float = CNN_LEARNING_RATE) -> str:
    """CNN_RUN (or `run`): a Conv2D model fit on random RGB images."""
    import keras

    import tb_weightnorm

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="rgb_conv"),
            keras.layers.Conv2D(6, 3, activation="relu", name="deep_conv"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(2, name="out"),
        ],
        name="rgb_cnn",
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16 * CNN_BATCHES, 8, 8, 3)).astype("float32")
    y = rng.normal(size=(16 * CNN_BATCHES, 2)).astype("float32")
    run_dir = os.path.join(logdir, os.path.dirname(run))
    callback = tb_weightnorm.WeightHealthCallback(
        run_dir,
        every_n_steps=1,
        histogram_every_n_steps=CNN_HISTOGRAM_EVERY,
        kernel_grid_every_n_epochs=1,
        histogram_bins=CNN_BINS,
    )
    model.fit(x, y, batch_size=16, epochs=CNN_EPOCHS, verbose=0, callbacks=[callback])
    return run_dir


def loop_model():
    import keras

    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(7, activation="tanh", name="hidden"),
            keras.layers.Dense(1, name="head"),
        ],
        name="loop_mlp",
    )


def loop_trainer(writer, model, optimizer, *, seed: int = 2):
    """A function `train(first_step, steps)` that trains `model` in a custom
    loop, logging every step with `tb_weightnorm.log` (histograms too) to
    `writer`; traced once, so later calls append steps quickly."""
    import tensorflow as tf

    import tb_weightnorm

    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(32, 5)).astype("float32"))
    y = tf.constant(rng.normal(size=(32, 1)).astype("float32"))

    @tf.function
    def train_step(step):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        with writer.as_default():
            tb_weightnorm.log(
                model, gradients=grads, step=step, histogram_every_n_steps=LOOP_HISTOGRAM_EVERY, histogram_bins=16
            )

    def train(first_step: int, steps: int) -> None:
        for step in range(first_step, first_step + steps):
            train_step(tf.constant(step, tf.int64))
        writer.flush()

    return train


def train_loop(logdir: str, steps: int = LOOP_STEPS) -> str:
    """LOOP_RUN: a Dense model in a custom loop, steps 0 .. steps - 1."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(2)
    run_dir = os.path.join(logdir, LOOP_RUN)
    writer = tf.summary.create_file_writer(run_dir)
    loop_trainer(writer, loop_model(), keras.optimizers.SGD(0.01))(0, steps)
    writer.close()
    return run_dir


def train_with_nan(logdir: str, run: str, nan_at_batch: int, layer_name: str = "middle") -> str:
    """A Dense model fit with WeightHealthCallback every step; at batch
    `nan_at_batch` of the first epoch one element of `layer_name`'s kernel
    becomes NaN, and that step's gradients and every later weight go NaN.

    The layers are linear so that IEEE arithmetic alone carries the NaN
    everywhere (a product or sum with NaN is NaN, on every CPU). Through a
    ReLU it need not: whether relu(NaN) and its gradient are NaN or 0 depends
    on the kernel (oneDNN's or Eigen's, and the operand order of its max).
    """
    import keras

    import tb_weightnorm

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, name="first"),
            keras.layers.Dense(8, name=layer_name),
            keras.layers.Dense(1, name="last"),
        ],
        name="nan_mlp",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")

    class InjectNaN(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == nan_at_batch:
                kernel = model.get_layer(layer_name).kernel
                value = np.array(kernel.numpy())
                value[0, 0] = np.nan
                kernel.assign(value)

    rng = np.random.default_rng(3)
    x = rng.normal(size=(16 * NAN_STEPS, 6)).astype("float32")
    y = rng.normal(size=(16 * NAN_STEPS, 1)).astype("float32")
    run_dir = os.path.join(logdir, os.path.dirname(run))
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[InjectNaN(), tb_weightnorm.WeightHealthCallback(run_dir, every_n_steps=1, histogram_every_n_steps=0)],
    )
    return run_dir


def train_hostile(logdir: str) -> str:
    """HOSTILE_RUN: an LSTM named HOSTILE_LAYER and a Dense head, fit for
    HOSTILE_STEPS steps on random sequences."""
    import shutil
    import tempfile

    import keras

    import tb_weightnorm

    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.LSTM(3, name=HOSTILE_LAYER), keras.layers.Dense(2, name="out")],
        name="hostile",
    )
    # Keras takes the name, but a compiled train step opens a TensorFlow name
    # scope per layer, and TensorFlow refuses "<", " " and "=" in one; an
    # eager train step opens none.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8 * HOSTILE_STEPS, 5, 3)).astype("float32")
    y = rng.normal(size=(8 * HOSTILE_STEPS, 2)).astype("float32")
    run_dir = os.path.join(logdir, HOSTILE_RUN)
    # The callback writes to LOG_DIR/train; this run's events go one level up.
    with tempfile.TemporaryDirectory() as scratch:
        callback = tb_weightnorm.WeightHealthCallback(
            scratch, every_n_steps=1, histogram_every_n_steps=1, histogram_bins=HOSTILE_BINS
        )
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
        shutil.move(os.path.join(scratch, "train"), run_dir)
    return run_dir


# Runs and a model whose names are HTML, quotes, Unicode and very long, for
# the tab's escaping. Each `onerror` or script would set WINDOW_FLAG.
WINDOW_FLAG = "__weight_health_injected"
NAMED_LAYERS = {
    "img": f'<img src=x onerror="window.{WINDOW_FLAG}=1">',
    # Keras refuses "/" in a name, so no closing tags.
    "svg": f"<svg onload=window.{WINDOW_FLAG}=2><script>window.{WINDOW_FLAG}=5",
    "quotes": "it's \"quoted\" `ticked` & <b>bold &amp; <script>alert(1)",
    "unicode": "\u202eRTL\u202c \u05e9\u05dc\u05d5\u05dd \U0001f525\U0001f9e0 e\u0301\u0302 \u5c64\u306e\u540d\u524d",
    "long": "deep_" + "x" * 1200,
}
NAMED_VARIABLE = f"<img src=x onerror=window.{WINDOW_FLAG}=3>"  # a weight of the "long" layer
NAMED_RUNS = [
    f"<img src=x onerror=window.{WINDOW_FLAG}=4>",
    "run 'single' \"double\" `back` & a=b#c%20d",
    "\u05e9\u05dc\u05d5\u05dd \U0001f525 \u5b9f\u9a13 e\u0301",
    "/".join(["r" * 250] * 5),  # 1,254 characters, in folders of 250
]
NAMED_STEPS = 10
# The first layer's kernel turns NaN before this (1-based) logged step: a
# finding names it.
NAMED_NAN_STEP = 7


def train_named(logdir: str) -> list:
    """NAMED_RUNS: each a model with NAMED_LAYERS (the "long" one holding
    NAMED_VARIABLE) trained in an eager custom loop with `tb_weightnorm.log`
    every step, histograms too; in the first run the "img" layer's kernel
    turns NaN at NAMED_NAN_STEP. Returns the run folders."""
    import keras
    import tensorflow as tf

    import tb_weightnorm

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), name=NAMED_VARIABLE, initializer="ones")

        def call(self, x):
            return x * self.scale

    folders = []
    for i, run in enumerate(NAMED_RUNS):
        keras.utils.set_random_seed(5 + i)
        model = keras.Sequential(
            [keras.Input((4,))]
            + [keras.layers.Dense(4, activation="tanh", name=NAMED_LAYERS[k]) for k in ("img", "svg", "quotes", "unicode")]
            + [Scale(name=NAMED_LAYERS["long"]), keras.layers.Dense(1, name="out")],
            name="named",
        )
        optimizer = keras.optimizers.SGD(0.05)
        rng = np.random.default_rng(5)
        x = tf.constant(rng.normal(size=(16, 4)).astype("float32"))
        y = tf.constant(rng.normal(size=(16, 1)).astype("float32"))
        folder = os.path.join(logdir, run)
        writer = tf.summary.create_file_writer(folder)
        # Eager: a traced step would open a TensorFlow name scope per layer,
        # and TensorFlow refuses these names in one.
        for step in range(1, NAMED_STEPS + 1):
            if i == 0 and step == NAMED_NAN_STEP:
                kernel = model.layers[0].kernel
                value = np.array(kernel.numpy())
                value[0, 0] = np.nan
                kernel.assign(value)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            with writer.as_default():
                tb_weightnorm.log(model, gradients=grads, step=step, histogram_every_n_steps=1, histogram_bins=8)
        writer.close()
        folders.append(folder)
    return folders
