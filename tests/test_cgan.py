"""The projection discriminator: D(x, y) = psi(phi(x)) + (2y - 1) . V phi(x), checked against the layers' own
spectrally normalised weights, and the paper's settings."""

import numpy as np
import tensorflow as tf

from facekit import layers
from facekit.models import cgan


def test_the_projection_discriminator_computes_the_papers_formula():
    tf.keras.utils.set_random_seed(0)
    discriminator = cgan.build_discriminator(32, 4, label_count=3)
    images = tf.random.stateless_uniform((5, 32, 32, 3), [0, 1], -1, 1)
    labels = tf.constant([[1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, 1]], tf.float32)
    outputs = discriminator({"images": images, "labels": labels}).numpy()

    features = discriminator.get_layer("features")(images).numpy()  # phi(x) [5, F]
    psi, embedding = psi_and_embedding(discriminator)

    def normalised(layer):
        kernel = layer.kernel.numpy()
        return kernel / np.linalg.svd(kernel, compute_uv=False)[0]

    unconditional = features @ normalised(psi) + psi.bias.numpy()
    projection = np.sum(((2 * labels.numpy() - 1) @ normalised(embedding)) * features, axis=1, keepdims=True)
    # sigma from one power-iteration step of a fresh u is an estimate: close to the SVD's, not equal
    np.testing.assert_allclose(outputs, unconditional + projection, rtol=0.05, atol=1e-3)
    sigma = lambda layer: float(layer.spectral_norm())  # noqa: E731
    exact = (features @ (psi.kernel.numpy() / sigma(psi)) + psi.bias.numpy()
             + np.sum(((2 * labels.numpy() - 1) @ (embedding.kernel.numpy() / sigma(embedding))) * features,
                      axis=1, keepdims=True))
    np.testing.assert_allclose(outputs, exact, rtol=1e-4, atol=1e-5)


def test_switching_one_label_moves_the_score_by_twice_that_attributes_projection():
    tf.keras.utils.set_random_seed(1)
    discriminator = cgan.build_discriminator(32, 4, label_count=2)
    images = tf.random.stateless_uniform((3, 32, 32, 3), [2, 1], -1, 1)
    without = discriminator({"images": images, "labels": tf.constant([[0.0, 1.0]] * 3)}).numpy()
    with_first = discriminator({"images": images, "labels": tf.constant([[1.0, 1.0]] * 3)}).numpy()
    features = discriminator.get_layer("features")(images).numpy()
    _, embedding = psi_and_embedding(discriminator)
    row = embedding.kernel.numpy()[0] / float(embedding.spectral_norm())
    np.testing.assert_allclose(with_first - without, 2 * features @ row[:, None], rtol=1e-4, atol=1e-5)


def test_cgan_uses_the_hinge_pair_and_sngans_adam():
    config = cgan.CGANConfig()
    assert (config.learning_rate, config.beta_1, config.beta_2) == (2e-4, 0.0, 0.9)
    model = cgan.build(cgan.CGANConfig(resolution=32, latent_dim=8, filters=4, precision="float32"))
    assert model.loss_pair.name == "hinge"
    assert model.attributes == cgan.CGANConfig().attributes


def psi_and_embedding(discriminator):
    """The unconditional output psi (one unit) and the label embedding V, both SpectralDense."""
    dense = [layer for layer in discriminator.layers if isinstance(layer, layers.SpectralDense)]
    return sorted(dense, key=lambda layer: layer.units)
