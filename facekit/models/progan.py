"""Progressive GAN (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation"): both networks start at 4x4 and grow by one block at each doubling of the resolution; each new block
fades in while every block before it keeps training.

    phases, each measured in images shown (a phase's steps: its images / its batch size, rounded up)
        4x4 stabilise -> 8x8 fade-in -> 8x8 stabilise -> 16x16 fade-in -> ... -> R x R stabilise (to the run's end)
        (grow=False, the paper's non-progressive baseline: R x R stabilise from the first step, the same networks)

    generator at resolution r with fade f                                      C(r) = min(filters, filter_base / r)
        z -> pixel norm -> dense to 4x4 -> 3x3 conv                               [B, 4, 4, C(4)]
          -> per doubling: nearest upsampling x2, two 3x3 convs                   [B, r, r, C(r)]
          (every conv, the dense too: leaky ReLU 0.2, then pixel norm)
        image = (1 - f) * upsample(toRGB_r/2(features at r/2)) + f * toRGB_r(features at r)    1x1, linear, no tanh
    discriminator at resolution r with fade f (the generator mirrored)
        x -> (1 - f) * fromRGB_r/2(avgpool(x)) + f * block_r(fromRGB_r(x))        [B, r/2, r/2, C(r/2)]
          -> per halving: two 3x3 convs, 2x2 average pooling                      [B, 4, 4, C(4)]
          -> minibatch stddev -> 3x3 conv -> dense C(4) -> dense 1 (linear)       [B, 1]
    real images at r during a fade, blended by the same f                   (1 - f) * upsample(avgpool(x)) + f * x
    losses, WGAN-GP with the drift term (lambda = 10, epsilon_drift = 0.001), one critic update per G update
        D: E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)|| - 1)^2] + epsilon_drift E[D(x)^2]
        G: -E[D(G(z))]

As the paper's code (networks.py, loss.py, train.py): every layer has an equalised learning rate (weights from
N(0, 1) scaled at run time by He's constant sqrt(2 / fan_in); the 4x4 dense layer by sqrt(2) / 4 / sqrt(latent_dim),
the constant of the original's 4x4 convolution of the latent, toRGB and the critic's output by 1 / sqrt(fan_in)); Adam 1e-3 with betas
(0, 0.99) and epsilon 1e-8, its state reset at the start of every phase (the code resets whenever floor(lod) or
ceil(lod) changes: as a fade-in starts and as it ends); the minibatch standard deviation in groups of 4; faces at a
lower resolution average-pooled from the run's; the moving average of the generator draws every picture. Not
kept: the paper's mirror augmentation, and tanh (the output is linear: a tanh output is reported to collapse at the
16x16 fade-in). D sees real and fake images in separate calls, as the code does, so that no minibatch-stddev group
mixes them. Widths are capped for a CPU (`filters`, `filter_base`; the paper's are 512 and 16384).

The design, and why the engine: Keras (TensorFlow) traces a training step into a graph of fixed shapes, so a
network that grows cannot be one graph. Here each network is one keras.Model (`Generator`, `Discriminator`) that
owns every block and every toRGB / fromRGB layer from step 0 and, called with a resolution, runs only the blocks
of that resolution; `ProGAN` subclasses the GAN engine (gan.GAN) and keeps one traced training function per
resolution (chosen by the batch's image size; traced once, at the phase's first step). The engine's hooks fit: its
step (n_critic critic updates, one G update, the moving average), noise and penalty seeds, checkpoints, resume,
snapshots, GIF and sampling are used as they are, and this module adds what growing changes: which variables an
update trains (the active blocks'), the schedule's fade, the step count (a checkpointed variable, since the
optimizers' own counts restart at each phase), the per-phase batches and the per-resolution traces. Checkpoints
hold all blocks' weights from step 0, so a run restores at any phase, and `--resume` continues mid-fade exactly.

Everything that changes during a run is a pure function of the step (`Schedule`): the phase, its resolution, batch
size and fade, and the images shown before it. The fade of step s in a fade-in that starts at step s0 with B
images a step is min(1, (s - s0) * B / fade_images): 0 at its first step, rising by B / fade_images a step.

Mixed precision: the generator may compute in bfloat16, but its equalised layers scale their float32 weights in
float32, pixel norm computes in float32, and the toRGB layers and every blend run in float32; the critic, the
minibatch stddev and the gradient penalty are always float32 (as WGAN-GP's critic, facekit.models.wgan_gp).
Pictures: the snapshots, the GIF and `sample` are drawn by the moving average at the resolution and fade of the
step reached, enlarged to the run's resolution by nearest neighbours, so the GIF shows the faces grow sharper.

The CPU default (`ProGANConfig`): 64 channels at most and filter_base 1024 (64 channels up to 16x16, 32 at 32x32,
16 at 64x64), 16 images a step, 10,000 images a phase: 5,625 steps from 4x4 to a stabilised 64x64. Its step takes
0.013, 0.042, 0.14, 0.30 and 0.50 s at 4, 8, 16, 32 and 64 pixels in mixed_bfloat16 (0.013, 0.043, 0.18, 0.35 and
0.54 s in float32), the median of 3 steps after the trace on this project's 2-core AMD EPYC while other jobs kept
its load near 3: about 21 minutes of steps for the whole schedule (23 in float32), snapshots aside.
"""

