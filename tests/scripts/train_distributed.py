"""Trains a small model under tf.distribute with WeightHealthCallback.

Run as its own process: logical devices must be set before TensorFlow starts.

    python train_distributed.py mirrored LOGDIR
"""

import sys

import numpy as np
import tensorflow as tf

LR = 0.05


def main(kind: str, logdir: str) -> None:
    assert kind == "mirrored", kind
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    import keras

    import tb_weightnorm

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="h"), keras.layers.Dense(1, name="out")]
        )
        model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    model.fit(
        x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
        callbacks=[tb_weightnorm.WeightHealthCallback(logdir, every_n_steps=1, histogram_every_n_steps=2)],
    )
    print("replicas", strategy.num_replicas_in_sync, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
