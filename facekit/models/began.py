"""BEGAN (Berthelot, Schumm and Metz 2017): the discriminator is an autoencoder, and a proportional controller
keeps the two networks in balance.

    L(v)   = mean |v - D(v)|                      the autoencoder's reconstruction error of an image
    L_D    = L(x) - k_t L(G(z))                   D rebuilds real faces well and fakes badly
    L_G    = L(G(z))                              G draws faces D rebuilds well
    k_t+1  = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)
    M_global = L(x) + |gamma L(x) - L(G(z))|      the convergence measure (falls as samples improve)

k_t and M_global read L(x) and L(G(z)) at one point: the autoencoder's pass over the step's last real and fake
sub-batches, before its update (the paper computes every term of a step before updating).

gamma = E[L(G(z))] / E[L(x)] is the balance the controller holds: lower gamma, sharper but less diverse faces.
Networks as in the paper: 3x3 convolutions with ELU, two per resolution, strided convolutions down to 8x8 and an
`embedding_dim` bottleneck in the encoder, nearest-neighbour upsampling in the decoder; the generator is a
decoder of its own. Both learning rates halve every `decay_every` steps (the discriminator's counts its n_critic
updates a step as one) down to a floor: long runs are reported to collapse once it decays too far.
"""

import dataclasses
import math

import keras
import tensorflow as tf

from facekit import gan
from facekit.training import setting


@dataclasses.dataclass
class BEGANConfig(gan.GANConfig):
    """A BEGAN run: the paper's sizes (N_z = h = 64, n = 64), gamma and lambda_k, Adam 1e-4."""

    model: str = "began"
    latent_dim: int = setting(64, "length of the generator's noise vector (N_z)")
    filters: int = setting(64, "n: channels of the 3x3 convolutions (times the level in the encoder)")
    embedding_dim: int = setting(64, "h: the autoencoder's bottleneck")
    learning_rate: float = setting(1e-4, "Adam learning rate of both networks, before decay")
    gamma: float = setting(0.5, "diversity ratio gamma = E[L(G(z))] / E[L(x)] that k_t holds")
    lambda_k: float = setting(1e-3, "lambda_k: the proportional gain of the k_t controller")
    decay_every: int = setting(5000, "steps between halvings of the learning rate")
    learning_rate_floor: float = setting(2e-5, "the learning rate never decays below this")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("embedding_dim", "decay_every")

    def __post_init__(self):
        super().__post_init__()
        _levels(self.resolution)
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")


class BEGAN(gan.GAN):
    """The engine's step with BEGAN's losses and k_t; d_real and d_fake are L(x) and L(G(z))."""

    def __init__(self, generator, autoencoder, gamma: float = 0.5, lambda_k: float = 1e-3, **kwargs):
        super().__init__(generator, autoencoder, loss_pair=None, **kwargs)
        self.gamma = gamma
        self.lambda_k = lambda_k
        self.k_t = tf.Variable(0.0, trainable=False, name="k_t")

    @property
    def measure_columns(self) -> tuple:
        return gan.MEASURE_COLUMNS + ("k_t", "m_global")

    def discriminator_loss(self, real, fake, step, sub_step: int):
        """L_D = L(x) - k_t L(G(z)), the autoencoder run once over real and fake together."""
        images = tf.concat([real["images"], tf.cast(fake["images"], real["images"].dtype)], 0)
        real_error, fake_error = tf.split(reconstruction_error(images, self.discriminator(images, training=True)), 2)
        real_error, fake_error = tf.reduce_mean(real_error), tf.reduce_mean(fake_error)
        loss = real_error - self.k_t * fake_error
        return loss, {"d_loss": loss, "d_real": real_error, "d_fake": fake_error}

    def generator_loss(self, real, fake):
        """L_G = L(G(z)) through the freshly updated autoencoder."""
        fake_images = fake["images"]
        loss = tf.reduce_mean(reconstruction_error(fake_images, self.discriminator(fake_images, training=True)))
        return loss, {"g_loss": loss}

    def after_step(self, logs: dict) -> dict:
        """k_t+1 = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1) with L(x) and L(G(z)) from the last
        discriminator pass (d_real and d_fake, before its update); logs k_t+1 and M_global."""
        balance = self.gamma * logs["d_real"] - logs["d_fake"]
        self.k_t.assign(tf.clip_by_value(self.k_t + self.lambda_k * balance, 0.0, 1.0))
        return {"k_t": tf.identity(self.k_t), "m_global": logs["d_real"] + tf.abs(balance)}

    def checkpoint_items(self) -> dict:
        return {**super().checkpoint_items(), "k_t": self.k_t}


