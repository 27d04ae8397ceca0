"""LSGAN: DCGAN's networks with the least-squares pair on a linear output."""

import numpy as np
import tensorflow as tf

from facekit import losses
from facekit.models import lsgan

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=4, grid_size=4, precision="float32")


def test_lsgan_logs_raw_outputs_and_its_losses_are_least_squares():
    tf.keras.utils.set_random_seed(0)
    model = lsgan.build(lsgan.LSGANConfig(**TINY))
    assert model.loss_pair is losses.LOSS_PAIRS["least_squares"]
    assert model.discriminator.layers[-1].activation.__name__ == "linear"
    real = tf.random.stateless_uniform((4, 32, 32, 3), [0, 0], -1, 1)
    logs = model.train_on_batch({"images": real}, return_dict=True)
    # the logged means are raw outputs (no sigmoid); at initialisation they sit near 0, so D loss ~ 0.5 (1 - 0)^2
    assert abs(logs["d_real"]) < 0.1 and abs(logs["d_fake"]) < 0.1
    np.testing.assert_allclose(logs["d_loss"], 0.5, atol=0.1)
