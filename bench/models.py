"""The models the training benchmarks run, their data, and the two ways of
logging weights and gradients that users have today, for comparison."""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Tuple

import keras
import numpy as np
import tensorflow as tf

BATCH = 64


@dataclasses.dataclass(frozen=True)
class BenchModel:
    name: str
    build: Callable[[], keras.Model]
    input_shape: Tuple[int, ...]
    classes: int = 10


def small_cnn() -> keras.Model:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(16, 3, activation="relu", name="conv1"),
            layers.Conv2D(32, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", name="conv3"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(64, activation="relu", name="dense1"),
            layers.Dense(10, name="logits"),
        ],
        name="small_cnn",
    )


def mobilenet_v2() -> keras.Model:
    return keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=10, classifier_activation=None
    )


def deep_mlp(depth: int = 200, width: int = 64) -> keras.Model:
    inputs = keras.Input((width,))
    x = inputs
    for i in range(depth):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mlp_{depth}")


MODELS: Dict[str, BenchModel] = {
    "small_cnn": BenchModel("small CNN", small_cnn, (32, 32, 3)),
    "mobilenet_v2": BenchModel("MobileNetV2 (alpha 0.35, 32×32)", mobilenet_v2, (32, 32, 3)),
    "mlp_200": BenchModel("MLP, 200 Dense layers", deep_mlp, (64,)),
}


def compiled(key: str) -> keras.Model:
    model = MODELS[key].build()
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def data(key: str, steps: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """`steps` batches of inputs and labels, generated here (no downloads)."""
    rng = np.random.default_rng(seed)
    spec = MODELS[key]
    x = rng.standard_normal((steps * BATCH, *spec.input_shape), dtype=np.float32)
    y = rng.integers(0, spec.classes, steps * BATCH)
    return x, y


class GradientHistogramRecipe(keras.callbacks.Callback):
    """The recipe found in blog posts and answers for logging gradients with
    `model.fit`: every N batches, a second forward and backward pass on a real
    batch under `tf.GradientTape`, and a `tf.summary.histogram` per gradient."""

    def __init__(self, log_dir: str, x: np.ndarray, y: np.ndarray, every_n_batches: int = 10):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.x, self.y = tf.constant(x[:BATCH]), tf.constant(y[:BATCH])
        self.every = every_n_batches
        self.step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if batch % self.every:
            return
        with tf.GradientTape() as tape:
            loss = self.model.compute_loss(x=self.x, y=self.y, y_pred=self.model(self.x, training=True))
        gradients = tape.gradient(loss, self.model.trainable_variables)
        with self.writer.as_default():
            for variable, gradient in zip(self.model.trainable_variables, gradients):
                tf.summary.histogram(variable.path + "/gradient", gradient, step=self.step)

    def on_train_end(self, logs=None):
        self.writer.flush()
