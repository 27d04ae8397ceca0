"""Eigenfaces: principal component analysis of face images by randomized subspace iteration, in chunks.

Method (Halko, Martinsson & Tropp 2011, "Finding structure with randomness", algorithms 4.4 and 5.3):
the eigenfaces are the leading eigenvectors of the pixel covariance C = Xc^T Xc / (N - 1), where Xc holds the
centred images as rows [N, D] (D = 64*64*3 = 12,288). C itself is D x D (600 MB at 64x64, 9.7 GB at 128x128), so
it is never formed. Instead a random block of l = k + oversamples directions Q [D, l] is multiplied by Xc^T Xc a
few times (each time re-orthonormalised), which turns it towards the top-k eigenvectors; a last pass projects the
data onto Q and solves the small l x l eigenproblem exactly (Rayleigh-Ritz). Every pass streams the images in
chunks of `chunk_size` rows, so memory stays O(chunk_size * D + D * l) whatever N is: a memory-mapped uint8 array
of all 202,599 CelebA images is read from disk, never held as floats.

Why randomized rather than incremental PCA: incremental PCA (Ross et al. 2008) needs an SVD of a
(k + chunk) x D matrix per chunk, sequentially; the randomized method needs only a few passes of large matrix
products, which BLAS runs at full speed on every core, and its error is controlled by the power iterations.

Pixels are on the [-1, 1] scale used everywhere in facekit (uint8 images are converted; float images are taken
as already in [-1, 1]), so reconstruction errors are comparable with the VAE's.
"""

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import scipy.linalg

from facekit.files import write_atomically
from facekit.registry import ModelSpec
from facekit.training import TrainingConfig, as_faces, config_for, setting, split

DEFAULT_COMPONENTS = 200
DEFAULT_POWER_ITERATIONS = 3
DEFAULT_CHUNK_SIZE = 1024
MODEL_KEYS = ("mean", "components", "explained_variance", "total_variance", "count")
MODEL_FILE = "eigenfaces.npz"


