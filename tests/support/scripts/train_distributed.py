"""Trains a small model under tf.distribute and logs it with tb_weightnorm.

Run as its own process (logical devices and TF_CONFIG are read when
TensorFlow starts):

    python train_distributed.py fit mirrored LOGDIR      # model.fit + WeightHealthCallback
    python train_distributed.py loop mirrored LOGDIR     # custom loop + log()
    TF_CONFIG=... python train_distributed.py loop multiworker LOGDIR
"""

import sys

import numpy as np
import tensorflow as tf

LR = 0.05
GLOBAL_BATCH = 16


def _strategy(kind: str):
    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return tf.distribute.MultiWorkerMirroredStrategy()


def _fit(strategy, model, x, y, logdir):
    import keras

    import tb_weightnorm

    with strategy.scope():
        model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    model.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=2, verbose=0, shuffle=False,
        callbacks=[tb_weightnorm.WeightHealthCallback(logdir, every_n_steps=1, histogram_every_n_steps=2)],
    )
    return 2 * len(x) // GLOBAL_BATCH


def _custom_loop(strategy, model, x, y, logdir):
    import keras

    import tb_weightnorm

    with strategy.scope():
        optimizer = keras.optimizers.SGD(LR)
        optimizer.build(model.trainable_variables)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))
    writer = tf.summary.create_file_writer(logdir)

    @tf.function
    def train_step(inputs, step):
        def replica_step(xb, yb):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean((model(xb, training=True) - yb) ** 2, axis=1)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            with writer.as_default():
                tb_weightnorm.log(model, gradients=grads, step=step)

        strategy.run(replica_step, args=inputs)

    step = 0
    for _ in range(2):
        for inputs in batches:
            step += 1
            train_step(inputs, tf.constant(step, tf.int64))
    writer.flush()
    return step


def main(how: str, kind: str, logdir: str) -> None:
    strategy = _strategy(kind)
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="h"), keras.layers.Dense(1, name="out")],
            name="distributed",
        )
    steps = (_fit if how == "fit" else _custom_loop)(strategy, model, x, y, logdir)
    print("replicas", strategy.num_replicas_in_sync, "steps", steps, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