class StepDecayWithFloor(keras.optimizers.schedules.LearningRateSchedule):
    """initial * 0.5 ** (updates // every), never below `floor`; `updates` is the optimizer's iteration count."""

    def __init__(self, initial: float, every: int, floor: float):
        self.initial, self.every, self.floor = initial, every, floor

    def __call__(self, step):
        halvings = tf.cast(tf.math.floordiv(tf.cast(step, tf.int64), self.every), tf.float32)
        return tf.maximum(self.initial * tf.pow(0.5, halvings), self.floor)

    def get_config(self):
        return {"initial": self.initial, "every": self.every, "floor": self.floor}


def reconstruction_error(images, reconstructions):
    """L(v) of each image: mean absolute error, float32 [B] from two [B, R, R, 3]."""
    difference = tf.cast(images, tf.float32) - tf.cast(reconstructions, tf.float32)
    return tf.reduce_mean(tf.abs(difference), axis=[1, 2, 3])


def build_decoder(resolution: int, input_dim: int, filters: int, dtype: str = "float32", name: str = "decoder",
                  activation=None) -> keras.Model:
    """Vectors [B, input_dim] -> images [B, R, R, 3]: dense to 8x8xn, then per level two 3x3 convolutions with
    ELU and a nearest-neighbour 2x upsampling (none after the last), and a 3x3 convolution to 3 channels."""
    levels = _levels(resolution)
    layers = [keras.Input((input_dim,)),  # [B, input_dim]
              keras.layers.Dense(8 * 8 * filters, dtype=dtype),
              keras.layers.Reshape((8, 8, filters), dtype=dtype)]  # [B, 8, 8, n]
    for level in range(levels):
        layers += [_conv(filters, dtype), _conv(filters, dtype)]  # [B, 8 * 2**level, 8 * 2**level, n]
        if level < levels - 1:
            layers.append(keras.layers.UpSampling2D(2, interpolation="nearest", dtype=dtype))
    layers.append(keras.layers.Conv2D(3, 3, padding="same", activation=activation, dtype="float32"))  # [B, R, R, 3]
    return keras.Sequential(layers, name=name)


def build_encoder(resolution: int, embedding_dim: int, filters: int, dtype: str = "float32") -> keras.Model:
    """Images [B, R, R, 3] -> embeddings [B, embedding_dim]: a 3x3 convolution, then per level two 3x3
    convolutions with ELU of n * level channels and a stride-2 one to the next level's width, down to 8x8."""
    levels = _levels(resolution)
    layers = [keras.Input((resolution, resolution, 3)), _conv(filters, dtype)]  # [B, R, R, n]
    for level in range(1, levels + 1):
        layers += [_conv(filters * level, dtype), _conv(filters * level, dtype)]
        if level < levels:  # [B, R / 2**level, R / 2**level, n * (level + 1)]
            layers.append(_conv(filters * (level + 1), dtype, strides=2))
    layers += [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(embedding_dim, dtype=dtype)]  # [B, h]
    return keras.Sequential(layers, name="encoder")


def build_autoencoder(resolution: int, embedding_dim: int, filters: int, dtype: str = "float32") -> keras.Model:
    """BEGAN's discriminator: images [B, R, R, 3] -> their reconstructions [B, R, R, 3] (linear output)."""
    encoder = build_encoder(resolution, embedding_dim, filters, dtype)
    decoder = build_decoder(resolution, embedding_dim, filters, dtype)
    return keras.Sequential([keras.Input((resolution, resolution, 3)), encoder, decoder], name="discriminator")


def build(config: BEGANConfig) -> BEGAN:
    """BEGAN's generator (a decoder ending in tanh) and autoencoder, compiled with rates that halve every
    `decay_every` steps (n_critic * decay_every discriminator updates)."""
    generator = build_decoder(config.resolution, config.latent_dim, config.filters, config.precision,
                              name="generator", activation="tanh")
    autoencoder = build_autoencoder(config.resolution, config.embedding_dim, config.filters, config.precision)
    model = BEGAN(generator, autoencoder, gamma=config.gamma, lambda_k=config.lambda_k, n_critic=config.n_critic,
                  seed=config.seed, ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup,
                  name=config.model)

    def schedule(updates_per_step):
        return StepDecayWithFloor(config.learning_rate, config.decay_every * updates_per_step,
                                  config.learning_rate_floor)

    return gan.compile_gan(model, config, learning_rate=schedule(1),
                           discriminator_learning_rate=schedule(config.n_critic))


def _conv(filters: int, dtype: str, strides: int = 1):
    return keras.layers.Conv2D(filters, 3, strides=strides, padding="same", activation="elu", dtype=dtype)


def _levels(resolution: int) -> int:
    if resolution not in (32, 64, 128):
        raise ValueError(f"resolution must be 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2


MODEL = gan.model_spec("began", BEGANConfig, build)
