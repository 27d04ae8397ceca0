"""The 2-D toy: the ring and its density by hand, sampling as a pure function of the seed, the two measures on
hand-built arrays, the MLPs' shapes and the spectral critic's slope, and the pictures' orientation."""

import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf

from facekit import layers, toy

matplotlib.use("Agg")


def test_ring_means_by_hand():
    means = toy.ring_means()
    assert means.shape == (8, 2) and means.dtype == np.float32
    np.testing.assert_allclose(means[[0, 1, 2, 4, 6]], [[2, 0], [np.sqrt(2), np.sqrt(2)], [0, 2], [-2, 0], [0, -2]],
                               atol=1e-6)


def test_sampling_is_a_pure_function_of_the_seed():
    first = toy.sample_ring(500, seed=(3, 7))
    assert first.shape == (500, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, toy.sample_ring(500, seed=(3, 7)))
    assert not np.array_equal(first, toy.sample_ring(500, seed=(3, 8)))
    assert not np.array_equal(first, toy.sample_ring(500, seed=4))


def test_samples_are_the_ring():
    samples = toy.sample_ring(16_000, seed=0).astype(np.float64)
    distances = np.linalg.norm(samples[:, None] - toy.ring_means()[None], axis=-1)
    nearest = np.argmin(distances, axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=8), np.full(8, 2000), rtol=0.1)  # equally likely
    offsets = samples - toy.ring_means()[nearest]
    np.testing.assert_allclose(offsets.mean(axis=0), [0, 0], atol=0.001)
    np.testing.assert_allclose(offsets.std(axis=0), [0.05, 0.05], rtol=0.03)


def test_density_by_hand():
    peak = 1 / 8 / (2 * np.pi * 0.05 ** 2)  # one of 8 Gaussians at its mean: 7.95775; the others add nothing
    assert peak == pytest.approx(7.95775, rel=1e-5)
    one_std_out = [[2.05, 0.0]]
    np.testing.assert_allclose(toy.ring_density([[2.0, 0.0], [0.0, -2.0]]), [peak, peak], rtol=1e-9)
    np.testing.assert_allclose(toy.ring_density(one_std_out), [peak * np.exp(-0.5)], rtol=1e-9)
    assert toy.ring_density([[0.0, 0.0]])[0] < 1e-300


def _hand_built_samples():
    """80 points: 5 on mode 0, one 0.149 from mode 0 (inside 3 std = 0.15), one 0.151 from it (outside),
    2 on mode 2, 1 on mode 4, 70 at (0.5, 0), 1.5 from mode 0, the nearest."""
    means = toy.ring_means()
    points = [means[0]] * 5 + [means[0] + [-0.149, 0.0], means[0] + [0.0, 0.151]] + [means[2]] * 2 + [means[4]]
    return np.array(points + [[0.5, 0.0]] * 70, np.float32)


def test_measures_on_hand_built_samples():
    samples = _hand_built_samples()
    np.testing.assert_array_equal(toy.mode_counts(samples), [6, 0, 2, 0, 1, 0, 0, 0])
    assert toy.high_quality_share(samples) == pytest.approx(9 / 80)
    # a covered mode needs at least 0.2 * 80 / 8 = 2 high-quality samples: modes 0 and 2, not mode 4
    assert toy.modes_covered(samples) == 2
    # at any distance the 70 far points count too, at mode 0
    np.testing.assert_array_equal(toy.mode_counts(samples, within=None), [77, 0, 2, 0, 1, 0, 0, 0])
    assert toy.modes_covered(samples, within=None) == 2


def test_modes_reached_counts_imprecise_samples_spread_around_the_ring():
    ring = toy.sample_ring(800, seed=5)
    blurred = ring * 1.2  # every point 0.4 outside the ring: none of high quality, all still nearest their mode
    assert toy.modes_covered(blurred) == 0 and toy.high_quality_share(blurred) == 0
    assert toy.modes_covered(blurred, within=None) == 8
    assert toy.modes_covered(blurred, within=10) == 8  # 0.4 is within 10 standard deviations (0.5)


def test_measures_on_the_ring_itself_and_on_one_mode():
    samples = toy.sample_ring(8000, seed=1)
    assert toy.modes_covered(samples) == 8
    # within 3 std of a 2-D Gaussian's mean: 1 - exp(-9 / 2) = 0.98889
    assert toy.high_quality_share(samples) == pytest.approx(1 - np.exp(-4.5), abs=0.004)
    collapsed = samples - toy.ring_means()[np.argmin(np.linalg.norm(samples[:, None] - toy.ring_means(), axis=-1),
                                                     axis=1)] + toy.ring_means()[3]
    assert toy.modes_covered(collapsed) == 1
    assert toy.high_quality_share(collapsed) == pytest.approx(toy.high_quality_share(samples))


def test_networks_shapes_and_layers():
    generator = toy.build_generator(noise_dim=5, width=8, depth=2)
    assert generator(np.zeros((3, 5), np.float32)).shape == (3, 2)
    assert len([layer for layer in generator.layers if isinstance(layer, keras.layers.Dense)]) == 3
    critic = toy.build_critic(width=8, depth=2)
    assert critic(np.zeros((3, 2), np.float32)).shape == (3, 1)
    assert not any(isinstance(layer, layers.SpectralDense) for layer in critic.layers)
    spectral = toy.build_critic(width=8, depth=2, spectral=True)
    dense_layers = [layer for layer in spectral.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense_layers) == 3 and all(isinstance(layer, layers.SpectralDense) for layer in dense_layers)


def test_spectral_critic_has_slope_at_most_one_and_the_plain_one_can_exceed_it():
    keras.utils.set_random_seed(0)
    points = tf.constant(toy.sample_ring(64, seed=2) * 0.5)
    slopes = {}
    for spectral in (False, True):
        critic = toy.build_critic(width=32, depth=2, spectral=spectral)
        for layer in critic.layers:  # a steep critic: large weights
            if layer.weights:
                layer.weights[0].assign(layer.weights[0] * 4.0)
        for _ in range(30):  # power iteration settles (one step per training call)
            critic(points, training=True)
        with tf.GradientTape() as tape:
            tape.watch(points)
            scores = critic(points)
        slopes[spectral] = float(tf.reduce_max(tf.norm(tape.gradient(scores, points), axis=1)))
    assert slopes[True] <= 1.0 + 1e-3 < slopes[False]


def test_grid_points_run_from_the_top_left_row_by_row():
    grid = toy.grid_points(resolution=3)
    np.testing.assert_allclose(grid, [[-3, 3], [0, 3], [3, 3], [-3, 0], [0, 0], [3, 0], [-3, -3], [0, -3], [3, -3]])


def test_pictures_put_the_top_of_the_grid_at_the_top_and_name_the_measures():
    from matplotlib.figure import Figure

    figure = Figure()
    left, right = figure.subplots(1, 2)
    grid = toy.grid_points(resolution=4)
    image = toy.show_field(left, grid[:, 1], vmin=-3, vmax=3)  # the value is the height y
    np.testing.assert_allclose(image.get_array()[0], np.full(4, 3.0))  # row 0 is drawn at the top: y = +3
    assert image.get_extent() == [-3, 3, -3, 3] and image.origin == "upper"
    toy.show_samples(right, _hand_built_samples(), title="hand-built")
    assert right.get_title() == "hand-built\n2/8 modes, 11% high quality"
