"""BEGAN: the autoencoder's shapes, L(x), the k_t controller against its formula, M_global, the decaying rate."""

import numpy as np
import pytest
import tensorflow as tf

from facekit.models import began

TINY = dict(resolution=32, latent_dim=8, filters=4, embedding_dim=6, batch_size=4, grid_size=4, precision="float32")


def test_the_autoencoder_rebuilds_images_through_an_embedding_bottleneck():
    encoder = began.build_encoder(64, embedding_dim=16, filters=8)
    decoder = began.build_decoder(64, input_dim=16, filters=8)
    assert encoder.output_shape == (None, 16) and decoder.output_shape == (None, 64, 64, 3)
    convolutions = [layer for layer in encoder.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert [layer.strides[0] for layer in convolutions].count(2) == 3  # 64 -> 32 -> 16 -> 8
    assert all(layer.activation.__name__ == "elu" for layer in convolutions)
    assert began.build_autoencoder(64, 16, 8).output_shape == (None, 64, 64, 3)


def test_reconstruction_error_is_the_mean_absolute_difference_per_image():
    images = np.zeros((2, 2, 2, 3), np.float32)
    reconstructions = images.copy()
    reconstructions[0, 0, 0, 0] = 1.2
    reconstructions[1] = -0.5
    np.testing.assert_allclose(began.reconstruction_error(images, reconstructions), [0.1, 0.5])


def test_k_t_follows_the_proportional_controller_and_m_global_is_logged():
    config = began.BEGANConfig(steps=5, gamma=0.4, lambda_k=0.05, learning_rate=5e-3, **TINY)
    tf.keras.utils.set_random_seed(0)
    model = began.build(config)
    k = 0.0
    for step in range(3):
        batch = {"images": tf.random.stateless_uniform((4, 32, 32, 3), [step, 0], -1, 1)}
        logs = model.train_on_batch(batch, return_dict=True)
        assert logs["d_loss"] == pytest.approx(logs["d_real"] - k * logs["d_fake"], rel=1e-5)  # L(x) - k_t L(G(z))
        balance = 0.4 * logs["d_real"] - logs["d_fake"]  # L(x) and L(G(z)) from one pass, before D's update
        assert 0.05 * abs(logs["g_loss"] - logs["d_fake"]) > 1e-5  # L(G(z)) after the update moves k_t visibly
        k = float(np.clip(k + 0.05 * balance, 0, 1))
        assert logs["k_t"] == pytest.approx(k, abs=1e-6) and float(model.k_t.numpy()) == pytest.approx(k, abs=1e-6)
        assert logs["m_global"] == pytest.approx(logs["d_real"] + abs(balance), rel=1e-5)
    assert 0 < k <= 1


def test_the_learning_rate_halves_on_schedule_and_stops_at_the_floor():
    schedule = began.StepDecayWithFloor(1e-4, every=100, floor=2e-5)
    rates = [float(schedule(step)) for step in (0, 99, 100, 200, 1000)]
    np.testing.assert_allclose(rates, [1e-4, 1e-4, 5e-5, 2.5e-5, 2e-5], rtol=1e-6)


def test_both_networks_learning_rates_halve_after_decay_every_steps_with_several_critic_updates():
    config = began.BEGANConfig(steps=5, n_critic=2, decay_every=2, learning_rate=1e-4, **TINY)
    tf.keras.utils.set_random_seed(0)
    model = began.build(config)
    rates = []
    for step in range(4):
        rates.append((float(model.discriminator_optimizer.learning_rate),
                      float(model.generator_optimizer.learning_rate)))
        model.train_on_batch({"images": tf.random.stateless_uniform((8, 32, 32, 3), [step, 0], -1, 1)})
    np.testing.assert_allclose(rates, [(1e-4, 1e-4), (1e-4, 1e-4), (5e-5, 5e-5), (5e-5, 5e-5)], rtol=1e-6)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="gamma must be in"):
        began.BEGANConfig(gamma=0)
    with pytest.raises(ValueError, match="embedding_dim must be at least 1"):
        began.BEGANConfig(embedding_dim=0)
