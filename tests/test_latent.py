"""Latent-space walks and edits: lerp/slerp, attribute directions, arithmetic, edits and their measured effects."""

import numpy as np
import pytest
from PIL import Image

from facekit import data, latent


def tiny_generate(latents):
    """A fixed deterministic "generator": latents float32 [N, 6] -> images float32 [N, 4, 4, 3] in [-1, 1]."""
    weights = np.random.default_rng(123).standard_normal((6, 4 * 4 * 3)).astype(np.float32)
    return np.tanh(np.asarray(latents, np.float32) @ weights).reshape(-1, 4, 4, 3)


def unit_vector(rng, size):
    vector = rng.standard_normal(size)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_slerp_keeps_unit_norms_and_hits_both_ends_exactly():
    rng = np.random.default_rng(0)
    a, b = unit_vector(rng, 16), unit_vector(rng, 16)
    path = latent.slerp(a, b, 9)
    assert path.shape == (9, 16) and path.dtype == np.float32
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-6)
    straight = latent.lerp(a, b, 9)
    np.testing.assert_array_equal(straight[[0, -1]], np.stack([a, b]))
    assert np.linalg.norm(straight[4]) < 0.8  # the chord dips inside the sphere
    # two orthogonal unit vectors: the arc's midpoint is (e1 + e2) / sqrt(2), a quarter of the way is (cos, sin)(pi/8)
    e1, e2 = np.eye(2, dtype=np.float32)
    np.testing.assert_allclose(latent.slerp(e1, e2, 3)[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-7)
    np.testing.assert_allclose(latent.slerp(e1, e2, 5)[1], [np.cos(np.pi / 8), np.sin(np.pi / 8)], atol=1e-7)


def test_lerp_midpoint_of_gaussian_latents_falls_to_sqrt_half_d_while_slerp_stays_near_sqrt_d():
    rng = np.random.default_rng(1)
    pairs = rng.standard_normal((200, 2, 512)).astype(np.float32)
    lerp_norms = [np.linalg.norm(latent.lerp(a, b, 3)[1]) for a, b in pairs]
    slerp_norms = [np.linalg.norm(latent.slerp(a, b, 3)[1]) for a, b in pairs]
    assert np.mean(lerp_norms) == pytest.approx(np.sqrt(512 / 2), rel=0.02)  # 16.0
    assert np.mean(slerp_norms) == pytest.approx(np.sqrt(512), rel=0.02)  # 22.6
    endpoint_norms = np.linalg.norm(pairs, axis=2).mean()
    assert np.mean(slerp_norms) == pytest.approx(endpoint_norms, rel=0.01)


def test_slerp_falls_back_to_lerp_for_parallel_antiparallel_and_zero_vectors():
    a = np.array([1.0, 2.0, -2.0], np.float32)
    for b in (2.5 * a, -a, np.zeros(3, np.float32)):
        np.testing.assert_array_equal(latent.slerp(a, b, 5), latent.lerp(a, b, 5))
    np.testing.assert_allclose(latent.slerp(a, -a, 3)[1], 0.0, atol=1e-7)  # the straight line through the origin
    with pytest.raises(ValueError, match="steps must be at least 2"):
        latent.slerp(a, 2 * a, 1)
    with pytest.raises(ValueError, match=r"\[D\]"):
        latent.lerp(a, np.zeros(4), 3)


def labelled_latents(covariance_scales=None, count=4000, size=64, seed=2):
    """Latents [count, size] (N(0, I), or N(0, diag(scales^2))) labelled by a planted boundary: has = z . n > 0.5."""
    rng = np.random.default_rng(seed)
    normal = unit_vector(rng, size)
    latents = rng.standard_normal((count, size)).astype(np.float32)
    if covariance_scales is not None:
        latents *= covariance_scales
    return latents, latents @ normal > 0.5, normal


def test_mean_difference_direction_recovers_a_planted_direction():
    latents, has, normal = labelled_latents()
    direction = latent.mean_difference_direction(latents, has)
    assert direction.shape == (64,) and direction.dtype == np.float32
    assert np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-6)
    assert latent.cosine(direction, normal) > 0.95
    with pytest.raises(ValueError, match="both with and without"):
        latent.mean_difference_direction(latents, np.ones(len(latents), bool))


def test_linear_direction_recovers_the_boundary_normal_where_the_mean_difference_is_bent_by_correlation():
    latents, has, normal = labelled_latents()
    direction = latent.linear_direction(latents, has)
    assert np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-6)
    assert latent.cosine(direction, normal) > 0.95
    # anisotropic latents (as a VAE's encoder means are): the mean difference leans towards covariance @ normal
    scales = np.geomspace(0.2, 3.0, 64).astype(np.float32)
    latents, has, normal = labelled_latents(covariance_scales=scales)
    assert latent.cosine(latent.linear_direction(latents, has), normal) > 0.95
    assert latent.cosine(latent.mean_difference_direction(latents, has), normal) < 0.9


