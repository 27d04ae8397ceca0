"""Faces to order: what the conditional GANs (cgan, acgan) share on top of the engine.

A conditional generator draws G(z, y): y is a vector of L CelebA attributes (1 present, 0 absent), given to the
generator by concatenation, [z, 2y - 1] (Mirza and Osindero 2014). The labels of the training faces ride with
their images in the batch stream; each fake sub-batch is drawn with the labels of the real sub-batch it is judged
beside, so that the fakes' labels follow the data's joint distribution (Male and Mustache together, Bald rarely
with Blond_Hair). Sampling draws label vectors from that same joint distribution, which the run keeps in
labels.npz (the distinct label vectors of its training faces and how often each occurs). The snapshot grid is
rows of fixed noise by columns of chosen label vectors: the commonest vector, then the same with one attribute
switched, so that each column asks for one change.

How the discriminator reads y is what tells the models apart: by projection (cgan) or with an auxiliary
classifier head (acgan).
"""

import dataclasses
import zipfile

import keras
import numpy as np

from facekit import data, gan, progress
from facekit.files import write_atomically
from facekit.models import dcgan
from facekit.synthetic import ATTRIBUTES as CELEBA_ATTRIBUTES
from facekit.training import RunFolder, setting

DEFAULT_ATTRIBUTES = ("Male", "Smiling", "Eyeglasses", "Young", "Blond_Hair", "Black_Hair", "Wearing_Hat",
                      "Mustache", "Bald", "Heavy_Makeup")
LABELS_FILE = "labels.npz"


@dataclasses.dataclass
class ConditionalConfig(dcgan.DCGANConfig):
    """Settings of a conditional GAN: DCGAN's, and the attributes it is conditioned on."""

    attributes: tuple = setting(DEFAULT_ATTRIBUTES, "the CelebA attributes the generator is conditioned on",
                                nargs="+", choices=CELEBA_ATTRIBUTES)

    def __post_init__(self):
        super().__post_init__()
        self.attributes = tuple(self.attributes)
        unknown = [name for name in self.attributes if name not in CELEBA_ATTRIBUTES]
        if not self.attributes or unknown or len(set(self.attributes)) < len(self.attributes):
            raise ValueError(f"attributes must be distinct CelebA attribute names, got {list(self.attributes)}")


