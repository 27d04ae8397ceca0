"""What pix2pix and superres share on the engine: which weights each step updates (the L1-only generator's
discriminator is never read nor updated), resume == uninterrupted, the snapshot grid of input | output | truth on
held-out people, and sampling the outputs of held-out faces chosen by the seed."""

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from facekit import progress, registry
from facekit.models import image_to_image, pix2pix, superres

pytestmark = pytest.mark.usefixtures("data_cache")

TINY = dict(resolution=32, filters=4, batch_size=4, snapshot_every=3, grid_size=6, precision="float32")
NETWORKS = {"pix2pix": dict(generator_filters=4), "superres": dict(generator_filters=8, residual_blocks=2)}
GAN_WEIGHTS = {"pix2pix": 1.0, "superres": 1e-3}  # the paper's, and Ledig et al.'s
MODELS = list(NETWORKS)
BUILD = {"pix2pix": pix2pix.build, "superres": superres.build}


def config(name: str, **settings):
    return registry.model(name).config(**{**TINY, **NETWORKS[name], **settings})


def build(name: str, **settings) -> image_to_image.ImageToImageGAN:
    tf.keras.utils.set_random_seed(0)
    return BUILD[name](config(name, **settings))


def pair_batch(model, seed: int = 0) -> dict:
    """A batch of 4 random faces and inputs of the model's shape (sketch-like: -1 or 1)."""
    inputs = tf.random.stateless_uniform((4, *model.condition_shape), [seed, 2]) < 0.1
    return {"images": tf.random.stateless_uniform((4, 32, 32, 3), [seed, 1], -1, 1),
            "condition": tf.where(inputs, -1.0, 1.0)}


def snapshot(network) -> dict:
    return {variable.path: variable.numpy().copy() for variable in network.variables}


def changed(before: dict, network) -> set:
    return {variable.path for variable in network.variables if not np.array_equal(before[variable.path],
                                                                                   variable.numpy())}


def everything(network) -> set:
    return {variable.path for variable in network.variables}


@pytest.mark.parametrize("name", MODELS)
def test_a_discriminator_update_moves_the_discriminator_only_a_generator_update_the_generator_only(name):
    model = build(name, adversarial_weight=GAN_WEIGHTS[name])
    real = pair_batch(model)
    step = tf.constant(0, tf.int64)
    fake = model.fakes(step, 0, real, training=True)
    before = {network: snapshot(getattr(model, network)) for network in ("generator", "discriminator",
                                                                         "generator_ema")}
    model.discriminator_update(real, fake, step, 0)
    assert changed(before["discriminator"], model.discriminator) == everything(model.discriminator)
    assert changed(before["generator"], model.generator) == set()
    assert changed(before["generator_ema"], model.generator_ema) == set()
    before = {network: snapshot(getattr(model, network)) for network in ("generator", "discriminator")}
    logs = model.train_on_batch(real, return_dict=True)
    assert changed(before["generator"], model.generator) == everything(model.generator)
    assert changed(before["discriminator"], model.discriminator) == everything(model.discriminator)
    assert int(model.discriminator_optimizer.iterations) == 2 and int(model.generator_optimizer.iterations) == 1
    assert model.log_columns[:4] == ("d_loss", "g_loss", "d_real", "d_fake") and set(logs) == set(model.log_columns)
    # the generator's update alone (the discriminator's left out of the step) moves the generator only
    model.discriminator_update = lambda *arguments: {"d_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
    model.run_eagerly, model.train_function = True, None  # a step traced again, as Python: it calls the stand-in
    before = {network: snapshot(getattr(model, network)) for network in ("generator", "discriminator")}
    model.train_on_batch(pair_batch(model, seed=1))
    assert changed(before["generator"], model.generator) == everything(model.generator)
    assert changed(before["discriminator"], model.discriminator) == set()


@pytest.mark.parametrize("name", MODELS)
def test_the_l1_only_generator_never_reads_or_updates_the_discriminator(name):
    model = build(name, adversarial_weight=0.0)
    assert model.log_columns == ("g_loss", "l1")
    calls = []
    discriminate = model.discriminate
    model.discriminate = lambda *arguments, **options: calls.append(1) or discriminate(*arguments, **options)
    model.run_eagerly = True
    before = {network: snapshot(getattr(model, network)) for network in ("generator", "discriminator")}
    for seed in range(3):
        logs = model.train_on_batch(pair_batch(model, seed), return_dict=True)
    assert calls == [] and changed(before["discriminator"], model.discriminator) == set()
    assert int(model.discriminator_optimizer.iterations) == 0 and int(model.generator_optimizer.iterations) == 3
    assert changed(before["generator"], model.generator) == everything(model.generator)
    assert logs["g_loss"] == pytest.approx(model.l1_weight * logs["l1"], rel=1e-6)


@pytest.mark.parametrize("name, adversarial", [(name, adversarial) for name in MODELS for adversarial in (0, 1)])
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, synthetic_faces, name, adversarial):
    spec = registry.model(name)
    settings = {"adversarial_weight": GAN_WEIGHTS[name] * adversarial}
    whole = spec.train(synthetic_faces, tmp_path / "whole", config(name, steps=6, **settings), show_progress=False)
    spec.train(synthetic_faces, tmp_path / "split", config(name, steps=3, **settings), show_progress=False)
    split = spec.train(synthetic_faces, tmp_path / "split", config(name, steps=6, **settings), resume=True,
                       show_progress=False)
    whole_log, split_log = whole.read_log(), split.read_log()
    assert [row["step"] for row in split_log] == list(range(1, 7))
    for column in spec.load(whole.path).log_columns:
        np.testing.assert_array_equal([row[column] for row in whole_log], [row[column] for row in split_log])
    first, second = spec.load(whole.path), spec.load(split.path)
    for a, b in zip(first.variables, second.variables):  # once, in the full suite under a load of 5 or more, 13 of
        # superres's 216 first-kernel weights differed by one float32 ulp (7e-9) with every logged loss equal: not
        # yet explained, so the weights are held to 1e-7 (a wrong resume moves them by far more)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-7)
    assert whole.gif_path.read_bytes() == split.gif_path.read_bytes()
    np.testing.assert_array_equal(spec.sample(whole.path, 3, seed=5), spec.sample(split.path, 3, seed=5))