import dataclasses
import itertools
import math

import keras
import numpy as np
import tensorflow as tf

from facekit import data, gan, layers, losses
from facekit.training import setting

FIRST_RESOLUTION = 4
RESOLUTIONS = (8, 16, 32, 64, 128)  # the runs' (final) resolutions; batch_sizes has one entry from 4x4 to 128x128
ADAM_EPSILON = 1e-8  # the paper's; Keras's default is 1e-7
LEAKY_SLOPE = 0.2
FIRST_DENSE_GAIN = math.sqrt(2) / 4  # the 4x4 dense layer's (the paper's code, "to match the original Theano")


@dataclasses.dataclass
class ProGANConfig(gan.GANConfig):
    """A Progressive GAN run: the paper's losses, optimiser and schedule, its widths and lengths sized for a CPU."""

    model: str = "progan"
    resolution: int = setting(64, "final image size in pixels: the networks grow from 4x4 to it", choices=RESOLUTIONS)
    latent_dim: int = setting(64, "length of the generator's noise vector (the paper's: 512, its widest block)")
    filters: int = setting(64, "channels of a block at most (the paper's: 512)")
    filter_base: int = setting(1024, "a block at resolution r has min(filters, filter_base / r) channels (the "
                                     "paper's: 16384)")
    batch_sizes: tuple = setting((16, 16, 16, 16, 16, 16), "images per critic update at 4, 8, 16, 32, 64 and 128 "
                                                           "pixels (the paper's: 128 128 128 64 32 16)", nargs="+")
    batch_size: int = 0  # not a setting: batch_sizes' entry for the final resolution, filled in
    fade_images: int = setting(10_000, "images shown while each new resolution fades in (the paper's: 800,000)")
    stabilise_images: int = setting(10_000, "images shown at 4x4, and at each resolution after its fade-in (the "
                                            "paper's: 800,000)")
    steps: int = setting(5_625, "training steps (the default schedule grows to 64x64 and stabilises it in 5,625)")
    learning_rate: float = setting(1e-3, "Adam learning rate of both networks")
    beta_1: float = setting(0.0, "Adam beta_1 of both networks")
    beta_2: float = setting(0.99, "Adam beta_2 of both networks")
    gradient_penalty_weight: float = setting(10.0, "lambda: weight of the gradient penalty")
    drift_weight: float = setting(0.001, "epsilon_drift: weight of E[D(x)^2] in the critic's loss")
    group_size: int = setting(4, "images per group of the minibatch standard deviation (must divide every batch "
                                 "size)")
    reset_optimizers: bool = setting(True, "reset both Adam states at the start of every phase, as the paper's code")
    grow: bool = setting(True, "grow from 4x4 (with --no-grow the same networks train at the final resolution from "
                               "the first step: the paper's non-progressive baseline)")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("filter_base", "fade_images", "stabilise_images", "group_size")

    def __post_init__(self):
        self.batch_sizes = tuple(int(size) for size in self.batch_sizes)
        resolutions = _resolutions(self.resolution)
        if len(self.batch_sizes) < len(resolutions) or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes: expected a size of at least 1 for each of {_listed(resolutions)} "
                             f"pixels, got {' '.join(map(str, self.batch_sizes)) or 'none'}")
        for resolution, size in zip(resolutions, self.batch_sizes):
            if size % min(self.group_size, size):
                raise ValueError(f"batch_sizes: {size} images at {resolution}x{resolution} do not split into "
                                 f"minibatch-stddev groups of {self.group_size} (group_size); use a multiple of it")
        self.batch_size = self.batch_sizes[len(resolutions) - 1]
        super().__post_init__()
        if self.gradient_penalty_weight < 0 or self.drift_weight < 0:
            raise ValueError(f"gradient_penalty_weight and drift_weight must be at least 0, got "
                             f"{self.gradient_penalty_weight} and {self.drift_weight}")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of the schedule: a resolution's fade-in (`fading`) or its stabilisation, from step `start` for
    `steps` steps (None: to the end of the run) of `batch_size` images, after `images_before` images."""

    resolution: int
    fading: bool
    start: int
    steps: int | None
    batch_size: int
    images_before: int
    fade_images: int

    def contains(self, step: int) -> bool:
        return self.start <= step and (self.steps is None or step < self.start + self.steps)

    def fade(self, step: int) -> float:
        """The fade of `step`: the fraction of the fade-in's images shown before it (1 when stabilising)."""
        if not self.fading:
            return 1.0
        return min(1.0, (step - self.start) * self.batch_size / self.fade_images)


