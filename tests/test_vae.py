"""VAE: the ELBO terms against closed forms, the reparameterisation gradient, training, shapes, files, resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from facekit.models import vae
from facekit.training import RunFolder

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=8, snapshot_every=3, grid_size=4, precision="float32")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)


def _smooth_batch(count=16, resolution=32, seed=0):
    """Float32 images [count, R, R, 3] in [-1, 1] with image-like smooth structure."""
    noise = np.random.default_rng(seed).uniform(-1, 1, (count, resolution, resolution, 3))
    return np.tanh(noise.cumsum(axis=1).cumsum(axis=2) / 20).astype(np.float32)


def test_kl_of_the_standard_normal_is_zero_and_matches_the_closed_form():
    assert np.asarray(vae.kl_divergence(np.zeros((3, 5), np.float32), np.zeros((3, 5), np.float32))).tolist() == [0] * 3
    mean = np.array([[1.0, 2.0], [0.0, -0.5]], np.float32)
    log_variance = np.array([[0.0, np.log(4.0)], [np.log(0.25), 1.0]], np.float32)
    # per dimension KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2
    deviation = np.exp(log_variance / 2)
    expected = np.sum(-np.log(deviation) + (deviation**2 + mean**2) / 2 - 0.5, axis=1)
    np.testing.assert_allclose(vae.kl_divergence(mean, log_variance), expected, rtol=1e-6)
    np.testing.assert_allclose(expected[0], 0.5 + (4 + 4 - 1 - np.log(4)) / 2)  # 3.3069 nats, by hand


def test_kl_matches_a_monte_carlo_estimate():
    mean, deviation = np.array([0.7, -1.2]), np.array([0.5, 1.5])
    samples = np.random.default_rng(0).normal(mean, deviation, (200_000, 2))
    estimate = np.mean(np.sum(stats.norm.logpdf(samples, mean, deviation) - stats.norm.logpdf(samples), axis=1))
    closed = float(vae.kl_divergence(mean[None], 2 * np.log(deviation)[None])[0])
    assert closed == pytest.approx(estimate, rel=0.01)


def test_reconstruction_loss_is_the_per_image_sum_of_squared_errors():
    images = np.zeros((2, 4, 4, 3), np.float32)
    reconstructions = images.copy()
    reconstructions[0, 0, 0, 0] = 0.5
    reconstructions[1] = -1.0
    np.testing.assert_allclose(vae.reconstruction_loss(images, reconstructions), [0.25, 48.0])
    assert float(vae.reconstruction_loss(images, images)[0]) == 0.0


def test_reparameterisation_passes_gradients_to_mean_and_log_variance():
    mean = tf.Variable([[0.5, -1.0]])
    log_variance = tf.Variable([[0.0, np.log(4.0)]], dtype=tf.float32)
    noise = tf.constant([[2.0, -1.0]])
    with tf.GradientTape() as tape:
        latents = vae.reparameterize(mean, log_variance, noise)
        total = tf.reduce_sum(latents)
    np.testing.assert_allclose(latents, [[2.5, -3.0]], rtol=1e-6)
    gradient_mean, gradient_log_variance = tape.gradient(total, [mean, log_variance])
    np.testing.assert_allclose(gradient_mean, [[1.0, 1.0]])
    np.testing.assert_allclose(gradient_log_variance, [[0.5 * 1 * 2.0, 0.5 * 2 * -1.0]], rtol=1e-6)


@pytest.mark.parametrize("resolution", [64, 128])
def test_encoder_and_decoder_shapes(resolution):
    encoder = vae.build_encoder(resolution, latent_dim=16, filters=4)
    decoder = vae.build_decoder(resolution, latent_dim=16, filters=4)
    assert [tuple(output.shape) for output in encoder.outputs] == [(None, 16), (None, 16)]
    assert decoder.output_shape == (None, resolution, resolution, 3)
    mean, log_variance = encoder(np.zeros((2, resolution, resolution, 3), np.float32))
    assert mean.shape == log_variance.shape == (2, 16)
    images = decoder(np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32))
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    with pytest.raises(ValueError, match="resolution must be 32, 64 or 128"):
        vae.build_encoder(48)


def test_the_elbo_falls_on_a_fixed_batch_and_the_terms_add_up():
    keras.utils.set_random_seed(0)
    model = vae.build_vae(vae.VAEConfig(**{**TINY, "filters": 8, "beta": 0.5, "learning_rate": 2e-3}))
    batch = _smooth_batch()
    before = {variable.path: variable.numpy().copy() for variable in model.trainable_variables}
    history = [model.train_on_batch(batch, return_dict=True) for _ in range(30)]
    for losses in history:
        assert losses["loss"] == pytest.approx(losses["reconstruction_loss"] + 0.5 * losses["kl_loss"], rel=1e-5)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["kl_loss"] > 0
    assert all(not np.array_equal(before[v.path], v.numpy()) for v in model.trainable_variables)
    assert int(model.optimizer.iterations) == 30


def test_same_seed_same_losses_and_the_noise_follows_the_step():
    batch = _smooth_batch(count=8)
    runs = []
    for seed in (0, 0, 1):
        keras.utils.set_random_seed(0)  # same initial weights; only the reparameterisation noise seed differs
        model = vae.build_vae(vae.VAEConfig(**{**TINY, "seed": seed}))
        runs.append([model.train_on_batch(batch, return_dict=True)["loss"] for _ in range(3)])
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_reconstruct_and_sample_shapes_and_ranges(images):
    keras.utils.set_random_seed(0)
    model = vae.build_vae(vae.VAEConfig(**{**TINY, "precision": "auto"}))  # bfloat16 inside where the CPU has it
    reconstructions = model.reconstruct(images[:5], batch_size=2)
    assert reconstructions.shape == (5, 32, 32, 3) and reconstructions.dtype == np.float32
    assert reconstructions.min() >= -1 and reconstructions.max() <= 1
    np.testing.assert_allclose(reconstructions, model.reconstruct(images[:5].astype(np.float32) / 127.5 - 1),
                               atol=1e-5)
    assert model.sample(np.zeros((3, 8))).shape == (3, 32, 32, 3)


def test_weights_round_trip_through_a_keras_weights_file(tmp_path):
    batch = _smooth_batch(count=4)
    keras.utils.set_random_seed(0)
    trained = vae.build_vae(vae.VAEConfig(**TINY))
    trained.train_on_batch(batch)
    path = tmp_path / "vae.weights.h5"
    trained.save_weights(path)
    keras.utils.set_random_seed(1)
    fresh = vae.build_vae(vae.VAEConfig(**TINY))
    assert not np.allclose(fresh.reconstruct(batch), trained.reconstruct(batch))
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.reconstruct(batch), trained.reconstruct(batch))


def test_resumed_run_equals_uninterrupted_run(tmp_path, images):
    whole = vae.train(images, tmp_path / "whole", vae.VAEConfig(steps=6, **TINY), show_progress=False)
    vae.train(images, tmp_path / "split", vae.VAEConfig(steps=3, **TINY), show_progress=False)
    split = vae.train(images, tmp_path / "split", vae.VAEConfig(steps=6, **TINY), resume=True, show_progress=False)
    whole_log, split_log = whole.read_log(), split.read_log()
    assert [row["step"] for row in split_log] == list(range(1, 7))
    assert list(whole_log[0]) == ["step", "loss", "reconstruction_loss", "kl_loss", "seconds"]
    for column in vae.LOSS_COLUMNS:
        np.testing.assert_array_equal([r[column] for r in whole_log], [r[column] for r in split_log])
    for name in ("step_000000.png", "step_000003.png", "step_000006.png"):
        assert (whole.samples_dir / name).read_bytes() == (split.samples_dir / name).read_bytes()
    assert whole.gif_path.read_bytes() == split.gif_path.read_bytes()
    assert whole.losses_path.stat().st_size > 0
    first, second = vae.load_vae(whole.path), vae.load_vae(split.path)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(first.reconstruct(images[:4]), second.reconstruct(images[:4]))
    unfinished = RunFolder(tmp_path / "unfinished")
    unfinished.start(whole.read_config(), resume=False)
    with pytest.raises(FileNotFoundError, match="checkpoints: no checkpoint to load"):
        vae.load_vae(unfinished.path)


def test_bad_settings_are_refused_before_any_data_is_read(tmp_path, capsys):
    from facekit import cli

    missing = tmp_path / "no-such-folder"
    for option, value, message in (("--beta", "-1", "beta must be at least 0"),
                                   ("--latent-dim", "0", "latent_dim must be at least 1")):
        assert cli.main(["train", "vae", "--data", str(missing), "--run", str(tmp_path / "run"), "--steps", "2",
                         option, value]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_command_line_trains_into_a_run_folder(tmp_path, monkeypatch):
    from facekit import cli, data, synthetic

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    source = synthetic.write_synthetic_celeba(tmp_path / "faces", 16, seed=0)
    arguments = ["train", "vae", "--data", str(source), "--run", str(tmp_path / "run"), "--steps", "2",
                 "--snapshot-every", "1", "--batch-size", "4", "--latent-dim", "8", "--filters", "4", "--beta", "0.5"]
    assert cli.main(arguments) == 0
    run = RunFolder(tmp_path / "run")
    assert run.read_config()["beta"] == 0.5 and run.read_config()["model"] == "vae"
    assert [step for step, _ in run.sample_frames()] == [0, 1, 2]
    assert cli.main(arguments) == 1  # the folder holds a run: refused, with a message, not overwritten
