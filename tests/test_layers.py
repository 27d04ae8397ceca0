"""Spectral normalisation: sigma against numpy's SVD, outputs against plain layers, gradients through sigma against
finite differences, the kernel never overwritten, u updated only in training, mixed precision, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facekit import layers

X_CONV = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
X_DENSE = np.random.default_rng(1).normal(size=(4, 12)).astype(np.float32)


def _conv(**kwargs):
    keras.utils.set_random_seed(kwargs.pop("seed", 0))
    layer = layers.SpectralConv2D(4, 3, padding="same", **kwargs)
    layer.build(X_CONV.shape)
    return layer, X_CONV


def _dense(**kwargs):
    keras.utils.set_random_seed(kwargs.pop("seed", 0))
    layer = layers.SpectralDense(5, **kwargs)
    layer.build(X_DENSE.shape)
    return layer, X_DENSE


BUILDERS = {"conv": _conv, "dense": _dense}


def _numpy_sigma(kernel):
    kernel = np.asarray(kernel, np.float64)
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


def _plain_twin(layer):
    """The parent Keras layer with the same configuration, built, its kernel divided by numpy's sigma."""
    config = {key: value for key, value in layer.get_config().items() if key != "power_iterations"}
    parent = keras.layers.Conv2D if isinstance(layer, keras.layers.Conv2D) else keras.layers.Dense
    plain = parent.from_config({**config, "name": "plain"})
    kernel = layer.kernel.numpy()
    plain.build(X_CONV.shape if len(kernel.shape) == 4 else X_DENSE.shape)
    plain.set_weights([kernel / _numpy_sigma(kernel), layer.bias.numpy()])
    return plain


@pytest.mark.parametrize("kind", BUILDERS)
def test_sigma_converges_to_the_largest_singular_value(kind):
    layer, inputs = BUILDERS[kind]()
    assert layer.u.shape == (1, layer.kernel.shape[-1]) and layer.u.dtype == "float32" and not layer.u.trainable
    assert np.linalg.norm(layer.u.numpy()) == pytest.approx(1, rel=1e-6)
    for _ in range(50):
        layer(inputs, training=True)
    expected = _numpy_sigma(layer.kernel.numpy())  # conv: the [3 * 3 * 3, 4] matrix
    assert float(layer.spectral_norm()) == pytest.approx(expected, rel=1e-4)
    assert layer.spectral_norm().dtype == "float32"


