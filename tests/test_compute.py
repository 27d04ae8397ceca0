"""Counted work: multiply-adds against a hand count on a tiny network, and the engine step's formula."""

import keras
import pytest

from facekit import compute
from facekit.models import dcgan, progan


def tiny_network() -> keras.Model:
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(5, 3, padding="same")(inputs)                 # 8*8 positions * 3*3*2 * 5 = 5,760
    x = keras.layers.Conv2D(4, 4, strides=2, padding="same")(x)           # 4*4 * 4*4*5 * 4 = 5,120
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same")(x)  # 4*4 inputs * 4*4*4 * 3 = 3,072
    x = keras.layers.ReLU()(x)                                            # not counted
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Dense(6)], name="inner")  # 8*8 * 3*6 = 1,152
    x = keras.layers.Flatten()(inner(x))
    outputs = keras.layers.Dense(1)(x)                                    # 384 * 1 = 384
    return keras.Model(inputs, outputs)


def test_forward_multiply_adds_match_a_hand_count():
    assert compute.forward_multiply_adds(tiny_network()) == 5760 + 5120 + 3072 + 1152 + 384


def test_the_dcgan_generator_matches_its_hand_count():
    """DCGAN's 32x32 generator at width f: Dense 100 -> 4*4*8f, then 4x4 transposed convolutions of stride 2
    (counted at their input positions) 8f -> 4f -> 2f -> 3; batch norm and ReLU not counted."""
    f = 8
    generator = dcgan.build_generator(32, 100, f)
    hand = 100 * 4 * 4 * 8 * f + 4 * 4 * 16 * 8 * f * 4 * f + 8 * 8 * 16 * 4 * f * 2 * f + 16 * 16 * 16 * 2 * f * 3
    assert compute.forward_multiply_adds(generator) == hand


def test_engine_step_counts_each_pass():
    generator, discriminator = tiny_network(), tiny_network()
    g = d = compute.forward_multiply_adds(generator)
    assert compute.gan_step_multiply_adds(generator, discriminator, 4) == 4 * (g + 6 * d + 2 * g + 3 * d)
    assert compute.gan_step_multiply_adds(generator, discriminator, 4, n_critic=5, gradient_penalty=True) == \
        4 * (5 * (g + 9 * d) + 2 * g + 3 * d)
    assert compute.supervised_step_multiply_adds(generator, 4) == 12 * g


def test_describe_gives_work_and_minutes():
    line = compute.describe(int(2e9), 6000, rate=1e11, device="a test device")
    assert line.startswith("6,000 steps x 2.0 G multiply-adds = 12 T; about 2 minutes on a test device")


@pytest.mark.parametrize("network", ["tiny", "dcgan generator", "dcgan discriminator"])
def test_the_traced_count_matches_the_layer_count(network):
    model = {"tiny": tiny_network, "dcgan generator": lambda: dcgan.build_generator(32, 100, 8),
             "dcgan discriminator": lambda: dcgan.build_discriminator(32, 8)}[network]()
    inputs = keras.random.normal((2, *model.input_shape[1:]), seed=0)
    assert compute.traced_multiply_adds(model, inputs) == compute.forward_multiply_adds(model)


def test_the_traced_count_of_a_growing_generator_matches_its_hand_count():
    """ProGAN's generator at 8x8 (latent 8, 8 channels), mid-fade: the 4x4 dense and 3x3 conv, the 8x8 block's two
    3x3 convs, the 8x8 toRGB and the 4x4 toRGB the fade blends in; no symbolic graph to count from layers."""
    generator = progan.Generator(resolution=8, latent_dim=8, filters=8, filter_base=64)
    noise = keras.random.normal((4, 8), seed=0)
    generator(noise, resolution=8, fade=0.5)
    hand = 8 * 4 * 4 * 8 + 4 * 4 * 9 * 8 * 8 + 2 * 8 * 8 * 9 * 8 * 8 + 8 * 8 * 8 * 3 + 4 * 4 * 8 * 3
    assert compute.traced_multiply_adds(lambda z: generator(z, resolution=8, fade=0.5), noise) == hand
    at_four = 8 * 4 * 4 * 8 + 4 * 4 * 9 * 8 * 8 + 4 * 4 * 8 * 3
    assert compute.traced_multiply_adds(lambda z: generator(z, resolution=4), noise) == at_four
