"""DCGAN: the paper's shapes, which weights each of the recipe's train_on_batch calls changes, the Keras 3 trap,
and the engine's DCGAN against lesson 03's recipe."""

import numpy as np
import pytest
import tensorflow as tf

from facekit.models import dcgan

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=8, snapshot_every=3, grid_size=4, precision="float32")


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


def test_the_engines_dcgan_updates_what_lesson_03s_recipe_updates_on_the_same_batch():
    """Same networks, batch and noise: the engine's one step and the recipe's two train_on_batch calls change the
    same variables, and the kernels in the same direction (the engine's D loss is the recipe's times 2, which
    matters to Adam only where a gradient nears its epsilon)."""
    model = dcgan.build(dcgan.DCGANConfig(ema_half_life=0, **TINY))
    generator = dcgan.build_generator(32, latent_dim=8, filters=4)
    discriminator = dcgan.build_discriminator(32, filters=4)
    generator.set_weights(model.generator.get_weights())
    discriminator.set_weights(model.discriminator.get_weights())
    gan = dcgan.compile_models(generator, discriminator)
    real = tf.random.stateless_uniform((8, 32, 32, 3), [0, 1], -1, 1)
    noise = model.noise(tf.constant(0, tf.int64), 0, 8)
    networks = (model.generator, model.discriminator, generator, discriminator)
    before = [[variable.numpy().copy() for variable in network.variables] for network in networks]

    def changed_positions(index):  # layer names differ between the two builds, so compare by position
        return {position for position, (old, variable) in enumerate(zip(before[index], networks[index].variables))
                if not np.array_equal(old, variable.numpy())}

    model.train_on_batch({"images": real})
    dcgan.train_step(generator, discriminator, gan, real, noise)
    assert changed_positions(0) == changed_positions(2) == set(range(len(generator.variables)))
    assert changed_positions(1) == changed_positions(3) == set(range(len(discriminator.variables)))
    for index, (ours, theirs) in enumerate(((model.generator, generator), (model.discriminator, discriminator))):
        for start, new_ours, new_theirs in zip(before[index], ours.variables, theirs.variables):
            if new_ours.path.endswith("kernel"):  # Adam's first step is lr * g / (|g| + epsilon): the same sign
                same_sign = np.sign(new_ours.numpy() - start) == np.sign(new_theirs.numpy() - start)
                assert same_sign.mean() > 0.9, new_ours.path


def test_a_dcgan_run_keeps_the_papers_settings_and_refuses_other_resolutions():
    config = dcgan.DCGANConfig()
    assert (config.learning_rate, config.beta_1, config.n_critic, config.latent_dim) == (2e-4, 0.5, 1, 100)
    with pytest.raises(ValueError, match="resolution must be 32, 64 or 128"):
        dcgan.DCGANConfig(resolution=48)


def test_a_recipe_run_with_a_moving_average_samples_from_the_average(tmp_path):
    """Lesson 03's loop saves its average as the engine's `generator_ema`: the registry's loader then draws from
    the average, not from the trained generator (or, without an average, from the trained generator)."""
    from facekit.training import RunFolder

    generator = dcgan.build_generator(32, latent_dim=8, filters=4)
    discriminator = dcgan.build_discriminator(32, filters=4)
    gan = dcgan.compile_models(generator, discriminator)
    average = dcgan.build_generator(32, latent_dim=8, filters=4)
    average.set_weights([weight + 0.1 for weight in generator.get_weights()])
    noise = tf.random.stateless_normal((4, 8), [0, 2])
    for name, kept, half_life in (("with", average, 100), ("without", None, 0)):
        run = RunFolder(tmp_path / name)
        run.start({**dcgan.DCGANConfig(ema_half_life=half_life, **TINY).__dict__}, resume=False)
        dcgan.checkpoint_manager(run, generator, discriminator, gan, kept).save(checkpoint_number=1)
        drawn = dcgan.load_generator(run.path)(noise, training=False)
        expected = (kept or generator)(noise, training=False)
        np.testing.assert_allclose(drawn, expected, atol=1e-6)
    assert np.abs(average(noise, training=False) - generator(noise, training=False)).mean() > 0.01  # told apart
