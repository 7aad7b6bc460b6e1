"""The small models and data the training tests share: a Dense regression
with a hidden layer, and the data it fits. Each test picks its sizes, seed and
optimizer; the layers are always named `hidden` (and `bn`, `drop`) and `out`,
so tests can name the variables they check."""

from typing import Optional, Tuple

import keras
import numpy as np


def regression_data(
    n: int, features: int, *, seed: int = 0, noise: float = 0.0
) -> Tuple[np.ndarray, np.ndarray]:
    """`n` samples of a random linear target of `features` inputs, plus
    `noise` times Gaussian noise (drawn only when `noise` is set)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = x @ rng.normal(size=(features, 1))
    if noise:
        y = y + noise * rng.normal(size=(n, 1))
    return x, y.astype("float32")


def dense_regressor(
    features: int,
    hidden: int,
    *,
    seed: Optional[int],
    activation: Optional[str] = None,
    outputs: int = 1,
    batch_norm: bool = False,
    dropout: float = 0.0,
    name: Optional[str] = None,
    optimizer="sgd",
    compile_kwargs: Optional[dict] = None,
) -> keras.Model:
    """A compiled Sequential `features → hidden → outputs` with an mse loss.

    Args:
        seed: Keras' random seed set just before the layers are built (their
            initial weights follow from it); None keeps the current one.
        batch_norm, dropout: a BatchNormalization (`bn`) and a Dropout
            (`drop`) after the hidden layer.
        optimizer: what `compile` takes.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    layers = [keras.Input((features,)), keras.layers.Dense(hidden, activation=activation, name="hidden")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    if dropout:
        layers.append(keras.layers.Dropout(dropout, name="drop"))
    layers.append(keras.layers.Dense(outputs, name="out"))
    model = keras.Sequential(layers, name=name) if name else keras.Sequential(layers)
    model.compile(optimizer=optimizer, loss="mse", **(compile_kwargs or {}))
    return model
