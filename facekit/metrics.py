"""Numbers for generated faces: sliced Wasserstein distance, Fréchet and kernel distances, MS-SSIM, nearest neighbours,
and PSNR / SSIM of outputs against their true images (super-resolution, sketch to face).

Images are uint8 [N, H, W, 3] (floats in [-1, 1] are accepted and converted). Feature sets are float [N, D].
Face detection and the dlib face-embedding space live in `facekit.faces`.
"""

import warnings

import numpy as np
import scipy.linalg
import scipy.ndimage

from facekit import data, progress

# Sliced Wasserstein distance, the progressive-GAN protocol (Karras et al. 2018, metrics/sliced_wasserstein.py).
SWD_NEIGHBOURHOOD = 7  # descriptors are 7x7x3 neighbourhoods of one pyramid level
SWD_DESCRIPTORS_PER_IMAGE = 128
SWD_DIRECTIONS = 128  # random projections per repeat; 4 repeats x 128 = the paper's 512 projections
SWD_REPEATS = 4
SWD_MIN_RESOLUTION = 16  # the pyramid goes from the image resolution down to 16x16

# KID (Bińkowski et al. 2018): unbiased MMD^2 with the kernel (x.y / c + 1)^3, averaged over random subsets.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # at most half of each set, so that the subsets differ
# c = D (2048) suits Inception features. dlib's 128-d face embeddings have |x|^2 about 2.2 (norms 1.48 +- 0.07, the
# shared mean's 1.35), so x.y / 128 is about 0.015, the kernel is nearly linear and KID sees little but the means.
# benchmarks/face_kid_scale.py (1,149 faces in 1,200 random 64x64 CelebA images, two disjoint halves, 20 subsets):
# with c = their mean |x|^2 = 2.19, a half with 11 times less spread scores 8.9e-3 +- 1.4e-3 against the other,
# real against real -3.9e-4 +- 1.7e-3; with c = 128, 1.4e-5 +- 7.0e-6 and -1.7e-6 +- 8.8e-6.
FACE_KID_SCALE = 2.2

# MS-SSIM (Wang et al. 2003) weights for scales 1..5. At 64x64 the standard 11-tap filter over five scales does not
# fit (the fifth scale is 4x4), so `ms_ssim` keeps the first scales that fit a 7-tap filter (64, 32, 16, 8: four
# scales) with their weights renormalised to sum to 1, and shrinks sigma with the filter (1.5 * 7 / 11), as Karras'
# reference shrinks its filter for small images.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_FILTER_SIZE = 7
MS_SSIM_FILTER_SIGMA = 1.5 * 7 / 11

# PSNR and SSIM against true images as super-resolution papers report them (SRGAN, EDSR): on the luminance Y of
# ITU-R BT.601 in studio range, Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in 0..255 (MATLAB's
# rgb2ycbcr; Y in 16..235, not rounded), peak 255, with a border of pixels cropped; tf.image.ssim's 11-tap Gaussian
# filter (sigma 1.5). A pair of identical images would have PSNR inf: it counts as PSNR_CAP, above any other pair of
# 8-bit 64x64 RGB images (one value off by one: 89 dB).
LUMINANCE_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
LUMINANCE_OFFSET = 16.0
PSNR_BORDER = 4
PSNR_CAP = 100.0
SSIM_FILTER_SIZE = 11

INCEPTION_RESOLUTION = 299
INCEPTION_WEIGHTS_ADVICE = (
    "InceptionV3 ImageNet weights are downloaded by Keras on first use (about 90 MB, cached in ~/.keras/models). "
    "Run once with network access, or copy inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 into "
    "~/.keras/models/, or use the offline dlib face-embedding features (facekit.faces.face_embeddings) instead."
)


class FeatureNetworkUnavailable(RuntimeError):
    """A feature network's weights could not be loaded (typically: offline and not cached)."""


