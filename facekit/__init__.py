"""facekit: the helper package behind the face-generation lessons (data, models, progress GIFs, metrics)."""

from facekit.profiles import Profile, profile

__all__ = ["Profile", "profile", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow's ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
