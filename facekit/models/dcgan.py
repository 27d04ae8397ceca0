"""DCGAN (Radford et al. 2016) for 32x32 to 128x128 faces: the networks, the model on the GAN engine, and the
two-`train_on_batch` recipe that lesson 03 teaches.

On the engine (`build`), DCGAN is the non-saturating loss pair with one discriminator update per generator update.
Lesson 03's recipe (`compile_models`, `train_step`) trains the same networks with one `train_on_batch` per
network. The Keras 2 version of that recipe (compile D, set `D.trainable = False`, compile the combined model
once) trains nothing in Keras 3: Keras 3 reads `trainable` when it builds each model's train function, so the
discriminator's function is built frozen. The recipe sets `discriminator.trainable` right before each call.
"""

import dataclasses
import math

import keras
import tensorflow as tf

from facekit import gan, losses

LOSS = keras.losses.BinaryCrossentropy(from_logits=True)


@dataclasses.dataclass
class DCGANConfig(gan.GANConfig):
    """A DCGAN run: the engine's settings with the paper's Adam (2e-4, beta_1 0.5)."""

    model: str = "dcgan"

    def __post_init__(self):
        super().__post_init__()
        _upsamplings(self.resolution)


def build_generator(resolution: int = 64, latent_dim: int = 100, filters: int = 64,
                    dtype: str = "float32") -> keras.Model:
    """Noise float32 [B, latent_dim] -> images float32 [B, R, R, 3] in [-1, 1].

    A dense projection to 4x4x(8*filters), then stride-2 transposed convolutions, each with batch norm and ReLU
    and half the channels of the one before, and a last one to 3 channels with tanh. `dtype` is a Keras dtype
    policy ("float32" or "mixed_bfloat16").
    """
    upsamplings = _upsamplings(resolution)
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    channels = filters * 8
    layers = [
        keras.Input((latent_dim,)),  # [B, latent_dim]
        keras.layers.Dense(4 * 4 * channels, use_bias=False, kernel_initializer=initializer, dtype=dtype),
        keras.layers.Reshape((4, 4, channels), dtype=dtype),  # [B, 4, 4, 8 * filters]
        keras.layers.BatchNormalization(momentum=0.9, dtype=dtype),
        keras.layers.ReLU(dtype=dtype),
    ]
    size = 4
    for _ in range(upsamplings - 1):
        channels //= 2
        size *= 2
        layers += [  # [B, size, size, channels]
            keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=initializer, dtype=dtype),
            keras.layers.BatchNormalization(momentum=0.9, dtype=dtype),
            keras.layers.ReLU(dtype=dtype),
        ]
    layers.append(keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",  # [B, R, R, 3]
                                               kernel_initializer=initializer, dtype=dtype))
    return keras.Sequential(layers, name="generator")


def build_discriminator(resolution: int = 64, filters: int = 64, dtype: str = "float32",
                        convolution=keras.layers.Conv2D, dense=keras.layers.Dense) -> keras.Model:
    """Images float32 [B, R, R, 3] in [-1, 1] -> one logit (or critic value) per image, float32 [B, 1].

    Stride-2 convolutions with leaky ReLU, doubling the channels from `filters`, down to 4x4, then one output.
    No batch norm (the paper has it): the discriminator then computes the same function in its own step and
    inside the generator's, real and fake images never share batch statistics, and a WGAN-GP critic's penalty
    stays per image. The output layer stays float32 under a mixed policy, for a stable loss. `convolution` and
    `dense` are the layer classes (SNGAN passes spectrally normalised ones).
    """
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    layers = discriminator_trunk(resolution, filters, dtype, convolution, initializer)
    layers.append(dense(1, kernel_initializer=initializer, dtype="float32"))
    return keras.Sequential(layers, name="discriminator")


