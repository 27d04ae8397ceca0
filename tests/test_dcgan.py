"""DCGAN: shapes, which weights each train_on_batch step changes, resume == uninterrupted, divergence."""

import numpy as np
import pytest
import tensorflow as tf

from facekit import dcgan
from facekit.training import RunFolder, TrainingDiverged

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=8, snapshot_every=3, grid_size=4, precision="float32")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)


# By hand: dense 100*8192 + BN(512) 1024 + convT 16*512*256 + BN 512 + 16*256*128 + BN 256 + 16*128*64 + BN 128
# + last 16*64*3 + 3 biases = 3,576,707; at 128 one more 64->32 block (32,768 + 64) and a 32->3 last layer (1,539).
@pytest.mark.parametrize("resolution, generator_params", [(64, 3_576_707), (128, 3_608_003)])
def test_architectures_match_the_dcgan_paper(resolution, generator_params):
    generator = dcgan.build_generator(resolution, latent_dim=100)
    discriminator = dcgan.build_discriminator(resolution)
    assert generator.output_shape == (None, resolution, resolution, 3)
    assert discriminator.output_shape == (None, 1)
    # projection to 4x4x512, then halving channels; discriminator doubles from 64
    assert generator.layers[0].output.shape[-1] == 4 * 4 * 512
    assert [layer.filters for layer in discriminator.layers if hasattr(layer, "filters")] == [
        64 * 2**index for index in range(int(np.log2(resolution)) - 2)
    ]
    assert sum(int(np.prod(w.shape)) for w in generator.trainable_weights) == generator_params
    images = generator(tf.random.normal((2, 100)), training=False)
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1


def _snapshot(model):
    return {variable.path: variable.numpy().copy() for variable in model.variables}


def _changed(before, model):
    return {variable.path for variable in model.variables if not np.array_equal(before[variable.path], variable.numpy())}


def test_each_step_changes_exactly_its_own_networks_weights():
    tf.keras.utils.set_random_seed(1)
    generator = dcgan.build_generator(32, latent_dim=8, filters=4)
    discriminator = dcgan.build_discriminator(32, filters=4)
    gan = dcgan.compile_models(generator, discriminator)
    real = tf.random.uniform((8, 32, 32, 3), -1, 1)
    g_trainable = {v.path for v in generator.trainable_variables}
    g_statistics = {v.path for v in generator.non_trainable_variables}  # batch-norm moving mean / variance
    d_all = {v.path for v in discriminator.variables}
    assert g_statistics and len(g_statistics) == 2 * sum("batch_normalization" in v.path for v in generator.variables
                                                          if v.path.endswith("gamma"))
    for step in range(3):  # more than once: the second call reuses the traced train functions
        noise = dcgan.step_noise(0, step, 8, 8)
        g_before, d_before = _snapshot(generator), _snapshot(discriminator)
        fake_images = generator(noise, training=True)
        # drawing fakes in training mode moves only the generator's batch-norm statistics, never a trained weight
        assert _changed(g_before, generator) == g_statistics
        g_before = _snapshot(generator)
        discriminator.trainable = True
        discriminator.train_on_batch(tf.concat([real, fake_images], 0),
                                     tf.concat([tf.ones((8, 1)), tf.zeros((8, 1))], 0))
        assert _changed(d_before, discriminator) == d_all
        assert _changed(g_before, generator) == set()

        g_before, d_before = _snapshot(generator), _snapshot(discriminator)
        discriminator.trainable = False
        gan.train_on_batch(noise, tf.ones((8, 1)))
        assert _changed(g_before, generator) == g_trainable | g_statistics
        assert _changed(d_before, discriminator) == set()


def test_train_step_trains_both_networks():
    tf.keras.utils.set_random_seed(2)
    generator = dcgan.build_generator(32, latent_dim=8, filters=4)
    discriminator = dcgan.build_discriminator(32, filters=4)
    gan = dcgan.compile_models(generator, discriminator)
    g_before, d_before = _snapshot(generator), _snapshot(discriminator)
    d_loss, g_loss = dcgan.train_step(generator, discriminator, gan, tf.random.uniform((8, 32, 32, 3), -1, 1),
                                      dcgan.step_noise(0, 0, 8, 8))
    assert np.isfinite([d_loss, g_loss]).all()
    assert _changed(g_before, generator) == {v.path for v in generator.variables}
    assert _changed(d_before, discriminator) == {v.path for v in discriminator.variables}