def sliced_wasserstein_distance(images_a, images_b, seed: int = 0,
                                descriptors_per_image: int = SWD_DESCRIPTORS_PER_IMAGE,
                                directions: int = SWD_DIRECTIONS, repeats: int = SWD_REPEATS) -> dict[str, float]:
    """SWD x 1e3 between two image sets, per Laplacian-pyramid level and averaged, as the progressive-GAN paper reports.

    images_a, images_b: [N, R, R, 3] uint8 (or float in [-1, 1]), the same N, R a power of two >= 16.
    Returns {"swd_64": ..., "swd_32": ..., "swd_16": ..., "swd_avg": ...} for R = 64 (smaller is closer).
    Random draws come from np.random.default_rng(seed) in this order, for each level from finest to coarsest:
    descriptor centre rows, columns, then `repeats` direction matrices. Unlike the reference, both sets use the same
    centres (image i of A and of B): identical sets give exactly 0 and comparisons carry less sampling noise.
    """
    images_a, images_b = _as_float_pixels(images_a), _as_float_pixels(images_b)
    if images_a.shape != images_b.shape:
        raise ValueError(f"sliced_wasserstein_distance: both sets need the same shape, got {images_a.shape} "
                         f"and {images_b.shape} (sample the larger set down to the smaller)")
    resolutions = pyramid_resolutions(images_a.shape[1])
    rng = np.random.default_rng(seed)
    levels_a = laplacian_pyramid(images_a, len(resolutions))
    levels_b = laplacian_pyramid(images_b, len(resolutions))
    result = {}
    for resolution, level_a, level_b in zip(resolutions, levels_a, levels_b):
        rows, columns = neighbourhood_centres(level_a.shape, descriptors_per_image, rng)
        descriptors_a = neighbourhood_descriptors(level_a, rows, columns)
        descriptors_b = neighbourhood_descriptors(level_b, rows, columns)
        distance = sliced_wasserstein(descriptors_a, descriptors_b, rng, directions, repeats)
        result[f"swd_{resolution}"] = distance * 1e3
    result["swd_avg"] = float(np.mean(list(result.values())))
    return result


def pyramid_resolutions(resolution: int) -> list[int]:
    """Level sizes of the SWD pyramid: [R, R/2, ..., 16] for a power of two R >= 16."""
    if resolution < SWD_MIN_RESOLUTION or resolution & (resolution - 1):
        raise ValueError(f"sliced Wasserstein distance needs square images whose side is a power of two >= "
                         f"{SWD_MIN_RESOLUTION}, got {resolution}")
    resolutions = []
    while resolution >= SWD_MIN_RESOLUTION:
        resolutions.append(resolution)
        resolution //= 2
    return resolutions


