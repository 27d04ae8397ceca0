"""Image-to-image translation on the GAN engine: what pix2pix (sketch -> face) and super-resolution (small face ->
face) share.

Each face y is paired with an image made from it, the generator's input x (its "condition": a sketch, a quarter-size
copy), and the generator draws the face back from it:

    generator loss      l1_weight * mean|G(x) - y| + adversarial_weight * mean(softplus(-D(x, G(x))))
                        (+ a model's own terms: super-resolution's content loss)
    discriminator loss  mean(softplus(-D(x, y))) + mean(softplus(D(x, G(x))))    the non-saturating pair (BCE)
                        (pix2pix's D reads the pair; super-resolution's, as SRGAN's, the face alone)

With adversarial_weight 0 the generator trains alone on the L1 term, the baseline each GAN is measured against:
the discriminator is never updated (nor read), and log.csv has no d_loss column.

Batches are dicts {"images": faces float32 [B, R, R, 3], "condition": inputs float32 [B, r, r, C]}, both in
[-1, 1], a pure function of (seed, step): the inputs are made once from every training face (`conditions`: uint8,
what a PNG given to `translate` holds; pix2pix's sketches, cached beside the faces) and ride beside their faces in
data.batch_dicts' stream, or are made from each batch's faces in the stream (super-resolution's, cheap to make).
The snapshot grid, and so the GIF, shows rows of input | output | truth for the first faces of the run's held-out
people (`heldout`, a tenth by default; the first training faces when none are held out), the inputs enlarged by
nearest neighbours, so that a class watches the outputs sharpen on people the model never saw. Sampling
(`sample`, and so `python -m facekit sample`, `evaluate` and `compare`) draws the outputs for `count` held-out
faces chosen by the seed, their inputs made from them, reading the run's recorded source split as it was trained.

A model on this base defines `conditions` (how an input is made from a face) and builds its two networks; its
generator reads {"condition"} (and any other named inputs it has, such as pix2pix's dropout seeds).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from facekit import data, gan, losses
from facekit.training import RunFolder, setting, split


@dataclasses.dataclass
class ImageToImageConfig(gan.GANConfig):
    """Settings of an image-to-image model: the engine's, its loss weights, and a tenth of the people held out."""

    latent_dim: int | None = None  # not a setting: the generator reads an image, not noise
    heldout: float = setting(0.1, "fraction of the people kept out of training: the snapshot grid's inputs and "
                                  "what `sample` and `evaluate` translate")
    batch_size: int = setting(16, "face pairs per discriminator update (a step reads n_critic times as many)")
    adversarial_weight: float = setting(1.0, "weight of the adversarial term of the generator's loss (0: the "
                                             "generator trained alone on L1, no discriminator update)")
    l1_weight: float = setting(100.0, "lambda: weight of the mean absolute error between output and true face")

    def __post_init__(self):
        super().__post_init__()
        if self.adversarial_weight < 0 or self.l1_weight < 0:
            raise ValueError(f"adversarial_weight and l1_weight must be at least 0, got {self.adversarial_weight} "
                             f"and {self.l1_weight}")


