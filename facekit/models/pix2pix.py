"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"): faces drawn
from line sketches by a U-Net, judged patch by patch on (sketch, face) pairs.

    sketch x: uint8 [N, R, R, 1] from facekit.sketches.prepare(faces, sketch_style, seed) (255 paper, 0 line),
    read as float32 in [-1, 1]

    generator (U-Net): an encoder halving to 1x1 and a decoder doubling back, each decoder block given the encoder's
    features of its own size (the skips carry the sketch's positions; the bottleneck carries what the face is)
        encoder, per halving: 4x4 conv stride 2, batch norm (not on the first), leaky ReLU 0.2
            [B, R/2, R/2, F] -> [B, R/4, R/4, 2F] -> ... -> [B, 1, 1, 8F]      (channels F * 2^i, at most 8F)
        decoder, per doubling: 4x4 transposed conv stride 2, batch norm, dropout (the first 3 blocks), ReLU, then
            concatenated with the encoder's output of that size
            [B, 2, 2, 8F + 8F] -> ... -> [B, R/2, R/2, F + F]
        4x4 transposed conv stride 2 to RGB, tanh                              [B, R, R, 3] in [-1, 1]
    discriminator (PatchGAN, the paper's NLayerDiscriminator with patch_layers stride-2 convolutions, no
    normalisation): (sketch, face) concatenated [B, R, R, 4] -> 4x4 convs, stride 2 patch_layers times, then two of
    stride 1 (leaky ReLU 0.2) -> one logit per patch float32 [B, P, P, 1]. Each logit sees a square of
        receptive_field(patch_layers) = 16, 34, 70 pixels for 1, 2, 3 layers
    (r = 4, 7, then r -> 2r + 2 per stride-2 layer). The paper's 70x70 is 3 layers at 256x256, 27% of the image;
    the default scales that share: max(1, log2(R) - 5) layers, a 16x16 patch at 64x64 (25%), 34x34 at 128x128.

    generator loss      100 * mean|G(x) - y| + mean(softplus(-D(x, G(x))))       (lambda = l1_weight = 100)
    discriminator loss  (mean(softplus(-D(x, y))) + mean(softplus(D(x, G(x))))) / 2, halved as in the paper to
                        slow D down relative to G; Adam 2e-4, beta_1 0.5 for both
    L1-only U-Net (adversarial_weight 0): the same generator on 100 * L1 alone, no discriminator update.

Noise: as in the paper, the only noise is dropout (rate 0.5) in the first three decoder blocks, active at sampling
as well as in training, so that one sketch gives several faces. Each image's dropout masks are a pure function of
its own seed pair (fold_in(seed, block) per block, `SeededDropout`): at a training step the seeds are drawn from
(run seed, step), so a resumed run draws the same masks; when sampling or translating, image i of a call gets the
pair (seed, i), so the same seed gives the same faces. Batch norm uses its moving statistics at sampling (the paper
uses the test batch's).

The CPU default (`Pix2PixConfig`): 32 channels in both networks (the paper's: 64), 16 pairs a step (the paper's: 1),
4,500 steps. A step takes 0.25 s at 64x64 in mixed_bfloat16, 0.16 s for the L1-only U-Net (the median of 100 steps
after the trace, on this project's 2-core AMD EPYC at nice 19 while other jobs kept its load near 4-5: upper
bounds): about 19 minutes of steps for the default run, snapshots aside.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from facekit import data, gan, sketches
from facekit.models import image_to_image
from facekit.training import as_faces, setting

DROPOUT_BLOCKS = 3  # the first decoder blocks, whose dropout is the generator's noise
LEAKY_SLOPE = 0.2


@dataclasses.dataclass
class Pix2PixConfig(image_to_image.ImageToImageConfig):
    """A pix2pix run: the paper's losses (lambda = 100), optimiser and dropout, its widths sized for a CPU."""

    model: str = "pix2pix"
    sketch_style: str = setting("xdog", "the facekit.sketches style the model learns from", choices=sketches.STYLES)
    generator_filters: int = setting(32, "channels of the U-Net's first block (the paper's: 64)")
    filters: int = setting(32, "channels of the discriminator's first layer (the paper's: 64)")
    dropout: float = setting(0.5, "dropout rate of the first 3 decoder blocks, the generator's noise (0: none)")
    steps: int = setting(4_500, "training steps (4,500: about 19 minutes on 2 CPU cores)")
    patch_layers: int | None = setting(None, "stride-2 layers of the PatchGAN (1: 16x16 patches, 2: 34x34, 3: 70x70; "
                                             "default: max(1, log2(resolution) - 5))")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("generator_filters", "patch_layers")

    def __post_init__(self):
        super().__post_init__()
        if self.sketch_style not in sketches.STYLES:
            raise ValueError(f"sketch_style must be one of {', '.join(sketches.STYLES)}, got {self.sketch_style!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a rate in [0, 1), got {self.dropout}")

    @property
    def patch_depth(self) -> int:
        """The PatchGAN's stride-2 layers: patch_layers, or the default scaled to the resolution."""
        return self.patch_layers or max(1, int(math.log2(self.resolution)) - 5)


class SeededDropout(keras.layers.Layer):
    """Dropout whose masks are a pure function of a seed pair per image: (features [B, ...], seeds int64 [B, 2])
    -> features with each value kept with probability 1 - rate (and scaled by 1 / (1 - rate)) where
    stateless_uniform(fold_in(seeds[b], index)) >= rate; active whether training or not."""

    def __init__(self, rate: float, index: int, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.index = rate, index

    def call(self, features, seeds):
        shape = tf.shape(features)[1:]

        def kept(seed):
            seed = tf.random.experimental.stateless_fold_in(seed, self.index)
            return tf.random.stateless_uniform(shape, seed) >= self.rate

        masks = tf.map_fn(kept, tf.cast(seeds, tf.int64), fn_output_signature=tf.bool)
        return tf.where(masks, features / tf.cast(1 - self.rate, features.dtype), tf.zeros_like(features))

    def compute_output_shape(self, features_shape, seeds_shape=None):
        return features_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "index": self.index}


def build_generator(resolution: int = 64, filters: int = 32, dropout: float = 0.5, input_channels: int = 1,
                    dtype: str = "float32") -> keras.Model:
    """The U-Net of the module's docstring: {"condition": sketches float32 [B, R, R, input_channels] in [-1, 1],
    "seed": int64 [B, 2] (only with dropout)} -> faces float32 [B, R, R, 3] in [-1, 1]."""
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    condition = keras.Input((resolution, resolution, input_channels), name="condition")
    inputs = {"condition": condition}
    if dropout:
        inputs["seed"] = keras.Input((2,), dtype="int64", name="seed")
    features, skips = condition, []
    depth = int(math.log2(resolution))
    for level in range(depth):  # [B, R / 2^(level + 1), R / 2^(level + 1), F * min(2^level, 8)]
        features = keras.layers.Conv2D(_width(filters, level), 4, strides=2, padding="same", use_bias=False,
                                       kernel_initializer=initializer, dtype=dtype, name=f"down_{level + 1}")(features)
        if level > 0:
            features = keras.layers.BatchNormalization(momentum=0.9, dtype=dtype)(features)
        features = keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(features)
        skips.append(features)
    for block, level in enumerate(range(depth - 2, -1, -1)):  # up to [B, R / 2^(level + 1), ..., 2 F min(2^level, 8)]
        features = keras.layers.Conv2DTranspose(_width(filters, level), 4, strides=2, padding="same", use_bias=False,
                                                kernel_initializer=initializer, dtype=dtype,
                                                name=f"up_{block + 1}")(features)
        features = keras.layers.BatchNormalization(momentum=0.9, dtype=dtype)(features)
        if dropout and block < DROPOUT_BLOCKS:
            features = SeededDropout(dropout, block, dtype=dtype, name=f"dropout_{block + 1}")(features,
                                                                                                inputs["seed"])
        features = keras.layers.ReLU(dtype=dtype)(features)
        features = keras.layers.Concatenate(dtype=dtype, name=f"skip_{block + 1}")([features, skips[level]])
    faces = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",  # [B, R, R, 3]
                                         kernel_initializer=initializer, dtype="float32", name="to_rgb")(features)
    return keras.Model(inputs, faces, name="generator")


def build_discriminator(resolution: int = 64, filters: int = 32, patch_layers: int = 1, input_channels: int = 1,
                        dtype: str = "float32") -> keras.Model:
    """The PatchGAN of the module's docstring: (sketch, face) concatenated float32 [B, R, R, input_channels + 3] ->
    one logit per patch float32 [B, R / 2^patch_layers, R / 2^patch_layers, 1]."""
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    layers = [keras.Input((resolution, resolution, input_channels + 3))]
    for level in range(patch_layers + 1):  # stride 2 patch_layers times, then once stride 1
        stride = 2 if level < patch_layers else 1
        layers += [keras.layers.Conv2D(_width(filters, level), 4, strides=stride, padding="same",
                                       kernel_initializer=initializer, dtype=dtype),
                   keras.layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)]
    layers.append(keras.layers.Conv2D(1, 4, padding="same", kernel_initializer=initializer, dtype="float32"))
    return keras.Sequential(layers, name="discriminator")


