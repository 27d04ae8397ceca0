"""x4 super-resolution: a residual network draws a R x R face from its R/4 x R/4 copy (16 -> 64 on a CPU, 32 ->
128 in the full profile), trained with L1 first, then as a GAN (Ledig et al. 2017, "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network": SRResNet, then SRGAN).

    generator (EDSR-like: Lim et al. 2017, "Enhanced Deep Residual Networks for Single Image Super-Resolution")
        small face [B, r, r, 3] -> 3x3 conv                                           head [B, r, r, F]
          -> N residual blocks: x + s * conv(relu(conv(x))), no batch norm          [B, r, r, F]
          -> 3x3 conv, + head (the long skip)                                         [B, r, r, F]
          -> twice: 3x3 conv to 4F channels, depth_to_space(2) (sub-pixel)            [B, 2r, 2r, F], [B, 4r, 4r, F]
          -> 3x3 conv to RGB, linear                                                  [B, R, R, 3], about [-1, 1]
        s is EDSR's residual scaling (0.1), which keeps a deep stack of unnormalised blocks stable.
    discriminator (the GAN version only): DCGAN's stride-2 4x4 convolutions with leaky ReLU down to 4x4, then one
        logit (facekit.models.dcgan's trunk), reading the face alone as SRGAN's does; each block's activations are
        also its features for the content loss.

    L1 network (adversarial_weight 0, the default): l1_weight * mean|G(x) - y|, and nothing else.
    GAN version (adversarial_weight > 0, e.g. Ledig's 1e-3, best started from an L1 run: --init-from RUN_DIR):
        l1_weight * mean|G(x) - y| + content_weight * content + adversarial_weight * mean(softplus(-D(G(x))))
        content = the mean over blocks of mean|phi_k(G(x)) - phi_k(y)|, phi_k the activations of block k of
        `content`'s network: "discriminator" (the default) D's own blocks, "classifier" the kit's attribute
        classifier's four blocks (facekit.attributes, a trained run given as classifier_run; the output is resized
        to its resolution).

Why not SRGAN's content loss: it compares ImageNet VGG19 features, and those weights cannot be downloaded here.
The discriminator's features are feature matching (Salimans et al. 2016, "Improved Techniques for Training GANs"),
taken per pair as pix2pixHD does (Wang et al. 2018): each output is matched to its own true face, since the pairs
are known. They cost nothing to get and follow what the discriminator currently tells real from fake, but they move
as it trains; the classifier's are fixed and face-specific (hair, glasses, smile), but were learnt for 40
attributes, not for texture. Measured (benchmarks/image_to_image_table.py: 3,000 steps from one L1 network, 750
held-out faces, 64x64), the classifier's were better on every measure: SWD 14.2 against 14.8 (the L1 control's
22.5), PSNR 26.88 against 26.70 dB (control 27.31), the same person in 73% of pairs against 63%, attribute
agreement 93% against 89%, at 1.6x the step time.

The inputs are the faces shrunk by 4 by facekit.pairs.downsample (tf.image.resize's bicubic, antialiased filter:
the bicubic baseline, pairs.resize_bicubic, starts from the same inputs), rounded to uint8 as a small face in a
PNG would be.

The CPU default (`SuperResolutionConfig`): 32 channels, 8 residual blocks, 16 faces a step, 12,000 steps. A step of
the L1 network takes 0.09 s at 16 -> 64 in mixed_bfloat16 (0.085 and 0.093 in two runs), one of the GAN version
0.19 s (the median of 100 steps after the trace, on this project's 2-core AMD EPYC at nice 19 while other jobs kept
its load near 3.5-5: upper bounds): about 18 minutes of steps for the L1 network's default run, snapshots aside
(benchmarks/image_to_image_table.py measured 0.045 s and 9.0 minutes at a load of 2-4).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from facekit import data, gan, pairs
from facekit.models import dcgan, image_to_image
from facekit.training import RunFolder, as_faces, setting

FACTOR = 4  # output size / input size
CONTENT_NETWORKS = ("discriminator", "classifier")
ARCHITECTURE = ("resolution", "generator_filters", "residual_blocks", "residual_scaling")  # what shapes G's function


@dataclasses.dataclass
class SuperResolutionConfig(image_to_image.ImageToImageConfig):
    """A x4 super-resolution run: the L1 network by default, its GAN version with adversarial_weight > 0."""

    model: str = "superres"
    resolution: int = setting(64, "output size in pixels; the input is a quarter of it", choices=(32, 64, 128))
    generator_filters: int = setting(32, "channels of the generator's residual blocks (EDSR's baseline: 64)")
    residual_blocks: int = setting(8, "residual blocks of the generator (EDSR's baseline: 16)")
    residual_scaling: float = setting(0.1, "each residual block's output is scaled by this before it is added")
    filters: int = setting(32, "channels of the discriminator's first layer (GAN version only)")
    learning_rate: float = setting(1e-3, "Adam learning rate of both networks (Ledig et al.'s GAN version: 1e-4)")
    beta_1: float = setting(0.9, "Adam beta_1 of both networks")
    adversarial_weight: float = setting(0.0, "weight of the adversarial term (0: the L1 network, no discriminator "
                                             "update; Ledig et al.'s: 1e-3)")
    l1_weight: float = setting(1.0, "weight of the mean absolute error between output and true face")
    content_weight: float = setting(1.0, "weight of the content loss in the GAN version (adversarial_weight > 0)")
    content: str = setting("discriminator", "whose features the content loss compares: the discriminator's "
                                            "(feature matching) or the attribute classifier's (classifier_run)",
                           choices=CONTENT_NETWORKS)
    classifier_run: str = setting("", "run folder of the attribute classifier (`train attributes`) whose features "
                                      "the content loss compares, with --content classifier")
    init_from: str = setting("", "a superres run folder whose (moving-average) generator this run starts from: "
                                 "an L1 run, to start the GAN version from it")
    steps: int = setting(12_000, "training steps (12,000: 9 to 18 minutes of the L1 network on 2 CPU cores)")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("generator_filters", "residual_blocks")

    def __post_init__(self):
        super().__post_init__()
        if self.content not in CONTENT_NETWORKS:
            raise ValueError(f"content must be one of {', '.join(CONTENT_NETWORKS)}, got {self.content!r}")
        if self.content == "classifier" and not self.classifier_run:
            raise ValueError("content 'classifier' needs classifier_run: the run folder of a trained attribute "
                             "classifier (python -m facekit train attributes ...)")
        if self.content_weight < 0:
            raise ValueError(f"content_weight must be at least 0, got {self.content_weight}")


class SubPixel(keras.layers.Layer):
    """Sub-pixel upsampling (Shi et al. 2016): [B, H, W, factor^2 * C] -> [B, factor * H, factor * W, C], each
    group of factor^2 channels laid out as a factor x factor block of pixels (tf.nn.depth_to_space)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.factor)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return batch, height * self.factor, width * self.factor, channels // self.factor**2

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def build_generator(resolution: int = 64, filters: int = 32, blocks: int = 8, residual_scaling: float = 0.1,
                    dtype: str = "float32") -> keras.Model:
    """Small faces float32 [B, R/4, R/4, 3] in [-1, 1] -> faces float32 [B, R, R, 3] (linear, about [-1, 1]): the
    residual network of the module's docstring; the output convolution stays float32 under a mixed `dtype`."""
    size = resolution // FACTOR
    small = keras.Input((size, size, 3), name="condition")

    def convolution(channels, name=None, activation=None):
        return keras.layers.Conv2D(channels, 3, padding="same", activation=activation, dtype=dtype, name=name)

    head = convolution(filters, "head")(small)  # [B, r, r, F]
    features = head
    for index in range(blocks):  # [B, r, r, F]
        residual = convolution(filters, activation="relu")(features)
        residual = convolution(filters)(residual)
        residual = keras.layers.Rescaling(residual_scaling, dtype=dtype)(residual)
        features = keras.layers.Add(dtype=dtype, name=f"block_{index + 1}")([features, residual])
    features = convolution(filters)(features)
    features = keras.layers.Add(dtype=dtype, name="long_skip")([head, features])  # [B, r, r, F]
    for index in range(2):  # [B, 2r, 2r, F], then [B, 4r, 4r, F]
        features = convolution(4 * filters)(features)
        features = SubPixel(2, dtype=dtype, name=f"upsample_{index + 1}")(features)
    faces = keras.layers.Conv2D(3, 3, padding="same", dtype="float32", name="to_rgb")(features)  # [B, R, R, 3]
    return keras.Model(small, faces, name="generator")


def build_discriminator(resolution: int = 64, filters: int = 32, dtype: str = "float32") -> keras.Model:
    """Faces float32 [B, R, R, 3] in [-1, 1] -> [each block's activations [B, R/2^k, R/2^k, C_k], ..., the logit
    float32 [B, 1]]: DCGAN's discriminator, its blocks' activations as outputs too."""
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    layers = dcgan.discriminator_trunk(resolution, filters, dtype, initializer=initializer)
    images, outputs, features = layers[0], [], layers[0]
    for layer in layers[1:]:
        features = layer(features)
        if isinstance(layer, keras.layers.LeakyReLU):
            outputs.append(features)
    logits = keras.layers.Dense(1, kernel_initializer=initializer, dtype="float32")(features)
    return keras.Model(images, [*outputs, logits], name="discriminator")


class SuperResolutionGAN(image_to_image.ImageToImageGAN):
    """The image-to-image engine with SRGAN's discriminator (the face alone) and content term."""

    def __init__(self, generator, discriminator, architecture: dict, content_weight: float = 1.0,
                 classifier_run: str = "", init_from: str = "", **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        self.architecture = architecture  # the settings named in ARCHITECTURE, to check init_from's generator
        self.content_weight = content_weight
        self.classifier_run = classifier_run
        self.init_from = init_from
        self.content_network = self.discriminator_features  # the classifier's instead, once attached

    def generator_term_names(self) -> tuple:
        return super().generator_term_names() + (("content",) if self.trains_discriminator else ())

    def conditions(self, faces, chunk: int = 1024) -> np.ndarray:
        """The inputs of faces (a data.Faces or uint8 [N, R, R, 3]): uint8 [N, R/4, R/4, 3] (`shrink`), `chunk`
        faces at a time."""
        images = as_faces(faces).images
        return np.concatenate([data.to_uint8(np.asarray(shrink(data.to_float(images[start : start + chunk]))))
                               for start in range(0, len(images), chunk)])

    def training_batches(self, faces, config, start_step: int):
        """The engine's batches of faces, each face's input made from it in the stream (`shrink`): {"images":
        float32 [n_critic * B, R, R, 3], "condition": float32 [n_critic * B, R/4, R/4, 3]}."""
        stream = data.batch_dicts(faces.images, config.batch_size * self.n_critic, config.seed, start_step)
        return stream.map(lambda batch: {**batch, "condition": shrink(batch["images"])})

    def discriminate(self, batch: dict, training: bool = False):
        """D's logit for the faces alone, as SRGAN's discriminator (the input is not read)."""
        return self.discriminator(batch["images"], training=training)[-1]

    def generator_terms(self, real: dict, fake: dict) -> dict:
        """The engine's terms, and in the GAN version the content loss (see the module's docstring)."""
        terms = super().generator_terms(real, fake)
        if self.trains_discriminator:
            terms["content"] = (self.content_weight, content_loss(self.content_network, real["images"],
                                                                  fake["images"]))
        return terms

    def discriminator_features(self, images) -> list:
        """The activations of each of the discriminator's blocks for faces [B, R, R, 3]."""
        return self.discriminator(images, training=True)[:-1]

    def attach(self, run: RunFolder, faces=None, heldout=None) -> None:
        """The engine's, and at the start of training (and of a resumed run, whose checkpoint then overrides it):
        the generator and its moving average copied from init_from's, and the attribute classifier's features
        loaded when the content loss reads them, each failing with a ValueError that says what is wrong."""
        super().attach(run, faces, heldout)
        if faces is None:
            return
        if self.init_from:
            self.initialise_from(self.init_from)
        if self.classifier_run:
            self.content_network = classifier_features(self.classifier_run, self.architecture["resolution"])

    def initialise_from(self, run_dir) -> None:
        """Copy the sampling generator of the superres run in run_dir into this generator and its moving average;
        a ValueError when that run is not a superres run or its generator has another architecture."""
        from facekit import registry

        try:
            spec, other = registry.model_of_run(run_dir)
        except (OSError, ValueError) as error:
            raise ValueError(f"init_from {run_dir}: {error}") from None
        if spec is not MODEL:
            raise ValueError(f"init_from {run_dir}: a {spec.name} run, not a superres run")
        different = [f"{name}: it has {getattr(other, name)!r}, this run {value!r}"
                     for name, value in self.architecture.items() if getattr(other, name) != value]
        if different:
            raise ValueError(f"init_from {run_dir}: its generator has another architecture ({'; '.join(different)})")
        weights = spec.load(run_dir).sampling_generator.get_weights()
        self.generator.set_weights(weights)
        if self.generator_ema is not None:
            self.generator_ema.set_weights(weights)


def shrink(faces):
    """Faces float [N, R, R, 3] in [-1, 1] -> their inputs float32 [N, R/4, R/4, 3]: pairs.downsample (bicubic,
    antialiased), rounded to the 256 levels of uint8 (data.to_uint8's), as a small face saved in a PNG is."""
    levels = tf.round((pairs.downsample(faces, FACTOR) + 1) * 127.5)
    return levels / 127.5 - 1


def content_loss(network, real_images, fake_images):
    """The mean over the network's feature outputs of mean|phi(fake) - phi(real)|: float32 []."""
    real_features = network(tf.cast(real_images, tf.float32))
    fake_features = network(tf.cast(fake_images, tf.float32))
    distances = [tf.reduce_mean(tf.abs(tf.cast(fake, tf.float32) - tf.cast(real, tf.float32)))
                 for real, fake in zip(real_features, fake_features)]
    return tf.add_n(distances) / len(distances)


def classifier_features(run_dir, resolution: int):
    """The attribute classifier of run_dir as a frozen feature function: faces float32 [B, R, R, 3] in [-1, 1]
    (resized to the classifier's resolution) -> its four blocks' outputs, batch norm in inference mode; a
    ValueError naming the folder when it holds no trained classifier."""
    from facekit import attributes

    try:
        classifier = attributes.load(run_dir)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"classifier_run {run_dir}: no trained attribute classifier there ({error})") from None
    network = classifier.model
    blocks = [layer.output for layer in network.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    trunk = keras.Model(network.inputs, blocks, name="classifier_features")
    size = classifier.resolution

    def features(faces) -> list:
        if size != resolution:
            faces = tf.image.resize(faces, (size, size), antialias=True)
        return trunk(faces, training=False)

    return features


def build(config: SuperResolutionConfig) -> SuperResolutionGAN:
    """The residual generator (in config.precision) and the discriminator, compiled with one Adam each."""
    generator = build_generator(config.resolution, config.generator_filters, config.residual_blocks,
                                config.residual_scaling, config.precision)
    discriminator = build_discriminator(config.resolution, config.filters, config.precision)
    model = SuperResolutionGAN(generator, discriminator, {name: getattr(config, name) for name in ARCHITECTURE},
                               content_weight=config.content_weight,
                               classifier_run=config.classifier_run if config.content == "classifier" else "",
                               init_from=config.init_from, adversarial_weight=config.adversarial_weight,
                               l1_weight=config.l1_weight, seed=config.seed, n_critic=config.n_critic,
                               ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup, name=config.model)
    return gan.compile_gan(model, config)


MODEL = gan.model_spec("superres", SuperResolutionConfig, build)
