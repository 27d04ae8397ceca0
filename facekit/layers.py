"""Spectral normalisation (Miyato et al. 2018) as PyTorch's torch.nn.utils.spectral_norm does it.

A layer's kernel, reshaped to a matrix W [fan_in, out_features] (a Conv2D kernel [kh, kw, cin, cout] becomes
[kh * kw * cin, cout]), is divided by its spectral norm sigma(W), the largest singular value of W. A Dense layer is
then exactly 1-Lipschitz. A convolution is not: W / sigma maps each input patch with norm at most 1, but every
pixel lies in several overlapping patches, so the convolution's operator norm is bounded by the square root of how
many (2 for a 4x4 kernel of stride 2, 3 for 3x3 of stride 1), not by 1: 1.38 for a random-initialised 4x4
stride-2 layer from 3 to 16 channels on 8x8 inputs (tests/test_layers.py, from its Jacobian); 1.59, 1.26 and 1.23
for DCGAN's first three layers at 64 filters on 32, 16 and 8 pixels (by power iteration). The discriminator's
Lipschitz constant is kept bounded, which keeps its gradients in check without a gradient penalty, but it is not
held at 1 (Miyato et al. normalise the same reshaped matrix).

sigma is estimated by power iteration from a persistent vector u [1, out_features] (a non-trainable float32
variable): v = normalize(u W^T), u = normalize(v W), sigma = sum((v W) * u). u and v are held constant
(stop_gradient) but sigma is not, so the gradient reaching W includes the term through sigma, as in the paper and
in PyTorch. u is updated only in training calls, so evaluation does not move it.

Why not keras.layers.SpectralNormalization: it assigns the normalised kernel W / sigma back into the wrapped
layer's kernel variable on every training call (so the optimizer's next step starts from W / sigma, not from W,
and the saved kernel is not the trained one), and it computes sigma from values outside the gradient, so no
gradient passes through sigma. `SpectralConv2D` and `SpectralDense` never assign the kernel: they compute the
output with W / sigma, and only the optimizer changes W.

Progressive GAN's layers (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation"), each a small named operation with its own test, as the paper's networks.py keeps them:

    EqualizedConv2D, EqualizedDense   equalised learning rate (section 4.1): weights stored as drawn from N(0, 1) and
                                      multiplied at every call by He's constant gain / sqrt(fan_in), so that Adam,
                                      whose first steps move every weight by about the learning rate whatever its
                                      scale, changes every layer by the same fraction; biases start at zero
    PixelNorm                         pixelwise feature normalisation (section 4.2): each pixel's feature vector
                                      divided by its root mean square, x / sqrt(mean_c(x^2) + 1e-8)
    MinibatchStdDev                   minibatch standard deviation (section 3): one more feature map holding, for
                                      each group of images, the mean over features and pixels of their standard
                                      deviation across the group
    ChannelBias                       a learned bias per channel (the generator's first block adds it after
                                      reshaping its dense layer's output to 4x4)
    fade_in                           the fade-in blend (section 2): (1 - fade) * old + fade * new

Under a mixed policy the equalised layers read their float32 kernel and scale it in float32 (the scale of a
128-channel 3x3 layer, 0.042, and the N(0, 1) weights keep their full precision; only the product is rounded to
the compute dtype), and PixelNorm and MinibatchStdDev compute in float32 and return the compute dtype.
"""

import math

import keras
from keras.src.backend import AutocastScope  # Keras's own switch for reading a variable in its stored dtype

EPSILON = 1e-12  # a vector is divided by max(its norm, EPSILON), as torch.nn.functional.normalize does


class _SpectrallyNormalized:
    """What both layers share: the power_iterations setting, the vector u, sigma's estimate, config and saving."""

    def __init__(self, *args, power_iterations: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.power_iterations = _check_power_iterations(power_iterations)

    def build(self, input_shape):
        super().build(input_shape)
        self.u = _add_u(self)

    def spectral_norm(self):
        """The current estimate of sigma(W), float32 []: `power_iterations` steps from the stored u, u unchanged."""
        return _normalize_and_sigma(self, training=False)[1]

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}

    def save_own_variables(self, store):
        super().save_own_variables(store)  # kernel and bias only
        _save_u(self, store)

    def load_own_variables(self, store):
        super().load_own_variables(store)
        _load_u(self, store)


@keras.saving.register_keras_serializable(package="facekit")
class SpectralConv2D(_SpectrallyNormalized, keras.layers.Conv2D):
    """keras.layers.Conv2D whose kernel is divided by its spectral norm in every call (`power_iterations` steps
    of power iteration per call; the estimate u is stored only when training). Inputs [B, H, W, C] as Conv2D's."""

    def call(self, inputs, training=None):
        return _convolve(self, inputs, _normalize_and_sigma(self, training)[0])


