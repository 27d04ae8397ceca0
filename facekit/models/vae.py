"""A convolutional variational autoencoder (Kingma & Welling 2014) for 64x64 and 128x128 faces.

The encoder maps an image x to a Gaussian q(z|x) = N(mean, exp(log_variance)) over latent vectors z; the decoder
maps z back to an image. Training minimises the negative evidence lower bound (ELBO), per image:

    loss = reconstruction_loss(x, decoder(z)) + beta * kl_divergence(mean, log_variance),
    z = mean + exp(log_variance / 2) * noise,  noise ~ N(0, I)        (the reparameterisation trick)

The decoder is the DCGAN generator (`dcgan.build_generator`), so the two lessons compare objectives, not networks.
`VAE.train_step` writes one ELBO step out; the loop in `train` calls it with `train_on_batch`, as the DCGAN lesson
does, so that logging, snapshots and checkpoints sit in plain sight between steps and a resumed run sees exactly
the batches and noise an uninterrupted one would. (`vae.fit(dataset, steps_per_epoch=...)` runs the same
`train_step` too; the loop is kept because the run folder needs a hook after every step.)
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from facekit import data, progress
from facekit.models import dcgan
from facekit.registry import ModelSpec
from facekit.training import RunFolder, StepConfig, resolve_precision, run_steps, setting, start_run

LOSS_COLUMNS = ("loss", "reconstruction_loss", "kl_loss")


@dataclasses.dataclass
class VAEConfig(StepConfig):
    """Everything that defines a VAE run; saved as the run folder's run.json."""

    model: str = "vae"
    latent_dim: int = setting(128, "length of the latent vector")
    filters: int = setting(64, "width: channels of the encoder's first layer")
    beta: float = setting(1.0, "weight of the KL term in the loss")
    learning_rate: float = setting(5e-4, "Adam learning rate")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("latent_dim", "filters")

    def __post_init__(self):
        super().__post_init__()
        if self.beta < 0:
            raise ValueError(f"beta must be at least 0, got {self.beta}")
        _downsamplings(self.resolution)


def kl_divergence(mean, log_variance):
    """KL( N(mean, exp(log_variance)) || N(0, I) ) of each example, in nats: float [B] from [B, latent_dim] each.

    Closed form for diagonal Gaussians: 0.5 * sum(exp(log_variance) + mean**2 - 1 - log_variance).
    """
    return 0.5 * keras.ops.sum(keras.ops.exp(log_variance) + keras.ops.square(mean) - 1.0 - log_variance, axis=-1)


def reconstruction_loss(images, reconstructions):
    """Sum of squared errors of each image: float [B] from two float [B, H, W, 3] on the [-1, 1] scale.

    This is -log p(x|z) for a Gaussian decoder with variance 1/2 per value, up to a constant.
    """
    difference = keras.ops.cast(images, "float32") - keras.ops.cast(reconstructions, "float32")
    return keras.ops.sum(keras.ops.square(difference), axis=(1, 2, 3))


def reparameterize(mean, log_variance, noise):
    """A latent sample z = mean + standard deviation * noise (noise float [B, latent_dim] from N(0, I)).

    Written this way, z is a differentiable function of mean and log_variance, so gradients reach the encoder.
    """
    return mean + keras.ops.exp(0.5 * log_variance) * noise


def build_encoder(resolution: int = 64, latent_dim: int = 128, filters: int = 64,
                  dtype: str = "float32") -> keras.Model:
    """Images float32 [B, R, R, 3] in [-1, 1] -> (mean, log_variance), each float32 [B, latent_dim].

    Stride-2 convolutions with batch norm and leaky ReLU, doubling the channels from `filters`, down to 4x4
    (the DCGAN discriminator's trunk), then two dense heads kept in float32 for a stable KL term.
    """
    images = keras.Input((resolution, resolution, 3))
    features = images
    for index in range(_downsamplings(resolution)):
        features = keras.layers.Conv2D(filters * 2**index, 4, strides=2, padding="same", use_bias=False,
                                       dtype=dtype)(features)
        features = keras.layers.BatchNormalization(momentum=0.9, dtype=dtype)(features)
        features = keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype)(features)
    features = keras.layers.Flatten(dtype=dtype)(features)
    mean = keras.layers.Dense(latent_dim, name="mean", dtype="float32")(features)
    log_variance = keras.layers.Dense(latent_dim, name="log_variance", dtype="float32",
                                      kernel_initializer="zeros")(features)
    return keras.Model(images, [mean, log_variance], name="encoder")


def build_decoder(resolution: int = 64, latent_dim: int = 128, filters: int = 64,
                  dtype: str = "float32") -> keras.Model:
    """Latents float32 [B, latent_dim] -> images [B, R, R, 3] in [-1, 1] (tanh): the DCGAN generator."""
    return dcgan.build_generator(resolution, latent_dim, filters, dtype)