@pytest.mark.parametrize("name", MODELS)
def test_the_grid_shows_input_output_and_truth_and_sampling_translates_held_out_faces(tmp_path, synthetic_faces,
                                                                                      name):
    spec = registry.model(name)
    run = spec.train(synthetic_faces, tmp_path / "run", config(name, steps=3), show_progress=False)
    model = spec.load(run.path)
    _, heldout = synthetic_faces.split_by_identity((0.9, 0.1), seed=0)
    tiles = progress.grid_tiles(iio.imread(run.sample_path(3)), 6, 32, columns=3)  # grid_size 6: two triples
    truth = np.asarray(heldout.images[:2])
    inputs = model.conditions(truth)
    np.testing.assert_array_equal(tiles[0], image_to_image.enlarge(inputs[:1], 32)[0])  # the input, enlarged
    np.testing.assert_array_equal(tiles[1], model.translate(inputs[:1])[0])  # by the moving average, seed 0
    np.testing.assert_array_equal(tiles[2], truth[0])
    np.testing.assert_array_equal(tiles[5], truth[1])
    pairs_inputs, faces = image_to_image.heldout_pairs(model, 4, seed=2)
    chosen = np.sort(np.random.default_rng(2).choice(len(heldout), 4, replace=False))
    np.testing.assert_array_equal(faces, heldout.images[chosen])
    np.testing.assert_array_equal(pairs_inputs, model.conditions(faces))
    samples = spec.sample(run.path, 4, seed=2)
    np.testing.assert_array_equal(samples, model.translate(pairs_inputs, seed=2))
    np.testing.assert_array_equal(samples[:2], model.translate(pairs_inputs[:2], seed=2))  # image i's own noise
    assert not np.array_equal(samples, spec.sample(run.path, 4, seed=3))
    with pytest.raises(ValueError, match=f"between 1 and the {len(heldout)} held-out faces"):
        spec.sample(run.path, len(heldout) + 1)


def test_enlarging_repeats_each_pixel_and_shows_gray_as_rgb():
    gray = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(image_to_image.enlarge(gray, 4)[0, :, :, 0], [[0, 0, 1, 1], [0, 0, 1, 1],
                                                                                 [2, 2, 3, 3], [2, 2, 3, 3]])
    assert image_to_image.enlarge(gray, 4).shape == (1, 4, 4, 3)