def discriminator_trunk(resolution: int = 64, filters: int = 64, dtype: str = "float32",
                        convolution=keras.layers.Conv2D, initializer=None) -> list:
    """The discriminator's layers before its output: images [B, R, R, 3] -> features [B, 4 * 4 * 8 * filters]
    (for 64x64), as a list starting with the Input, which the conditional models put their own heads on.
    Weights from N(0, 0.02) (`initializer`, when the caller shares one with its head)."""
    initializer = initializer or keras.initializers.RandomNormal(stddev=0.02)
    layers = [keras.Input((resolution, resolution, 3))]
    size = resolution
    for index in range(_upsamplings(resolution)):
        size //= 2
        layers += [  # [B, size, size, filters * 2**index]
            convolution(filters * 2**index, 4, strides=2, padding="same", kernel_initializer=initializer,
                        dtype=dtype),
            keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype),
        ]
    return layers + [keras.layers.Flatten(dtype=dtype)]  # [B, 4 * 4 * filters * 2**(levels - 1)]


def build(config: DCGANConfig, loss_pair: losses.LossPair = losses.LOSS_PAIRS["non_saturating"],
          discriminator: keras.Model | None = None, gradient_penalty_weight: float = 0.0) -> gan.GAN:
    """The DCGAN networks on the engine, compiled: the paper's generator, the discriminator above (or the one
    given), and the loss pair (non-saturating for DCGAN; LSGAN, WGAN-GP and SNGAN pass their own)."""
    generator = build_generator(config.resolution, config.latent_dim, config.filters, config.precision)
    if discriminator is None:
        discriminator = build_discriminator(config.resolution, config.filters, config.precision)
    model = gan.GAN(generator, discriminator, loss_pair, n_critic=config.n_critic,
                    gradient_penalty_weight=gradient_penalty_weight, seed=config.seed,
                    ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup, name=config.model)
    return gan.compile_gan(model, config)


def compile_models(generator, discriminator, learning_rate: float = 2e-4, beta_1: float = 0.5) -> keras.Model:
    """Compile the discriminator and the combined generator->discriminator model; returns the combined one."""
    discriminator.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1), loss=LOSS)
    gan = keras.Sequential([generator, discriminator], name="gan")
    gan.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1), loss=LOSS)
    return gan


def train_step(generator, discriminator, gan, real_images, noise) -> tuple[float, float]:
    """One DCGAN iteration: a discriminator update, then a generator update; returns (d_loss, g_loss).

    real_images: float32 [B, R, R, 3] in [-1, 1]; noise: float32 [B, latent_dim].
    """
    batch_size = len(noise)
    fake_images = tf.cast(generator(noise, training=True), real_images.dtype)
    images = tf.concat([real_images, fake_images], axis=0)
    labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
    discriminator.trainable = True
    d_loss = discriminator.train_on_batch(images, labels)
    discriminator.trainable = False
    g_loss = gan.train_on_batch(noise, tf.ones((batch_size, 1)))
    return float(d_loss), float(g_loss)


def step_noise(seed: int, step: int, batch_size: int, latent_dim: int) -> tf.Tensor:
    """The training noise of one step: float32 [B, latent_dim], a pure function of (seed, step)."""
    return tf.random.stateless_normal((batch_size, latent_dim), seed=[seed, step])


def checkpoint_manager(run, generator, discriminator, gan, average=None):
    """The recipe's checkpoints: both networks, both Adam states (built now, so a restore fills them in place)
    and the generator's moving average when there is one, under the engine's names, so that the run folder
    samples like any DCGAN run of the same settings (ema_half_life 0 without an average)."""
    discriminator.optimizer.build(discriminator.trainable_variables)
    gan.optimizer.build(generator.trainable_variables)
    average = {} if average is None else {"generator_ema": average}
    return run.checkpoint_manager(generator=generator, discriminator=discriminator,
                                  discriminator_optimizer=discriminator.optimizer,
                                  generator_optimizer=gan.optimizer, **average)


def load_generator(run_dir) -> keras.Model:
    """The sampling generator (the moving average, where the run keeps one) of a DCGAN-family run."""
    return MODEL.load(run_dir).sampling_generator


def _upsamplings(resolution: int) -> int:
    if resolution not in (32, 64, 128):
        raise ValueError(f"resolution must be 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2


MODEL = gan.model_spec("dcgan", DCGANConfig, build)