class ConditionalGAN(gan.GAN):
    """The engine with labels: G(z, y), fakes drawn with the labels of the real sub-batch beside them, samples
    with label vectors drawn from the training faces' joint distribution."""

    def __init__(self, generator, discriminator, loss_pair, attributes: tuple, **kwargs):
        super().__init__(generator, discriminator, loss_pair, **kwargs)
        self.attributes = tuple(attributes)
        self.label_vectors = None  # float32 [K, L]: the distinct label vectors of the training faces
        self.label_frequencies = None  # float64 [K]: how often each occurs (sums to 1)

    def attach(self, run: RunFolder, faces=None, heldout=None) -> None:
        """With faces: record their labels' joint distribution in the run's labels.npz; without: read it."""
        path = run.path / LABELS_FILE
        if faces is not None:
            self.label_vectors, self.label_frequencies = label_distribution(labels_of(faces, self.attributes))
            write_atomically(path, lambda temporary: np.savez(temporary, attributes=np.array(self.attributes),
                                                              vectors=self.label_vectors,
                                                              frequencies=self.label_frequencies))
            return
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; a conditional run keeps its labels' distribution there")
        try:
            with np.load(path, allow_pickle=False) as saved:
                stored = {name: saved[name] for name in ("attributes", "vectors", "frequencies")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
        if tuple(stored["attributes"]) != self.attributes:
            raise ValueError(f"{path}: labels of {list(stored['attributes'])}, but run.json names "
                             f"{list(self.attributes)}")
        self.label_vectors, self.label_frequencies = stored["vectors"], stored["frequencies"]

    def training_labels(self, faces):
        return labels_of(faces, self.attributes)

    def fake_inputs(self, step, sub_step: int, real: dict) -> dict:
        """Noise as the engine draws it, and the labels of the real sub-batch."""
        return {**super().fake_inputs(step, sub_step, real), "labels": real["labels"]}

    def sampling_inputs(self, count: int, seed: int = 0) -> dict:
        """Noise from default_rng(seed), and label vectors drawn from the training faces' joint distribution."""
        inputs = super().sampling_inputs(count, seed)
        rng = np.random.default_rng([seed, 1])
        chosen = rng.choice(len(self.label_vectors), size=count, p=self.label_frequencies)
        return {**inputs, "labels": self.label_vectors[chosen].astype(np.float32)}

    def control_inputs(self, grid_size: int) -> tuple[dict, int]:
        """Rows of fixed noise by columns of `control_labels` (the commonest vector, then one attribute switched
        in each), as many rows as fit in grid_size (at least one)."""
        labels, _ = control_labels(self.label_vectors, self.label_frequencies, self.attributes)
        rows = max(1, grid_size // len(labels))
        noise = progress.control_noise(rows, self.latent_dim, self.seed)
        return {"noise": np.repeat(noise, len(labels), axis=0), "labels": np.tile(labels, (rows, 1))}, len(labels)


def labels_of(faces, attributes) -> np.ndarray:
    """float32 [N, L]: 1 where a face has the attribute, 0 where not, for data.Faces with attribute labels."""
    if faces.attributes is None:
        raise ValueError(f"{faces.source}: no attribute labels (list_attr_celeba.txt or .csv); a conditional "
                         f"model needs them")
    return np.stack([faces.attribute(name) for name in attributes], axis=1).astype(np.float32)


def label_distribution(labels) -> tuple[np.ndarray, np.ndarray]:
    """(vectors float32 [K, L], frequencies float64 [K]): the distinct rows of 0/1 labels [N, L] and the
    fraction of rows equal to each, commonest first (ties in row order)."""
    vectors, counts = np.unique(np.asarray(labels, np.float32), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return vectors[order], counts[order] / counts.sum()


def control_labels(vectors, frequencies, attributes) -> tuple[np.ndarray, list[str]]:
    """(labels float32 [1 + L, L], names): the commonest label vector, then that vector with each attribute
    switched in turn; names say what each column asks for ("commonest", "+Eyeglasses", "-Young", ...)."""
    base = np.asarray(vectors[int(np.argmax(frequencies))], np.float32)
    labels, names = [base], ["commonest"]
    for index, name in enumerate(attributes):
        switched = base.copy()
        switched[index] = 1 - switched[index]
        labels.append(switched)
        names.append(("+" if switched[index] else "-") + name)
    return np.stack(labels), names


def build_generator(resolution: int, latent_dim: int, label_count: int, filters: int,
                    dtype: str = "float32") -> keras.Model:
    """{"noise": float32 [B, latent_dim], "labels": float32 [B, L] of 0/1} -> images [B, R, R, 3] in [-1, 1]:
    DCGAN's generator on the concatenation [z, 2y - 1]."""
    noise = keras.Input((latent_dim,), name="noise")
    labels = keras.Input((label_count,), name="labels")
    signed = keras.layers.Rescaling(2.0, offset=-1.0, dtype=dtype)(labels)  # y in {0, 1} -> {-1, 1}
    both = keras.layers.Concatenate(dtype=dtype)([noise, signed])  # [B, latent_dim + L]
    body = dcgan.build_generator(resolution, latent_dim + label_count, filters, dtype)
    return keras.Model({"noise": noise, "labels": labels}, body(both), name="generator")


def discriminator_features(resolution: int, filters: int, dtype: str, convolution=keras.layers.Conv2D):
    """DCGAN's discriminator trunk as one model: images [B, R, R, 3] -> features [B, F]."""
    return keras.Sequential(dcgan.discriminator_trunk(resolution, filters, dtype, convolution), name="features")


def agreement(model: ConditionalGAN, classifier, count: int = 1000, seed: int = 0) -> list[dict]:
    """How often the attribute classifier agrees with the requested labels on `count` conditional samples.

    Labels drawn from the run's joint distribution; one row per conditioning attribute that the classifier
    knows: {attribute, requested_rate, predicted_rate, agreement, chance, balanced_agreement, balanced_chance}.
    agreement: the fraction of samples whose predicted value (probability >= 0.5) equals the requested one;
    chance: the same against the requests shuffled among the samples, i.e. what a generator drawing these faces
    while ignoring its labels would score. balanced_agreement: the mean of the agreement on the samples asked to
    show the attribute and on those asked not to (a rare attribute's raw agreement is mostly its commoner value;
    a reading that ignores the request scores 0.5 here); balanced_chance: the same against the shuffled requests.
    NaN when every sample asked for the same value.
    """
    inputs = model.sampling_inputs(count, seed)
    predicted = classifier.probabilities(data.to_uint8(model.generate(inputs))) >= 0.5
    shuffled = np.random.default_rng([seed, 2]).permutation(count)
    rows = []
    for index, name in enumerate(model.attributes):
        if name not in classifier.names:
            continue
        requested = inputs["labels"][:, index] > 0.5
        said = predicted[:, classifier.names.index(name)]
        rows.append({"attribute": name, "requested_rate": float(requested.mean()),
                     "predicted_rate": float(said.mean()), "agreement": float((said == requested).mean()),
                     "chance": float((said == requested[shuffled]).mean()),
                     "balanced_agreement": balanced_agreement(said, requested),
                     "balanced_chance": balanced_agreement(said, requested[shuffled])})
    return rows


def balanced_agreement(said, requested) -> float:
    """The mean of the rates at which `said` (bool [N]) equals `requested` (bool [N]) where the request is True
    and where it is False: float in [0, 1], NaN when the request takes one value only."""
    said, requested = np.asarray(said, bool), np.asarray(requested, bool)
    if requested.all() or not requested.any():
        return float("nan")
    return float((said[requested].mean() + (~said[~requested]).mean()) / 2)
