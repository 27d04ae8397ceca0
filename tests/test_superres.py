"""x4 super-resolution: the networks' shapes and sub-pixel layout, the inputs made by the bicubic antialiased
resize, the L1 network's first Adam step and the GAN version's losses against hand computations, starting the GAN
version from an L1 run, the classifier's features as the content loss, and a short run beating bicubic. (What it
shares with pix2pix is tested in test_image_to_image.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facekit import data, pairs, registry
from facekit.models import superres
from facekit.training import RunFolder

pytestmark = pytest.mark.usefixtures("data_cache")

TINY = dict(resolution=32, generator_filters=8, residual_blocks=2, filters=4, batch_size=4, snapshot_every=3,
            grid_size=6, precision="float32")


def build(**settings) -> superres.SuperResolutionGAN:
    tf.keras.utils.set_random_seed(0)
    return superres.build(superres.SuperResolutionConfig(**{**TINY, **settings}))


def pair_batch(batch_size: int = 4, seed: int = 0) -> dict:
    return {"images": tf.random.stateless_uniform((batch_size, 32, 32, 3), [seed, 1], -1, 1),
            "condition": tf.random.stateless_uniform((batch_size, 8, 8, 3), [seed, 2], -1, 1)}


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


def test_the_inputs_are_the_faces_shrunk_by_the_bicubic_antialiased_resize_riding_with_them(synthetic_faces):
    model = build()
    small = model.conditions(synthetic_faces.images[:5])
    pixels = np.asarray(synthetic_faces.images[:5], np.float32)
    expected = tf.image.resize(pixels, (8, 8), "bicubic", antialias=True)
    np.testing.assert_array_equal(small, np.clip(np.rint(expected.numpy()), 0, 255).astype(np.uint8))
    config = superres.SuperResolutionConfig(**TINY)
    batch = next(iter(model.training_batches(synthetic_faces, config, 7)))
    assert set(batch) == {"images", "condition"}
    stream = data.batch_dicts(synthetic_faces.images, 4, 0, 7)
    np.testing.assert_array_equal(batch["images"], next(iter(stream))["images"])
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
    logs = model.train_on_batch(batch, return_dict=True)
    assert logs["g_loss"] == pytest.approx(float(loss), rel=1e-5)
    # Adam's first step: w - lr * g * sqrt(1 - beta_2) / (sqrt(1 - beta_2) |g| + epsilon), about lr * sign(g)
    root = np.sqrt(1 - 0.999)
    for variable, before, gradient in zip(model.generator.trainable_variables, weights, gradients):
        rate = model.generator_optimizer.learning_rate.numpy()
        expected = before - rate * gradient.numpy() * root / (root * np.abs(gradient.numpy()) + 1e-7)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-7, err_msg=variable.path)
    assert int(model.discriminator_optimizer.iterations) == 0 and int(model.generator_optimizer.iterations) == 1


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


def test_the_gan_version_starts_from_an_l1_runs_generator_and_refuses_another(tmp_path, synthetic_faces):
    spec = registry.model("superres")
    l1 = spec.train(synthetic_faces, tmp_path / "l1", spec.config(steps=2, **TINY), show_progress=False)
    started = build(adversarial_weight=1e-3, init_from=str(l1.path))
    started.attach(RunFolder(tmp_path / "gan"), synthetic_faces)
    trained = spec.load(l1.path).sampling_generator
    for network in (started.generator, started.generator_ema):
        for a, b in zip(network.variables, trained.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    wider = build(adversarial_weight=1e-3, generator_filters=16, init_from=str(l1.path))
    with pytest.raises(ValueError, match=r"another architecture \(generator_filters: it has 8, this run 16\)"):
        wider.attach(RunFolder(tmp_path / "gan"), synthetic_faces)
    dcgan = registry.model("dcgan")
    tiny_dcgan = dcgan.config(resolution=32, latent_dim=4, filters=2, batch_size=4, steps=1, grid_size=4)
    other = dcgan.train(synthetic_faces, tmp_path / "dcgan", tiny_dcgan, show_progress=False)
    with pytest.raises(ValueError, match="a dcgan run, not a superres run"):
        build(init_from=str(other.path)).attach(RunFolder(tmp_path / "gan"), synthetic_faces)
    with pytest.raises(ValueError, match="init_from .*nothing: .*not a run folder"):
        build(init_from=str(tmp_path / "nothing")).attach(RunFolder(tmp_path / "gan"), synthetic_faces)


def test_the_content_loss_can_read_the_attribute_classifiers_features(tmp_path, synthetic_faces):
    from facekit import attributes

    with pytest.raises(ValueError, match="content 'classifier' needs classifier_run"):
        superres.SuperResolutionConfig(content="classifier")
    missing = build(adversarial_weight=1e-3, content="classifier", classifier_run=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="classifier_run .*none: no trained attribute classifier there"):
        missing.attach(RunFolder(tmp_path / "gan"), synthetic_faces)
    classifier = attributes.train(synthetic_faces, tmp_path / "classifier", attributes.AttributeConfig(
        resolution=32, filters=4, batch_size=8, steps=1, precision="float32"), show_progress=False)
    model = build(adversarial_weight=1e-3, content="classifier", classifier_run=str(classifier.path))
    model.attach(RunFolder(tmp_path / "gan"), synthetic_faces)
    real = pair_batch(seed=6)
    fake = model.fakes(tf.constant(0, tf.int64), 0, real)
    _, logs = model.generator_loss(real, fake)
    network = attributes.load(classifier.path).model
    blocks = tf.keras.Model(network.inputs, [layer.output for layer in network.layers
                                             if isinstance(layer, tf.keras.layers.MaxPooling2D)])
    fake_features, real_features = blocks(fake["images"]), blocks(real["images"])
    expected = np.mean([np.mean(np.abs(a.numpy() - b.numpy())) for a, b in zip(fake_features, real_features)])
    assert len(fake_features) == 4 and float(logs["content"]) == pytest.approx(expected, rel=1e-5)


def test_a_few_hundred_steps_beat_bicubic_on_held_out_faces(briefly_trained):
    model, small, truth = briefly_trained("superres", generator_filters=32, residual_blocks=8)
    bicubic = data.to_uint8(np.asarray(pairs.resize_bicubic(data.to_float(small), 32)))  # the baseline
    error = np.mean(np.abs(model.translate(small).astype(np.float32) - truth))
    baseline = np.mean(np.abs(bicubic.astype(np.float32) - truth))
    print(f"L1 on held-out faces, 0-255: network {error:.2f}, bicubic {baseline:.2f}")
    assert error < 0.9 * baseline


def test_bad_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="content must be one of discriminator, classifier"):
        superres.SuperResolutionConfig(content="vgg")
    with pytest.raises(ValueError, match="adversarial_weight and l1_weight must be at least 0"):
        superres.SuperResolutionConfig(adversarial_weight=-1)
    with pytest.raises(ValueError, match="residual_blocks must be at least 1"):
        superres.SuperResolutionConfig(residual_blocks=0)