class Schedule:
    """The phases of a run growing from 4x4 to `resolution`, and what each step trains: a pure function of the step.

    batch_sizes: images a step at 4, 8, ... pixels (one entry per resolution; more are ignored). A phase of N
    images at B images a step lasts ceil(N / B) steps; the last (the final resolution's stabilisation) lasts to
    the end of the run. grow=False: one phase, the final resolution stabilising from step 0 to the end (at its
    batch size), so that the same networks train without growing.
    """

    def __init__(self, resolution: int, batch_sizes, fade_images: int, stabilise_images: int, grow: bool = True):
        self.resolution = resolution
        self.phases = []
        start = images = 0
        for level, resolution in enumerate(_resolutions(resolution)):
            if not grow and resolution != self.resolution:
                continue  # not growing: the final resolution's stabilisation alone
            batch_size = int(batch_sizes[level])
            for fading, length in ((True, fade_images), (False, stabilise_images)):
                if fading and (level == 0 or not grow):
                    continue  # 4x4 has nothing to fade in from; without growing nothing fades in
                steps = math.ceil(length / batch_size)
                self.phases.append(Phase(resolution, fading, start, steps, batch_size, images, fade_images))
                start, images = start + steps, images + steps * batch_size
        self.growing_steps = start  # the steps to grow to the final resolution and stabilise it once (or, not
        # growing, to stabilise it once)
        self.phases[-1] = dataclasses.replace(self.phases[-1], steps=None)

    @classmethod
    def of(cls, config: ProGANConfig) -> "Schedule":
        """The schedule of a run's config (its batch sizes times n_critic: the images a step reads)."""
        return cls(config.resolution, [size * config.n_critic for size in config.batch_sizes], config.fade_images,
                   config.stabilise_images, grow=config.grow)

    def phase(self, step: int) -> Phase:
        """The phase that step `step` (counted from 0) trains in."""
        if step < 0:
            raise ValueError(f"step must be at least 0, got {step}")
        return next(phase for phase in self.phases if phase.contains(step))

    def resolution_at(self, step: int) -> int:
        return self.phase(step).resolution

    def fade(self, step: int) -> float:
        return self.phase(step).fade(step)

    def images_before(self, step: int) -> int:
        """Images shown before step `step`: every earlier phase's, and this phase's earlier steps'."""
        phase = self.phase(step)
        return phase.images_before + (step - phase.start) * phase.batch_size

    def describe(self) -> str:
        """One line per phase: its resolution, kind, steps and batch size (what a lesson prints)."""
        lines = []
        for phase in self.phases:
            end = "the end" if phase.steps is None else f"{phase.start + phase.steps - 1}"
            kind = "fade-in" if phase.fading else "stabilise"
            lines.append(f"{phase.resolution:>3}x{phase.resolution:<3} {kind:9}  steps {phase.start}-{end}, "
                         f"{phase.batch_size} images a step")
        return "\n".join(lines)