@pytest.mark.parametrize("kind", BUILDERS)
def test_output_equals_the_plain_layer_with_the_kernel_divided_by_sigma(kind):
    layer, inputs = BUILDERS[kind](activation="relu")
    for _ in range(50):
        layer(inputs, training=True)
    layer.bias.assign(np.linspace(-0.5, 0.5, layer.bias.shape[0]))
    np.testing.assert_allclose(layer(inputs), _plain_twin(layer)(inputs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", BUILDERS)
def test_the_kernel_is_changed_only_by_the_optimizer(kind):
    layer, inputs = BUILDERS[kind]()
    initial = layer.kernel.numpy().copy()
    for _ in range(5):
        layer(inputs, training=True)
    assert layer.kernel.numpy().tobytes() == initial.tobytes()
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.square(layer(inputs, training=True)))
    gradient = tape.gradient(total, layer.kernel)
    optimizer.apply_gradients([(gradient, layer.kernel)])
    np.testing.assert_allclose(layer.kernel.numpy(), initial - 0.1 * gradient.numpy(), rtol=1e-6, atol=1e-8)
    assert not np.array_equal(layer.kernel.numpy(), initial)


@pytest.mark.parametrize("kind", BUILDERS)
def test_u_moves_only_in_training_calls(kind):
    layer, inputs = BUILDERS[kind]()
    initial = layer.u.numpy().copy()
    for training in (False, None):
        first = layer(inputs, training=training)
        np.testing.assert_array_equal(layer.u.numpy(), initial)
        np.testing.assert_array_equal(layer(inputs, training=training), first)  # inference is repeatable
    layer(inputs, training=True)
    assert not np.array_equal(layer.u.numpy(), initial)
    model = keras.Sequential([keras.Input(inputs.shape[1:]), layer])
    model.compile(optimizer="sgd", loss="mse")
    before = layer.u.numpy().copy()
    model.predict(inputs, verbose=0)
    model(inputs)
    np.testing.assert_array_equal(layer.u.numpy(), before)
    model.train_on_batch(inputs, np.zeros(model.output_shape[1:], np.float32)[None].repeat(len(inputs), 0))
    assert not np.array_equal(layer.u.numpy(), before)


def test_more_power_iterations_per_call_equal_more_calls():
    three, inputs = _dense(power_iterations=3)
    one, _ = _dense(power_iterations=1)
    np.testing.assert_array_equal(three.u.numpy(), one.u.numpy())  # same seed: same kernel and same u
    three(inputs, training=True)
    for _ in range(3):
        one(inputs, training=True)
    np.testing.assert_allclose(three.u.numpy(), one.u.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="power_iterations must be a whole number of at least 1, got 0"):
        layers.SpectralDense(3, power_iterations=0)


def _numpy_conv(inputs, kernel):
    """A "valid", stride-1 convolution in float64: [B, H, W, C] * [kh, kw, C, O] -> [B, H-kh+1, W-kw+1, O]."""
    windows = np.lib.stride_tricks.sliding_window_view(inputs, kernel.shape[:2], axis=(1, 2))  # [B, i, j, C, kh, kw]
    return np.einsum("bijcxy,xyco->bijo", windows, kernel)


@pytest.mark.parametrize("kind", BUILDERS)
def test_gradients_flow_through_sigma(kind):
    keras.utils.set_random_seed(3)
    if kind == "conv":
        layer, inputs = layers.SpectralConv2D(3, 2), X_CONV[:, :4, :4, :2]  # a tiny kernel [2, 2, 2, 3]
        apply = _numpy_conv
    else:
        layer, inputs = layers.SpectralDense(3), X_DENSE[:, :5]  # a tiny kernel [5, 3]
        apply = np.matmul
    layer.build(inputs.shape)
    kernel, u = layer.kernel.numpy().astype(np.float64), layer.u.numpy().astype(np.float64)
    matrix = kernel.reshape(-1, kernel.shape[-1])
    v = u @ matrix.T / np.linalg.norm(u @ matrix.T)  # one power-iteration step from the stored u, then held fixed
    u = v @ matrix / np.linalg.norm(v @ matrix)

    def total(kernel):  # sum(layer(x)) with sigma(W) = (v W) . u, u and v constants; the bias adds a constant
        sigma = np.sum((v @ kernel.reshape(-1, kernel.shape[-1])) * u)
        return np.sum(apply(inputs.astype(np.float64), kernel / sigma))

    step, expected = 1e-6, np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        plus, minus = kernel.copy(), kernel.copy()
        plus[index] += step
        minus[index] -= step
        expected[index] = (total(plus) - total(minus)) / (2 * step)
    with tf.GradientTape() as tape:
        outputs = layer(inputs, training=True)
        summed = tf.reduce_sum(outputs)
    gradient = tape.gradient(summed, layer.kernel).numpy()
    assert float(summed) == pytest.approx(total(kernel) + np.prod(outputs.shape[:-1]) * layer.bias.numpy().sum(),
                                          rel=1e-5)
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-5)
    # sigma held constant (keras.layers.SpectralNormalization's gradient) gives d/dW sum(f(x, W)) / sigma: different
    sigma = np.sum((v @ matrix) * u)
    constant_sigma = np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        unit = np.zeros_like(kernel)
        unit[index] = 1
        constant_sigma[index] = np.sum(apply(inputs.astype(np.float64), unit)) / sigma
    assert np.abs(gradient - constant_sigma).max() > 0.1 * np.abs(constant_sigma).max()


def _mixed_model(dtype):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        layers.SpectralConv2D(4, 3, strides=2, padding="same", dtype=dtype),  # [B, 4, 4, 4]
        keras.layers.LeakyReLU(0.2, dtype=dtype),
        keras.layers.Flatten(dtype=dtype),  # [B, 64]
        layers.SpectralDense(8, dtype=dtype),  # [B, 8]
        keras.layers.LeakyReLU(0.2, dtype=dtype),
        layers.SpectralDense(1, dtype=dtype),  # [B, 1]
    ])


def _spectral_layers(model):
    return [layer for layer in model.layers if isinstance(layer, (layers.SpectralConv2D, layers.SpectralDense))]


