"""SNGAN (Miyato et al. 2018): the hinge loss with spectral normalisation in the discriminator.

    D loss = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
    G loss = -E[D(G(z))]

Every discriminator layer divides its kernel by its largest singular value sigma (facekit.layers): a dense layer
is then 1-Lipschitz and a convolution at most sqrt(patches per pixel)-Lipschitz (2 for DCGAN's 4x4 stride-2
layers), so the network's Lipschitz constant is bounded, though not 1 as WGAN-GP's penalty aims for, at the cost
of one power-iteration step per layer instead of a second backward pass. Adam 2e-4 with betas (0, 0.9) is the
optimiser of Miyato et al.'s ResNet runs, which pair it with five discriminator updates per generator update
(`--n-critic 5`); the default here is one update, cheaper, and not their setting.
"""

import dataclasses

from facekit import gan, layers, losses
from facekit.models import dcgan
from facekit.training import setting


@dataclasses.dataclass
class HingeConfig(dcgan.DCGANConfig):
    """A hinge + spectral-norm run: Miyato et al.'s Adam rate and betas, with one discriminator update a step."""

    model: str = "hinge"
    beta_1: float = setting(0.0, "Adam beta_1 of both networks")
    beta_2: float = setting(0.9, "Adam beta_2 of both networks")


def build(config: HingeConfig) -> gan.GAN:
    """DCGAN's generator and a spectrally normalised discriminator with the hinge pair, compiled."""
    discriminator = dcgan.build_discriminator(config.resolution, config.filters, config.precision,
                                              convolution=layers.SpectralConv2D, dense=layers.SpectralDense)
    return dcgan.build(config, losses.LOSS_PAIRS["hinge"], discriminator=discriminator)


MODEL = gan.model_spec("hinge", HingeConfig, build)
