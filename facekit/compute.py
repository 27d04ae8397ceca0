"""Counted work: the multiply-adds of a network's forward pass, of a training step, and what they take on a device.

Profiles are sized by this count, not by hope: a lesson's training work is its steps times the multiply-adds of
one step, and the time it takes is that work over a device's sustained rate (measured on a CPU; assumed, and said,
for a GPU the kit cannot run here). Only Dense, Conv2D and Conv2DTranspose layers are counted: they are nearly all
of a convolutional network's arithmetic (activations, normalisation and additions are left out). A network with a
symbolic graph is counted from its layers (`forward_multiply_adds`); one that runs different layers at different
calls (the growing networks of facekit.models.progan) from the graph that one call traces (`traced_multiply_adds`).
"""

import math

import keras
import tensorflow as tf

# What the full profile's estimates assume of one T4-class GPU under mixed float16: 2e12 multiply-adds a second
# sustained (4 TFLOP/s: half its float32 peak, a sixteenth of its tensor cores' 65 TFLOP/s, since small
# convolutions at batch 64 to 128 keep them far from full). An assumption, not a measurement: no GPU runs here.
T4_MULTIPLY_ADDS_PER_SECOND = 2e12


def forward_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of ONE example through a built `model` (nested models included; a layer
    called twice is counted once)."""
    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            height, width, channels = layer.input.shape[1:]
            total += height * width * math.prod(layer.kernel_size) * channels * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            channels = layer.input.shape[-1]
            total += height * width * math.prod(layer.kernel_size) * channels * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            positions = math.prod(layer.input.shape[1:-1])  # a Dense layer on [B, ..., C] works at every position
            total += positions * layer.input.shape[-1] * layer.units
    return int(total)


def traced_multiply_adds(function, *inputs) -> int:
    """Multiply-adds per example of `function(*inputs)` (inputs with a batch dimension first), read from the graph
    that one call traces: its convolutions (Conv2D; Conv2DBackpropInput, a transposed convolution, counted at its
    input positions as forward_multiply_adds does) and matrix products (MatMul, BatchMatMulV2)."""
    graph = tf.function(function).get_concrete_function(*inputs).graph
    total = 0
    for operation in graph.get_operations():
        if operation.type == "Conv2D":
            total += math.prod(operation.outputs[0].shape) * math.prod(operation.inputs[1].shape[:3])
        elif operation.type == "Conv2DBackpropInput":  # inputs: output size, kernel [h, w, out, in], the input
            total += math.prod(operation.inputs[2].shape) * math.prod(operation.inputs[1].shape[:3])
        elif operation.type in ("MatMul", "BatchMatMulV2"):
            left = operation.inputs[0].shape
            inner = left[-2] if operation.get_attr("transpose_a" if operation.type == "MatMul" else "adj_x") \
                else left[-1]
            total += math.prod(operation.outputs[0].shape) * inner
    return int(total) // int(inputs[0].shape[0])


def supervised_step_multiply_adds(model: keras.Model, batch_size: int) -> int:
    """One optimizer step of a network trained on its own output (a classifier, an autoencoder, a VAE's encoder
    and decoder): a forward pass and its backward pass, taken as twice the forward, for each example."""
    return 3 * forward_multiply_adds(model) * batch_size


def gan_step_multiply_adds(generator: keras.Model, discriminator: keras.Model, batch_size: int, n_critic: int = 1,
                           gradient_penalty: bool = False) -> int:
    """One step of the engine (facekit.gan): n_critic discriminator updates, each drawing B fakes (a forward pass
    of G) and training D on B real and B fake images (forward and backward, 3 passes' worth), plus the gradient
    penalty's pass over B interpolates and its double backward (another 3 passes), then one generator update
    through D on the last fakes (G's backward, 2 passes, and D forward and backward, 3)."""
    return gan_step_work(forward_multiply_adds(generator), forward_multiply_adds(discriminator), batch_size, n_critic,
                         gradient_penalty)


def gan_step_work(generator_forward: int, discriminator_forward: int, batch_size: int, n_critic: int = 1,
                  gradient_penalty: bool = False) -> int:
    """gan_step_multiply_adds from the networks' forward multiply-adds per example (counted either way)."""
    g, d = generator_forward, discriminator_forward
    critic_update = g + 3 * d * 2 + (3 * d if gradient_penalty else 0)
    generator_update = 2 * g + 3 * d
    return (n_critic * critic_update + generator_update) * batch_size


def describe(multiply_adds_per_step: int, steps: int, rate: float = T4_MULTIPLY_ADDS_PER_SECOND,
             device: str = "a T4-class GPU") -> str:
    """A line for a lesson: the training work of `steps` steps and the minutes it takes at `rate` multiply-adds a
    second on `device`."""
    work = multiply_adds_per_step * steps
    return (f"{steps:,} steps x {multiply_adds_per_step / 1e9:.1f} G multiply-adds = {work / 1e12:.0f} T; "
            f"about {work / rate / 60:.0f} minutes on {device} at a sustained {rate / 1e12:g} T a second")


def _leaf_layers(model):
    """Every layer of `model` that is not itself a model, depth first."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer
