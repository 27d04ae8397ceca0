"""x4 super-resolution: the networks' shapes and sub-pixel layout, the inputs made by the bicubic antialiased
resize, which weights each step updates (the L1 network's discriminator never), the losses against hand
computations, exact resume, starting the GAN version from an L1 run, the classifier's features as the content loss,
the snapshot grid and sampling on held-out people, and a short run beating bicubic."""

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf

from facekit import data, progress, registry, synthetic
from facekit.models import image_to_image, superres
from facekit.training import RunFolder

TINY = dict(resolution=32, generator_filters=8, residual_blocks=2, filters=4, batch_size=4, snapshot_every=3,
            grid_size=6, precision="float32")


@pytest.fixture(autouse=True, scope="module")
def data_dir(tmp_path_factory):
    """facekit.data's cache in a temporary folder (sampling prepares a run's source again)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "DATA_DIR", tmp_path_factory.mktemp("data"))
        yield


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """120 synthetic faces at 32x32 (their people: 12 held out at heldout 0.1)."""
    source = synthetic.write_synthetic_celeba(tmp_path_factory.mktemp("faces") / "celeba", 120, seed=0)
    return data.prepare(source, resolution=32, progress=False)


def build(**settings) -> superres.SuperResolutionGAN:
    tf.keras.utils.set_random_seed(0)
    return superres.build(superres.SuperResolutionConfig(**{**TINY, **settings}))


def pair_batch(batch_size: int = 4, seed: int = 0) -> dict:
    return {"images": tf.random.stateless_uniform((batch_size, 32, 32, 3), [seed, 1], -1, 1),
            "condition": tf.random.stateless_uniform((batch_size, 8, 8, 3), [seed, 2], -1, 1)}


def snapshot(network) -> dict:
    return {variable.path: variable.numpy().copy() for variable in network.variables}


def changed(before: dict, network) -> set:
    return {variable.path for variable in network.variables if not np.array_equal(before[variable.path],
                                                                                   variable.numpy())}


def everything(network) -> set:
    return {variable.path for variable in network.variables}


def softplus(values):
    return np.logaddexp(0, values)


def test_the_generator_enlarges_by_4_with_two_sub_pixel_doublings():
    for resolution in (64, 128):  # 16 -> 64 on a CPU, 32 -> 128 in the full profile
        generator = superres.build_generator(resolution, filters=8, blocks=2)
        assert generator.input_shape == (None, resolution // 4, resolution // 4, 3)
        assert generator.output_shape == (None, resolution, resolution, 3)
        assert [generator.get_layer(f"upsample_{index}").output.shape for index in (1, 2)] == [
            (None, resolution // 2, resolution // 2, 8), (None, resolution, resolution, 8)]
    model = build()
    assert model.condition_shape == (8, 8, 3) and model.latent_dim is None
    outputs = model.discriminator(pair_batch()["images"])
    assert [tuple(output.shape) for output in outputs] == [(4, 16, 16, 4), (4, 8, 8, 8), (4, 4, 4, 16), (4, 1)]


def test_sub_pixel_upsampling_lays_each_group_of_four_channels_out_as_a_2x2_block():
    channels = np.arange(2 * 8, dtype=np.float32).reshape(1, 1, 2, 8)  # one row of 2 pixels, 8 channels each
    enlarged = superres.SubPixel(2)(channels).numpy()  # [1, 2, 4, 2]
    # channel c of the output at (row i, column j) of a block is input channel (2 i + j) * 2 + c
    expected = np.array([[[0, 1], [2, 3], [8, 9], [10, 11]], [[4, 5], [6, 7], [12, 13], [14, 15]]], np.float32)
    np.testing.assert_array_equal(enlarged[0], expected)


def test_a_residual_block_adds_its_scaled_residual_and_the_long_skip_adds_the_head():
    generator = superres.build_generator(32, filters=4, blocks=1, residual_scaling=0.1)
    small = tf.random.stateless_uniform((2, 8, 8, 3), [3, 1], -1, 1)
    head, first, second, after_blocks = [layer for layer in generator.layers
                                         if isinstance(layer, keras.layers.Conv2D)][:4]
    features = head(small)
    block = features + 0.1 * second(first(features))  # x + s * conv(relu(conv(x))): the first has the ReLU
    np.testing.assert_allclose(output_of(generator, "block_1", small), block, atol=1e-5)
    np.testing.assert_allclose(output_of(generator, "long_skip", small), features + after_blocks(block), atol=1e-5)


def output_of(model, layer_name: str, inputs) -> np.ndarray:
    return keras.Model(model.inputs, model.get_layer(layer_name).output)(inputs).numpy()


def test_the_inputs_are_the_faces_shrunk_by_the_bicubic_antialiased_resize_and_ride_with_them(faces):
    model = build()
    small = model.conditions(faces.images[:5])
    expected = tf.image.resize(np.asarray(faces.images[:5], np.float32), (8, 8), "bicubic", antialias=True)
    np.testing.assert_array_equal(small, np.clip(np.rint(expected.numpy()), 0, 255).astype(np.uint8))
    config = superres.SuperResolutionConfig(**TINY)
    batch = next(iter(model.training_batches(faces, config, 7)))
    assert set(batch) == {"images", "condition"}
    np.testing.assert_array_equal(batch["images"], next(iter(data.batch_dicts(faces.images, 4, 0, 7)))["images"])
    np.testing.assert_array_equal(data.to_uint8(batch["condition"].numpy()),
                                  model.conditions(data.to_uint8(batch["images"].numpy())))  # each face's own


def test_the_l1_network_trains_its_generator_alone_by_adams_first_step():
    model = build()  # adversarial_weight 0: the default
    assert superres.SuperResolutionConfig().adversarial_weight == 0
    assert not model.trains_discriminator and model.log_columns == ("g_loss", "l1")
    batch = pair_batch()
    with tf.GradientTape() as tape:
        loss = np.float32(1.0) * tf.reduce_mean(tf.abs(model.generator(batch["condition"]) - batch["images"]))
    gradients = tape.gradient(loss, model.generator.trainable_variables)
    weights = [variable.numpy().copy() for variable in model.generator.trainable_variables]
    discriminator = snapshot(model.discriminator)
    logs = model.train_on_batch(batch, return_dict=True)
    assert logs["g_loss"] == pytest.approx(float(loss), rel=1e-5)
    # Adam's first step: w - lr * g * sqrt(1 - beta_2) / (sqrt(1 - beta_2) |g| + epsilon), about lr * sign(g)
    root = np.sqrt(1 - 0.999)
    for variable, before, gradient in zip(model.generator.trainable_variables, weights, gradients):
        rate = model.generator_optimizer.learning_rate.numpy()
        expected = before - rate * gradient.numpy() * root / (root * np.abs(gradient.numpy()) + 1e-7)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-7, err_msg=variable.path)
    assert changed(discriminator, model.discriminator) == set()
    assert int(model.discriminator_optimizer.iterations) == 0 and int(model.generator_optimizer.iterations) == 1


def test_in_the_gan_version_a_discriminator_update_moves_the_discriminator_only_and_a_step_both():
    model = build(adversarial_weight=1e-3)
    assert model.trains_discriminator and model.log_columns == (
        "d_loss", "g_loss", "d_real", "d_fake", "l1", "adversarial", "content")
    real = pair_batch()
    step = tf.constant(0, tf.int64)
    fake = model.fakes(step, 0, real, training=True)
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator", "generator_ema")}
    model.discriminator_update(real, fake, step, 0)
    assert changed(before["discriminator"], model.discriminator) == everything(model.discriminator)
    assert changed(before["generator"], model.generator) == set()
    assert changed(before["generator_ema"], model.generator_ema) == set()
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator")}
    model.train_on_batch(real)
    assert changed(before["generator"], model.generator) == everything(model.generator)
    assert changed(before["discriminator"], model.discriminator) == everything(model.discriminator)
    assert int(model.discriminator_optimizer.iterations) == 2 and int(model.generator_optimizer.iterations) == 1


def test_the_gan_versions_losses_are_l1_content_and_adversarial_as_computed_by_hand():
    model = build(adversarial_weight=0.5, l1_weight=2.0, content_weight=3.0)
    real = pair_batch(seed=4)
    fake = model.fakes(tf.constant(0, tf.int64), 0, real)
    loss, logs = model.generator_loss(real, fake)
    outputs = model.generator(real["condition"]).numpy()
    truth = real["images"].numpy()
    *fake_features, fake_logits = [value.numpy() for value in model.discriminator(outputs)]
    *real_features, real_logits = [value.numpy() for value in model.discriminator(truth)]
    l1 = np.mean(np.abs(outputs - truth))
    content = np.mean([np.mean(np.abs(a - b)) for a, b in zip(fake_features, real_features)])
    adversarial = np.mean(softplus(-fake_logits))
    assert float(logs["l1"]) == pytest.approx(l1, rel=1e-5)
    assert float(logs["content"]) == pytest.approx(content, rel=1e-5)
    assert float(logs["adversarial"]) == pytest.approx(adversarial, rel=1e-5)
    assert float(loss) == pytest.approx(2.0 * l1 + 3.0 * content + 0.5 * adversarial, rel=1e-5)
    d_loss, _ = model.discriminator_loss(real, fake, tf.constant(0, tf.int64), 0)
    assert float(d_loss) == pytest.approx(np.mean(softplus(-real_logits)) + np.mean(softplus(fake_logits)), rel=1e-5)


@pytest.mark.parametrize("adversarial_weight", [0.0, 1e-3])
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, faces, adversarial_weight):
    spec = registry.model("superres")
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


def test_the_snapshot_grid_shows_input_output_and_truth_of_held_out_faces(tmp_path, faces):
    spec = registry.model("superres")
    run = spec.train(faces, tmp_path / "run", spec.config(steps=3, **TINY), show_progress=False)
    model = spec.load(run.path)
    _, heldout = faces.split_by_identity((0.9, 0.1), seed=0)
    grid = progress.grid_tiles(iio.imread(run.sample_path(3)), 6, 32, columns=3)
    truth = np.asarray(heldout.images[:2])
    small = model.conditions(truth)
    np.testing.assert_array_equal(grid[0], small[0].repeat(4, axis=0).repeat(4, axis=1))  # input, enlarged
    np.testing.assert_array_equal(grid[1], model.translate(small[:1])[0])  # output of the moving average
    np.testing.assert_array_equal(grid[2], truth[0])  # the true face
    np.testing.assert_array_equal(grid[5], truth[1])


def test_sampling_translates_held_out_faces_chosen_by_the_seed(tmp_path, faces):
    spec = registry.model("superres")
    run = spec.train(faces, tmp_path / "run", spec.config(steps=1, **TINY), show_progress=False)
    model = spec.load(run.path)
    small, truth = image_to_image.heldout_pairs(model, 5, seed=2)
    _, heldout = faces.split_by_identity((0.9, 0.1), seed=0)
    chosen = np.sort(np.random.default_rng(2).choice(len(heldout), 5, replace=False))
    np.testing.assert_array_equal(truth, heldout.images[chosen])
    samples = spec.sample(run.path, 5, seed=2)
    np.testing.assert_array_equal(samples, model.translate(small))
    assert not np.array_equal(samples, spec.sample(run.path, 5, seed=3))
    with pytest.raises(ValueError, match=f"between 1 and the {len(heldout)} held-out faces"):
        spec.sample(run.path, len(heldout) + 1)


def test_the_gan_version_starts_from_an_l1_runs_generator_and_refuses_another_architecture(tmp_path, faces):
    spec = registry.model("superres")
    l1 = spec.train(faces, tmp_path / "l1", spec.config(steps=2, **TINY), show_progress=False)
    started = build(adversarial_weight=1e-3, init_from=str(l1.path))
    started.attach(RunFolder(tmp_path / "gan"), faces)
    trained = spec.load(l1.path).sampling_generator
    for network in (started.generator, started.generator_ema):
        for a, b in zip(network.variables, trained.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    wider = build(adversarial_weight=1e-3, generator_filters=16, init_from=str(l1.path))
    with pytest.raises(ValueError, match=r"another architecture \(generator_filters: it has 8, this run 16\)"):
        wider.attach(RunFolder(tmp_path / "gan"), faces)
    dcgan = registry.model("dcgan")
    other = dcgan.train(faces, tmp_path / "dcgan", dcgan.config(resolution=32, latent_dim=4, filters=2, batch_size=4,
                                                                steps=1, grid_size=4), show_progress=False)
    with pytest.raises(ValueError, match="a dcgan run, not a superres run"):
        build(init_from=str(other.path)).attach(RunFolder(tmp_path / "gan"), faces)
    with pytest.raises(ValueError, match="init_from .*nothing: .*not a run folder"):
        build(init_from=str(tmp_path / "nothing")).attach(RunFolder(tmp_path / "gan"), faces)


def test_the_content_loss_can_read_the_attribute_classifiers_features(tmp_path, faces):
    from facekit import attributes

    with pytest.raises(ValueError, match="content 'classifier' needs classifier_run"):
        superres.SuperResolutionConfig(content="classifier")
    missing = build(adversarial_weight=1e-3, content="classifier", classifier_run=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="classifier_run .*none: no trained attribute classifier there"):
        missing.attach(RunFolder(tmp_path / "gan"), faces)
    classifier = attributes.train(faces, tmp_path / "classifier", attributes.AttributeConfig(
        resolution=32, filters=4, batch_size=8, steps=1, precision="float32"), show_progress=False)
    model = build(adversarial_weight=1e-3, content="classifier", classifier_run=str(classifier.path))
    model.attach(RunFolder(tmp_path / "gan"), faces)
    real = pair_batch(seed=6)
    fake = model.fakes(tf.constant(0, tf.int64), 0, real)
    _, logs = model.generator_loss(real, fake)
    network = attributes.load(classifier.path).model
    blocks = tf.keras.Model(network.inputs, [layer.output for layer in network.layers
                                             if isinstance(layer, tf.keras.layers.MaxPooling2D)])
    fake_features, real_features = blocks(fake["images"]), blocks(real["images"])
    expected = np.mean([np.mean(np.abs(a.numpy() - b.numpy())) for a, b in zip(fake_features, real_features)])
    assert len(fake_features) == 4 and float(logs["content"]) == pytest.approx(expected, rel=1e-5)


def test_a_few_hundred_steps_beat_bicubic_on_held_out_faces(tmp_path, faces):
    spec = registry.model("superres")
    config = spec.config(**{**TINY, "generator_filters": 32, "residual_blocks": 8, "batch_size": 16, "steps": 300,
                            "snapshot_every": 300})
    run = spec.train(faces, tmp_path / "run", config, show_progress=False)
    model = spec.load(run.path)
    small, truth = image_to_image.heldout_pairs(model, 12)
    bicubic = tf.image.resize(small.astype(np.float32), (32, 32), "bicubic").numpy()
    error = np.mean(np.abs(model.translate(small).astype(np.float32) - truth))
    baseline = np.mean(np.abs(np.clip(np.rint(bicubic), 0, 255) - truth))
    print(f"L1 on held-out faces, 0-255: network {error:.2f}, bicubic {baseline:.2f}")
    assert error < 0.9 * baseline


def test_bad_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="content must be one of discriminator, classifier"):
        superres.SuperResolutionConfig(content="vgg")
    with pytest.raises(ValueError, match="adversarial_weight and l1_weight must be at least 0"):
        superres.SuperResolutionConfig(adversarial_weight=-1)
    with pytest.raises(ValueError, match="residual_blocks must be at least 1"):
        superres.SuperResolutionConfig(residual_blocks=0)
