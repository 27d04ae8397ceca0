"""pix2pix: the U-Net's shapes and skips, the PatchGAN's receptive field against its gradient, seeded dropout as the
noise (at sampling too), sketches riding with their faces, the losses against hand computations, and a short run
beating the sketch itself and the median face. (What it shares with superres is tested in test_image_to_image.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facekit import data, sketches
from facekit.models import pix2pix

pytestmark = pytest.mark.usefixtures("data_cache")

TINY = dict(resolution=32, generator_filters=4, filters=4, batch_size=4, snapshot_every=3, grid_size=6,
            precision="float32")


def build(**settings) -> pix2pix.Pix2PixGAN:
    tf.keras.utils.set_random_seed(0)
    return pix2pix.build(pix2pix.Pix2PixConfig(**{**TINY, **settings}))


def pair_batch(batch_size: int = 4, seed: int = 0) -> dict:
    sketch = tf.random.stateless_uniform((batch_size, 32, 32, 1), [seed, 2]) < 0.1  # a few black lines
    return {"images": tf.random.stateless_uniform((batch_size, 32, 32, 3), [seed, 1], -1, 1),
            "condition": tf.where(sketch, -1.0, 1.0)}


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


def test_the_sketches_of_the_run_s_style_ride_with_their_faces(synthetic_faces):
    model = build()
    config = pix2pix.Pix2PixConfig(**TINY)
    batch = next(iter(model.training_batches(synthetic_faces, config, 0)))
    assert set(batch) == {"images", "condition"} and batch["condition"].shape == (4, 32, 32, 1)
    chosen = np.random.default_rng([0, 0]).permutation(len(synthetic_faces))[:4]  # the stream's first batch
    np.testing.assert_array_equal(batch["images"], data.to_float(synthetic_faces.images[chosen]))
    drawn = sketches.prepare(synthetic_faces, "xdog", seed=0)
    np.testing.assert_array_equal(batch["condition"], data.to_float(np.asarray(drawn)[chosen]))
    assert set(np.unique(batch["condition"])) <= {-1.0, 1.0}  # lines and paper


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


def test_a_few_hundred_steps_beat_the_sketch_and_the_median_face_on_held_out_people(briefly_trained,
                                                                                    synthetic_faces):
    model, inputs, truth = briefly_trained("pix2pix", generator_filters=32, filters=32)
    training, _ = synthetic_faces.split_by_identity((0.9, 0.1), seed=0)
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
