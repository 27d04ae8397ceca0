"""Small faces paired with large ones for super-resolution: the bicubic, antialiased `tf.image.resize` that makes the
low-resolution inputs, and the same resize to any size (upwards: the bicubic baseline every super-resolution network
must beat).

Images are float [N, H, W, C] in [-1, 1] (facekit.data.to_float); results are float32 tf.Tensors clipped to [-1, 1]
(bicubic overshoots at sharp edges), usable eagerly (np.asarray(result)) and inside tf.function or tf.data.
"""

import numbers

import tensorflow as tf


def downsample(images, factor: int) -> tf.Tensor:
    """images float [N, H, W, C] in [-1, 1] -> float32 [N, H / factor, W / factor, C]: bicubic, antialiased."""
    images = _checked_float_images(images, "downsample")
    if not isinstance(factor, numbers.Integral) or factor < 1:
        raise ValueError(f"downsample: factor={factor!r}: expected a whole number >= 1, such as 4")
    height, width = images.shape[1:3]
    if height is not None and width is not None and (height % factor or width % factor):
        raise ValueError(f"downsample: images of {height}x{width} cannot be divided by factor {factor}")
    size = (tf.shape(images)[1] // int(factor), tf.shape(images)[2] // int(factor))
    return _resized(images, size)


def resize_bicubic(images, size) -> tf.Tensor:
    """images float [N, h, w, C] in [-1, 1] -> float32 [N, size, size, C] (size an int, or (height, width)),
    bicubic and antialiased: enlarging, the bicubic baseline of super-resolution; shrinking, as `downsample`."""
    images = _checked_float_images(images, "resize_bicubic")
    size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if len(size) != 2 or not all(isinstance(side, numbers.Integral) and side >= 1 for side in size):
        raise ValueError(f"resize_bicubic: size={size!r}: expected a side in pixels or (height, width)")
    return _resized(images, size)


def _resized(images: tf.Tensor, size) -> tf.Tensor:
    resized = tf.image.resize(images, size, method="bicubic", antialias=True)
    return tf.clip_by_value(resized, -1.0, 1.0)


def _checked_float_images(images, caller: str) -> tf.Tensor:
    """images as a float32 tensor [N, H, W, C]; a clear error for integer pixels or another rank."""
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(f"{caller}: expected float images in [-1, 1], got {images.dtype.name}; convert uint8 pixels "
                        f"with facekit.data.to_float")
    if images.shape.rank != 4:
        raise ValueError(f"{caller}: expected images [N, H, W, C], got shape {images.shape}")
    return tf.cast(images, tf.float32)
