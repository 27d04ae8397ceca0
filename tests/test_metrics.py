"""Metrics against direct NumPy/SciPy computations of their definitions, and against properties they must have."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage

from facekit import metrics


def smooth_images(count, size, seed):
    """uint8 [count, size, size, 3]: blurred noise with some edges, a stand-in for photographs."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((count, size, size, 3))
    images = scipy.ndimage.gaussian_filter(noise, (0, 1.5, 1.5, 0)) * 300 + 128
    images[:, size // 3 : size // 2] += 40  # a horizontal band: an edge every image shares
    return np.clip(images, 0, 255).astype(np.uint8)


def direct_swd(images_a, images_b, seed, per_image, directions, repeats):
    """The progressive-GAN SWD written out image by image, channel by channel and direction by direction."""
    kernel = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    rng = np.random.default_rng(seed)

    def pyramid(image, levels):
        bands, current = [], image.astype(np.float64)
        for _ in range(levels - 1):
            down = np.stack([scipy.ndimage.convolve(current[..., c], kernel, mode="mirror")[::2, ::2]
                             for c in range(3)], axis=-1)
            up = np.zeros_like(current)
            up[::2, ::2] = down
            up = np.stack([scipy.ndimage.convolve(up[..., c], kernel * 4, mode="mirror") for c in range(3)], axis=-1)
            bands.append(current - up)
            current = down
        return bands + [current]

    size = images_a.shape[1]
    levels = int(np.log2(size // 16)) + 1
    pyramids_a = [pyramid(image, levels) for image in images_a]
    pyramids_b = [pyramid(image, levels) for image in images_b]
    result = {}
    for level in range(levels):
        side = size // 2**level
        rows = rng.integers(3, side - 3, size=(len(images_a), per_image))
        columns = rng.integers(3, side - 3, size=(len(images_a), per_image))

        def descriptors(pyramids):
            patches = np.array([pyramids[i][level][r - 3 : r + 4, c - 3 : c + 4, :]
                                for i in range(len(pyramids))
                                for r, c in zip(rows[i], columns[i])])
            for channel in range(3):
                values = patches[..., channel]
                patches[..., channel] = (values - values.mean()) / values.std()
            return patches.reshape(len(patches), -1)

        descriptors_a, descriptors_b = descriptors(pyramids_a), descriptors(pyramids_b)
        distances = []
        for _ in range(repeats):
            matrix = rng.standard_normal((descriptors_a.shape[1], directions))
            for direction in matrix.T:
                direction = direction / np.sqrt(np.sum(direction**2))
                sorted_a, sorted_b = np.sort(descriptors_a @ direction), np.sort(descriptors_b @ direction)
                distances.append(np.mean(np.abs(sorted_a - sorted_b)))
        result[f"swd_{side}"] = np.mean(distances) * 1e3
    result["swd_avg"] = np.mean(list(result.values()))
    return result


def test_swd_matches_a_direct_implementation_of_the_definition():
    images_a, images_b = smooth_images(6, 32, seed=1), smooth_images(6, 32, seed=2)
    settings = dict(seed=3, per_image=10, directions=8, repeats=2)
    expected = direct_swd(images_a, images_b, **settings)
    found = metrics.sliced_wasserstein_distance(images_a, images_b, seed=3, descriptors_per_image=10,
                                                directions=8, repeats=2)
    assert list(found) == ["swd_32", "swd_16", "swd_avg"]
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, rel=1e-4), name
    assert found["swd_avg"] > 1  # a real difference, not a vacuous match of zeros


def test_laplacian_pyramid_reconstructs_the_images_and_halves_each_level():
    images = smooth_images(3, 64, seed=0).astype(np.float32)
    pyramid = metrics.laplacian_pyramid(images, 3)
    assert [level.shape[1] for level in pyramid] == [64, 32, 16]
    rebuilt = pyramid[-1]
    for band in pyramid[-2::-1]:
        rebuilt = metrics._pyramid_up(rebuilt) + band
    np.testing.assert_allclose(rebuilt, images, atol=1e-3)
    assert np.abs(pyramid[0]).mean() < 0.5 * np.abs(images - images.mean()).mean()  # band-pass, not the image


def test_swd_is_zero_for_identical_sets_and_grows_with_blur_and_noise():
    reference, other = smooth_images(48, 32, seed=10), smooth_images(48, 32, seed=11)
    swd = lambda images: metrics.sliced_wasserstein_distance(reference, images, seed=0)["swd_avg"]
    assert swd(reference) == 0.0
    floor = swd(other)
    blurred = [swd(scipy.ndimage.gaussian_filter(other.astype(float), (0, sigma, sigma, 0)).round().astype(np.uint8))
               for sigma in (0.7, 1.5, 3.0)]
    noise = np.random.default_rng(0).standard_normal(other.shape)
    noisy = [swd(np.clip(other + scale * noise, 0, 255).astype(np.uint8)) for scale in (10, 30, 60)]
    assert floor < blurred[0] < blurred[1] < blurred[2]
    assert floor < noisy[0] < noisy[1] < noisy[2]


def test_swd_is_reproducible_by_seed_and_refuses_bad_shapes():
    images_a, images_b = smooth_images(8, 32, seed=1), smooth_images(8, 32, seed=2)
    first = metrics.sliced_wasserstein_distance(images_a, images_b, seed=5)
    assert metrics.sliced_wasserstein_distance(images_a, images_b, seed=5) == first
    assert metrics.sliced_wasserstein_distance(images_a, images_b, seed=6) != first
    with pytest.raises(ValueError, match="same shape"):
        metrics.sliced_wasserstein_distance(images_a, images_b[:4])
    with pytest.raises(ValueError, match="power of two"):
        metrics.sliced_wasserstein_distance(images_a[:, :24, :24], images_b[:, :24, :24])


def samples_with_exact_moments(mean, covariance, count, seed):
    """float64 [count, D] whose sample mean and (N - 1) sample covariance are exactly `mean` and `covariance`."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((count, len(mean)))
    raw -= raw.mean(axis=0)
    whitened = raw @ np.linalg.inv(np.linalg.cholesky(np.cov(raw, rowvar=False))).T
    return whitened @ np.linalg.cholesky(covariance).T + mean


def gaussian_frechet(mean_a, covariance_a, mean_b, covariance_b):
    """Closed form via eigendecompositions: |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)."""
    def root(matrix):
        values, vectors = np.linalg.eigh(matrix)
        return vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    root_a = root(covariance_a)
    cross = np.trace(root(root_a @ covariance_b @ root_a))
    return np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a) + np.trace(covariance_b) - 2 * cross


def test_frechet_distance_matches_the_closed_form_for_known_gaussians():
    rng = np.random.default_rng(0)
    dimensions = 5
    factor_a, factor_b = rng.standard_normal((2, dimensions, dimensions))
    covariance_a = factor_a @ factor_a.T + 0.5 * np.eye(dimensions)
    covariance_b = factor_b @ factor_b.T + 0.1 * np.eye(dimensions)
    mean_a, mean_b = rng.standard_normal(dimensions), rng.standard_normal(dimensions) + 1
    features_a = samples_with_exact_moments(mean_a, covariance_a, 200, seed=1)
    features_b = samples_with_exact_moments(mean_b, covariance_b, 300, seed=2)
    expected = gaussian_frechet(mean_a, covariance_a, mean_b, covariance_b)
    assert expected > 1
    assert metrics.frechet_distance(features_a, features_b) == pytest.approx(expected, rel=1e-6)
    assert metrics.frechet_distance(features_a, features_a) == pytest.approx(0, abs=1e-6)
    # Shifting one set by a vector d adds exactly |d|^2.
    shift = np.full(dimensions, 2.0)
    assert metrics.frechet_distance(features_a, features_b + shift) == pytest.approx(
        gaussian_frechet(mean_a, covariance_a, mean_b + shift, covariance_b), rel=1e-6)


def test_frechet_distance_stays_finite_and_warns_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="20 samples in 64 dimensions: the covariance is singular"):
        distance = metrics.frechet_distance(rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 1)
    assert np.isfinite(distance) and distance > 64 * 0.9  # the mean shift alone contributes 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough samples: no warning
        metrics.frechet_distance(rng.standard_normal((65, 64)), rng.standard_normal((80, 64)))


def direct_kid(features_a, features_b, subsets, subset_size, seed, scale=None):
    rng = np.random.default_rng(seed)
    scale = scale or features_a.shape[1]
    kernel = lambda x, y: (x @ y / scale + 1) ** 3
    values = []
    for _ in range(subsets):
        a = features_a[rng.choice(len(features_a), subset_size, replace=False)]
        b = features_b[rng.choice(len(features_b), subset_size, replace=False)]
        m = subset_size
        within_a = sum(kernel(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        within_b = sum(kernel(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        across = sum(kernel(a[i], b[j]) for i in range(m) for j in range(m)) / (m * m)
        values.append(within_a + within_b - 2 * across)
    return np.mean(values), np.std(values)


def test_kernel_inception_distance_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    features_a, features_b = rng.standard_normal((40, 6)), rng.standard_normal((50, 6)) * 1.5 + 0.3
    expected = direct_kid(features_a, features_b, subsets=3, subset_size=15, seed=4)
    found = metrics.kernel_inception_distance(features_a, features_b, subsets=3, subset_size=15, seed=4)
    np.testing.assert_allclose(found, expected, rtol=1e-9)


def test_kernel_inception_distance_draws_subsets_of_at_most_half_of_each_set():
    rng = np.random.default_rng(0)
    features_a, features_b = rng.standard_normal((40, 6)), rng.standard_normal((50, 6)) + 0.3
    expected = direct_kid(features_a, features_b, subsets=4, subset_size=20, seed=1)
    found = metrics.kernel_inception_distance(features_a, features_b, subsets=4, seed=1)  # subset_size 1000
    np.testing.assert_allclose(found, expected, rtol=1e-9)
    assert found[1] > 0  # the subsets differ (whole sets every time would give std 0)
    found = metrics.kernel_inception_distance(features_a, features_b, subsets=2, subset_size=15, scale=2.5, seed=3)
    np.testing.assert_allclose(found, direct_kid(features_a, features_b, 2, 15, seed=3, scale=2.5), rtol=1e-9)


def face_like_embeddings(count, seed):
    """float [count, 128] shaped like dlib's embeddings of CelebA faces (benchmarks/face_kid_scale.py): norms 1.48,
    a shared mean of norm 1.35, and deviations whose variances sum to 0.36 over about 26 effective dimensions."""
    mean = np.random.default_rng(99).standard_normal(128)
    variances = 0.93 ** np.arange(128)  # (sum v)^2 / sum v^2 = 27.6, the real embeddings' 26.4
    variances *= 0.36 / variances.sum()
    features = mean / np.linalg.norm(mean) * 1.35 + np.random.default_rng(seed).standard_normal((count, 128)) * \
        np.sqrt(variances)
    return features / np.linalg.norm(features, axis=1, keepdims=True) * 1.48


def test_face_kid_sees_a_set_with_much_less_spread():
    real_a, real_b = face_like_embeddings(600, seed=1), face_like_embeddings(600, seed=2)
    narrow = real_b.mean(axis=0) + (real_b - real_b.mean(axis=0)) / 11
    assert np.mean(np.sum(real_a**2, axis=1)) == pytest.approx(metrics.FACE_KID_SCALE, rel=0.01)

    def gap_in_standard_deviations(scale):
        same, same_std = metrics.kernel_inception_distance(real_a, real_b, subsets=10, scale=scale)
        worse, _ = metrics.kernel_inception_distance(real_a, narrow, subsets=10, scale=scale)
        return (worse - same) / same_std

    assert gap_in_standard_deviations(metrics.FACE_KID_SCALE) > 3  # 3.5
    assert gap_in_standard_deviations(None) < 2  # 1.3: with Inception's c = D = 128 the kernel is nearly linear


def test_kernel_inception_distance_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    same_mean, same_std = metrics.kernel_inception_distance(rng.standard_normal((400, 8)),
                                                            rng.standard_normal((400, 8)), subsets=20, subset_size=200)
    shifted_mean, _ = metrics.kernel_inception_distance(rng.standard_normal((400, 8)),
                                                        rng.standard_normal((400, 8)) + 0.5, subsets=20,
                                                        subset_size=200)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert shifted_mean > 10 * abs(same_mean) and shifted_mean > 0.05


def test_inception_features_have_the_pool_shape_and_do_not_depend_on_batching():
    import keras

    keras.utils.set_random_seed(0)
    network = metrics.inception_network(weights=None)
    images = smooth_images(3, 64, seed=0)
    whole = metrics.inception_features(images, batch_size=3, network=network)
    batched = metrics.inception_features(images, batch_size=2, network=network)
    assert whole.shape == (3, 2048) and whole.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-4, atol=1e-5)
    assert not np.allclose(whole[0], whole[1])  # different images, different features


def test_inception_network_offline_says_what_to_do(monkeypatch):
    import keras

    def offline(**_):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] name resolution")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(metrics.FeatureNetworkUnavailable, match=r"~/.keras/models.*face_embeddings"):
        metrics.inception_network()


def test_ms_ssim_uses_the_scales_that_fit_and_is_one_for_identical_pairs():
    assert len(metrics.ms_ssim_weights(64)) == 4 and len(metrics.ms_ssim_weights(128)) == 5
    assert sum(metrics.ms_ssim_weights(64)) == pytest.approx(1)
    images = smooth_images(4, 64, seed=0)
    np.testing.assert_allclose(metrics.ms_ssim(images, images), 1, atol=1e-5)
    other = smooth_images(4, 64, seed=1)
    assert np.all(metrics.ms_ssim(images, other) < 0.6)


def test_mean_pairwise_ms_ssim_is_high_for_a_collapsed_set_and_low_for_a_diverse_one():
    diverse = smooth_images(16, 64, seed=0)
    collapsed = np.repeat(diverse[:1], 16, axis=0)
    nearly_collapsed = np.clip(collapsed + np.random.default_rng(0).normal(0, 4, collapsed.shape), 0, 255)
    assert metrics.mean_pairwise_ms_ssim(collapsed, pairs=20) == pytest.approx(1, abs=1e-5)
    diverse_score = metrics.mean_pairwise_ms_ssim(diverse, pairs=20)
    assert diverse_score < metrics.mean_pairwise_ms_ssim(nearly_collapsed.astype(np.uint8), pairs=20) - 0.3
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mean_pairwise_ms_ssim(diverse[:1])


def test_nearest_neighbours_match_brute_force_and_the_grid_puts_the_query_first():
    rng = np.random.default_rng(0)
    references = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    queries = np.concatenate([references[[4, 17]], rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)])
    indices, distances = metrics.nearest_neighbours(queries, references, k=3, batch_size=2)
    flat_q, flat_r = queries.reshape(5, -1).astype(float), references.reshape(30, -1).astype(float)
    brute = np.linalg.norm(flat_q[:, None] - flat_r[None], axis=2)
    np.testing.assert_array_equal(indices, np.argsort(brute, axis=1)[:, :3])
    np.testing.assert_allclose(distances, np.sort(brute, axis=1)[:, :3], rtol=1e-5)
    assert list(indices[:2, 0]) == [4, 17] and np.all(distances[:2, 0] == 0)
    assert metrics.nearest_neighbours(queries, references[:2], k=5)[0].shape == (5, 2)

    grid = metrics.neighbour_grid(queries, references, indices)
    padding = 2
    assert grid.shape == (5 * (8 + padding) + padding, 4 * (8 + padding) + padding, 3)
    np.testing.assert_array_equal(grid[padding : padding + 8, padding : padding + 8], queries[0])
    np.testing.assert_array_equal(grid[padding : padding + 8, 2 * padding + 8 : 2 * padding + 16], references[4])


def test_psnr_of_a_known_error_on_the_bt601_luminance_and_on_rgb():
    truth = np.full((3, 32, 32, 3), 100, np.uint8)
    red = truth.copy()
    red[..., 0] += 10  # Y moves by 10 * 65.481 / 255; the RGB error is 10 in one channel of three
    scores = metrics.psnr_ssim(red, truth)
    assert scores["psnr_y"] == pytest.approx(20 * np.log10(255 / (10 * 65.481 / 255)), abs=1e-3)  # 39.94 dB
    assert scores["psnr_rgb"] == pytest.approx(10 * np.log10(255**2 / (100 / 3)), abs=1e-3)  # 32.90 dB
    grey = truth.copy()
    grey[..., :] += 10  # all three channels: Y moves by 10 * 219 / 255 (studio range), RGB by 10 everywhere
    scores = metrics.psnr_ssim(grey, truth)
    assert scores["psnr_y"] == pytest.approx(20 * np.log10(255 / (10 * 219 / 255)), abs=1e-3)
    assert scores["psnr_rgb"] == pytest.approx(20 * np.log10(255 / 10), abs=1e-3)


def test_identical_images_score_the_psnr_cap_and_ssim_one_and_floats_are_read_as_pixels():
    images = smooth_images(2, 32, seed=0)
    assert metrics.psnr_ssim(images, images) == {"psnr_y": metrics.PSNR_CAP, "ssim_y": 1.0,
                                                  "psnr_rgb": metrics.PSNR_CAP, "ssim_rgb": 1.0}
    # one pair identical, one 20 dB off: the mean of 100 and 20
    other = images.copy()
    other[1] = np.clip(images[1].astype(int) + 25.5, 0, 255).astype(np.uint8)
    assert metrics.psnr_ssim(other, images)["psnr_rgb"] == pytest.approx((metrics.PSNR_CAP + 20.0) / 2, abs=0.2)
    as_floats = images.astype(np.float32) / 127.5 - 1
    assert metrics.psnr_ssim(as_floats, images)["psnr_rgb"] == metrics.PSNR_CAP


def test_psnr_and_ssim_leave_out_the_border():
    truth = smooth_images(2, 32, seed=1)
    framed = truth.copy()
    framed[:, :4], framed[:, -4:], framed[:, :, :4], framed[:, :, -4:] = 0, 0, 255, 255  # errors in the border only
    scores = metrics.psnr_ssim(framed, truth, border=4)
    assert scores["psnr_y"] == scores["psnr_rgb"] == metrics.PSNR_CAP and scores["ssim_y"] == 1.0
    uncropped = metrics.psnr_ssim(framed, truth, border=0)
    assert uncropped["psnr_rgb"] < 20 and uncropped["ssim_rgb"] < 0.9
    with pytest.raises(ValueError, match="border=11 leaves 10 pixels"):
        metrics.psnr_ssim(truth, truth, border=11)
    with pytest.raises(ValueError, match=r"one shape.*\[2, 32, 32, 3\] and \[1, 32, 32, 3\]"):
        metrics.psnr_ssim(truth, truth[:1])


def test_ssim_matches_scikit_image_with_the_reference_gaussian_window():
    from skimage.metrics import structural_similarity

    truth = smooth_images(3, 40, seed=2)
    noisy = np.clip(truth + np.random.default_rng(0).normal(0, 12, truth.shape), 0, 255).astype(np.uint8)
    weights = np.array([65.481, 128.553, 24.966]) / 255
    inside = (slice(4, 36), slice(4, 36))
    expected_y = [structural_similarity(16 + a[inside] @ weights, 16 + b[inside] @ weights, data_range=255,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                  for a, b in zip(noisy.astype(float), truth.astype(float))]
    expected_rgb = [structural_similarity(a[inside], b[inside], data_range=255, channel_axis=-1,
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                    for a, b in zip(noisy.astype(float), truth.astype(float))]
    scores = metrics.psnr_ssim(noisy, truth)
    assert 0.3 < scores["ssim_y"] < 0.95
    assert scores["ssim_y"] == pytest.approx(np.mean(expected_y), abs=2e-3)
    assert scores["ssim_rgb"] == pytest.approx(np.mean(expected_rgb), abs=2e-3)
