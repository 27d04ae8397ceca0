"""facekit: the helper package behind the face-generation lessons (data, models, progress GIFs, metrics)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the lessons

from facekit.profiles import Profile, profile  # noqa: E402

__all__ = ["Profile", "profile", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow's ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
