"""WGAN-GP: the critic has no batch norm and stays float32 under mixed precision; the penalty is logged."""

import numpy as np
import tensorflow as tf

from facekit import losses
from facekit.models import wgan_gp

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=4, grid_size=4)


def test_the_critic_is_float32_without_batch_norm_even_when_the_generator_is_mixed():
    model = wgan_gp.build(wgan_gp.WGANGPConfig(precision="mixed_bfloat16", **TINY))
    assert model.generator.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert {layer.dtype_policy.name for layer in model.discriminator.layers} == {"float32"}
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in model.discriminator.layers)
    assert model.loss_pair is losses.LOSS_PAIRS["wasserstein"] and model.gradient_penalty_weight == 10.0


def test_a_step_logs_the_penalty_and_the_critics_gradient_norm():
    tf.keras.utils.set_random_seed(0)
    model = wgan_gp.build(wgan_gp.WGANGPConfig(precision="float32", n_critic=2, **TINY))
    logs = model.train_on_batch({"images": tf.random.stateless_uniform((8, 32, 32, 3), [0, 0], -1, 1)},
                                return_dict=True)
    assert int(model.discriminator_optimizer.iterations) == 2
    # a fresh critic with small weights has input gradients far below 1, so the penalty is near (0 - 1)^2 = 1
    assert 0 < logs["gradient_norm"] < 0.5 and 0.25 < logs["gradient_penalty"] <= 1
    wasserstein = logs["d_fake"] - logs["d_real"]
    np.testing.assert_allclose(logs["d_loss"], wasserstein + 10 * logs["gradient_penalty"], rtol=1e-4)
