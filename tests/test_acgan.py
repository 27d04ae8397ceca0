"""ACGAN's losses against an independent computation from the discriminator's two heads, and the choice of
training the auxiliary classifier on real faces only."""

import numpy as np
import pytest
import tensorflow as tf

from facekit.models import acgan

TINY = dict(resolution=32, latent_dim=8, filters=4, precision="float32", attributes=("Male", "Smiling"))


def softplus(values):
    return np.logaddexp(0.0, values)


def cross_entropy(labels, logits):
    """Binary cross-entropy from logits, by hand: -(y log s + (1 - y) log(1 - s)) = softplus(l) - y l."""
    return np.mean(softplus(logits) - labels * logits)


def batches(seed=0):
    real = {"images": tf.random.stateless_uniform((4, 32, 32, 3), [seed, 1], -1, 1),
            "labels": tf.constant([[1, 0], [0, 1], [1, 1], [0, 0]], tf.float32)}
    fake = {"images": tf.random.stateless_uniform((4, 32, 32, 3), [seed, 2], -1, 1),
            "labels": tf.constant([[0, 0], [1, 1], [1, 0], [0, 1]], tf.float32)}
    return real, fake


@pytest.mark.parametrize("fake_weight", [0.0, 1.0])
def test_the_losses_are_the_adversarial_pair_plus_the_auxiliary_cross_entropy(fake_weight):
    tf.keras.utils.set_random_seed(0)
    model = acgan.build(acgan.ACGANConfig(**TINY, auxiliary_weight=0.7, fake_auxiliary_weight=fake_weight))
    real, fake = batches()
    d_loss, logs = model.discriminator_loss(real, fake, tf.constant(0, tf.int64), 0)
    g_loss, g_logs = model.generator_loss(real, fake)

    real_out = {name: value.numpy() for name, value in model.discriminator(real["images"]).items()}
    fake_out = {name: value.numpy() for name, value in model.discriminator(fake["images"]).items()}
    adversarial_d = np.mean(softplus(-real_out["adversarial"])) + np.mean(softplus(fake_out["adversarial"]))
    auxiliary_real = cross_entropy(real["labels"].numpy(), real_out["auxiliary"])
    auxiliary_fake = cross_entropy(fake["labels"].numpy(), fake_out["auxiliary"])
    expected_d = adversarial_d + 0.7 * auxiliary_real + 0.7 * fake_weight * auxiliary_fake
    expected_g = np.mean(softplus(-fake_out["adversarial"])) + 0.7 * auxiliary_fake
    assert float(d_loss) == pytest.approx(expected_d, rel=1e-5)
    assert float(logs["auxiliary_real"]) == pytest.approx(auxiliary_real, rel=1e-5)
    assert float(g_loss) == pytest.approx(expected_g, rel=1e-5)
    assert float(g_logs["auxiliary_fake"]) == pytest.approx(auxiliary_fake, rel=1e-5)


def test_by_default_the_discriminator_ignores_the_labels_fakes_were_drawn_with():
    tf.keras.utils.set_random_seed(0)
    default = acgan.build(acgan.ACGANConfig(**TINY))
    real, fake = batches()
    relabelled = {**fake, "labels": 1 - fake["labels"]}
    step = tf.constant(0, tf.int64)
    assert float(default.discriminator_loss(real, fake, step, 0)[0]) == float(
        default.discriminator_loss(real, relabelled, step, 0)[0])
    papers = acgan.build(acgan.ACGANConfig(**TINY, fake_auxiliary_weight=1.0))
    assert float(papers.discriminator_loss(real, fake, step, 0)[0]) != pytest.approx(
        float(papers.discriminator_loss(real, relabelled, step, 0)[0]), rel=1e-6)


def test_the_auxiliary_loss_is_binary_cross_entropy_per_attribute():
    labels = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    logits = np.array([[2.0, -1.0, 0.5], [-3.0, 4.0, 0.0]], np.float32)
    assert float(acgan.auxiliary_loss(labels, logits)) == pytest.approx(cross_entropy(labels, logits), rel=1e-6)
    with pytest.raises(ValueError, match="at least 0"):
        acgan.ACGANConfig(fake_auxiliary_weight=-1.0)