class ImageToImageGAN(gan.GAN):
    """The engine with an image as the generator's input (see the module's docstring). The subclass defines
    `conditions(faces) -> uint8 [N, r, r, C]`, the inputs made from faces (a data.Faces or uint8 [N, R, R, 3]); the
    generator reads "condition" (and the other named inputs it has), the discriminator what `discriminate` gives."""

    def __init__(self, generator, discriminator, adversarial_weight: float, l1_weight: float, **kwargs):
        super().__init__(generator, discriminator, losses.LOSS_PAIRS["non_saturating"], **kwargs)
        self.adversarial_weight = adversarial_weight
        self.l1_weight = l1_weight
        self.run_folder = None  # the run folder, whose source `sampling_inputs` reads
        self.control_faces = None  # uint8 [N, R, R, 3]: held-out (or training) faces for the snapshot grid

    @property
    def trains_discriminator(self) -> bool:
        return self.adversarial_weight > 0

    @property
    def measure_columns(self) -> tuple:
        """D(x, y) and D(x, G(x)) when the discriminator trains, and each term of the generator's loss, unweighted."""
        return (gan.MEASURE_COLUMNS if self.trains_discriminator else ()) + self.generator_term_names()

    def generator_term_names(self) -> tuple:
        """The names of `generator_terms`, in order."""
        return ("l1", "adversarial") if self.trains_discriminator else ("l1",)

    @property
    def condition_shape(self) -> tuple:
        """(r, r, C): the size and channels of the generator's input image."""
        inputs = self.generator.input
        return tuple((inputs["condition"] if isinstance(inputs, dict) else inputs).shape[1:])

    def attach(self, run: RunFolder, faces=None, heldout=None) -> None:
        """Remember the run (to sample from its source); at the start of training keep the faces the snapshot grid
        translates: the held-out people's, or the training faces' when none are held out."""
        self.run_folder = run
        if faces is not None:
            self.control_faces = (heldout if heldout is not None else faces).images

    def training_batches(self, faces, config, start_step: int):
        """{"images": float32 [n_critic * B, R, R, 3], "condition": float32 [n_critic * B, r, r, C]} from
        `start_step` on, each a pure function of (seed, step); the inputs are made from all faces first."""
        conditions = self.conditions(faces)
        stream = data.batch_dicts(faces.images, config.batch_size * self.n_critic, config.seed, start_step,
                                  labels=conditions)  # any array aligned with the images rides as "labels"
        return stream.map(lambda batch: {"images": batch["images"], "condition": batch["labels"] / 127.5 - 1})

    def fake_inputs(self, step, sub_step: int, real: dict) -> dict:
        """The real sub-batch's inputs."""
        return {"condition": real["condition"]}

    def condition_inputs(self, conditions, seed: int = 0, first: int = 0) -> dict:
        """The generator's inputs for float32 conditions [N, r, r, C] in [-1, 1]: {"condition": them} (a model with
        more inputs gives image i its own drawn from (seed, first + i))."""
        return {"condition": np.asarray(conditions, np.float32)}

    def generator_loss(self, real: dict, fake: dict):
        """The weighted sum of `generator_terms`; logs g_loss and each term."""
        terms = self.generator_terms(real, fake)
        loss = tf.add_n([weight * value for weight, value in terms.values()])
        return loss, {"g_loss": loss, **{name: value for name, (_, value) in terms.items()}}

    def generator_terms(self, real: dict, fake: dict) -> dict:
        """{name: (weight, float32 [] value)}: the L1 error to the true faces, and the non-saturating adversarial
        loss on D(x, G(x)) when the discriminator trains."""
        terms = {"l1": (self.l1_weight, mean_absolute_error(real["images"], fake["images"]))}
        if self.trains_discriminator:
            terms["adversarial"] = (self.adversarial_weight,
                                    self.loss_pair.generator(self.discriminate(fake, training=True)))
        return terms

    def control_inputs(self, grid_size: int) -> tuple[dict, int]:
        """(inputs, columns): the first grid_size // 3 (at least one) control faces' inputs, and the faces as
        "images" (the truth column); rows of input | output | truth triples, about square."""
        faces = np.asarray(self.control_faces[: max(1, grid_size // 3)])
        per_row = max(1, round(math.sqrt(len(faces) / 3)))
        inputs = self.condition_inputs(data.to_float(self.conditions(faces)), self.seed)
        return {**inputs, "images": data.to_float(faces)}, 3 * per_row

    def control_images(self, inputs: dict) -> np.ndarray:
        """float32 [3N, R, R, 3]: for each control face its input (enlarged by nearest neighbours, gray as RGB),
        the generator's output and the true face."""
        outputs = self.generate(inputs)
        shown = enlarge(inputs["condition"], outputs.shape[1])
        return np.stack([shown, outputs, inputs["images"]], axis=1).reshape(-1, *outputs.shape[1:])

    def sampling_inputs(self, count: int, seed: int = 0) -> dict:
        """The generator's inputs for `count` held-out faces of the run's source chosen by `seed` (see
        `reference_faces`), their other inputs drawn from `seed`."""
        faces = chosen_faces(reference_faces(self.run_folder), count, seed)
        return self.condition_inputs(data.to_float(self.conditions(faces)), seed)

    def translate(self, conditions, seed: int = 0, first: int = 0) -> np.ndarray:
        """uint8 [N, R, R, 3]: the sampling generator's faces for uint8 inputs [N, r, r, C] (other inputs, such as
        pix2pix's dropout seeds, drawn for image i from (seed, first + i))."""
        conditions = np.asarray(conditions)
        if conditions.shape[1:] != self.condition_shape:
            raise ValueError(f"expected inputs [N, {', '.join(map(str, self.condition_shape))}], got shape "
                             f"{conditions.shape}")
        return data.to_uint8(self.generate(self.condition_inputs(data.to_float(conditions), seed, first)))

    def _generator_input(self, inputs):
        """The generator's named inputs picked from `inputs` (the condition alone for a generator of one input)."""
        names = self.generator.input
        if not isinstance(names, dict):
            return inputs["condition"]
        return {name: inputs[name] for name in names}


def mean_absolute_error(real_images, fake_images):
    """mean|fake - real| over every pixel and channel: float32 [] from two batches [B, R, R, 3]."""
    return tf.reduce_mean(tf.abs(tf.cast(fake_images, tf.float32) - tf.cast(real_images, tf.float32)))


def enlarge(images, size: int) -> np.ndarray:
    """Images [N, r, r, C] (C 1 or 3) as [N, size, size, 3]: each pixel repeated size / r times, gray as RGB."""
    images = np.asarray(images)
    factor = size // images.shape[1]
    images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def reference_faces(run) -> np.ndarray:
    """uint8 [N, R, R, 3]: the faces of the people a run held out (all its faces when it held out none), read from
    its recorded source prepared and split as it was trained; a ValueError for a run trained on faces given in
    memory (no source recorded)."""
    from facekit import registry

    _, config = registry.model_of_run(run.path)
    if not config.source:
        raise ValueError(f"{run.path}: the run was trained on faces given in memory (no source in run.json), so "
                         f"there are no held-out faces to read; translate inputs of your own instead")
    faces = data.prepare(config.source, resolution=config.resolution, crop=config.crop, limit=config.limit)
    training, heldout = split(faces, config)
    return (heldout if heldout is not None else training).images


def chosen_faces(faces, count: int, seed: int = 0) -> np.ndarray:
    """`count` distinct faces of uint8 [N, R, R, 3] chosen by `seed`, in their order; a ValueError when there are
    fewer than `count`."""
    if not 1 <= count <= len(faces):
        raise ValueError(f"count must be between 1 and the {len(faces)} held-out faces there are to translate, got "
                         f"{count}")
    return np.asarray(faces[np.sort(np.random.default_rng(seed).choice(len(faces), count, replace=False))])


def heldout_pairs(model: ImageToImageGAN, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(inputs uint8 [count, r, r, C], true faces uint8 [count, R, R, 3]) of `count` held-out faces of a loaded
    run's source chosen by `seed`: the faces `sample` translates with the same seed, to measure its outputs."""
    faces = chosen_faces(reference_faces(model.run_folder), count, seed)
    return model.conditions(faces), faces
