"""A custom training loop under tf.distribute that logs with tb_weightnorm.log().

Run as its own process (logical devices and TF_CONFIG are read when
TensorFlow starts):

    python train_custom_loop_distributed.py mirrored LOGDIR
    TF_CONFIG=... python train_custom_loop_distributed.py multiworker LOGDIR
"""

import sys

import numpy as np
import tensorflow as tf

LR = 0.05
GLOBAL_BATCH = 16


def main(kind: str, logdir: str) -> None:
    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras

    import tb_weightnorm

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="h"), keras.layers.Dense(1, name="out")],
            name="ctl",
        )
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
    print("replicas", strategy.num_replicas_in_sync, "steps", step, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