def test_mixed_bfloat16_runs_keeps_u_in_float32_and_reads_the_float32_kernel():
    mixed, plain = _mixed_model("mixed_bfloat16"), _mixed_model("float32")
    plain.set_weights(mixed.get_weights())
    inputs = np.random.default_rng(2).normal(size=(3, 8, 8, 3)).astype(np.float32)
    for _ in range(50):
        outputs = mixed(inputs, training=True)
        plain(inputs, training=True)
    assert outputs.dtype == tf.bfloat16 and outputs.shape == (3, 1)
    for layer, twin in zip(_spectral_layers(mixed), _spectral_layers(plain)):
        assert layer.u.dtype == "float32" and layer.kernel.dtype == "float32" and layer.compute_dtype == "bfloat16"
        assert float(layer.spectral_norm()) == pytest.approx(_numpy_sigma(layer.kernel.numpy()), rel=1e-4)
        # the power iteration inside call saw the float32 kernel: a kernel rounded to bfloat16 there (what
        # layer.kernel gives inside call under this policy) leaves u about 1e-3 away from the float32 layer's u
        np.testing.assert_allclose(layer.u.numpy(), twin.u.numpy(), atol=1e-5)
    np.testing.assert_allclose(tf.cast(mixed(inputs), tf.float32), plain(inputs), rtol=0.05, atol=0.02)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.cast(mixed(inputs, training=True), tf.float32))
    gradients = tape.gradient(total, mixed.trainable_weights)
    assert all(g.dtype == tf.float32 and np.all(np.isfinite(g.numpy())) for g in gradients)


@pytest.mark.parametrize("kind", BUILDERS)
def test_config_round_trip(kind):
    layer, _ = BUILDERS[kind](power_iterations=2, activation="tanh")
    config = layer.get_config()
    assert config["power_iterations"] == 2
    again = type(layer).from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.power_iterations == 2


def _trained_model(seed):
    model = _mixed_model("float32")
    keras.utils.set_random_seed(seed)
    for variable in model.weights:  # a different starting point for every seed, u included
        variable.assign(np.random.default_rng(seed).normal(size=variable.shape) * 0.1)
    for _ in range(3):
        model(np.ones((2, 8, 8, 3), np.float32), training=True)
    return model


def test_weights_files_and_checkpoints_keep_u(tmp_path):
    trained, fresh = _trained_model(0), _trained_model(1)
    inputs = np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype(np.float32)
    names = [variable.path for variable in trained.weights]
    assert sum(name.endswith("/u") for name in names) == 3
    trained.save_weights(tmp_path / "model.weights.h5")
    fresh.load_weights(tmp_path / "model.weights.h5")
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(fresh(inputs), trained(inputs))
    trained.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [type(layer).__name__ for layer in _spectral_layers(loaded)] == ["SpectralConv2D"] + ["SpectralDense"] * 2
    for a, b in zip(trained.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = _trained_model(2)
    path = tf.train.Checkpoint(model=trained).write(str(tmp_path / "checkpoint"))
    tf.train.Checkpoint(model=other).read(path).assert_consumed()
    for a, b in zip(trained.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _operator_norm(layer, input_shape):
    """The largest singular value of the layer's linear map (no bias) on inputs of `input_shape`, from its Jacobian."""
    inputs = tf.zeros((1,) + input_shape)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = tf.reshape(layer(inputs), [-1])
    jacobian = tf.reshape(tape.jacobian(outputs, inputs), (outputs.shape[0], -1)).numpy()
    return np.linalg.svd(jacobian, compute_uv=False)[0]


def test_spectral_norm_makes_a_dense_layer_1_lipschitz_and_only_bounds_a_convolution():
    keras.utils.set_random_seed(0)
    dense = layers.SpectralDense(5, use_bias=False, power_iterations=100)
    dense(X_DENSE, training=True)  # u converges
    assert _operator_norm(dense, (12,)) == pytest.approx(1, abs=1e-4)
    # DCGAN's 4x4 stride-2 convolution: each pixel lies in up to 2x2 patches, so the bound is sqrt(4) = 2, not 1.
    conv = layers.SpectralConv2D(16, 4, strides=2, padding="same", use_bias=False, power_iterations=100,
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=0.02))
    conv(tf.zeros((1, 8, 8, 3)), training=True)
    assert 1.1 < _operator_norm(conv, (8, 8, 3)) <= 2 + 1e-4
