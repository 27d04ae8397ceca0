"""GAN losses against hand computations on fixed arrays; the gradient penalty against finite differences."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from facekit import losses

REAL = np.array([[-2.0], [0.0], [3.0]], np.float32)  # discriminator outputs [B, 1] on real images
FAKE = np.array([[1.0], [-1.0], [0.5]], np.float32)  # ... and on generated ones


def _softplus(values):
    return np.log1p(np.exp(np.asarray(values, np.float64)))


def test_non_saturating_pair_by_hand_and_equal_to_binary_cross_entropy():
    # softplus(2) = 2.126928, softplus(0) = 0.693147, softplus(-3) = 0.048587
    assert _softplus([2.0, 0.0, -3.0]) == pytest.approx([2.126928, 0.693147, 0.048587], abs=1e-6)
    expected_d = np.mean(_softplus(-REAL)) + np.mean(_softplus(FAKE))
    expected_g = np.mean(_softplus(-FAKE))
    assert float(losses.non_saturating_discriminator_loss(REAL, FAKE)) == pytest.approx(expected_d, rel=1e-6)
    assert float(losses.non_saturating_generator_loss(FAKE)) == pytest.approx(expected_g, rel=1e-6)
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    ones, zeros = np.ones_like(REAL), np.zeros_like(FAKE)
    assert float(losses.non_saturating_discriminator_loss(REAL, FAKE)) == pytest.approx(
        float(cross_entropy(ones, REAL)) + float(cross_entropy(zeros, FAKE)), rel=1e-6)
    assert float(losses.non_saturating_generator_loss(FAKE)) == pytest.approx(float(cross_entropy(ones, FAKE)),
                                                                              rel=1e-6)


def test_minimax_is_the_log_of_one_minus_d_and_saturates_where_non_saturating_does_not():
    probabilities = 1 / (1 + np.exp(-FAKE.astype(np.float64)))
    assert float(losses.minimax_generator_loss(FAKE)) == pytest.approx(np.mean(np.log(1 - probabilities)), rel=1e-6)
    # a fake the discriminator rejects with confidence: logit -10, D(G(z)) = 4.5e-5
    logit = tf.Variable([[-10.0]])
    with tf.GradientTape(persistent=True) as tape:
        minimax = losses.minimax_generator_loss(logit)
        non_saturating = losses.non_saturating_generator_loss(logit)
    # d/dl -softplus(l) = -sigmoid(l) = -4.54e-5; d/dl softplus(-l) = -sigmoid(-l) = -0.99995
    assert float(tape.gradient(minimax, logit)[0, 0]) == pytest.approx(-4.5398e-5, rel=1e-3)
    assert float(tape.gradient(non_saturating, logit)[0, 0]) == pytest.approx(-0.99995, rel=1e-5)


def test_least_squares_pair_by_hand():
    # D: 0.5 * mean([9, 1, 4]) + 0.5 * mean([1, 1, 0.25]) = 7/3 + 0.375; G: 0.5 * mean([0, 4, 0.25]) = 0.708333
    assert float(losses.least_squares_discriminator_loss(REAL, FAKE)) == pytest.approx(7 / 3 + 0.375, rel=1e-6)
    assert float(losses.least_squares_generator_loss(FAKE)) == pytest.approx(4.25 / 6, rel=1e-6)
    assert float(losses.least_squares_discriminator_loss(np.ones(4), np.zeros(4))) == 0.0


def test_wasserstein_pair_by_hand():
    # mean(FAKE) = 0.5 / 3, mean(REAL) = 1 / 3
    assert float(losses.wasserstein_discriminator_loss(REAL, FAKE)) == pytest.approx(0.5 / 3 - 1 / 3, rel=1e-6)
    assert float(losses.wasserstein_generator_loss(FAKE)) == pytest.approx(-0.5 / 3, rel=1e-6)


def test_hinge_pair_by_hand():
    # relu(1 - [-2, 0, 3]) = [3, 1, 0]; relu(1 + [1, -1, 0.5]) = [2, 0, 1.5]
    assert float(losses.hinge_discriminator_loss(REAL, FAKE)) == pytest.approx(4 / 3 + 3.5 / 3, rel=1e-6)
    assert float(losses.hinge_generator_loss(FAKE)) == pytest.approx(-0.5 / 3, rel=1e-6)


@pytest.mark.parametrize("pair", sorted(losses.LOSS_PAIRS))
def test_bfloat16_and_flat_inputs_give_float32_scalars(pair):
    pair = losses.loss_pair(pair)
    real, fake = tf.constant(REAL, tf.bfloat16), tf.constant(FAKE, tf.bfloat16)  # these values are exact in bf16
    discriminator_loss, generator_loss = pair.discriminator(real, fake), pair.generator(fake)
    for value in (discriminator_loss, generator_loss):
        assert value.dtype == tf.float32 and value.shape == ()
    assert float(pair.discriminator(REAL[:, 0], FAKE[:, 0])) == pytest.approx(float(discriminator_loss), rel=1e-6)
    assert float(pair.generator(FAKE[:, 0])) == pytest.approx(float(generator_loss), rel=1e-6)
    assert pair.name == [name for name, value in losses.LOSS_PAIRS.items() if value is pair][0]
    assert pair.probability == (pair.name == "non_saturating")


def test_unknown_loss_pair_names_the_known_ones():
    with pytest.raises(ValueError, match="'nope'.*non_saturating, least_squares, wasserstein, hinge"):
        losses.loss_pair("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        losses.LOSS_PAIRS["hinge"].probability = True


class _LinearCritic:
    """f(x) = sum(w * x) per image: its gradient is w for every image, so every norm is ||w||."""

    def __init__(self, weights):
        self.weights = tf.Variable(weights, dtype=tf.float32)

    def __call__(self, images, training=False):
        return tf.reduce_sum(self.weights * images, axis=[1, 2, 3])[:, None]


def _images(count, seed, size=4, channels=3):
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, channels)).astype(np.float32)


def test_linear_critic_gradient_norm_is_the_weight_norm():
    weights = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype(np.float32)
    penalty, norms = losses.gradient_penalty(_LinearCritic(weights), _images(5, 1), _images(5, 2), seed=(0, 0))
    norm = np.linalg.norm(weights.astype(np.float64))  # about 6 for 48 standard normal weights
    assert norms.dtype == tf.float32 and norms.shape == (5,)
    np.testing.assert_allclose(norms, np.full(5, norm), rtol=1e-6)
    assert float(penalty) == pytest.approx((norm - 1) ** 2, rel=1e-5)
    unit = weights / np.linalg.norm(weights)
    penalty, norms = losses.gradient_penalty(_LinearCritic(unit), _images(5, 1), _images(5, 2), seed=(0, 0))
    assert float(penalty) < 1e-10
    np.testing.assert_allclose(norms, np.ones(5), rtol=1e-6)


def test_points_get_the_alphas_images_get():
    # a linear critic on points [B, 2]: every norm is ||w||; x_hat uses the same alpha per row as images would
    weights = tf.Variable([[3.0], [4.0]])
    real, fake = _images(4, 1)[:, 0, 0, :2], _images(4, 2)[:, 0, 0, :2]
    seen = []

    def critic(points, training=False):
        seen.append(points)
        return points @ weights

    penalty, norms = losses.gradient_penalty(critic, real, fake, seed=(5, 6))
    np.testing.assert_allclose(norms, np.full(4, 5.0), rtol=1e-6)
    assert float(penalty) == pytest.approx(16.0, rel=1e-5)
    alpha = tf.random.stateless_uniform([4, 1, 1, 1], seed=(5, 6)).numpy()[:, :, 0, 0]
    np.testing.assert_allclose(seen[0], real + alpha * (fake - real), rtol=1e-6)


def _small_critic(dtype="float32", kernel_initializer="glorot_uniform"):
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh", dtype=dtype,
                            kernel_initializer=kernel_initializer),  # [B, 3, 3, 3]
        keras.layers.Flatten(dtype=dtype),
        keras.layers.Dense(1, dtype=dtype, kernel_initializer=kernel_initializer),  # [B, 1]
    ])


def test_nonlinear_critic_gradient_norms_match_finite_differences():
    keras.utils.set_random_seed(0)
    critic = _small_critic()
    real, fake = _images(3, 1, size=6, channels=2), _images(3, 2, size=6, channels=2)
    seed = tf.constant([7, 11])
    _, norms = losses.gradient_penalty(critic, real, fake, seed)
    alpha = tf.random.stateless_uniform([3, 1, 1, 1], seed=seed).numpy().astype(np.float64)
    interpolates = real + alpha * (fake.astype(np.float64) - real)
    kernel, bias, dense_kernel, dense_bias = [w.numpy().astype(np.float64) for w in critic.weights]

    def critic64(images):  # the critic again in float64 numpy: a stride-2 "same" 3x3 conv is a padded 7x7 input
        padded = np.pad(images, ((0, 0), (0, 1), (0, 1), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))[:, ::2, ::2]
        features = np.tanh(np.einsum("bijcxy,xyco->bijo", windows, kernel) + bias)
        return features.reshape(len(images), -1) @ dense_kernel + dense_bias

    np.testing.assert_allclose(critic64(interpolates), critic(interpolates.astype(np.float32)), atol=1e-5)
    step, estimates = 1e-5, np.zeros(interpolates.shape)
    for index in np.ndindex(interpolates.shape[1:]):
        plus, minus = interpolates.copy(), interpolates.copy()
        plus[(slice(None),) + index] += step
        minus[(slice(None),) + index] -= step
        estimates[(slice(None),) + index] = (critic64(plus) - critic64(minus))[:, 0] / (2 * step)
    expected = np.sqrt(np.sum(estimates**2, axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, expected, rtol=1e-4)
    assert expected.min() > 0.01  # a real check, not zeros against zeros


def test_alpha_is_uniform_per_image():
    # real = 0 and fake = 1, so the interpolates the critic is called on are alpha itself, broadcast per image
    seen = []

    def recording_critic(images, training=False):
        seen.append(images)
        return tf.reduce_sum(images, axis=[1, 2, 3])[:, None]

    count = 4000
    real, fake = np.zeros((count, 2, 2, 1), np.float32), np.ones((count, 2, 2, 1), np.float32)
    losses.gradient_penalty(recording_critic, real, fake, seed=(3, 4))
    alpha = seen[0].numpy()
    assert np.all(alpha == alpha[:, :1, :1, :1])  # one alpha per image, shared by its pixels
    alpha = alpha[:, 0, 0, 0]
    assert alpha.min() >= 0 and alpha.max() < 1
    assert alpha.mean() == pytest.approx(0.5, abs=0.02)
    assert alpha.std() == pytest.approx(np.sqrt(1 / 12), abs=0.01)  # a normal draw would give about 1
    np.testing.assert_array_equal(alpha, tf.random.stateless_uniform([count, 1, 1, 1], seed=(3, 4))[:, 0, 0, 0])


def test_penalty_is_a_pure_function_of_the_seed():
    keras.utils.set_random_seed(0)
    critic = _small_critic()
    real, fake = _images(4, 1, size=6, channels=2), _images(4, 2, size=6, channels=2)
    first = losses.gradient_penalty(critic, real, fake, seed=(0, 5))
    again = losses.gradient_penalty(critic, real, fake, seed=tf.constant([0, 5], tf.int64))
    other = losses.gradient_penalty(critic, real, fake, seed=(0, 6))
    assert float(first[0]) == float(again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert float(first[0]) != float(other[0])


def test_zero_gradient_critic_gives_a_finite_penalty_and_finite_weight_gradients():
    epsilon = 1e-10
    critic = _LinearCritic(np.zeros((1, 4, 4, 3), np.float32))  # constant output 0, gradient 0 everywhere
    with tf.GradientTape() as tape:
        penalty, norms = losses.gradient_penalty(critic, _images(3, 1), _images(3, 2), (1, 2), epsilon=epsilon)
    assert float(penalty) == pytest.approx((np.sqrt(epsilon) - 1) ** 2, rel=1e-6)
    np.testing.assert_allclose(norms, np.full(3, np.sqrt(epsilon)), rtol=1e-3)
    gradient = tape.gradient(penalty, critic.weights)
    assert np.all(np.isfinite(gradient.numpy()))
    keras.utils.set_random_seed(0)
    keras_critic = _small_critic(kernel_initializer="zeros")
    with tf.GradientTape() as tape:
        penalty, _ = losses.gradient_penalty(keras_critic, _images(3, 1, 6, 2), _images(3, 2, 6, 2), (1, 2))
    assert np.isfinite(float(penalty))
    *gradients, output_bias_gradient = tape.gradient(penalty, keras_critic.trainable_weights)
    assert output_bias_gradient is None  # a constant added to the critic's output does not change its gradient
    for gradient in gradients:
        assert np.all(np.isfinite(gradient.numpy()))


def test_the_penalty_has_second_order_gradients_for_the_critic_weights():
    keras.utils.set_random_seed(0)
    critic = _small_critic()
    real, fake = _images(4, 1, size=6, channels=2), _images(4, 2, size=6, channels=2)
    with tf.GradientTape() as tape:
        penalty, _ = losses.gradient_penalty(critic, real, fake, seed=(0, 1))
    kernel = critic.layers[0].kernel
    gradient = tape.gradient(penalty, kernel)
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))
    assert np.abs(gradient.numpy()).max() > 1e-4
    # against a finite difference of the penalty in one kernel entry
    step, original = 1e-2, kernel.numpy()
    values = []
    for sign in (1, -1):
        changed = original.copy()
        changed[0, 0, 0, 0] += sign * step
        kernel.assign(changed)
        values.append(float(losses.gradient_penalty(critic, real, fake, seed=(0, 1))[0]))
    kernel.assign(original)
    assert float(gradient[0, 0, 0, 0]) == pytest.approx((values[0] - values[1]) / (2 * step), rel=0.02, abs=1e-4)


def test_mixed_bfloat16_critic_returns_float32_close_to_the_float32_critic():
    keras.utils.set_random_seed(0)
    mixed = _small_critic(dtype="mixed_bfloat16")
    plain = _small_critic()
    plain.set_weights(mixed.get_weights())
    real, fake = _images(4, 1, size=6, channels=2), _images(4, 2, size=6, channels=2)
    with tf.GradientTape() as tape:
        penalty, norms = losses.gradient_penalty(mixed, real, fake, seed=(0, 1))
    assert mixed.layers[0].compute_dtype == "bfloat16"
    assert penalty.dtype == tf.float32 and norms.dtype == tf.float32 and norms.shape == (4,)
    expected_penalty, expected_norms = losses.gradient_penalty(plain, real, fake, seed=(0, 1))
    np.testing.assert_allclose(norms, expected_norms, rtol=0.05)
    assert float(penalty) == pytest.approx(float(expected_penalty), rel=0.1)
    *gradients, output_bias_gradient = tape.gradient(penalty, mixed.trainable_weights)
    assert output_bias_gradient is None
    for gradient in gradients:
        assert gradient.dtype == tf.float32 and np.all(np.isfinite(gradient.numpy()))
        assert np.abs(gradient.numpy()).max() > 0