def laplacian_pyramid(images, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid of float32 [N, R, R, C]: levels-1 band-pass images (R, R/2, ...) then the low-pass residual.

    Uses the 5-tap binomial filter with mirrored borders (what cv2.pyrDown / pyrUp do), like the reference.
    """
    pyramid = [np.asarray(images, np.float32)]
    for _ in range(1, levels):
        smaller = _pyramid_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - _pyramid_up(smaller)
        pyramid.append(smaller)
    return pyramid


def neighbourhood_centres(shape, per_image: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random centres where a whole 7x7 window fits in levels of `shape` [N, S, S, C]: rows, columns int [N, k]."""
    count, height, width, _ = shape
    radius = SWD_NEIGHBOURHOOD // 2
    rows = rng.integers(radius, height - radius, size=(count, per_image))
    columns = rng.integers(radius, width - radius, size=(count, per_image))
    return rows, columns


def neighbourhood_descriptors(level, rows, columns) -> np.ndarray:
    """The 7x7 neighbourhoods of one pyramid level around the given centres, each colour channel normalised.

    level: float32 [N, S, S, C]; rows, columns: int [N, per_image]. Every channel is shifted and scaled to mean 0
    and std 1 over all descriptors of the set. Returns float32 [N * per_image, 7 * 7 * C], (row, column, channel) order.
    """
    count, _, _, channels = level.shape
    radius = SWD_NEIGHBOURHOOD // 2
    offsets = np.arange(-radius, radius + 1)
    image_index = np.arange(count)[:, None, None, None]
    descriptors = level[image_index, rows[:, :, None, None] + offsets[:, None],
                        columns[:, :, None, None] + offsets[None, :]]  # [N, per_image, 7, 7, C]
    descriptors = descriptors.reshape(-1, channels)
    per_channel = np.ascontiguousarray(descriptors.T)  # rows of one channel: fast, pairwise-summed statistics
    descriptors = (descriptors - per_channel.mean(axis=1)) / per_channel.std(axis=1)
    return descriptors.reshape(count * rows.shape[1], -1)


def sliced_wasserstein(descriptors_a, descriptors_b, rng: np.random.Generator,
                       directions: int = SWD_DIRECTIONS, repeats: int = SWD_REPEATS) -> float:
    """Mean 1-D Wasserstein-1 distance of two equal-size point sets projected on random unit directions.

    descriptors_a, descriptors_b: float32 [M, D]. Each repeat draws a float [D, directions] standard normal matrix
    from `rng` and normalises its columns; the result averages |sorted(a.d) - sorted(b.d)| over points, directions
    and repeats.
    """
    if descriptors_a.shape != descriptors_b.shape:
        raise ValueError(f"sliced_wasserstein: point sets differ in shape: {descriptors_a.shape} vs "
                         f"{descriptors_b.shape}")
    distances = []
    for _ in range(repeats):
        unit = rng.standard_normal((descriptors_a.shape[1], directions))
        unit = (unit / np.linalg.norm(unit, axis=0, keepdims=True)).astype(np.float32)
        projected_a = np.sort(unit.T @ descriptors_a.T, axis=1)  # [directions, M], contiguous rows to sort
        projected_b = np.sort(unit.T @ descriptors_b.T, axis=1)
        distances.append(np.mean(np.abs(projected_a - projected_b), dtype=np.float64))
    return float(np.mean(distances))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D] (FID when D is Inception's).

    |mu_a - mu_b|^2 + trace(C_a + C_b - 2 (C_a C_b)^(1/2)), covariances with N - 1 in the denominator. Warns
    when a set has no more samples than dimensions (its covariance is then singular).
    """
    features_a, features_b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    count, dimensions = min(len(features_a), len(features_b)), features_a.shape[1]
    if count <= dimensions:
        warnings.warn(f"frechet_distance: {count} samples in {dimensions} dimensions: the covariance is singular "
                      f"(rank at most {count - 1}), so the distance rests on a regularised square root; use more "
                      f"than {dimensions} samples per set", stacklevel=2)
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    covariance_a = np.cov(features_a, rowvar=False)
    covariance_b = np.cov(features_b, rowvar=False)
    root = scipy.linalg.sqrtm(covariance_a @ covariance_b)
    if not np.all(np.isfinite(root)):
        # Singular product (fewer samples than dimensions): regularise as the TTUR reference does.
        offset = np.eye(len(covariance_a)) * 1e-6
        root = scipy.linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    root = np.real(root)
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a) + np.trace(covariance_b) - 2 * np.trace(root)
    return float(distance)


def kernel_inception_distance(features_a, features_b, subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = 0,
                              scale: float | None = None) -> tuple[float, float]:
    """KID: unbiased MMD^2 with kernel (x.y / c + 1)^3, mean and std over random subsets. Features [N, D], [M, D].

    c = `scale`, by default D (Bińkowski et al.'s choice for Inception features); pass FACE_KID_SCALE for dlib face
    embeddings. Each subset draws min(subset_size, N // 2, M // 2) rows (at least 2) of each set without
    replacement (np.random.default_rng(seed): rows of a, then rows of b, per subset). Near 0 for sets from one
    distribution; can be slightly negative.
    """
    features_a, features_b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    size = max(2, min(subset_size, len(features_a) // 2, len(features_b) // 2))
    scale = features_a.shape[1] if scale is None else scale
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        subset_a = features_a[rng.choice(len(features_a), size, replace=False)]
        subset_b = features_b[rng.choice(len(features_b), size, replace=False)]
        values.append(_unbiased_polynomial_mmd(subset_a, subset_b, scale))
    return float(np.mean(values)), float(np.std(values))


def inception_features(images, batch_size: int = 50, network=None) -> np.ndarray:
    """InceptionV3 pool features float32 [N, 2048] of images uint8 [N, H, W, 3] (resized bilinearly to 299x299).

    network: from inception_network(); by default the ImageNet one, downloaded once by Keras and cached (offline
    without the cache this raises FeatureNetworkUnavailable saying what to do).
    """
    import tensorflow as tf

    network = network or inception_network()
    images = data.to_uint8(images)
    features = []
    for start in range(0, len(images), batch_size):
        batch = tf.image.resize(tf.cast(images[start : start + batch_size], tf.float32),
                                (INCEPTION_RESOLUTION, INCEPTION_RESOLUTION), method="bilinear")
        batch = batch / 127.5 - 1.0  # keras.applications.inception_v3.preprocess_input
        features.append(np.asarray(network(batch, training=False), np.float32))
    return np.concatenate(features) if features else np.zeros((0, 2048), np.float32)


def inception_network(weights: str | None = "imagenet"):
    """keras.applications.InceptionV3 without its classifier, average-pooled: [B, 299, 299, 3] in [-1, 1] -> [B, 2048].

    weights="imagenet" (what FID uses) or None (random weights: tests and timing only).
    """
    import keras

    try:
        return keras.applications.InceptionV3(include_top=False, pooling="avg", weights=weights,
                                              input_shape=(INCEPTION_RESOLUTION, INCEPTION_RESOLUTION, 3))
    except Exception as error:  # Keras reports a failed download as a generic Exception naming the URL
        if weights is None:
            raise
        raise FeatureNetworkUnavailable(f"InceptionV3 weights {weights!r} could not be loaded ({error}). "
                                        f"{INCEPTION_WEIGHTS_ADVICE}") from error


def ms_ssim(images_a, images_b) -> np.ndarray:
    """MS-SSIM of image pairs: float [N] in [0, 1] (1 = identical) for uint8 [N, R, R, 3] pairs, R >= 32.

    Scales and filter as described at MS_SSIM_WEIGHTS (four scales and a 7-tap filter at 64x64).
    """
    import tensorflow as tf

    images_a, images_b = data.to_uint8(images_a), data.to_uint8(images_b)
    weights = ms_ssim_weights(min(images_a.shape[1:3]))
    return tf.image.ssim_multiscale(tf.constant(images_a), tf.constant(images_b), max_val=255,
                                    power_factors=weights, filter_size=MS_SSIM_FILTER_SIZE,
                                    filter_sigma=MS_SSIM_FILTER_SIGMA).numpy()


def ms_ssim_weights(resolution: int) -> tuple[float, ...]:
    """The MS-SSIM scale weights used at this resolution: the first scales whose image still fits the filter."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and resolution // 2**scales >= MS_SSIM_FILTER_SIZE:
        scales += 1
    if scales < 2:
        raise ValueError(f"MS-SSIM needs images of at least {2 * MS_SSIM_FILTER_SIZE} pixels, got {resolution}")
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    return tuple(float(weight) for weight in weights / weights.sum())


def mean_pairwise_ms_ssim(images, pairs: int = 1000, seed: int = 0, batch_size: int = 250) -> float:
    """Diversity: mean MS-SSIM over `pairs` random pairs of distinct images from uint8 [N, R, R, 3], N >= 2.

    Higher means more alike (less diverse); compare with the same figure for real images. Pairs come from
    np.random.default_rng(seed): first indices, then offsets 1..N-1 to the second index.
    """
    images = data.to_uint8(images)
    if len(images) < 2:
        raise ValueError(f"mean_pairwise_ms_ssim: need at least 2 images, got {len(images)}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(images), size=pairs)
    second = (first + rng.integers(1, len(images), size=pairs)) % len(images)
    scores = [ms_ssim(images[first[start : start + batch_size]], images[second[start : start + batch_size]])
              for start in range(0, pairs, batch_size)]
    return float(np.mean(np.concatenate(scores)))


def psnr_ssim(outputs, truth, border: int = PSNR_BORDER) -> dict[str, float]:
    """Mean PSNR (dB, each pair capped at PSNR_CAP) and SSIM of outputs against truth, on the BT.601 luminance and
    on RGB, `border` pixels cropped from every side: {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}.

    outputs, truth: uint8 [N, H, W, 3] (floats in [-1, 1] are rounded to uint8 first, as saving them would); higher
    is closer. See LUMINANCE_WEIGHTS for the luminance.
    """
    import tensorflow as tf

    outputs, truth = data.to_uint8(outputs), data.to_uint8(truth)
    if outputs.shape != truth.shape or outputs.ndim != 4 or outputs.shape[-1] != 3:
        raise ValueError(f"psnr_ssim: expected outputs and truth of one shape [N, H, W, 3], got {list(outputs.shape)} "
                         f"and {list(truth.shape)}")
    cropped = min(outputs.shape[1:3]) - 2 * border
    if border < 0 or cropped < SSIM_FILTER_SIZE:
        raise ValueError(f"psnr_ssim: border={border} leaves {cropped} pixels of {outputs.shape[1]}x"
                         f"{outputs.shape[2]} images; SSIM needs at least {SSIM_FILTER_SIZE}")
    inside = (slice(None), slice(border, outputs.shape[1] - border), slice(border, outputs.shape[2] - border))
    result = {}
    for name, convert in (("y", _luminance), ("rgb", lambda images: images)):
        a = convert(tf.constant(outputs[inside], tf.float32))
        b = convert(tf.constant(truth[inside], tf.float32))
        result[f"psnr_{name}"] = float(tf.reduce_mean(tf.minimum(tf.image.psnr(a, b, max_val=255.0), PSNR_CAP)))
        result[f"ssim_{name}"] = float(tf.reduce_mean(tf.image.ssim(a, b, max_val=255.0,
                                                                    filter_size=SSIM_FILTER_SIZE)))
    return result


def nearest_neighbours(queries, references, k: int = 5, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest references of each query by Euclidean distance: (indices int [M, k], distances float32 [M, k]).

    queries [M, ...] and references [N, ...] are flattened to vectors: pass images (pixel space, uint8 read as
    0..255) or embeddings [*, 128] (face space). Nearest first.
    """
    queries = np.asarray(queries, np.float32).reshape(len(queries), -1)
    references = np.asarray(references, np.float32).reshape(len(references), -1)
    if queries.shape[1] != references.shape[1]:
        raise ValueError(f"nearest_neighbours: queries have {queries.shape[1]} values each, references "
                         f"{references.shape[1]}")
    k = min(k, len(references))
    reference_norms = np.einsum("ij,ij->i", references, references)
    indices, distances = [], []
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        squared = np.einsum("ij,ij->i", batch, batch)[:, None] - 2 * batch @ references.T + reference_norms
        if k < len(references):
            nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]
        else:
            nearest = np.tile(np.arange(len(references)), (len(batch), 1))
        # The expansion above loses precision for near-identical vectors: measure the k candidates directly.
        exact = np.linalg.norm(batch[:, None, :] - references[nearest], axis=2)
        order = np.argsort(exact, axis=1, kind="stable")
        indices.append(np.take_along_axis(nearest, order, axis=1))
        distances.append(np.take_along_axis(exact, order, axis=1))
    return np.concatenate(indices), np.concatenate(distances).astype(np.float32)


def neighbour_grid(queries, references, indices) -> np.ndarray:
    """One row per query: the query, then its nearest references. uint8 picture; queries [M, H, W, 3], indices [M, k]"""
    queries, references = data.to_uint8(queries), data.to_uint8(references)
    rows = [np.concatenate([query[None], references[row]]) for query, row in zip(queries, np.asarray(indices))]
    return progress.image_grid(np.concatenate(rows), columns=1 + np.asarray(indices).shape[1])


_BINOMIAL = np.float32([1, 4, 6, 4, 1]) / 16


def _pyramid_down(images: np.ndarray) -> np.ndarray:
    blurred = scipy.ndimage.convolve1d(images, _BINOMIAL, axis=1, mode="mirror")
    blurred = scipy.ndimage.convolve1d(blurred, _BINOMIAL, axis=2, mode="mirror")
    return blurred[:, ::2, ::2]


def _pyramid_up(images: np.ndarray) -> np.ndarray:
    count, height, width, channels = images.shape
    spread = np.zeros((count, height * 2, width * 2, channels), images.dtype)
    spread[:, ::2, ::2] = images
    spread = scipy.ndimage.convolve1d(spread, _BINOMIAL * 2, axis=1, mode="mirror")
    return scipy.ndimage.convolve1d(spread, _BINOMIAL * 2, axis=2, mode="mirror")


def _luminance(images):
    """BT.601 studio-range luminance [N, H, W, 1] (16..235) of RGB float pixels [N, H, W, 3] in 0..255."""
    import tensorflow as tf

    weights = tf.constant(LUMINANCE_WEIGHTS, images.dtype)
    return LUMINANCE_OFFSET + tf.reduce_sum(images * weights, axis=-1, keepdims=True)


def _as_float_pixels(images) -> np.ndarray:
    images = data.to_uint8(images)
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square images [N, R, R, C], got shape {images.shape}")
    return images.astype(np.float32)


def _as_features(features, name: str) -> np.ndarray:
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"{name}: expected a feature array [N >= 2, D], got shape {features.shape}")
    return features


def _unbiased_polynomial_mmd(features_a: np.ndarray, features_b: np.ndarray, scale: float) -> float:
    size = len(features_a)
    kernel_aa = (features_a @ features_a.T / scale + 1) ** 3
    kernel_bb = (features_b @ features_b.T / scale + 1) ** 3
    kernel_ab = (features_a @ features_b.T / scale + 1) ** 3
    within = (kernel_aa.sum() - np.trace(kernel_aa) + kernel_bb.sum() - np.trace(kernel_bb)) / (size * (size - 1))
    return float(within - 2 * kernel_ab.mean())
