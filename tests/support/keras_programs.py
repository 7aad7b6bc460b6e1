"""Training programs written the way the public Keras examples and guides
write them, shrunk to run in seconds on data made here, each with
`WeightHealthCallback` (or `tb_weightnorm.log`) added as a user would add it.

Where each comes from:
- `vae`: keras-io "Variational AutoEncoder" (a `keras.Model` with `encoder`
  and `decoder` attributes, a custom `train_step`, no `call`).
- `gan`: keras-io guide "Customizing what happens in `fit()`", its end-to-end
  GAN (`compile(d_optimizer, g_optimizer, loss_fn)`, `apply` on each).
- `wgan_gp`: keras-io "WGAN-GP" (the critic trained `d_steps` times per
  generator step, a gradient penalty from a nested tape).
- `fine_tuning`: keras-io guide "Transfer learning & fine-tuning" (frozen
  base called with `training=False`, a head fit, the base unfrozen, compile
  again with a low learning rate, a second fit into the same run).
- `accumulation`: Keras' `gradient_accumulation_steps` on an optimizer.
- `transformer`: keras-io "Text classification with Transformer" (a
  `TransformerBlock(keras.layers.Layer)` holding attention, a feed-forward
  `Sequential` and two LayerNorms).
- `resnet50`, `mobilenet_v2`: `keras.applications` models, `weights=None`.
- `loop_two_optimizers`: TensorFlow's guide "Writing a training loop from
  scratch", its GAN, with `tb_weightnorm.log` on both models' variables.

Each returns a `Trained`: what a test needs to check the logs against the
model.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# The learning rate of the SGD runs that check update = lr × gradient.
LR = 0.01


@dataclasses.dataclass
class Trained:
    model: object  # what holds every variable trained
    log_dir: str  # the log directory (one run in it)
    steps: List[int]  # the steps logged, as the program logs them
    trained: List[object]  # the variables the program trains
    callback: Optional[object] = None


def _keras():
    import keras

    return keras


def _shapes(n: int, size: int = 28):
    from tb_weightnorm.demo import images

    return images.shapes(n, size=size, seed=3)


def _callback(log_dir: str, **kwargs):
    import tb_weightnorm

    kwargs.setdefault("every_n_steps", 1)
    kwargs.setdefault("histogram_every_n_steps", 4)
    kwargs.setdefault("kernel_grid_every_n_epochs", 0)
    return tb_weightnorm.WeightHealthCallback(log_dir, **kwargs)


def _trained_by_fit(model, log_dir, callback, steps, trained=None) -> Trained:
    return Trained(model, log_dir, steps, list(trained or model.trainable_variables), callback)


# -- VAE (keras-io) -------------------------------------------------------------


def vae(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 2) -> Trained:
    keras = _keras()
    from keras import layers, ops
    import tensorflow as tf

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    latent_dim = 2
    encoder_inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(8, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
    x = layers.Conv2D(16, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(7 * 7 * 16, activation="relu")(latent_inputs)
    x = layers.Reshape((7, 7, 16))(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, activation="relu", strides=2, padding="same")(x)
    decoder_outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")

    class VAE(keras.Model):
        def __init__(self, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.encoder = encoder
            self.decoder = decoder
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")

        @property
        def metrics(self):
            return [self.total_loss_tracker]

        def train_step(self, data):
            with tf.GradientTape() as tape:
                z_mean, z_log_var, z = self.encoder(data)
                reconstruction = self.decoder(z)
                reconstruction_loss = ops.mean(
                    ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
                )
                kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
                kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
                total_loss = reconstruction_loss + kl_loss
            grads = tape.gradient(total_loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.total_loss_tracker.update_state(total_loss)
            return {"loss": self.total_loss_tracker.result()}

    images, _ = _shapes(512)
    model = VAE(encoder, decoder, name="vae")
    model.compile(optimizer=optimizer() if optimizer else keras.optimizers.Adam())
    callback = _callback(log_dir)
    model.fit(images, epochs=epochs, batch_size=64, verbose=0, callbacks=[callback])
    return _trained_by_fit(model, log_dir, callback, list(range(1, 8 * epochs + 1)))


# -- GAN (keras-io guide: customizing fit) ------------------------------------------


def _gan_models(size: int = 16, latent_dim: int = 8):
    keras = _keras()
    from keras import layers

    discriminator = keras.Sequential(
        [
            keras.Input(shape=(size, size, 1)),
            layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(32, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1),
        ],
        name="discriminator",
    )
    generator = keras.Sequential(
        [
            keras.Input(shape=(latent_dim,)),
            layers.Dense(4 * 4 * 32),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Reshape((4, 4, 32)),
            layers.Conv2DTranspose(32, (4, 4), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(16, (4, 4), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(1, (3, 3), padding="same", activation="sigmoid"),
        ],
        name="generator",
    )
    return discriminator, generator


def gan(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 2, **settings) -> Trained:
    """`settings` are set on the model after `compile` (`steps_per_execution=3`,
    `run_eagerly=True`), as `compile` would set them."""
    keras = _keras()
    import tensorflow as tf

    class GAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
            self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
            self.seed_generator = keras.random.SeedGenerator(1337)

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn

        def train_step(self, real_images):
            if isinstance(real_images, tuple):
                real_images = real_images[0]
            batch_size = tf.shape(real_images)[0]
            random_latent_vectors = keras.random.normal(
                shape=(batch_size, self.latent_dim), seed=self.seed_generator
            )
            generated_images = self.generator(random_latent_vectors)
            combined_images = tf.concat([generated_images, real_images], axis=0)
            labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
            labels += 0.05 * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                predictions = self.discriminator(combined_images)
                d_loss = self.loss_fn(labels, predictions)
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply(grads, self.discriminator.trainable_weights)
            random_latent_vectors = keras.random.normal(
                shape=(batch_size, self.latent_dim), seed=self.seed_generator
            )
            misleading_labels = tf.zeros((batch_size, 1))
            with tf.GradientTape() as tape:
                predictions = self.discriminator(self.generator(random_latent_vectors))
                g_loss = self.loss_fn(misleading_labels, predictions)
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply(grads, self.generator.trainable_weights)
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    images, _ = _shapes(256, size=16)
    discriminator, generator = _gan_models()
    model = GAN(discriminator=discriminator, generator=generator, latent_dim=8)
    make = optimizer or (lambda: keras.optimizers.Adam(learning_rate=0.0003))
    model.compile(d_optimizer=make(), g_optimizer=make(), loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    for name, value in settings.items():
        setattr(model, name, value)
    callback = _callback(log_dir)
    model.fit(images, epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])
    return _trained_by_fit(model, log_dir, callback, list(range(1, 8 * epochs + 1)))


# -- WGAN-GP (keras-io) ---------------------------------------------------------------


def wgan_gp(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 2) -> Trained:
    keras = _keras()
    import tensorflow as tf

    class WGAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim, discriminator_extra_steps=3, gp_weight=10.0):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.d_steps = discriminator_extra_steps
            self.gp_weight = gp_weight

        def compile(self, d_optimizer, g_optimizer, d_loss_fn, g_loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.d_loss_fn = d_loss_fn
            self.g_loss_fn = g_loss_fn

        def gradient_penalty(self, batch_size, real_images, fake_images):
            alpha = tf.random.uniform([batch_size, 1, 1, 1], 0.0, 1.0)
            interpolated = real_images + alpha * (fake_images - real_images)
            with tf.GradientTape() as gp_tape:
                gp_tape.watch(interpolated)
                pred = self.discriminator(interpolated, training=True)
            grads = gp_tape.gradient(pred, [interpolated])[0]
            norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
            return tf.reduce_mean((norm - 1.0) ** 2)

        def train_step(self, real_images):
            if isinstance(real_images, tuple):
                real_images = real_images[0]
            batch_size = tf.shape(real_images)[0]
            for _ in range(self.d_steps):
                random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
                with tf.GradientTape() as tape:
                    fake_images = self.generator(random_latent_vectors, training=True)
                    fake_logits = self.discriminator(fake_images, training=True)
                    real_logits = self.discriminator(real_images, training=True)
                    d_cost = self.d_loss_fn(real_img=real_logits, fake_img=fake_logits)
                    gp = self.gradient_penalty(batch_size, real_images, fake_images)
                    d_loss = d_cost + gp * self.gp_weight
                d_gradient = tape.gradient(d_loss, self.discriminator.trainable_variables)
                self.d_optimizer.apply_gradients(zip(d_gradient, self.discriminator.trainable_variables))
            random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
            with tf.GradientTape() as tape:
                generated_images = self.generator(random_latent_vectors, training=True)
                gen_img_logits = self.discriminator(generated_images, training=True)
                g_loss = self.g_loss_fn(gen_img_logits)
            gen_gradient = tape.gradient(g_loss, self.generator.trainable_variables)
            self.g_optimizer.apply_gradients(zip(gen_gradient, self.generator.trainable_variables))
            return {"d_loss": d_loss, "g_loss": g_loss}

    images, _ = _shapes(128, size=16)
    discriminator, generator = _gan_models()
    model = WGAN(discriminator=discriminator, generator=generator, latent_dim=8)
    make = optimizer or (lambda: keras.optimizers.Adam(learning_rate=0.0002, beta_1=0.5, beta_2=0.9))
    model.compile(
        d_optimizer=make(),
        g_optimizer=make(),
        d_loss_fn=lambda real_img, fake_img: tf.reduce_mean(fake_img) - tf.reduce_mean(real_img),
        g_loss_fn=lambda fake_img: -tf.reduce_mean(fake_img),
    )
    callback = _callback(log_dir)
    model.fit(images, epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])
    return _trained_by_fit(model, log_dir, callback, list(range(1, 4 * epochs + 1)))


# -- transfer learning and fine-tuning (keras-io guide) -------------------------------


def fine_tuning(
    log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 2, new_callback: bool = False
) -> Trained:
    """The guide's two phases into one run; `new_callback` gives the second
    fit a WeightHealthCallback of its own, as a second notebook cell would."""
    keras = _keras()
    from keras import layers

    # Stands for the guide's pretrained Xception: a small functional CNN
    # with BatchNormalization, built with no weights to download.
    base_input = keras.Input(shape=(16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same")(base_input)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    base_output = layers.Activation("relu")(x)
    base_model = keras.Model(base_input, base_output, name="base")
    base_model.trainable = False

    inputs = keras.Input(shape=(16, 16, 3))
    x = layers.Rescaling(scale=1 / 127.5, offset=-1)(inputs)
    x = base_model(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)

    rng = np.random.default_rng(5)
    images = rng.uniform(0, 255, size=(128, 16, 16, 3)).astype("float32")
    labels = (images[..., 0].mean(axis=(1, 2)) > 127.5).astype("float32")
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer() if optimizer else keras.optimizers.Adam(), loss=loss)
    callback = _callback(log_dir)
    model.fit(images, labels, epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])
    base_model.trainable = True
    model.compile(optimizer=optimizer() if optimizer else keras.optimizers.Adam(1e-5), loss=loss)
    second = _callback(log_dir) if new_callback else callback
    model.fit(images, labels, epochs=epochs, batch_size=32, verbose=0, callbacks=[second])
    return _trained_by_fit(model, log_dir, second, list(range(1, 8 * epochs + 1)))


# -- gradient accumulation ------------------------------------------------------------

ACCUMULATED = 4


def accumulation(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 2) -> Trained:
    keras = _keras()
    rng = np.random.default_rng(6)
    x = rng.normal(size=(256, 10)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )
    make = optimizer or (lambda **kw: keras.optimizers.Adam(1e-3, **kw))
    model.compile(
        optimizer=make(gradient_accumulation_steps=ACCUMULATED),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callback = _callback(log_dir)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=[callback])
    # 32 micro-batches an epoch, one update for every 4 of them.
    return _trained_by_fit(model, log_dir, callback, list(range(1, 32 * epochs // ACCUMULATED + 1)))


# -- a Transformer block as a custom layer (keras-io) ---------------------------------


def transformer(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 2) -> Trained:
    keras = _keras()
    from keras import layers, ops

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            positions = ops.arange(0, ops.shape(x)[-1], 1)
            return self.token_emb(x) + self.pos_emb(positions)

    vocab_size, maxlen, embed_dim = 50, 12, 16
    inputs = layers.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)(inputs)
    x = TransformerBlock(embed_dim, 2, 32)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(8, activation="relu")(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, vocab_size, size=(256, maxlen))
    labels = (tokens < 10).any(axis=1).astype("int32")
    model.compile(optimizer=optimizer() if optimizer else "adam", loss="sparse_categorical_crossentropy")
    callback = _callback(log_dir)
    model.fit(tokens, labels, batch_size=32, epochs=epochs, verbose=0, callbacks=[callback])
    return _trained_by_fit(model, log_dir, callback, list(range(1, 8 * epochs + 1)))


# -- keras.applications models -------------------------------------------------------


def _application(make, log_dir: str, optimizer: Optional[Callable], epochs: int) -> Trained:
    model = make()
    rng = np.random.default_rng(8)
    x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 4, size=8)
    model.compile(optimizer=optimizer() if optimizer else "adam", loss="sparse_categorical_crossentropy")
    callback = _callback(log_dir, histogram_every_n_steps=0)
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[callback])
    return _trained_by_fit(model, log_dir, callback, list(range(1, 2 * epochs + 1)))


def resnet50(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 1) -> Trained:
    """ResNet50, whose largest kernels hold 2 M values."""
    keras = _keras()
    return _application(
        lambda: keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=4),
        log_dir, optimizer, epochs,
    )


def mobilenet_v2(log_dir: str, optimizer: Optional[Callable] = None, epochs: int = 1) -> Trained:
    """MobileNetV2: depthwise convolutions, BatchNormalization, ReLU6."""
    keras = _keras()
    return _application(
        lambda: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=4),
        log_dir, optimizer, epochs,
    )


# -- a custom loop with two optimizers (TensorFlow's guide) ----------------------------


def loop_two_optimizers(log_dir: str, optimizer: Optional[Callable] = None, steps: int = 6) -> Trained:
    keras = _keras()
    import tensorflow as tf

    import tb_weightnorm

    discriminator, generator = _gan_models()
    make = optimizer or (lambda: keras.optimizers.Adam(learning_rate=0.0003))
    d_optimizer, g_optimizer = make(), make()
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    images, _ = _shapes(32 * steps, size=16)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(32)
    latent_dim = 8
    # Both models' variables in one table: the discriminator's, then the generator's.
    variables = discriminator.trainable_weights + generator.trainable_weights
    writer = tf.summary.create_file_writer(log_dir)

    @tf.function
    def train_step(real_images, step):
        random_latent_vectors = tf.random.normal(shape=(32, latent_dim))
        generated_images = generator(random_latent_vectors)
        combined_images = tf.concat([generated_images, real_images], axis=0)
        labels = tf.concat([tf.ones((32, 1)), tf.zeros((real_images.shape[0], 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = loss_fn(labels, discriminator(combined_images))
        d_grads = tape.gradient(d_loss, discriminator.trainable_weights)
        d_optimizer.apply_gradients(zip(d_grads, discriminator.trainable_weights))
        random_latent_vectors = tf.random.normal(shape=(32, latent_dim))
        with tf.GradientTape() as tape:
            g_loss = loss_fn(tf.zeros((32, 1)), discriminator(generator(random_latent_vectors)))
        g_grads = tape.gradient(g_loss, generator.trainable_weights)
        g_optimizer.apply_gradients(zip(g_grads, generator.trainable_weights))
        with writer.as_default():
            tb_weightnorm.log(variables, gradients=d_grads + g_grads, step=step, histogram_every_n_steps=2)

    for step, real_images in enumerate(dataset, start=1):
        train_step(real_images, tf.constant(step, tf.int64))
    writer.close()
    return Trained(variables, log_dir, list(range(1, steps + 1)), variables)


PROGRAMS = {
    "vae": vae,
    "gan": gan,
    "wgan_gp": wgan_gp,
    "fine_tuning": fine_tuning,
    "accumulation": accumulation,
    "transformer": transformer,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "loop_two_optimizers": loop_two_optimizers,
}