def test_remove_direction_is_orthogonal_to_what_it_removes_and_unit():
    rng = np.random.default_rng(3)
    direction, other = rng.standard_normal(64), rng.standard_normal(64)
    direction += 2 * other  # strongly entangled
    conditional = latent.remove_direction(direction, other)
    assert abs(latent.cosine(conditional, other)) < 1e-6
    assert np.linalg.norm(conditional) == pytest.approx(1.0, abs=1e-6)
    expected = direction - (direction @ other) / (other @ other) * other  # Gram-Schmidt by hand
    np.testing.assert_allclose(conditional, expected / np.linalg.norm(expected), atol=1e-6)
    others = rng.standard_normal((2, 64))
    both_removed = latent.remove_direction(direction, others)
    assert max(abs(latent.cosine(both_removed, row)) for row in others) < 1e-6
    with pytest.raises(ValueError, match="zero length"):
        latent.remove_direction(3 * other, other)


def test_cosine_of_known_vectors():
    assert latent.cosine([1, 0], [0, 2]) == 0.0
    assert latent.cosine([1, 1], [2, 2]) == pytest.approx(1.0)
    assert latent.cosine([1, 0], [-3, 0]) == -1.0
    assert latent.cosine([1, 0], [1, 1]) == pytest.approx(np.sqrt(0.5))


def test_attribute_arithmetic_combines_the_group_means():
    man_with_glasses = np.array([[1, 2, 0], [3, 4, 0], [5, 6, 3]], np.float32)  # mean (3, 4, 1)
    man_without = np.array([[0, 1, 1], [2, 1, 1]], np.float32)  # mean (1, 1, 1)
    woman_without = np.array([[4, 0, 8], [6, 2, 2], [8, 4, 2]], np.float32)  # mean (6, 2, 4)
    result = latent.attribute_arithmetic(man_with_glasses, man_without, woman_without)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [8, 5, 4])
    np.testing.assert_array_equal(latent.attribute_arithmetic([1, 2, 3], [1, 1, 1], [0, 0, 5]), [0, 1, 7])
    with pytest.raises(ValueError, match="one D"):
        latent.attribute_arithmetic(man_with_glasses, man_without, np.zeros((2, 4)))


def test_edit_moves_each_latent_by_each_amount_along_the_unit_direction():
    rng = np.random.default_rng(4)
    latents = rng.standard_normal((3, 8)).astype(np.float32)
    direction = 5 * unit_vector(rng, 8)  # normalised by edit
    amounts = np.array([-2.0, 0.0, 1.5, 3.0])
    edited = latent.edit(latents, direction, amounts)
    assert edited.shape == (3, 4, 8) and edited.dtype == np.float32
    np.testing.assert_array_equal(edited[:, 1], latents)
    unit = direction / np.linalg.norm(direction)
    np.testing.assert_allclose((edited - latents[:, None]) @ unit, np.tile(amounts, (3, 1)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(edited - latents[:, None], axis=2), np.tile(abs(amounts), (3, 1)),
                               atol=1e-5)


def test_edit_grid_lists_each_face_across_the_amounts():
    rng = np.random.default_rng(5)
    latents = rng.standard_normal((2, 6)).astype(np.float32)
    direction = unit_vector(rng, 6)
    amounts = [-1.0, 0.0, 2.0]
    grid = latent.edit_grid(tiny_generate, latents, direction, amounts)
    assert grid.shape == (6, 4, 4, 3) and grid.dtype == np.uint8
    for face in range(2):
        for column, amount in enumerate(amounts):
            expected = data.to_uint8(tiny_generate((latents[face] + amount * direction)[None]))[0]
            np.testing.assert_array_equal(grid[face * 3 + column], expected)


NAMES = ["Young", "Male", "Eyeglasses"]
BEFORE = np.array([[0.9, 0.2, 0.1], [0.8, 0.7, 0.4], [0.3, 0.9, 0.6], [0.5, 0.1, 0.2]])
AFTER = np.array([[0.9, 0.4, 0.7], [0.4, 1.0, 0.45], [0.3, 0.9, 0.9], [0.5, 0.1, 0.5]])


def test_edit_effects_against_hand_computed_values():
    effects = latent.edit_effects(BEFORE, AFTER, NAMES, "Eyeglasses")
    # without glasses before: faces 0, 1, 3 (0.1, 0.4, 0.2); after: 0.7 and 0.5 cross 0.5, 0.45 does not
    assert effects["flip_candidates"] == 3
    assert effects["target_flip_rate"] == pytest.approx(2 / 3)
    assert effects["target_mean_change"] == pytest.approx((0.6 + 0.05 + 0.3 + 0.3) / 4)
    # Young changes (0, -0.4, 0, 0), Male (0.2, 0.3, 0, 0)
    assert effects["other_mean_changes"] == pytest.approx({"Young": -0.1, "Male": 0.125})
    assert effects["other_mean_abs_change"] == pytest.approx((0.1 + 0.125) / 2)
    assert effects["largest_other"][0] == "Male" and effects["largest_other"][1] == pytest.approx(0.125)
    assert np.isnan(effects["same_person_rate"]) and effects["detected_pairs"] == 0
    # aging removes Young: candidates are faces 0, 1, 3 (>= 0.5 before); only face 1 ends below 0.5
    aging = latent.edit_effects(BEFORE, AFTER, NAMES, "Young", increase=False)
    assert aging["flip_candidates"] == 3 and aging["target_flip_rate"] == pytest.approx(1 / 3)
    assert aging["target_mean_change"] == pytest.approx(-0.1)
    assert aging["largest_other"][0] == "Eyeglasses" and aging["largest_other"][1] == pytest.approx(0.3125)
    with pytest.raises(ValueError, match="not among the names"):
        latent.edit_effects(BEFORE, AFTER, NAMES, "Smiling")


def test_edit_effects_same_person_rate_counts_only_pairs_detected_both_times():
    before = np.zeros((4, 128), np.float32)
    after = np.zeros((4, 128), np.float32)
    after[0, 0] = 0.5  # same person
    after[1, 0] = 0.6  # at the tolerance: not within it (face_recognition uses distance < 0.6, as faces.identify)
    before[2] = np.nan  # no face before
    after[3] = np.nan  # no face after
    effects = latent.edit_effects(BEFORE, AFTER, NAMES, "Eyeglasses", before, after)
    assert effects["detected_pairs"] == 2 and effects["same_person_rate"] == 0.5
    nothing = latent.edit_effects(BEFORE, AFTER, NAMES, "Eyeglasses", np.full((4, 128), np.nan), after)
    assert nothing["detected_pairs"] == 0 and np.isnan(nothing["same_person_rate"])
    with pytest.raises(ValueError, match="both"):
        latent.edit_effects(BEFORE, AFTER, NAMES, "Eyeglasses", before, None)


def test_interpolation_strip_runs_from_generate_a_to_generate_b():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 6)).astype(np.float32)
    strip = latent.interpolation_strip(tiny_generate, a, b, 7)
    assert strip.shape == (7, 4, 4, 3) and strip.dtype == np.uint8
    np.testing.assert_array_equal(strip[0], data.to_uint8(tiny_generate(a[None]))[0])
    np.testing.assert_array_equal(strip[-1], data.to_uint8(tiny_generate(b[None]))[0])
    np.testing.assert_array_equal(strip, data.to_uint8(tiny_generate(latent.slerp(a, b, 7))))
    straight = latent.interpolation_strip(tiny_generate, a, b, 7, method="lerp")
    np.testing.assert_array_equal(straight, data.to_uint8(tiny_generate(latent.lerp(a, b, 7))))
    with pytest.raises(ValueError, match="method"):
        latent.interpolation_strip(tiny_generate, a, b, 7, method="cubic")