class VAE(keras.Model):
    """Encoder + decoder trained on the negative ELBO; `train_on_batch(images)` returns the loss and both terms.

    The noise of the reparameterisation at optimizer step s is a pure function of (seed, s), and the step counter
    is checkpointed with the optimizer, so training is reproducible and resumable.
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, beta: float = 1.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.beta = beta
        self.seed = seed
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_COLUMNS}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        """Deterministic reconstructions: images [B, R, R, 3] in [-1, 1] -> decoder(mean), float32 [B, R, R, 3]."""
        mean, _ = self.encoder(images, training=training)
        return keras.ops.cast(self.decoder(mean, training=training), "float32")

    def train_step(self, data):
        """One gradient step on the negative ELBO of a batch of images float32 [B, R, R, 3] in [-1, 1]."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            mean, log_variance = self.encoder(images, training=True)
            noise = tf.random.stateless_normal(tf.shape(mean), seed=self._step_seed())
            latents = reparameterize(mean, log_variance, noise)
            reconstructions = self.decoder(latents, training=True)
            reconstruction = keras.ops.mean(reconstruction_loss(images, reconstructions))
            kl = keras.ops.mean(kl_divergence(mean, log_variance))
            loss = reconstruction + self.beta * kl
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        for name, value in zip(LOSS_COLUMNS, (loss, reconstruction, kl)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def reconstruct(self, images, batch_size: int = 256) -> np.ndarray:
        """images uint8 or float [-1, 1], [N, R, R, 3] -> decoder(encoder mean), float32 [N, R, R, 3] in [-1, 1]."""
        return np.concatenate([np.asarray(self(data.to_float(images[start : start + batch_size])))
                               for start in range(0, len(images), batch_size)])

    def sample(self, latents) -> np.ndarray:
        """Decode latent vectors float [N, latent_dim] (e.g. from the prior N(0, I)): float32 [N, R, R, 3]."""
        return np.asarray(keras.ops.cast(self.decoder(np.asarray(latents, np.float32), training=False), "float32"))

    def _step_seed(self):
        return tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])


def build_vae(config: VAEConfig) -> VAE:
    """An encoder and decoder for `config`, joined into a compiled VAE (Adam at config.learning_rate)."""
    precision = resolve_precision(config.precision)
    encoder = build_encoder(config.resolution, config.latent_dim, config.filters, precision)
    decoder = build_decoder(config.resolution, config.latent_dim, config.filters, precision)
    model = VAE(encoder, decoder, beta=config.beta, seed=config.seed, name="vae")
    model.build((None, config.resolution, config.resolution, 3))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    model.optimizer.build(model.trainable_variables)
    return model


def train(faces, run_dir, config: VAEConfig, resume: bool = False, show_progress: bool = True) -> RunFolder:
    """Train a VAE on faces (data.Faces or uint8 [N, R, R, 3]) into run_dir; resumed == uninterrupted.

    log.csv holds loss, reconstruction_loss and kl_loss per step; samples/ the decoded fixed latents (the GIF).
    """
    faces, config, run = start_run(faces, run_dir, config, resume)
    model = build_vae(config)
    control = progress.control_noise(config.grid_size, config.latent_dim, config.seed)

    def losses(step, batch):
        logs = model.train_on_batch(batch, return_dict=True)
        return {name: float(logs[name]) for name in LOSS_COLUMNS}

    return run_steps(run, checkpoint_manager(run, model),
                     lambda start: data.batches(faces.images, config.batch_size, config.seed, start), config, losses,
                     lambda: model.sample(control), ["reconstruction_loss", "kl_loss"], resume, show_progress, "vae")


def checkpoint_manager(run: RunFolder, model: VAE):
    """Checkpoints of encoder, decoder and the Adam state (whose step counter also fixes the next noise)."""
    return run.checkpoint_manager(encoder=model.encoder, decoder=model.decoder, optimizer=model.optimizer)


def load_vae(run_dir, step: int | None = None) -> VAE:
    """The VAE of a finished or stopped run, at its latest checkpoint or at `step`."""
    run = RunFolder(run_dir)
    model = build_vae(VAEConfig(**run.read_config()))
    run.restore(tf.train.Checkpoint(encoder=model.encoder, decoder=model.decoder), step)
    return model


def sample(run_dir, count: int, seed: int = 0, step: int | None = None, batch_size: int = 250) -> np.ndarray:
    """`count` faces uint8 [count, R, R, 3] decoded from N(0, I) latents drawn by default_rng(seed), at the
    latest checkpoint or at `step`."""
    model = load_vae(run_dir, step)
    latents = np.random.default_rng(seed).standard_normal((count, model.encoder.output[0].shape[-1]))
    return np.concatenate([data.to_uint8(model.sample(latents[start : start + batch_size].astype(np.float32)))
                           for start in range(0, count, batch_size)])


def _downsamplings(resolution: int) -> int:
    if resolution not in (32, 64, 128):
        raise ValueError(f"resolution must be 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2


MODEL = ModelSpec(name="vae", config=VAEConfig, train=train, sample=sample, load=load_vae)
