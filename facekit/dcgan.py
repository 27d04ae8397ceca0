"""DCGAN (Radford et al. 2016) for 64x64 and 128x128 faces, trained with `train_on_batch` the Keras 3 way.

The Keras 2 recipe (compile D, set `D.trainable = False`, compile the combined model once) trains nothing in
Keras 3: Keras 3 reads `trainable` when it builds each model's train function, so the discriminator's function is
built frozen. Here `discriminator.trainable` is set right before each `train_on_batch` call instead.
"""

import dataclasses
import math

import keras
import tensorflow as tf

from facekit import progress
from facekit.data import DEFAULT_CROP
from facekit.training import RunFolder, run_steps

LOSS = keras.losses.BinaryCrossentropy(from_logits=True)


@dataclasses.dataclass
class DCGANConfig:
    """Everything that defines a DCGAN run; saved as the run folder's run.json."""

    resolution: int = 64
    latent_dim: int = 100
    filters: int = 64
    batch_size: int = 64
    steps: int = 1000
    snapshot_every: int = 50
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    seed: int = 0
    grid_size: int = 36
    precision: str = "auto"
    crop: str = DEFAULT_CROP  # the facekit.data crop the faces were prepared with (evaluate uses it too)
    model: str = "dcgan"

    def __post_init__(self):
        for name in ("latent_dim", "filters", "batch_size", "steps", "snapshot_every", "grid_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
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
        keras.Input((latent_dim,)),
        keras.layers.Dense(4 * 4 * channels, use_bias=False, kernel_initializer=initializer, dtype=dtype),
        keras.layers.Reshape((4, 4, channels), dtype=dtype),
        keras.layers.BatchNormalization(momentum=0.9, dtype=dtype),
        keras.layers.ReLU(dtype=dtype),
    ]
    for _ in range(upsamplings - 1):
        channels //= 2
        layers += [
            keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=initializer, dtype=dtype),
            keras.layers.BatchNormalization(momentum=0.9, dtype=dtype),
            keras.layers.ReLU(dtype=dtype),
        ]
    layers.append(keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",
                                               kernel_initializer=initializer, dtype=dtype))
    return keras.Sequential(layers, name="generator")


def build_discriminator(resolution: int = 64, filters: int = 64, dtype: str = "float32") -> keras.Model:
    """Images float32 [B, R, R, 3] in [-1, 1] -> one logit per image, float32 [B, 1].

    Stride-2 convolutions with leaky ReLU, doubling the channels from `filters`, down to 4x4, then one logit.
    No batch norm: the discriminator then computes the same function in its own step and inside the generator's.
    The logit layer stays float32 under a mixed policy, for a stable loss.
    """
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    layers = [keras.Input((resolution, resolution, 3))]
    for index in range(_upsamplings(resolution)):
        layers += [
            keras.layers.Conv2D(filters * 2**index, 4, strides=2, padding="same", kernel_initializer=initializer,
                                dtype=dtype),
            keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype),
        ]
    layers += [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(1, kernel_initializer=initializer, dtype="float32")]
    return keras.Sequential(layers, name="discriminator")


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


def resolve_precision(precision: str = "auto") -> str:
    """The Keras dtype policy to train with: "auto" picks mixed_bfloat16 on a CPU with native bfloat16
    (AMX or AVX512-BF16, about 1.8x faster there) and float32 everywhere else (GPUs, older CPUs)."""
    if precision not in ("auto", "float32", "mixed_bfloat16"):
        raise ValueError(f"precision must be auto, float32 or mixed_bfloat16, got {precision!r}")
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "float32"
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if (" amx_bf16" in flags or " avx512_bf16" in flags) else "float32"


def step_noise(seed: int, step: int, batch_size: int, latent_dim: int) -> tf.Tensor:
    """The training noise of one step: float32 [B, latent_dim], a pure function of (seed, step)."""
    return tf.random.stateless_normal((batch_size, latent_dim), seed=[seed, step])


def train(images, run_dir, config: DCGANConfig, resume: bool = False, show_progress: bool = True) -> RunFolder:
    """Train a DCGAN on uint8 images [N, R, R, 3] into run_dir; resumable, and resumed == uninterrupted."""
    config = dataclasses.replace(config, precision=resolve_precision(config.precision))
    run = RunFolder(run_dir)
    run.start(dataclasses.asdict(config), resume=resume)
    keras.utils.set_random_seed(config.seed)
    generator = build_generator(config.resolution, config.latent_dim, config.filters, config.precision)
    discriminator = build_discriminator(config.resolution, config.filters, config.precision)
    gan = compile_models(generator, discriminator, config.learning_rate, config.beta_1)
    control = progress.control_noise(config.grid_size, config.latent_dim, config.seed)

    def losses(step, real_images):
        noise = step_noise(config.seed, step, config.batch_size, config.latent_dim)
        d_loss, g_loss = train_step(generator, discriminator, gan, real_images, noise)
        return {"d_loss": d_loss, "g_loss": g_loss}

    return run_steps(run, checkpoint_manager(run, generator, discriminator, gan), images, config, losses,
                     lambda: generator(control, training=False), ["d_loss", "g_loss"], resume, show_progress, "dcgan")


def checkpoint_manager(run: RunFolder, generator, discriminator, gan):
    """Checkpoints of both networks and both Adam states (built now, so a restore fills them in place)."""
    discriminator.optimizer.build(discriminator.trainable_variables)
    gan.optimizer.build(generator.trainable_variables)
    return run.checkpoint_manager(generator=generator, discriminator=discriminator,
                                  discriminator_optimizer=discriminator.optimizer,
                                  generator_optimizer=gan.optimizer)


def load_generator(run_dir) -> keras.Model:
    """The generator of a finished or stopped DCGAN run, at its latest checkpoint."""
    run = RunFolder(run_dir)
    config = DCGANConfig(**run.read_config())
    generator = build_generator(config.resolution, config.latent_dim, config.filters, config.precision)
    latest = tf.train.latest_checkpoint(run.checkpoints_dir)
    if latest is None:
        raise FileNotFoundError(f"{run.checkpoints_dir}: no checkpoint to load a generator from")
    tf.train.Checkpoint(generator=generator).restore(latest).expect_partial()
    return generator


def _upsamplings(resolution: int) -> int:
    if resolution not in (32, 64, 128):
        raise ValueError(f"resolution must be 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2