@dataclasses.dataclass
class Eigenfaces:
    """A fitted PCA of images [H, W, 3] (pixels on the [-1, 1] scale).

    mean:                float32 [H, W, 3], the mean face
    components:          float32 [k, D], orthonormal rows (D = H*W*3), by decreasing variance
    explained_variance:  float64 [k], variance of the data along each component (eigenvalues of the covariance)
    total_variance:      float, the sum of the variances of all D pixels (the trace of the covariance)
    count:               number of images fitted
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    total_variance: float
    count: int

    @property
    def image_shape(self) -> tuple:
        return tuple(self.mean.shape)

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """float64 [k]: the fraction of the total pixel variance each component explains."""
        return self.explained_variance / self.total_variance

    def encode(self, images, k: int | None = None) -> np.ndarray:
        """images: uint8 or float [-1, 1], [N, H, W, 3] -> coefficients float32 [N, k] (default: all components)."""
        components = self.components[: self._check_k(k)]
        images = self._check_images(images)
        coefficients = np.empty((len(images), len(components)), np.float32)
        for start, chunk in _chunks(images, DEFAULT_CHUNK_SIZE):
            coefficients[start : start + len(chunk)] = _centred(chunk, self.mean.reshape(-1)) @ components.T
        return coefficients

    def decode(self, coefficients) -> np.ndarray:
        """coefficients float [N, k] (k <= components fitted) -> images float32 [N, H, W, 3], about [-1, 1]
        (not clipped; `data.to_uint8` clips for display)."""
        coefficients = np.asarray(coefficients, np.float32)
        k = self._check_k(coefficients.shape[-1])
        flat = coefficients @ self.components[:k] + self.mean.reshape(-1)
        return flat.reshape((len(coefficients),) + self.image_shape)

    def reconstruct(self, images, k: int | None = None) -> np.ndarray:
        """The images rebuilt from their first k coefficients: float32 [N, H, W, 3], about [-1, 1]."""
        return self.decode(self.encode(images, k))

    def sample(self, count: int, seed: int, k: int | None = None) -> np.ndarray:
        """New faces: coefficients drawn from N(0, explained_variance), decoded; float32 [count, H, W, 3]."""
        k = self._check_k(k)
        standard = np.random.default_rng(seed).standard_normal((count, k))
        return self.decode(standard * np.sqrt(self.explained_variance[:k]))

    def component_images(self, count: int | None = None) -> np.ndarray:
        """The first `count` eigenfaces as images float32 [count, H, W, 3], each scaled to a largest |value| of 1."""
        components = self.components[: self._check_k(count)]
        scaled = components / np.abs(components).max(axis=1, keepdims=True)
        return scaled.reshape((len(components),) + self.image_shape)

    def save(self, path) -> Path:
        """Write the model as a plain .npz (no pickle), atomically; returns the path."""
        arrays = {"mean": self.mean, "components": self.components, "explained_variance": self.explained_variance,
                  "total_variance": np.float64(self.total_variance), "count": np.int64(self.count)}

        def write(temporary):
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)

        path = Path(path)
        write_atomically(path, write)
        return path

    def _check_k(self, k) -> int:
        available = len(self.components)
        if k is None:
            return available
        if not 1 <= k <= available:
            raise ValueError(f"k must be between 1 and {available} (the components fitted), got {k}")
        return int(k)

    def _check_images(self, images) -> np.ndarray:
        images = np.asarray(images)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images: expected [N, {', '.join(map(str, self.image_shape))}], got {images.shape}")
        return images


def fit(images, components: int = DEFAULT_COMPONENTS, power_iterations: int = DEFAULT_POWER_ITERATIONS,
        oversamples: int | None = None, seed: int = 0, chunk_size: int = DEFAULT_CHUNK_SIZE,
        show_progress: bool = False) -> Eigenfaces:
    """Fit the top `components` eigenfaces of images: uint8 or float [-1, 1], [N, H, W, 3] (a memmap is fine).

    Passes over the data: 1 for the mean, `power_iterations + 1` multiplications by Xc^T Xc, 1 for Rayleigh-Ritz.
    `oversamples` extra random directions (default max(10, components // 2)) make the top `components` accurate.
    Same arguments, same result.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected [N, H, W, 3], got shape {images.shape}")
    count, dimension = len(images), math.prod(images.shape[1:])
    if not 1 <= components < min(count, dimension):
        raise ValueError(f"components must be between 1 and {min(count, dimension) - 1} "
                         f"for {count} images of {dimension} values, got {components}")
    oversamples = max(10, components // 2) if oversamples is None else oversamples
    width = min(components + oversamples, count - 1, dimension)
    bar = _progress_bar(power_iterations + 3, show_progress)

    flat_mean = _mean(images, chunk_size)
    bar.update()
    basis = np.random.default_rng(seed).standard_normal((dimension, width)).astype(np.float32)
    for _ in range(power_iterations + 1):
        basis = _orthonormal(_times_scatter(images, flat_mean, basis, chunk_size))
        bar.update()
    projected_scatter, total_scatter = _projected_scatter(images, flat_mean, basis, chunk_size)
    bar.update()
    bar.close()

    eigenvalues, rotation = scipy.linalg.eigh(projected_scatter)
    order = np.argsort(eigenvalues)[::-1][:components]
    leading = (basis.astype(np.float64) @ rotation[:, order]).T
    leading *= np.sign(leading[np.arange(components), np.abs(leading).argmax(axis=1)])[:, None]
    return Eigenfaces(mean=flat_mean.reshape(images.shape[1:]).astype(np.float32),
                      components=leading.astype(np.float32),
                      explained_variance=np.maximum(eigenvalues[order], 0.0) / (count - 1),
                      total_variance=float(total_scatter / (count - 1)), count=count)


@dataclasses.dataclass
class PCAConfig(TrainingConfig):
    """Everything that defines a PCA run; saved as the run folder's run.json."""

    model: str = "pca"
    components: int = setting(DEFAULT_COMPONENTS, "eigenfaces to fit")
    power_iterations: int = setting(DEFAULT_POWER_ITERATIONS, "passes that turn the random block to the top space")
    heldout: float = setting(0.1, "fraction of the people kept out of the fit, to measure reconstruction error")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("components",)

    def __post_init__(self):
        super().__post_init__()
        if self.power_iterations < 0:
            raise ValueError(f"power_iterations must be at least 0, got {self.power_iterations}")


def train_run(faces, run_dir, config: PCAConfig, resume: bool = False, show_progress: bool = True):
    """`train` on a data.Faces: config.heldout of the people are kept out of the fit and measure the error."""
    if resume:
        raise ValueError("PCA is fitted in one go; there is no run to resume (start a new run folder)")
    faces = as_faces(faces)
    config = config_for(config, faces)
    training, heldout = split(faces, config)
    run = train(training.images, run_dir, config, heldout=None if heldout is None else heldout.images,
                show_progress=show_progress)
    print(f"fitted {config.components} eigenfaces to {len(training)} images; reconstruction error measured on "
          f"{len(heldout) if heldout is not None else len(training)} {'held-out' if heldout is not None else 'training'}"
          f" images")
    return run


def sample(run_dir, count: int, seed: int = 0, step: int | None = None) -> np.ndarray:
    """`count` faces uint8 [count, R, R, 3] drawn from a run's eigenfaces (`Eigenfaces.sample`); step: a number
    of components, all of them by default."""
    from facekit import data

    return data.to_uint8(load_eigenfaces(run_dir).sample(count, seed, k=step))


def train(images, run_dir, config: PCAConfig, heldout=None, show_progress: bool = True):
    """Fit eigenfaces to uint8 images [N, R, R, 3] into a run folder, with the same contract as the DCGAN and VAE
    runs except that a "step" is the number of components k used:

    log.csv         step k = 1..components: mean_squared_error (per value, [-1, 1] scale) of `heldout` images
                    (default: the training images) rebuilt from k components, explained_variance_ratio (cumulative)
    samples/        step_000010.png: fixed random coefficients decoded with the first k components (k = 0: the mean)
    checkpoints/    eigenfaces.npz (`load_eigenfaces(run_dir)`)
    progress.gif    the samples as k grows; losses.png: the error against k
    """
    from facekit import progress
    from facekit.training import RunFolder

    run = RunFolder(run_dir)
    run.start(dataclasses.asdict(config), resume=False)
    started = time.perf_counter()
    model = fit(images, config.components, config.power_iterations, seed=config.seed, show_progress=show_progress)
    seconds = round(time.perf_counter() - started, 4)
    model.save(run.checkpoints_dir / MODEL_FILE)

    heldout = images if heldout is None else heldout
    errors = _errors_by_k(model, heldout)
    explained = np.cumsum(model.explained_variance_ratio)
    for k in range(1, config.components + 1):
        run.append_log({"step": k, "mean_squared_error": float(errors[k - 1]),
                        "explained_variance_ratio": float(explained[k - 1]), "seconds": seconds})
    standard = np.random.default_rng(config.seed).standard_normal((config.grid_size, config.components))
    progress.save_grid(np.repeat(model.mean[None], config.grid_size, axis=0), run.sample_path(0))
    for k in _snapshot_counts(config.components):
        progress.save_grid(model.decode(standard[:, :k] * np.sqrt(model.explained_variance[:k])), run.sample_path(k))
    run.finish(loss_columns=["mean_squared_error"])
    return run


def load_eigenfaces(run_dir) -> Eigenfaces:
    """The eigenfaces of a `python -m facekit train pca` run folder."""
    from facekit.training import RunFolder

    return load(RunFolder(run_dir).checkpoints_dir / MODEL_FILE)


def load(path) -> Eigenfaces:
    """Read a model written by `Eigenfaces.save` (plain arrays only; pickled objects are refused)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as arrays:
        missing = [key for key in MODEL_KEYS if key not in arrays.files]
        if missing:
            raise ValueError(f"{path}: not an eigenfaces model (missing {', '.join(missing)})")
        model = Eigenfaces(mean=arrays["mean"], components=arrays["components"],
                           explained_variance=arrays["explained_variance"],
                           total_variance=float(arrays["total_variance"]), count=int(arrays["count"]))
    if model.components.shape[1] != model.mean.size or len(model.explained_variance) != len(model.components):
        raise ValueError(f"{path}: inconsistent shapes (mean {model.mean.shape}, components "
                         f"{model.components.shape}, explained_variance {model.explained_variance.shape})")
    return model


def _errors_by_k(model: Eigenfaces, images) -> np.ndarray:
    """Mean squared error per value of images rebuilt from k = 1..all components: float64 [components].

    The components are orthonormal, so the squared error left with k components is |x - mean|^2 minus the sum of
    the first k squared coefficients: one encoding gives every k.
    """
    squared_norms = np.zeros(len(images), np.float64)
    for start, chunk in _chunks(images, DEFAULT_CHUNK_SIZE):
        squared_norms[start : start + len(chunk)] = np.square(_centred(chunk, model.mean.reshape(-1)),
                                                              dtype=np.float64).sum(axis=1)
    captured = np.cumsum(np.square(model.encode(images), dtype=np.float64), axis=1)
    return (squared_norms[:, None] - captured).mean(axis=0) / model.mean.size


def _snapshot_counts(components: int) -> list:
    """1, 2, 5, 10, 20, 50, ... below `components`, then `components` itself."""
    counts = [base * 10**power for power in range(7) for base in (1, 2, 5) if base * 10**power < components]
    return counts + [components]


def _mean(images, chunk_size: int) -> np.ndarray:
    total = np.zeros(math.prod(images.shape[1:]), np.float64)
    zero = np.zeros(total.shape, np.float32)
    for _, chunk in _chunks(images, chunk_size):
        total += _centred(chunk, zero).sum(axis=0, dtype=np.float64)
    return (total / len(images)).astype(np.float32)


def _times_scatter(images, flat_mean, basis, chunk_size: int) -> np.ndarray:
    """Xc^T (Xc basis) [D, l], one chunk of rows of Xc at a time."""
    product = np.zeros_like(basis)
    for _, chunk in _chunks(images, chunk_size):
        centred = _centred(chunk, flat_mean)
        product += centred.T @ (centred @ basis)
    return product


def _projected_scatter(images, flat_mean, basis, chunk_size: int) -> tuple[np.ndarray, float]:
    """(Xc basis)^T (Xc basis) float64 [l, l] and the trace of Xc^T Xc (the total sum of squares)."""
    projected = np.zeros((basis.shape[1], basis.shape[1]), np.float64)
    total = 0.0
    for _, chunk in _chunks(images, chunk_size):
        centred = _centred(chunk, flat_mean)
        coordinates = (centred @ basis).astype(np.float64)
        projected += coordinates.T @ coordinates
        total += float(np.einsum("ij,ij->", centred, centred, dtype=np.float64))
    return projected, total


def _orthonormal(matrix: np.ndarray) -> np.ndarray:
    """An orthonormal basis float32 [D, l] of the columns of matrix [D, l]: Cholesky QR, twice, in float64.

    Each round is two matrix products and an l x l Cholesky factorisation, which stay fast on a busy machine where
    Householder QR's many small multi-threaded steps slow down tenfold. Columns too close to dependent (data of
    lower rank than l) fall back to Householder QR.
    """
    basis = matrix.astype(np.float64)
    identity = np.eye(basis.shape[1])
    try:
        for _ in range(2):
            upper = scipy.linalg.cholesky(basis.T @ basis, check_finite=False)
            basis = basis @ scipy.linalg.solve_triangular(upper, identity, check_finite=False)
    except np.linalg.LinAlgError:
        basis = None
    if basis is None or not np.allclose(basis.T @ basis, identity, atol=1e-6):
        return scipy.linalg.qr(matrix, mode="economic", check_finite=False)[0]
    return basis.astype(np.float32)


def _chunks(images, chunk_size: int):
    """(start, images[start : start + chunk_size]) over the whole array (a memmap is read chunk by chunk)."""
    for start in range(0, len(images), chunk_size):
        yield start, images[start : start + chunk_size]


def _centred(chunk, flat_mean) -> np.ndarray:
    """A chunk of images [b, H, W, 3] as new float32 rows [b, D] on the [-1, 1] scale, minus flat_mean [D]."""
    flat = np.asarray(chunk).reshape(len(chunk), -1)
    if flat.dtype == np.uint8:
        centred = flat.astype(np.float32)
        centred *= np.float32(1 / 127.5)
        centred -= flat_mean + np.float32(1.0)
        return centred
    if not np.issubdtype(flat.dtype, np.floating):
        raise ValueError(f"images: expected uint8 or float pixels in [-1, 1], got {flat.dtype}")
    return np.subtract(flat, flat_mean, dtype=np.float32)


def _progress_bar(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="pca passes over the data", unit="pass", disable=not show)


MODEL = ModelSpec(name="pca", config=PCAConfig, train=train_run, sample=sample, load=load_eigenfaces)
