"""Super-resolution pairs: the bicubic, antialiased resize against Pillow's (an independent implementation), sizes,
clipping, graph mode and refusals."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from facekit import pairs


def pillow_bicubic(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow's BICUBIC resize (antialiased when shrinking, Keys' a = -0.5) channel by channel, clipped to [-1, 1]."""
    return np.clip(np.stack([np.stack([np.asarray(Image.fromarray(image[..., channel], "F").resize(
        (width, height), Image.BICUBIC)) for channel in range(image.shape[-1])], axis=-1) for image in images]), -1, 1)


def test_downsample_is_the_antialiased_bicubic_resize_pillow_makes():
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 48, 3)).astype(np.float32)
    small = pairs.downsample(images, 4)
    assert small.shape == (2, 16, 12, 3) and small.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(small), pillow_bicubic(images, 16, 12), atol=1e-5)
    # antialiased: pixel noise averages out instead of being sampled
    assert np.abs(np.asarray(small)).mean() < 0.15


def test_resize_bicubic_is_pillows_bicubic_and_stays_in_range():
    rng = np.random.default_rng(1)
    small = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    small[0, :, :8], small[0, :, 8:] = -1, 1  # a sharp edge: bicubic overshoots it
    large = np.asarray(pairs.resize_bicubic(small, 64))
    assert large.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(large, pillow_bicubic(small, 64, 64), atol=1e-5)
    assert large.min() == -1 and large.max() == 1
    assert pairs.resize_bicubic(small, (32, 48)).shape == (2, 32, 48, 3)
    # shrinking, it is downsample's antialiased bicubic (translate shrinks large inputs with it)
    np.testing.assert_array_equal(np.asarray(pairs.resize_bicubic(large, 16)), np.asarray(pairs.downsample(large, 4)))


def test_a_constant_face_stays_constant_and_the_resize_runs_in_a_graph():
    grey = np.full((1, 32, 32, 3), 0.25, np.float32)
    np.testing.assert_allclose(np.asarray(pairs.downsample(grey, 4)), 0.25, atol=1e-6)

    @tf.function
    def round_trip(images):
        return pairs.resize_bicubic(pairs.downsample(images, 4), 32)

    np.testing.assert_allclose(np.asarray(round_trip(tf.constant(grey))), 0.25, atol=1e-6)


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(TypeError, match="float images in \\[-1, 1\\], got uint8.*to_float"):
        pairs.downsample(np.zeros((1, 16, 16, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="18x16 cannot be divided by factor 4"):
        pairs.downsample(np.zeros((1, 18, 16, 3), np.float32), 4)
    with pytest.raises(ValueError, match="factor=0"):
        pairs.downsample(np.zeros((1, 16, 16, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"expected images \[N, H, W, C\]"):
        pairs.resize_bicubic(np.zeros((16, 16, 3), np.float32), 64)
    with pytest.raises(ValueError, match="size=\\(64,\\)"):
        pairs.resize_bicubic(np.zeros((1, 16, 16, 3), np.float32), (64,))
