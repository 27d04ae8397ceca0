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


# Progressive GAN's layers: each against a hand computation on fixed inputs.

X_FEATURES = np.random.default_rng(5).normal(2.0, 3.0, size=(2, 3, 3, 5)).astype(np.float32)


def test_pixel_norm_gives_each_pixels_feature_vector_unit_rms():
    outputs = np.asarray(layers.PixelNorm()(X_FEATURES))
    expected = X_FEATURES / np.sqrt(np.mean(X_FEATURES.astype(np.float64) ** 2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.mean(outputs**2, axis=-1)), 1.0, rtol=1e-5)  # every pixel of every image
    mixed = layers.PixelNorm(dtype="mixed_bfloat16")(X_FEATURES)
    assert mixed.dtype == tf.bfloat16
    np.testing.assert_allclose(np.asarray(tf.cast(mixed, tf.float32)), expected, rtol=1e-2, atol=1e-2)


def _group_deviation(images, members):
    """By hand: the mean over features and pixels of the images' standard deviation across `members`."""
    group = images[list(members)].astype(np.float64)
    return np.mean(np.sqrt(np.mean((group - group.mean(axis=0)) ** 2, axis=0) + 1e-8))


def test_minibatch_stddev_adds_each_groups_mean_standard_deviation():
    scales = np.arange(1, 9)[:, None, None, None]  # every image its own spread
    images = (np.random.default_rng(6).normal(size=(8, 2, 3, 5)) * scales).astype(np.float32)
    outputs = np.asarray(layers.MinibatchStdDev(group_size=4)(images))
    assert outputs.shape == (8, 2, 3, 6)
    np.testing.assert_array_equal(outputs[..., :5], images)
    # groups of 4 images as the paper reshapes a batch to [4, 2, ...]: images 0, 2, 4, 6 and 1, 3, 5, 7
    for members in ((0, 2, 4, 6), (1, 3, 5, 7)):
        for index in members:
            np.testing.assert_allclose(outputs[index, ..., 5], _group_deviation(images, members), rtol=1e-5)
    pairs = np.asarray(layers.MinibatchStdDev(group_size=2)(images))  # groups 0 and 4, 1 and 5, 2 and 6, 3 and 7
    for first in range(4):
        for index in (first, first + 4):
            np.testing.assert_allclose(pairs[index, ..., 5], _group_deviation(images, (first, first + 4)), rtol=1e-5)
    whole = np.asarray(layers.MinibatchStdDev(group_size=16)(images))  # at most the batch: one group of 8
    np.testing.assert_allclose(whole[..., 5], _group_deviation(images, range(8)), rtol=1e-5)
    with pytest.raises(ValueError, match="a batch of 6 images does not split into groups of 4"):
        layers.MinibatchStdDev(group_size=4)(images[:6])


def test_equalized_layers_scale_n01_weights_by_hes_constant_at_run_time():
    keras.utils.set_random_seed(0)
    conv = layers.EqualizedConv2D(4, 3)
    conv.build(X_FEATURES.shape)
    assert conv.scale == pytest.approx(np.sqrt(2 / (3 * 3 * 5)))
    conv.bias.assign([0.1, -0.2, 0.3, 0.0])
    expected = tf.nn.conv2d(X_FEATURES, conv.kernel.numpy() * np.sqrt(2 / 45), 1, "SAME") + conv.bias.numpy()
    np.testing.assert_allclose(conv(X_FEATURES), expected, rtol=1e-5, atol=1e-5)
    to_rgb = layers.EqualizedConv2D(3, 1, gain=1.0)
    to_rgb.build(X_FEATURES.shape)
    assert to_rgb.scale == pytest.approx(1 / np.sqrt(5))
    dense = layers.EqualizedDense(256)
    dense.build((None, 512))
    assert dense.scale == pytest.approx(np.sqrt(2 / 512))
    stored = dense.kernel.numpy()  # 131,072 weights drawn from N(0, 1), kept so
    assert abs(stored.mean()) < 0.01 and stored.std() == pytest.approx(1, abs=0.01)
    assert not dense.bias.numpy().any()
    inputs = X_DENSE[:, :12] @ np.ones((12, 512), np.float32) / 12
    np.testing.assert_allclose(dense(inputs), inputs @ (stored * np.sqrt(2 / 512)), rtol=1e-4, atol=1e-5)


def _relative_change_of_effective_weights(layer, fan_in):
    """One Adam step (the paper's betas) on a fixed loss: |change of the weights the layer applies| / |them|, the
    applied weights read from its outputs on the identity matrix (the layers have no bias)."""
    inputs = np.random.default_rng(7).normal(size=(32, fan_in)).astype(np.float32)
    targets = np.random.default_rng(8).normal(size=(32, 64)).astype(np.float32)
    layer.build(inputs.shape)
    identity = np.eye(fan_in, dtype=np.float32)
    before = np.asarray(layer(identity))
    optimizer = keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs) * targets)
    optimizer.apply_gradients([(tape.gradient(loss, layer.kernel), layer.kernel)])
    return np.linalg.norm(np.asarray(layer(identity)) - before) / np.linalg.norm(before)


def test_adams_first_step_changes_every_equalized_layer_by_the_same_fraction():
    keras.utils.set_random_seed(0)
    narrow, wide = layers.EqualizedDense(64, use_bias=False), layers.EqualizedDense(64, use_bias=False)
    ratio = _relative_change_of_effective_weights(narrow, 16) / _relative_change_of_effective_weights(wide, 1024)
    assert ratio == pytest.approx(1, abs=0.1)
    # He-initialised plain layers (the scale folded into the starting weights): Adam moves every weight by about
    # the learning rate, so the narrow layer, whose weights are 8 times larger, changes 8 times less
    plain = [keras.layers.Dense(64, use_bias=False, kernel_initializer=keras.initializers.HeNormal(seed=index))
             for index in range(2)]
    ratio = _relative_change_of_effective_weights(plain[0], 16) / _relative_change_of_effective_weights(plain[1], 1024)
    assert ratio == pytest.approx(1 / 8, rel=0.15)


def test_equalized_layers_under_mixed_precision_scale_the_float32_kernel():
    keras.utils.set_random_seed(0)
    mixed = layers.EqualizedConv2D(4, 3, dtype="mixed_bfloat16")
    plain = layers.EqualizedConv2D(4, 3)
    mixed.build(X_FEATURES.shape), plain.build(X_FEATURES.shape)
    plain.set_weights(mixed.get_weights())
    assert mixed.kernel.dtype == "float32"
    outputs = mixed(X_FEATURES)
    assert outputs.dtype == tf.bfloat16
    np.testing.assert_allclose(np.asarray(tf.cast(outputs, tf.float32)), plain(X_FEATURES), rtol=0.02, atol=0.05)


def test_fade_in_is_the_linear_blend_of_old_and_new():
    old, new = np.full((1, 2, 2, 3), 2.0, np.float32), np.full((1, 2, 2, 3), -1.0, np.float32)
    for fade, expected in ((0.0, 2.0), (0.5, 0.5), (1.0, -1.0), (0.25, 1.25)):
        np.testing.assert_allclose(layers.fade_in(old, new, fade), np.full((1, 2, 2, 3), expected), rtol=1e-6)


def test_progressive_layers_round_trip_their_config():
    for layer in (layers.EqualizedConv2D(3, 1, gain=1.0), layers.EqualizedDense(5, gain=0.5), layers.PixelNorm(),
                  layers.MinibatchStdDev(group_size=2), layers.ChannelBias()):
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(restored) is type(layer) and restored.get_config() == layer.get_config()
