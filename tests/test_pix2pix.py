"""pix2pix: the U-Net's shapes and skips, the PatchGAN's receptive field against its gradient, seeded dropout as the
noise (at sampling too), sketches riding with their faces, which weights each step updates (the L1-only U-Net's
discriminator never), the losses against hand computations, exact resume, sampling held-out sketches, and a short
run beating the median face."""

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf

from facekit import data, progress, registry, sketches, synthetic
from facekit.models import image_to_image, pix2pix

TINY = dict(resolution=32, generator_filters=4, filters=4, batch_size=4, snapshot_every=3, grid_size=6,
            precision="float32")


@pytest.fixture(autouse=True, scope="module")
def data_dir(tmp_path_factory):
    """facekit.data's cache (and the sketches' beside it) in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "DATA_DIR", tmp_path_factory.mktemp("data"))
        yield


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """120 synthetic faces at 32x32 (their people: 12 held out at heldout 0.1)."""
    source = synthetic.write_synthetic_celeba(tmp_path_factory.mktemp("faces") / "celeba", 120, seed=0)
    return data.prepare(source, resolution=32, progress=False)


def build(**settings) -> pix2pix.Pix2PixGAN:
    tf.keras.utils.set_random_seed(0)
    return pix2pix.build(pix2pix.Pix2PixConfig(**{**TINY, **settings}))


def pair_batch(batch_size: int = 4, seed: int = 0) -> dict:
    sketch = tf.random.stateless_uniform((batch_size, 32, 32, 1), [seed, 2]) < 0.1  # a few black lines
    return {"images": tf.random.stateless_uniform((batch_size, 32, 32, 3), [seed, 1], -1, 1),
            "condition": tf.where(sketch, -1.0, 1.0)}


def snapshot(network) -> dict:
    return {variable.path: variable.numpy().copy() for variable in network.variables}


def changed(before: dict, network) -> set:
    return {variable.path for variable in network.variables if not np.array_equal(before[variable.path],
                                                                                   variable.numpy())}


def everything(network) -> set:
    return {variable.path for variable in network.variables}


def softplus(values):
    return np.logaddexp(0, values)


def test_the_u_net_halves_to_1x1_and_each_decoder_block_is_joined_by_the_encoders_features_of_its_size():
    for resolution, levels in ((64, 6), (128, 7)):
        generator = pix2pix.build_generator(resolution, filters=4)
        assert generator.output_shape == (None, resolution, resolution, 3)
        assert generator.get_layer(f"down_{levels}").output.shape == (None, 1, 1, 32)  # 8 * filters at the bottom
        sizes = [2**block for block in range(1, levels)]  # the decoder's blocks: 2x2, 4x4, ..., R/2
        for block, size in enumerate(sizes, start=1):
            decoded, encoded = generator.get_layer(f"skip_{block}").input
            width = 4 * min(resolution // 2 // size, 8)
            assert decoded.shape == encoded.shape == (None, size, size, width)
            assert encoded is encoder_output(generator, size)


def encoder_output(generator, size: int):
    """The encoder's features of side `size`: the output of its leaky ReLU there (the decoder's are ReLUs)."""
    return next(layer.output for layer in generator.layers
                if isinstance(layer, keras.layers.LeakyReLU) and layer.output.shape[1] == size)


def test_the_skips_carry_each_place_of_the_sketch_to_the_same_place_of_the_face():
    """A change in one corner of the sketch changes that corner of the face far more than the opposite corner: the
    outermost skip is a short path; through the 1x1 bottleneck alone every place would change alike."""
    generator = pix2pix.build_generator(32, filters=4, dropout=0.0)
    sketch = np.ones((1, 32, 32, 1), np.float32)
    touched = sketch.copy()
    touched[:, :4, :4] = -1  # a black mark in the top-left corner
    difference = np.abs(generator({"condition": touched}).numpy() - generator({"condition": sketch}).numpy())
    assert difference[0, :4, :4].mean() > 10 * difference[0, -8:, -8:].mean()


def test_the_patchgans_receptive_field_is_what_its_gradient_shows():
    assert [pix2pix.receptive_field(pix2pix.build_discriminator(256, 4, layers)) for layers in (1, 2, 3)] == [
        16, 34, 70]  # the paper's 70x70 PatchGAN has 3
    assert [pix2pix.Pix2PixConfig(resolution=size).patch_depth for size in (32, 64, 128)] == [1, 1, 2]
    for resolution, layers in ((64, 1), (128, 2)):
        discriminator = pix2pix.build_discriminator(resolution, 4, layers)
        patches = resolution // 2**layers
        assert discriminator.output_shape == (None, patches, patches, 1)
        pairs = tf.random.stateless_uniform((1, resolution, resolution, 4), [1, 1], -1, 1)
        with tf.GradientTape() as tape:
            tape.watch(pairs)
            logit = discriminator(pairs)[0, patches // 2, patches // 2, 0]  # a patch away from the borders
        seen = np.argwhere(np.abs(tape.gradient(logit, pairs).numpy()[0]).sum(axis=-1) > 0)
        assert (seen.max(axis=0) - seen.min(axis=0) + 1).tolist() == [pix2pix.receptive_field(discriminator)] * 2


def test_dropout_is_seeded_per_image_and_stays_on_at_sampling():
    layer = pix2pix.SeededDropout(0.5, index=2)
    features = tf.ones((3, 8, 8, 16))
    seeds = tf.constant([[0, 0], [0, 1], [0, 0]], tf.int64)
    dropped = layer(features, seeds).numpy()
    assert set(np.unique(dropped)) == {0.0, 2.0}  # kept values scaled by 1 / (1 - rate)
    assert 0.4 < (dropped == 0).mean() < 0.6
    np.testing.assert_array_equal(dropped[0], dropped[2])  # the same seed pair, the same mask
    assert not np.array_equal(dropped[0], dropped[1])
    np.testing.assert_array_equal(layer(features[1:2], seeds[1:2]).numpy()[0], dropped[1])  # whatever the batch
    assert not np.array_equal(pix2pix.SeededDropout(0.5, index=3)(features, seeds).numpy(), dropped)  # per block
    model = build()
    sketch = pair_batch(2)["condition"].numpy()
    first = model.generate(model.condition_inputs(sketch, seed=0))  # training=False: sampling
    np.testing.assert_array_equal(first, model.generate(model.condition_inputs(sketch, seed=0)))
    assert not np.array_equal(first, model.generate(model.condition_inputs(sketch, seed=1)))
    block = keras.Model(model.generator.inputs, model.generator.get_layer("dropout_1").output)
    masks = [block(model.condition_inputs(sketch, seed), training=False).numpy() == 0 for seed in (0, 1)]
    assert 0.4 < masks[0].mean() < 0.6 and not np.array_equal(*masks)  # dropping at sampling, by the seed
    assert [layer.name for layer in model.generator.layers if isinstance(layer, pix2pix.SeededDropout)] == [
        "dropout_1", "dropout_2", "dropout_3"]  # the first three decoder blocks
    silent = build(dropout=0.0)  # no noise: one input, one face per sketch
    assert list(silent.generator.input) == ["condition"]
    np.testing.assert_array_equal(silent.generate(silent.condition_inputs(sketch, seed=0)),
                                  silent.generate(silent.condition_inputs(sketch, seed=1)))


def test_the_sketches_of_the_run_s_style_ride_with_their_faces(faces):
    model = build()
    config = pix2pix.Pix2PixConfig(**TINY)
    batch = next(iter(model.training_batches(faces, config, 0)))
    assert set(batch) == {"images", "condition"} and batch["condition"].shape == (4, 32, 32, 1)
    chosen = np.random.default_rng([0, 0]).permutation(len(faces))[:4]  # the stream's first batch
    np.testing.assert_array_equal(batch["images"], data.to_float(faces.images[chosen]))
    drawn = sketches.prepare(faces, "xdog", seed=0)
    np.testing.assert_array_equal(batch["condition"], data.to_float(np.asarray(drawn)[chosen]))
    assert set(np.unique(batch["condition"])) <= {-1.0, 1.0}  # lines and paper


def test_a_discriminator_update_moves_the_discriminator_only_and_a_step_both():
    model = build()
    real = pair_batch()
    step = tf.constant(0, tf.int64)
    fake = model.fakes(step, 0, real, training=True)
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator", "generator_ema")}
    model.discriminator_update(real, fake, step, 0)
    assert changed(before["discriminator"], model.discriminator) == everything(model.discriminator)
    assert changed(before["generator"], model.generator) == set()
    assert changed(before["generator_ema"], model.generator_ema) == set()
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator")}
    logs = model.train_on_batch(real, return_dict=True)
    assert changed(before["generator"], model.generator) == everything(model.generator)
    assert changed(before["discriminator"], model.discriminator) == everything(model.discriminator)
    assert int(model.discriminator_optimizer.iterations) == 2 and int(model.generator_optimizer.iterations) == 1
    assert model.log_columns == ("d_loss", "g_loss", "d_real", "d_fake", "l1", "adversarial") == tuple(
        name for name in model.log_columns if name in logs)


def test_the_l1_only_u_net_never_reads_or_updates_the_discriminator():
    model = build(adversarial_weight=0.0)
    assert model.log_columns == ("g_loss", "l1")
    calls = []
    discriminate = model.discriminate
    model.discriminate = lambda *arguments, **options: calls.append(1) or discriminate(*arguments, **options)
    model.run_eagerly = True
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator")}
    for seed in range(3):
        logs = model.train_on_batch(pair_batch(seed=seed), return_dict=True)
    assert calls == [] and changed(before["discriminator"], model.discriminator) == set()
    assert int(model.discriminator_optimizer.iterations) == 0 and int(model.generator_optimizer.iterations) == 3
    assert changed(before["generator"], model.generator) == everything(model.generator)
    assert logs["g_loss"] == pytest.approx(100 * logs["l1"], rel=1e-6)


def test_the_losses_are_lambda_l1_plus_the_adversarial_term_and_the_halved_bce_as_computed_by_hand():
    assert (pix2pix.Pix2PixConfig().l1_weight, pix2pix.Pix2PixConfig().adversarial_weight) == (100.0, 1.0)
    config = pix2pix.Pix2PixConfig()
    assert (config.learning_rate, config.beta_1) == (2e-4, 0.5)
    model = build(l1_weight=7.0, adversarial_weight=0.5)
    real = pair_batch(seed=3)
    step = tf.constant(2, tf.int64)
    fake = model.fakes(step, 0, real)
    loss, logs = model.generator_loss(real, fake)
    sketch, truth = real["condition"].numpy(), real["images"].numpy()
    outputs = model.generator({"condition": sketch, "seed": fake["seed"].numpy()}).numpy()
    np.testing.assert_array_equal(outputs, fake["images"].numpy())
    fake_logits = model.discriminator(np.concatenate([sketch, outputs], axis=-1)).numpy()
    real_logits = model.discriminator(np.concatenate([sketch, truth], axis=-1)).numpy()
    l1 = np.mean(np.abs(outputs - truth))
    adversarial = np.mean(softplus(-fake_logits))
    assert float(logs["l1"]) == pytest.approx(l1, rel=1e-5)
    assert float(logs["adversarial"]) == pytest.approx(adversarial, rel=1e-5)
    assert float(loss) == pytest.approx(7.0 * l1 + 0.5 * adversarial, rel=1e-5)
    d_loss, d_logs = model.discriminator_loss(real, fake, step, 0)
    expected = (np.mean(softplus(-real_logits)) + np.mean(softplus(fake_logits))) / 2
    assert float(d_loss) == pytest.approx(expected, rel=1e-5) and float(d_logs["d_loss"]) == pytest.approx(expected)
    assert float(d_logs["d_real"]) == pytest.approx(np.mean(1 / (1 + np.exp(-real_logits))), rel=1e-5)


@pytest.mark.parametrize("adversarial_weight", [1.0, 0.0])
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, faces, adversarial_weight):
    spec = registry.model("pix2pix")
    settings = {**TINY, "adversarial_weight": adversarial_weight}
    whole = spec.train(faces, tmp_path / "whole", spec.config(steps=6, **settings), show_progress=False)
    spec.train(faces, tmp_path / "split", spec.config(steps=3, **settings), show_progress=False)
    split = spec.train(faces, tmp_path / "split", spec.config(steps=6, **settings), resume=True, show_progress=False)
    whole_log, split_log = whole.read_log(), split.read_log()
    assert [row["step"] for row in split_log] == list(range(1, 7))
    for column in spec.load(whole.path).log_columns:
        np.testing.assert_array_equal([row[column] for row in whole_log], [row[column] for row in split_log])
    first, second = spec.load(whole.path), spec.load(split.path)
    for a, b in zip(first.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert whole.gif_path.read_bytes() == split.gif_path.read_bytes()
    np.testing.assert_array_equal(spec.sample(whole.path, 3, seed=5), spec.sample(split.path, 3, seed=5))


def test_the_grid_shows_sketch_output_and_truth_and_sampling_translates_held_out_sketches(tmp_path, faces):
    spec = registry.model("pix2pix")
    run = spec.train(faces, tmp_path / "run", spec.config(steps=3, **TINY), show_progress=False)
    model = spec.load(run.path)
    _, heldout = faces.split_by_identity((0.9, 0.1), seed=0)
    tiles = progress.grid_tiles(iio.imread(run.sample_path(3)), 6, 32, columns=3)
    truth = np.asarray(heldout.images[:2])
    drawn = sketches.draw(truth, "xdog", seed=0)
    np.testing.assert_array_equal(tiles[0], np.repeat(drawn[0], 3, axis=-1))  # the sketch, gray as RGB
    np.testing.assert_array_equal(tiles[1], model.translate(drawn[:1], seed=0)[0])  # dropout seeds (0, 0)
    np.testing.assert_array_equal(tiles[2], truth[0])
    inputs, faces_drawn = image_to_image.heldout_pairs(model, 4, seed=1)
    chosen = np.sort(np.random.default_rng(1).choice(len(heldout), 4, replace=False))
    np.testing.assert_array_equal(faces_drawn, heldout.images[chosen])
    np.testing.assert_array_equal(inputs, sketches.draw(faces_drawn, "xdog", seed=0))
    samples = spec.sample(run.path, 4, seed=1)
    np.testing.assert_array_equal(samples, model.translate(inputs, seed=1))
    np.testing.assert_array_equal(samples[:2], model.translate(inputs[:2], seed=1))  # image i: seeds (1, i)


def test_a_few_hundred_steps_beat_the_sketch_itself_and_the_median_face_on_held_out_people(tmp_path, faces):
    spec = registry.model("pix2pix")
    config = spec.config(**{**TINY, "generator_filters": 32, "filters": 32, "batch_size": 16, "steps": 300,
                            "snapshot_every": 300})
    run = spec.train(faces, tmp_path / "run", config, show_progress=False)
    model = spec.load(run.path)
    inputs, truth = image_to_image.heldout_pairs(model, 12)
    training, _ = faces.split_by_identity((0.9, 0.1), seed=0)
    median = np.median(np.asarray(training.images), axis=0)  # the best constant face under L1
    error = np.mean(np.abs(model.translate(inputs).astype(np.float32) - truth))
    identity = np.mean(np.abs(np.repeat(inputs, 3, axis=-1).astype(np.float32) - truth))  # the sketch as the face
    baseline = np.mean(np.abs(median - truth))
    print(f"L1 on held-out faces, 0-255: pix2pix {error:.2f}, the sketch {identity:.2f}, the median training face "
          f"{baseline:.2f}")
    assert error < 0.5 * identity and error < 0.95 * baseline  # colours a sketch does not show bound the second


def test_bad_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="sketch_style must be one of xdog, xdog-fixed, canny"):
        pix2pix.Pix2PixConfig(sketch_style="hed")
    with pytest.raises(ValueError, match=r"dropout must be a rate in \[0, 1\)"):
        pix2pix.Pix2PixConfig(dropout=1.0)
    with pytest.raises(ValueError, match="patch_layers must be at least 1"):
        pix2pix.Pix2PixConfig(patch_layers=0)
