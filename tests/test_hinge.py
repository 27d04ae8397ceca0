"""Hinge + spectral norm: every discriminator layer with weights is spectrally normalised."""

from facekit import layers, losses
from facekit.models import hinge

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=4, grid_size=4, precision="float32")


def test_the_discriminator_is_spectrally_normalised_and_the_pair_is_hinge():
    model = hinge.build(hinge.HingeConfig(**TINY))
    weighted = [layer for layer in model.discriminator.layers if layer.weights]
    assert weighted and all(isinstance(layer, (layers.SpectralConv2D, layers.SpectralDense)) for layer in weighted)
    assert model.loss_pair is losses.LOSS_PAIRS["hinge"]
    assert (hinge.HingeConfig().beta_1, hinge.HingeConfig().beta_2, hinge.HingeConfig().learning_rate) == (0, 0.9, 2e-4)