@keras.saving.register_keras_serializable(package="facekit")
class SpectralDense(_SpectrallyNormalized, keras.layers.Dense):
    """keras.layers.Dense whose kernel is divided by its spectral norm in every call (`power_iterations` steps of
    power iteration per call; the estimate u is stored only when training). Inputs [..., features] as Dense's."""

    def call(self, inputs, training=None):
        return _multiply(self, inputs, _normalize_and_sigma(self, training)[0])


@keras.saving.register_keras_serializable(package="facekit")
class EqualizedConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D with an equalised learning rate: kernel [kh, kw, C, filters] drawn from N(0, 1), used
    as kernel * gain / sqrt(kh * kw * C) at every call (`scale`, in float32); bias from zero; "same" padding.
    Inputs [B, H, W, C] as Conv2D's. gain: sqrt(2), He's constant for leaky ReLU (1 for a linear output)."""

    def __init__(self, filters, kernel_size, gain: float = math.sqrt(2), **kwargs):
        kwargs.setdefault("padding", "same")
        kwargs.setdefault("kernel_initializer", keras.initializers.RandomNormal(0.0, 1.0))
        super().__init__(filters, kernel_size, **kwargs)
        self.gain = float(gain)

    @property
    def scale(self) -> float:
        """gain / sqrt(fan_in), fan_in = kh * kw * input channels: what the stored kernel is multiplied by."""
        return _he_scale(self)

    def call(self, inputs):
        return _convolve(self, inputs, _float32_kernel(self) * self.scale)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


@keras.saving.register_keras_serializable(package="facekit")
class EqualizedDense(keras.layers.Dense):
    """keras.layers.Dense with an equalised learning rate: kernel [features, units] drawn from N(0, 1), used as
    kernel * gain / sqrt(features) at every call (`scale`, in float32); bias from zero. Inputs [..., features]."""

    def __init__(self, units, gain: float = math.sqrt(2), **kwargs):
        kwargs.setdefault("kernel_initializer", keras.initializers.RandomNormal(0.0, 1.0))
        super().__init__(units, **kwargs)
        self.gain = float(gain)

    @property
    def scale(self) -> float:
        """gain / sqrt(fan_in), fan_in = input features: what the stored kernel is multiplied by."""
        return _he_scale(self)

    def call(self, inputs):
        return _multiply(self, inputs, _float32_kernel(self) * self.scale)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


@keras.saving.register_keras_serializable(package="facekit")
class PixelNorm(keras.layers.Layer):
    """[B, H, W, C] -> the same shape, each pixel's C features divided by their root mean square:
    x / sqrt(mean_c(x^2) + epsilon), computed in float32 (epsilon 1e-8, the paper's)."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        features = keras.ops.cast(inputs, "float32")
        mean_square = keras.ops.mean(keras.ops.square(features), axis=-1, keepdims=True)
        return keras.ops.cast(features * keras.ops.rsqrt(mean_square + self.epsilon), inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="facekit")
class MinibatchStdDev(keras.layers.Layer):
    """[B, H, W, C] -> [B, H, W, C + 1]: the images split into groups of G = min(group_size, B), image i in group
    i mod (B / G) (the paper's reshape to [G, B / G, ...]); the added feature map holds, at every pixel of every
    image of a group, the mean over the C features and H x W pixels of their standard deviation across the group's
    G images, sqrt(variance + 1e-8), computed in float32. B must be a multiple of G (a ValueError otherwise)."""

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        if int(group_size) != group_size or group_size < 1:
            raise ValueError(f"group_size must be a whole number of at least 1, got {group_size}")
        self.group_size = int(group_size)

    def call(self, inputs):
        batch, height, width, channels = inputs.shape
        if batch is None:  # a symbolic call, only the shape matters
            batch = keras.ops.shape(inputs)[0]
            group = self.group_size
        else:
            group = min(self.group_size, batch)
            if batch % group:
                raise ValueError(f"MinibatchStdDev: a batch of {batch} images does not split into groups of "
                                 f"{group} (group_size {self.group_size}); use a batch size that is a multiple of it")
        features = keras.ops.reshape(keras.ops.cast(inputs, "float32"), (group, -1, height, width, channels))
        deviation = keras.ops.sqrt(keras.ops.var(features, axis=0) + 1e-8)  # [B / G, H, W, C]
        value = keras.ops.mean(deviation, axis=(1, 2, 3))  # [B / G]: one number per group
        value = keras.ops.tile(keras.ops.reshape(value, (1, -1, 1, 1, 1)), (group, 1, height, width, 1))
        value = keras.ops.reshape(value, (batch, height, width, 1))  # image i gets its group's, i mod (B / G)
        return keras.ops.concatenate([inputs, keras.ops.cast(value, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


@keras.saving.register_keras_serializable(package="facekit")
class ChannelBias(keras.layers.Layer):
    """[..., C] -> the same plus a learned bias per channel, float32 [C] from zero."""

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.bias, inputs.dtype)


def fade_in(old, new, fade):
    """The fade-in blend (1 - fade) * old + fade * new of two tensors of one shape (or broadcasting), fade a
    number or tensor in [0, 1]: the old path's output while fade = 0, the new one's at fade = 1."""
    fade = keras.ops.cast(fade, new.dtype)
    return (1.0 - fade) * keras.ops.cast(old, new.dtype) + fade * new


def _convolve(layer, inputs, kernel):
    """A Conv2D layer's output with `kernel` (float32, cast to the compute dtype) in place of its own: the
    convolution, the layer's bias and activation."""
    outputs = layer.convolution_op(inputs, keras.ops.cast(kernel, layer.compute_dtype))
    if layer.use_bias:
        if layer.data_format == "channels_last":
            bias_shape = (1,) * (layer.rank + 1) + (layer.filters,)
        else:
            bias_shape = (1, layer.filters) + (1,) * layer.rank
        outputs = keras.ops.add(outputs, keras.ops.reshape(layer.bias, bias_shape))
    return outputs if layer.activation is None else layer.activation(outputs)


def _multiply(layer, inputs, kernel):
    """A Dense layer's output with `kernel` (float32, cast to the compute dtype) in place of its own."""
    outputs = keras.ops.matmul(inputs, keras.ops.cast(kernel, layer.compute_dtype))
    if layer.bias is not None:
        outputs = keras.ops.add(outputs, layer.bias)
    return outputs if layer.activation is None else layer.activation(outputs)


def _he_scale(layer) -> float:
    """He's constant gain / sqrt(fan_in) of a built layer, fan_in = all kernel dimensions but the last."""
    return layer.gain / math.sqrt(math.prod(layer._kernel.shape[:-1]))


def _check_power_iterations(power_iterations) -> int:
    if int(power_iterations) != power_iterations or power_iterations < 1:
        raise ValueError(f"power_iterations must be a whole number of at least 1, got {power_iterations}")
    return int(power_iterations)


def _add_u(layer):
    """The power-iteration vector u: non-trainable float32 [1, out_features], a random unit vector at first."""
    out_features = layer._kernel.shape[-1]
    normal = keras.initializers.RandomNormal(stddev=1.0)  # seeded from Python's random: keras.utils.set_random_seed

    def unit_normal(shape, dtype=None):
        return _l2_normalize(normal(shape, dtype=dtype))

    return layer.add_weight(name="u", shape=(1, out_features), initializer=unit_normal, dtype="float32",
                            trainable=False, autocast=False)


def _float32_kernel(layer):
    """The kernel variable's own float32 value. Under a mixed policy Keras autocasts every float variable read
    inside call (`layer.kernel`, `layer._kernel.value` and `convert_to_tensor(layer._kernel)` are all bfloat16
    there), so the read is made with autocasting switched off."""
    with AutocastScope(None):
        return keras.ops.cast(keras.ops.convert_to_tensor(layer._kernel), "float32")


def _normalize_and_sigma(layer, training):
    """(W / sigma as the kernel's shape, sigma), both float32; stores the new u when `training` is truthy."""
    kernel = _float32_kernel(layer)
    matrix = keras.ops.reshape(kernel, (-1, kernel.shape[-1]))  # [fan_in, out_features]
    u = keras.ops.convert_to_tensor(layer.u)
    for _ in range(layer.power_iterations):
        v = _l2_normalize(keras.ops.matmul(u, keras.ops.transpose(matrix)))  # [1, fan_in]
        u = _l2_normalize(keras.ops.matmul(v, matrix))  # [1, out_features]
    u = keras.ops.stop_gradient(u)
    v = keras.ops.stop_gradient(v)
    sigma = keras.ops.sum(keras.ops.matmul(v, matrix) * u)  # gradients reach W through here
    if training:
        layer.u.assign(u)
    return kernel / sigma, sigma


def _l2_normalize(vector):
    return vector / keras.ops.maximum(keras.ops.sqrt(keras.ops.sum(keras.ops.square(vector))), EPSILON)


def _save_u(layer, store):
    if layer.built:
        store[str(len(store.keys()))] = layer.u


def _load_u(layer, store):
    if layer.built:
        layer.u.assign(store[str(len(store.keys()) - 1)])