class Generator(keras.Model):
    """Noise float32 [B, latent_dim] -> images float32 [B, r, r, 3] (linear, about [-1, 1] once trained) at any
    resolution r from 4 up to `resolution`, the fade-in of r's block blended by `fade`.

    Owns every block and toRGB layer from the start (built at construction), so that its checkpoint restores at
    any resolution; `dtype` is the Keras dtype policy of the blocks (the toRGB layers stay float32).
    """

    def __init__(self, resolution: int = 64, latent_dim: int = 64, filters: int = 64, filter_base: int = 1024,
                 dtype: str = "float32", name: str = "generator", **kwargs):
        super().__init__(name=name, **kwargs)
        self.resolution, self.latent_dim, self.filters, self.filter_base = resolution, latent_dim, filters, filter_base
        self.block_dtype = dtype
        sizes = _resolutions(resolution)
        width = {size: channels(size, filters, filter_base) for size in sizes}
        blocks = [keras.Sequential([  # [B, 4, 4, C(4)]
            keras.Input((latent_dim,)),
            layers.PixelNorm(dtype=dtype),
            layers.EqualizedDense(4 * 4 * width[4], gain=FIRST_DENSE_GAIN, use_bias=False, dtype=dtype),
            keras.layers.Reshape((4, 4, width[4]), dtype=dtype),
            layers.ChannelBias(dtype=dtype),
            *_activation_and_norm(dtype),
            layers.EqualizedConv2D(width[4], 3, dtype=dtype),
            *_activation_and_norm(dtype),
        ], name="block_4x4")]
        for size in sizes[1:]:
            blocks.append(keras.Sequential([  # [B, size, size, C(size)]
                keras.Input((size // 2, size // 2, width[size // 2])),
                keras.layers.UpSampling2D(2, interpolation="nearest", dtype=dtype),
                layers.EqualizedConv2D(width[size], 3, dtype=dtype),
                *_activation_and_norm(dtype),
                layers.EqualizedConv2D(width[size], 3, dtype=dtype),
                *_activation_and_norm(dtype),
            ], name=f"block_{size}x{size}"))
        to_rgb = []
        for size in sizes:  # [B, size, size, 3]
            to_rgb.append(layers.EqualizedConv2D(3, 1, gain=1.0, dtype="float32", name=f"to_rgb_{size}x{size}"))
            to_rgb[-1].build((None, size, size, width[size]))
        # tuples, not lists: Keras 3 keeps a list attribute in its own TrackedList, which tf.train.Checkpoint does not
        # see (the checkpoint would hold none of the blocks' weights); TensorFlow tracks a tuple's layers
        self.blocks, self.to_rgb = tuple(blocks), tuple(to_rgb)

    def call(self, noise, resolution: int | None = None, fade=1.0, training=False):
        level = _level(resolution or self.resolution, self.resolution)
        features = self.blocks[0](noise, training=training)
        previous = None
        for block in self.blocks[1 : level + 1]:
            previous, features = features, block(features, training=training)
        images = self.to_rgb[level](features)
        if previous is None:
            return images
        return layers.fade_in(upsample(self.to_rgb[level - 1](previous), 2), images, fade)

    def variables_at(self, resolution: int) -> list:
        """The trainable variables that images at `resolution` depend on: its blocks, its toRGB and (for the fade)
        the one before."""
        level = _level(resolution, self.resolution)
        used = self.blocks[: level + 1] + self.to_rgb[max(level - 1, 0) : level + 1]
        return [variable for layer in used for variable in layer.trainable_variables]

    def get_config(self):
        return {"resolution": self.resolution, "latent_dim": self.latent_dim, "filters": self.filters,
                "filter_base": self.filter_base, "dtype": self.block_dtype, "name": self.name}


class Discriminator(keras.Model):
    """Images float32 [B, r, r, 3] at any resolution r from 4 up to `resolution` -> critic values float32 [B, 1],
    the fade-in of r's block blended by `fade`. Float32 throughout. Owns every block and fromRGB layer from the
    start; B must be a multiple of min(group_size, B), the minibatch standard deviation's groups."""

    def __init__(self, resolution: int = 64, filters: int = 64, filter_base: int = 1024, group_size: int = 4,
                 name: str = "discriminator", **kwargs):
        super().__init__(name=name, **kwargs)
        self.resolution, self.filters, self.filter_base, self.group_size = resolution, filters, filter_base, group_size
        sizes = _resolutions(resolution)
        width = {size: channels(size, filters, filter_base) for size in sizes}
        from_rgb = [keras.Sequential([  # [B, size, size, C(size)]
            keras.Input((size, size, 3)),
            layers.EqualizedConv2D(width[size], 1),
            keras.layers.LeakyReLU(LEAKY_SLOPE),
        ], name=f"from_rgb_{size}x{size}") for size in sizes]
        blocks = [keras.Sequential([  # [B, 4, 4, C(4)] -> [B, 1]
            keras.Input((4, 4, width[4])),
            layers.MinibatchStdDev(group_size),  # [B, 4, 4, C(4) + 1]
            layers.EqualizedConv2D(width[4], 3),
            keras.layers.LeakyReLU(LEAKY_SLOPE),
            keras.layers.Flatten(),
            layers.EqualizedDense(width[4]),
            keras.layers.LeakyReLU(LEAKY_SLOPE),
            layers.EqualizedDense(1, gain=1.0),
        ], name="block_4x4")]
        for size in sizes[1:]:
            blocks.append(keras.Sequential([  # [B, size, size, C(size)] -> [B, size / 2, size / 2, C(size / 2)]
                keras.Input((size, size, width[size])),
                layers.EqualizedConv2D(width[size], 3),
                keras.layers.LeakyReLU(LEAKY_SLOPE),
                layers.EqualizedConv2D(width[size // 2], 3),
                keras.layers.LeakyReLU(LEAKY_SLOPE),
                keras.layers.AveragePooling2D(2),
            ], name=f"block_{size}x{size}"))
        self.blocks, self.from_rgb = tuple(blocks), tuple(from_rgb)  # tuples, as the generator's

    def call(self, images, fade=1.0, training=False):
        level = _level(images.shape[1], self.resolution)
        features = self.from_rgb[level](images, training=training)
        for index in range(level, -1, -1):  # r's block, ..., 8x8's, then the 4x4 one
            features = self.blocks[index](features, training=training)
            if index == level > 0:
                old = self.from_rgb[level - 1](downsample(images, 2), training=training)
                features = layers.fade_in(old, features, fade)
        return features

    def variables_at(self, resolution: int) -> list:
        """The trainable variables that the values at `resolution` depend on: its blocks, its fromRGB and (for the
        fade) the one before."""
        level = _level(resolution, self.resolution)
        used = self.blocks[: level + 1] + self.from_rgb[max(level - 1, 0) : level + 1]
        return [variable for layer in used for variable in layer.trainable_variables]

    def get_config(self):
        return {"resolution": self.resolution, "filters": self.filters, "filter_base": self.filter_base,
                "group_size": self.group_size, "name": self.name}


class ProGAN(gan.GAN):
    """The engine, growing: each step trains at the resolution and fade the schedule gives it.

    `step` (a checkpointed int64 variable) counts the steps trained; before each step `train_on_batch` sets `fade`
    and the images seen from the schedule (and at a phase's first step resets both optimizers, with
    `reset_optimizers`); the batch must hold the phase's images (`training_batches` gives them). Logs the engine's
    columns, the critic's drift term, and the step's resolution and fade.
    """

    def __init__(self, generator: Generator, discriminator: Discriminator, schedule: Schedule,
                 drift_weight: float = 0.001, reset_optimizers: bool = True, **kwargs):
        super().__init__(generator, discriminator, losses.LOSS_PAIRS["wasserstein"], **kwargs)
        self.schedule = schedule
        self.resolution = schedule.resolution
        self.drift_weight = drift_weight
        self.reset_optimizers = reset_optimizers
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.fade = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="fade")
        self.images_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")
        self.built = True  # every network is built at construction; `call` reads `step`, so Keras cannot trace it

    @property
    def log_columns(self) -> tuple:
        return super().log_columns + ("resolution", "fade")

    @property
    def measure_columns(self) -> tuple:
        return super().measure_columns + ("drift",)

    def train_on_batch(self, x, *arguments, return_dict: bool = False, **options):
        """One step at `step`: the schedule's fade and images seen set (the optimizers reset at a phase's first
        step, with reset_optimizers), then the engine's train_on_batch; the logs get the resolution and fade."""
        step = int(self.step.numpy())
        phase = self.schedule.phase(step)
        size = x["images"].shape[1]
        if size != phase.resolution:
            raise ValueError(f"step {step} trains at {phase.resolution}x{phase.resolution} but the batch holds "
                             f"{size}x{size} images (ProGAN.training_batches gives each step's)")
        if self.reset_optimizers and step == phase.start:
            reset_optimizer(self.discriminator_optimizer)
            reset_optimizer(self.generator_optimizer)
        self.fade.assign(phase.fade(step))
        self.images_seen.assign(self.schedule.images_before(step))
        logs = super().train_on_batch(x, *arguments, return_dict=return_dict, **options)
        if not return_dict:
            return logs
        return {**logs, "resolution": phase.resolution, "fade": float(self.fade.numpy())}

    def make_train_function(self, force=False):
        """The engine's training function, traced once per resolution: a batch of r x r images runs r's."""
        if self.train_function is not None and not force:
            return self.train_function
        traced = {}  # resolution: its training function

        def by_resolution(iterator):
            batch = next(iter(iterator))
            size = batch[0]["images"].shape[1]
            if size not in traced:
                self.train_function = None
                traced[size] = super(ProGAN, self).make_train_function(force=True)
                self.train_function = by_resolution
            return traced[size]([batch])

        self.train_function = by_resolution
        return self.train_function

    def train_step(self, batch):
        """The engine's step on the real images faded as the networks are (at fade < 1 blended with their
        down-and-up-sampled copy), then `step` + 1."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        logs = super().train_step({**batch, "images": fade_real_images(batch["images"], self.fade)})
        self.step.assign_add(1)
        return logs

    def steps_done(self):
        return tf.identity(self.step)

    def generator_variables(self, real: dict) -> list:
        return self.generator.variables_at(real["images"].shape[1])

    def discriminator_variables(self, real: dict) -> list:
        return self.discriminator.variables_at(real["images"].shape[1])

    def fakes(self, step, sub_step: int, real: dict, training: bool = False) -> dict:
        """The engine's fakes, drawn at the real sub-batch's resolution and the step's fade."""
        inputs = self.fake_inputs(step, sub_step, real)
        images = self.generator(inputs["noise"], resolution=real["images"].shape[1], fade=self.fade, training=training)
        return {"images": images, **inputs}

    def discriminate(self, batch: dict, training: bool = False):
        return self.discriminator(batch["images"], fade=self.fade, training=training)

    def discriminator_loss(self, real: dict, fake: dict, step, sub_step: int):
        """E[D(G(z))] - E[D(x)] + lambda * penalty + epsilon_drift * E[D(x)^2], D called on reals and fakes apart."""
        real_outputs = self.discriminate(real, training=True)
        fake_outputs = self.discriminate(fake, training=True)
        penalty, norms = losses.gradient_penalty(
            lambda images, training: self.discriminator(images, fade=self.fade, training=training),
            real["images"], fake["images"], self._seed(step, gan.PENALTY_SEED_OFFSET + sub_step))
        drift = losses.drift_penalty(real_outputs)
        loss = (losses.wasserstein_discriminator_loss(real_outputs, fake_outputs)
                + self.gradient_penalty_weight * penalty + self.drift_weight * drift)
        return loss, {"d_loss": loss, "d_real": self.readout(real_outputs), "d_fake": self.readout(fake_outputs),
                      "gradient_penalty": penalty, "gradient_norm": tf.reduce_mean(norms), "drift": drift}

    def update_moving_average(self, images_seen, batch_size) -> None:
        """The engine's moving average, its ramp counting the images the schedule has shown (batch sizes change)."""
        super().update_moving_average(self.images_seen, batch_size)

    def call(self, inputs, training=False):
        """Images float32 [B, R, R, 3] drawn by the sampling generator at the resolution and fade of `step` (the
        step reached), enlarged to the run's resolution R by nearest neighbours."""
        step = int(self.step.numpy())
        resolution, fade = self.schedule.resolution_at(step), self.schedule.fade(step)
        noise = self._generator_input(inputs)
        images = self.sampling_generator(noise, resolution=resolution, fade=fade, training=training)
        return keras.ops.cast(upsample(images, self.resolution // resolution), "float32")

    def training_batches(self, faces, config: ProGANConfig, start_step: int):
        """Batches {"images": float32 [n_critic * B, r, r, 3]} from `start_step` on, each phase's at its resolution r
        (average-pooled from the faces') and batch size B: one stream of epochs (data.batch_dicts) continued across
        phases, each batch a pure function of (seed, step)."""
        streams = []
        for phase in self.schedule.phases:
            end = None if phase.steps is None else phase.start + phase.steps
            if end is not None and end <= start_step:
                continue
            first = max(start_step, phase.start)
            stream = data.batch_dicts(faces.images, phase.batch_size, config.seed, first - phase.start,
                                      images_before=phase.images_before)
            factor = config.resolution // phase.resolution
            stream = stream.map(lambda batch, factor=factor: {"images": downsample(batch["images"], factor)})
            streams.append(stream if end is None else stream.take(end - first))
        return itertools.chain.from_iterable(streams)

    def checkpoint_items(self) -> dict:
        return {**super().checkpoint_items(), "step": self.step}

    def _generator_input(self, inputs):
        return inputs["noise"] if isinstance(inputs, dict) else inputs


def build(config: ProGANConfig) -> ProGAN:
    """The growing generator (in config.precision) and float32 critic, compiled with the paper's Adam."""
    generator = Generator(config.resolution, config.latent_dim, config.filters, config.filter_base, config.precision)
    discriminator = Discriminator(config.resolution, config.filters, config.filter_base, config.group_size)
    model = ProGAN(generator, discriminator, Schedule.of(config), drift_weight=config.drift_weight,
                   reset_optimizers=config.reset_optimizers, n_critic=config.n_critic,
                   gradient_penalty_weight=config.gradient_penalty_weight, seed=config.seed,
                   ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup, name=config.model)
    return gan.compile_gan(model, config, epsilon=ADAM_EPSILON)


def channels(resolution: int, filters: int, filter_base: int) -> int:
    """The channels of a block at `resolution`: min(filters, filter_base / resolution), at least 1."""
    return max(1, min(filters, filter_base // resolution))


def fade_real_images(images, fade):
    """Real images [B, r, r, 3] as the networks see them at `fade`: (1 - fade) * their 2x2-average-pooled copy
    enlarged by nearest neighbours + fade * themselves (themselves at 4x4, which fades in from nothing)."""
    if images.shape[1] == FIRST_RESOLUTION:
        return images
    return layers.fade_in(upsample(downsample(images, 2), 2), images, fade)


def downsample(images, factor: int):
    """[B, H, W, C] -> [B, H / factor, W / factor, C]: the mean of each factor x factor square."""
    if factor == 1:
        return images
    return tf.nn.avg_pool2d(images, factor, factor, "VALID")


def upsample(images, factor: int):
    """[B, H, W, C] -> [B, H * factor, W * factor, C], each pixel repeated (nearest neighbours)."""
    if factor == 1:
        return images
    return keras.ops.repeat(keras.ops.repeat(images, factor, axis=1), factor, axis=2)


def reset_optimizer(optimizer) -> None:
    """Adam's state back to its start: its update count and every moment to 0 (the learning rate kept)."""
    for variable in optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))


def _activation_and_norm(dtype: str) -> list:
    return [keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype), layers.PixelNorm(dtype=dtype)]


def _resolutions(resolution: int) -> list:
    """4, 8, ..., resolution; a ValueError for a resolution that is not a power of 2 of at least 8."""
    if resolution < 2 * FIRST_RESOLUTION or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of 2 of at least 8, got {resolution}")
    return [FIRST_RESOLUTION * 2**level for level in range(int(math.log2(resolution // FIRST_RESOLUTION)) + 1)]


def _level(resolution: int, final: int) -> int:
    """The index of `resolution` in 4, 8, ..., final; a ValueError for another size."""
    sizes = _resolutions(final)
    if resolution not in sizes:
        raise ValueError(f"a network grown to {final}x{final} runs at {_listed(sizes)} pixels, not {resolution}")
    return sizes.index(resolution)


def _listed(sizes) -> str:
    return ", ".join(map(str, sizes))


MODEL = gan.model_spec("progan", ProGANConfig, build)