def test_strip_gif_goes_there_and_back_holds_both_ends_and_is_reproducible(tmp_path):
    frames = np.stack([np.full((8, 8, 3), value, np.uint8) for value in (0, 60, 120, 180, 240)])
    path = latent.save_strip_gif(frames, tmp_path / "a.gif")
    again = latent.save_strip_gif(frames, tmp_path / "b.gif")
    assert path.read_bytes() == again.read_bytes()
    with Image.open(path) as gif:
        assert gif.n_frames == 8 and gif.info["loop"] == 0
        values, durations = [], []
        for index in range(gif.n_frames):
            gif.seek(index)
            values.append(int(np.asarray(gif.convert("RGB"))[0, 0, 0]))
            durations.append(gif.info["duration"])
    assert values == [0, 60, 120, 180, 240, 180, 120, 60]
    assert durations == [1000, 100, 100, 100, 1000, 100, 100, 100]


def test_encoder_means_are_the_encoders_mean_output_in_any_batch_size():
    from facekit.models import vae

    encoder = vae.build_encoder(resolution=32, latent_dim=8, filters=4)
    model = vae.VAE(encoder, vae.build_decoder(resolution=32, latent_dim=8, filters=4))
    images = np.random.default_rng(7).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    means = latent.encoder_means(model, images, batch_size=2)
    assert means.shape == (5, 8) and means.dtype == np.float32
    expected, _ = encoder(data.to_float(images), training=False)
    np.testing.assert_allclose(means, np.asarray(expected), atol=1e-5)
    np.testing.assert_allclose(latent.encoder_means(model, images), means, atol=1e-5)


def test_fitting_labels_widen_a_rare_side_to_the_likeliest_by_rank():
    probabilities = np.array([0.9, 0.2, 0.45, 0.1, 0.3, 0.05, 0.4, 0.15, 0.25, 0.35])  # one "with" of ten
    np.testing.assert_array_equal(latent.fitting_labels(probabilities, 0.1), probabilities > 0.5)  # 1 of 10: enough
    widened = latent.fitting_labels(probabilities, 0.3)  # at least 3 a side: the two likeliest join "with"
    np.testing.assert_array_equal(np.flatnonzero(widened), [0, 2, 6])
    np.testing.assert_array_equal(np.flatnonzero(~latent.fitting_labels(1 - probabilities, 0.3)), [0, 2, 6])