def test_keras2_recipe_freezes_the_discriminator_in_keras3():
    """The trap the lesson explains: trainable=False before compiling the combined model stops D learning."""
    tf.keras.utils.set_random_seed(3)
    generator = dcgan.build_generator(32, latent_dim=8, filters=4)
    discriminator = dcgan.build_discriminator(32, filters=4)
    discriminator.compile(optimizer="adam", loss=dcgan.LOSS)
    discriminator.trainable = False
    gan = tf.keras.Sequential([generator, discriminator])
    gan.compile(optimizer="adam", loss=dcgan.LOSS)
    d_before = _snapshot(discriminator)
    discriminator.train_on_batch(tf.random.uniform((8, 32, 32, 3), -1, 1), tf.ones((8, 1)))
    assert _changed(d_before, discriminator) == set()


def test_resumed_run_equals_uninterrupted_run(tmp_path, images):
    whole = dcgan.train(images, tmp_path / "whole", dcgan.DCGANConfig(steps=6, **TINY), show_progress=False)
    dcgan.train(images, tmp_path / "split", dcgan.DCGANConfig(steps=3, **TINY), show_progress=False)
    split = dcgan.train(images, tmp_path / "split", dcgan.DCGANConfig(steps=6, **TINY), resume=True,
                        show_progress=False)
    whole_log, split_log = whole.read_log(), split.read_log()
    assert [row["step"] for row in split_log] == list(range(1, 7))
    np.testing.assert_array_equal([r["d_loss"] for r in whole_log], [r["d_loss"] for r in split_log])
    np.testing.assert_array_equal([r["g_loss"] for r in whole_log], [r["g_loss"] for r in split_log])
    for name in ("step_000000.png", "step_000003.png", "step_000006.png"):
        assert (whole.samples_dir / name).read_bytes() == (split.samples_dir / name).read_bytes()
    assert whole.gif_path.read_bytes() == split.gif_path.read_bytes()
    first, second = dcgan.load_generator(whole.path), dcgan.load_generator(split.path)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_same_seed_same_gif_and_a_rerun_refuses_to_overwrite(tmp_path, images):
    config = dcgan.DCGANConfig(steps=3, **TINY)
    first = dcgan.train(images, tmp_path / "a", config, show_progress=False)
    second = dcgan.train(images, tmp_path / "b", config, show_progress=False)
    assert first.gif_path.read_bytes() == second.gif_path.read_bytes()
    assert first.losses_path.stat().st_size > 0
    with pytest.raises(FileExistsError, match="already holds a run"):
        dcgan.train(images, tmp_path / "a", config, show_progress=False)
    with pytest.raises(ValueError, match="latent_dim"):
        dcgan.train(images, tmp_path / "a", dcgan.DCGANConfig(steps=6, **{**TINY, "latent_dim": 9}), resume=True)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, images, monkeypatch):
    real_step = dcgan.train_step
    calls = []

    def step_that_diverges(*arguments):
        calls.append(1)
        d_loss, g_loss = real_step(*arguments)
        return (float("nan") if len(calls) == 5 else d_loss), g_loss

    monkeypatch.setattr(dcgan, "train_step", step_that_diverges)
    with pytest.raises(TrainingDiverged, match=r"step 5: training diverged \(d_loss=nan\); last good checkpoint kept: .*ckpt-3"):
        dcgan.train(images, tmp_path / "run", dcgan.DCGANConfig(steps=6, **TINY), show_progress=False)
    run = RunFolder(tmp_path / "run")
    assert tf.train.latest_checkpoint(run.checkpoints_dir).endswith("ckpt-3")
    assert [row["step"] for row in run.read_log()] == [1, 2, 3, 4]


def test_precision_is_explicit_or_resolved():
    assert dcgan.resolve_precision("float32") == "float32"
    assert dcgan.resolve_precision("auto") in ("float32", "mixed_bfloat16")
    with pytest.raises(ValueError, match="precision"):
        dcgan.resolve_precision("float16")
