"""Line drawings made from face photos, the inputs of sketch-to-face models: XDoG sketches to train on, Canny edges as
a style held out of training, and their cache beside the faces' cache.

Sketches are uint8 [N, H, W, 1]: 255 is paper, 0 is a line. XDoG is the extended difference of Gaussians of
Winnemöller et al. 2012 on the luminance: D = G_sigma - tau * G_(k sigma), the soft threshold 1 + tanh(phi (D - eps))
where D < eps (1 elsewhere), binarised at 1/2, then cleaned of specks. Sizes in pixels (sigma, specks, line width) are
given for a 64x64 face and scaled with the resolution. The defaults were chosen by eye on 64x64 CelebA crops (face160):
they draw the face's outline, eyes, brows, nose, mouth and the edges of the hair.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage
import skimage.color
import skimage.feature
import skimage.morphology

from facekit.data import IndexedImages
from facekit.files import folder_lock, remove_abandoned_temporaries, write_atomically

REFERENCE_RESOLUTION = 64  # the resolution the pixel sizes below are given for
XDOG_SIGMA = 0.5
XDOG_K = 1.6
XDOG_TAU = 0.98
XDOG_PHI = 200.0
XDOG_EPSILON = -0.004  # luminance in [0, 1]; lower draws fewer lines
XDOG_SPECK_PIXELS = 3  # line pieces of this many pixels or fewer (8-connected) are removed
# Training sketches ("xdog") draw, per image, sigma log-uniformly in [XDOG_SIGMA / 1.25, XDOG_SIGMA * 1.25] and, for
# half of the images, lines thickened by one pixel (a 2x2 dilation at 64x64).
SIGMA_JITTER = 1.15
THICK_LINE_SHARE = 1 / 3
CANNY_SIGMA = 1.0
CANNY_LOW_THRESHOLD = 0.1  # gradient magnitude of the luminance in [0, 1] (skimage's default fractions)
CANNY_HIGH_THRESHOLD = 0.2
STYLES = ("xdog", "xdog-fixed", "canny")  # jittered XDoG for training; the same without jitter; the held-out style
SKETCH_VERSION = 1  # part of the cache files' names: raise it when a default above changes
_CHUNK = 256  # images sketched between progress updates


class SketchCacheWarning(UserWarning):
    """A sketch cache file could not be read or does not fit its faces, and is being rebuilt (the message says why)."""


def xdog(images, sigma: float = XDOG_SIGMA, k: float = XDOG_K, tau: float = XDOG_TAU, phi: float = XDOG_PHI,
         epsilon: float = XDOG_EPSILON, seed: int | None = None, indices=None) -> np.ndarray:
    """XDoG sketches uint8 [N, H, W, 1] (255 paper, 0 line) of images uint8 [N, H, W, 3].

    sigma is in pixels of a 64x64 image (scaled by H / 64). seed=None draws every image with these parameters; an int
    jitters each image's sigma and line width (SIGMA_JITTER, THICK_LINE_SHARE) with np.random.default_rng([seed,
    index]), index = indices[i] (default i): an image's sketch depends on (seed, index), not on the other images.
    """
    images = _checked_images(images, "xdog")
    indices = _checked_indices(indices, len(images), "xdog")
    scale = _scale(images)
    sketches = np.empty(images.shape[:3] + (1,), np.uint8)
    for row, (image, index) in enumerate(zip(images, indices)):
        image_sigma, thick = sigma, False
        if seed is not None:
            rng = np.random.default_rng([seed, int(index)])
            image_sigma = sigma * math.exp(rng.uniform(-math.log(SIGMA_JITTER), math.log(SIGMA_JITTER)))
            thick = bool(rng.random() < THICK_LINE_SHARE)
        lines = _xdog_lines(skimage.color.rgb2gray(image), image_sigma * scale, k, tau, phi, epsilon)
        lines = skimage.morphology.remove_small_objects(lines, max_size=round(XDOG_SPECK_PIXELS * scale**2),
                                                        connectivity=2)
        if thick:
            lines = scipy.ndimage.binary_dilation(lines, np.ones((1 + max(1, round(scale)),) * 2, bool))
        sketches[row, ..., 0] = np.where(lines, 0, 255)
    return sketches


def canny(images, sigma: float = CANNY_SIGMA, low_threshold: float = CANNY_LOW_THRESHOLD,
          high_threshold: float = CANNY_HIGH_THRESHOLD) -> np.ndarray:
    """Canny edges of the luminance as sketches uint8 [N, H, W, 1] (255 paper, 0 line) of images uint8 [N, H, W, 3].

    The held-out style: one-pixel closed contours, unlike XDoG's lines. sigma is in pixels of a 64x64 image.
    """
    images = _checked_images(images, "canny")
    scale = _scale(images)
    sketches = np.empty(images.shape[:3] + (1,), np.uint8)
    for row, image in enumerate(images):
        edges = skimage.feature.canny(skimage.color.rgb2gray(image), sigma=sigma * scale,
                                      low_threshold=low_threshold, high_threshold=high_threshold)
        sketches[row, ..., 0] = np.where(edges, 0, 255)
    return sketches


def draw(images, style: str = "xdog", seed: int = 0, indices=None) -> np.ndarray:
    """Sketches uint8 [N, H, W, 1] of images uint8 [N, H, W, 3] in one of STYLES, with the default parameters.

    "xdog" is jittered by (seed, indices[i]) as in `xdog`; "xdog-fixed" and "canny" ignore seed and indices.
    """
    if style == "xdog":
        return xdog(images, seed=seed, indices=indices)
    if style == "xdog-fixed":
        return xdog(images)
    if style == "canny":
        return canny(images)
    raise ValueError(f"unknown sketch style {style!r}; expected one of {', '.join(STYLES)}")


def prepare(faces, style: str = "xdog", seed: int = 0, progress: bool = True):
    """The sketches of faces.images (a facekit.data.Faces) in `style`: uint8 [N, H, W, 1], row i drawn from face i.

    Faces from data.prepare are sketched once, over their whole cache file, and the sketches cached beside it as
    `<faces cache stem>.sketch-<style>[-seed<seed>]-v<SKETCH_VERSION>.npy` (the seed only for "xdog", the one style
    it changes), written atomically; later calls load it. The result is the same kind as faces.images: the read-only
    memory map for a whole cache, the same rows of it (IndexedImages) for a subset (select, partition,
    split_by_identity), so the jitter of an image is that of its row in the cache whatever the subset. A cache file
    that cannot be read or does not fit the faces is rebuilt with a SketchCacheWarning. Faces held in memory (not
    from a cache) are sketched on every call, jittered by their row in faces.images.
    """
    if style not in STYLES:
        raise ValueError(f"unknown sketch style {style!r}; expected one of {', '.join(STYLES)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a whole number >= 0")
    images = faces.images
    base = images.base if isinstance(images, IndexedImages) else images
    if not _is_whole_cache(base):
        return _draw_in_chunks(np.asarray(images), style, seed, progress)
    path = cache_path(base.filename, style, seed)
    with folder_lock(path.parent):  # one process builds a cache file at a time; the others then load it
        sketches = _load_cache(path, base.shape)
        if sketches is None:
            remove_abandoned_temporaries(path)
            write_atomically(path, lambda temporary: _draw_in_chunks(base, style, seed, progress, out=temporary))
            sketches = _load_cache(path, base.shape)
    return IndexedImages.of(sketches, images.indices) if isinstance(images, IndexedImages) else sketches


def cache_path(faces_cache, style: str, seed: int) -> Path:
    """Where prepare caches the sketches of the faces cache file `faces_cache` (a data.prepare .npy)."""
    faces_cache = Path(faces_cache)
    seed_part = f"-seed{seed}" if style == "xdog" else ""
    return faces_cache.with_name(f"{faces_cache.stem}.sketch-{style}{seed_part}-v{SKETCH_VERSION}.npy")


def _xdog_lines(luminance: np.ndarray, sigma: float, k: float, tau: float, phi: float, epsilon: float) -> np.ndarray:
    """bool [H, W]: where the binarised XDoG soft threshold of luminance float [H, W] in [0, 1] draws a line."""
    difference = scipy.ndimage.gaussian_filter(luminance, sigma) - tau * scipy.ndimage.gaussian_filter(luminance,
                                                                                                        k * sigma)
    soft = np.where(difference < epsilon, 1 + np.tanh(phi * (difference - epsilon)), 1.0)
    return soft < 0.5


def _draw_in_chunks(images, style: str, seed: int, progress: bool, out=None) -> np.ndarray:
    """draw(images, style, seed) chunk by chunk, with a progress bar; into a new .npy at `out` when given."""
    from tqdm.auto import tqdm

    _checked_images(images[:0], "sketches.prepare")  # the dtype and shape, without reading the images
    count, height, width = images.shape[:3]
    shape = (count, height, width, 1)
    sketches = np.lib.format.open_memmap(out, "w+", np.uint8, shape) if out else np.empty(shape, np.uint8)
    with tqdm(total=count, desc=f"sketching {height}x{width} ({style})", unit="image", disable=not progress) as bar:
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            sketches[start:stop] = draw(np.asarray(images[start:stop]), style, seed, np.arange(start, stop))
            bar.update(stop - start)
    if out:
        sketches.flush()
    return sketches


def _load_cache(path: Path, faces_shape) -> np.ndarray | None:
    """The cached sketches at `path` as a read-only memory map, or None (with a warning when the file is bad)."""
    if not path.exists():
        return None
    expected = (*faces_shape[:3], 1)
    try:
        sketches = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        problem = f"cannot be read ({error})"
    else:
        if sketches.dtype == np.uint8 and sketches.shape == expected:
            return sketches
        problem = f"holds {sketches.dtype} {list(sketches.shape)}, not uint8 {list(expected)} for its faces"
    warnings.warn(f"{path}: the sketch cache {problem}; rebuilding it", SketchCacheWarning, stacklevel=3)
    return None


def _is_whole_cache(images) -> bool:
    """Whether `images` is a whole .npy file mapped by np.load (not a slice of one, not an in-memory array)."""
    return isinstance(images, np.memmap) and not isinstance(images.base, np.ndarray) and \
        str(images.filename).endswith(".npy")


def _checked_images(images, caller: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{caller}: expected uint8 images (0..255), got {images.dtype}; convert floats in [-1, 1] "
                        f"with facekit.data.to_uint8")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{caller}: expected RGB images [N, H, W, 3], got shape {list(images.shape)}")
    return images


def _checked_indices(indices, count: int, caller: str) -> np.ndarray:
    if indices is None:
        return np.arange(count)
    indices = np.asarray(indices)
    if indices.shape != (count,) or not np.issubdtype(indices.dtype, np.integer) or (indices < 0).any():
        raise ValueError(f"{caller}: expected {count} image indices >= 0, got {indices.dtype} {list(indices.shape)}")
    return indices


def _scale(images: np.ndarray) -> float:
    """How many pixels of these images make one pixel of a 64x64 face."""
    return min(images.shape[1:3]) / REFERENCE_RESOLUTION