def receptive_field(network: keras.Model) -> int:
    """The side in pixels of the input square that one output of a stack of convolutions sees: r = 1, then for each
    convolution from the last to the first r <- (r - 1) * stride + kernel."""
    field = 1
    for layer in reversed([layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]):
        field = (field - 1) * layer.strides[0] + layer.kernel_size[0]
    return field


class Pix2PixGAN(image_to_image.ImageToImageGAN):
    """The image-to-image engine with sketches as inputs, dropout seeds, a discriminator on (sketch, face) pairs
    and the paper's halved discriminator loss."""

    def __init__(self, generator, discriminator, sketch_style: str = "xdog", **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.sketch_style = sketch_style

    def conditions(self, faces) -> np.ndarray:
        """The sketches of faces (a data.Faces, whose cache keeps them, or uint8 [N, R, R, 3], sketched in memory):
        uint8 [N, R, R, 1] in the run's sketch_style, jittered by the run's seed."""
        progress = isinstance(faces, data.Faces)  # a prepared source: sketched once, with a progress bar
        return np.asarray(sketches.prepare(as_faces(faces), self.sketch_style, self.seed, progress=progress))

    def fake_inputs(self, step, sub_step: int, real: dict) -> dict:
        """The real sub-batch's sketches, and a dropout seed pair per image drawn from (seed, step, sub_step)."""
        count = tf.shape(real["condition"])[0]
        seeds = tf.random.stateless_uniform((count, 2), self._seed(step, sub_step), minval=None, maxval=None,
                                            dtype=tf.int64)
        return {"condition": real["condition"], "seed": seeds}

    def condition_inputs(self, conditions, seed: int = 0, first: int = 0) -> dict:
        """The sketches, and image i's dropout seed pair (seed, first + i)."""
        seeds = np.stack([np.full(len(conditions), seed), first + np.arange(len(conditions))], axis=1)
        return {"condition": np.asarray(conditions, np.float32), "seed": seeds.astype(np.int64)}

    def discriminate(self, batch: dict, training: bool = False):
        """D's patch logits for (sketch, face) pairs."""
        pairs = tf.concat([batch["condition"], tf.cast(batch["images"], batch["condition"].dtype)], axis=-1)
        return self.discriminator(pairs, training=training)

    def discriminator_loss(self, real: dict, fake: dict, step, sub_step: int):
        """The engine's non-saturating loss on the patch logits, halved (the paper's objective / 2 for D)."""
        loss, logs = super().discriminator_loss(real, fake, step, sub_step)
        return loss / 2, {**logs, "d_loss": loss / 2}


def build(config: Pix2PixConfig) -> Pix2PixGAN:
    """The U-Net (in config.precision) and the PatchGAN, compiled with the paper's Adam."""
    generator = build_generator(config.resolution, config.generator_filters, config.dropout,
                                dtype=config.precision)
    discriminator = build_discriminator(config.resolution, config.filters, config.patch_depth,
                                        dtype=config.precision)
    model = Pix2PixGAN(generator, discriminator, sketch_style=config.sketch_style,
                       adversarial_weight=config.adversarial_weight, l1_weight=config.l1_weight, seed=config.seed,
                       n_critic=config.n_critic, ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup,
                       name=config.model)
    return gan.compile_gan(model, config)


def _width(filters: int, level: int) -> int:
    """Channels of the block at `level` (0 the first): filters * 2^level, at most 8 * filters."""
    return filters * min(2**level, 8)


MODEL = gan.model_spec("pix2pix", Pix2PixConfig, build)
