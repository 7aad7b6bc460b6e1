"""The demo's four runs: one healthy CNN and three models that go wrong in
different ways, each in a way the diagnosis names: exploding gradients
that end in NaN, dead ReLUs, vanishing gradients. Keras definitions only: the
demo (`tb_weightnorm.demo`) trains them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Union

import keras

from tb_weightnorm.demo.images import CLASSES


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """One run of the demo.

    Attributes:
        name: the run's folder under the demo's log directory.
        what: what was done to the model, in one line.
        build: makes the model.
        optimizer: makes its optimizer.
    """

    name: str
    what: str
    build: Callable[[], keras.Model]
    optimizer: Callable[[], keras.optimizers.Optimizer]


def shapes_cnn(
    activation: str = "relu", dense_bias: Union[str, keras.initializers.Initializer] = "zeros"
) -> keras.Model:
    """A small CNN for `images.shapes` images (28x28): two conv layers, a
    dense layer and the logits. Its first layer's 5x5 kernels are large enough
    to show the edges they learn in the kernel grid.

    Args:
        activation: of the conv and dense layers.
        dense_bias: the initialiser of the dense layer's biases.
    """
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 5, activation=activation, name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(32, 3, activation=activation, name="conv2"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(
                64, activation=activation, name="dense",
                bias_initializer=dense_bias,
            ),
            keras.layers.Dense(len(CLASSES), name="logits"),
        ],
        name="shapes_cnn",
    )


def sigmoid_stack(depth: int = 10) -> keras.Model:
    """`depth` Dense layers with sigmoid activations on the flattened image."""
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(name="flatten")]
    layers += [keras.layers.Dense(32, activation="sigmoid", name=f"sigmoid_{i + 1}") for i in range(depth)]
    layers += [keras.layers.Dense(len(CLASSES), name="logits")]
    return keras.Sequential(layers, name="sigmoid_stack")


RUNS = (
    DemoRun(
        "healthy",
        "the CNN with ReLUs, Adam (learning rate 2e-3)",
        shapes_cnn,
        lambda: keras.optimizers.Adam(2e-3),
    ),
    DemoRun(
        "exploding",
        # Leaky ReLUs cannot die: with plain ReLUs a learning rate this high
        # kills every unit within a few steps (a dead_units finding), before
        # anything can blow up.
        "the CNN with leaky ReLUs, SGD with a learning rate far too high (0.5, momentum 0.9)",
        lambda: shapes_cnn(activation="leaky_relu"),
        lambda: keras.optimizers.SGD(0.5, momentum=0.9),
    ),
    DemoRun(
        "dead_relu",
        # A bias well below the dense layer's inputs (about ±0.3) keeps its
        # unit at 0 for every image: four in five units start dead.
        "the CNN, dense biases drawn around -1 (a bad initialiser): most of its ReLUs never fire",
        lambda: shapes_cnn(dense_bias=keras.initializers.RandomNormal(mean=-1.0, stddev=1.0)),
        lambda: keras.optimizers.Adam(2e-3),
    ),
    DemoRun(
        "vanishing",
        "ten Dense layers with sigmoid activations, SGD (learning rate 0.1)",
        sigmoid_stack,
        lambda: keras.optimizers.SGD(0.1),
    ),
)
