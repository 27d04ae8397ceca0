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
"""

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
        kernel = keras.ops.cast(_normalize_and_sigma(self, training)[0], self.compute_dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, bias_shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="facekit")
class SpectralDense(_SpectrallyNormalized, keras.layers.Dense):
    """keras.layers.Dense whose kernel is divided by its spectral norm in every call (`power_iterations` steps of
    power iteration per call; the estimate u is stored only when training). Inputs [..., features] as Dense's."""

    def call(self, inputs, training=None):
        kernel = keras.ops.cast(_normalize_and_sigma(self, training)[0], self.compute_dtype)
        outputs = keras.ops.matmul(inputs, kernel)
        if self.bias is not None:
            outputs = keras.ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


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
