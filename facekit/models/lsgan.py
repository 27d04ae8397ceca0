"""LSGAN (Mao et al. 2017): the DCGAN networks with the least-squares loss pair on a linear output.

    D loss = 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]        (targets b = 1 for real, a = 0 for fake)
    G loss = 1/2 E[(D(G(z)) - 1)^2]                        (target c = 1: G wants its fakes read as real)

A fake the discriminator already calls real (D(G(z)) above 1/2) keeps the gradient D(G(z)) - 1 until it reaches
the target 1, so it is still moved towards where D puts real faces; the non-saturating loss's gradient,
-(1 - sigmoid(D(G(z)))), vanishes on fakes the discriminator confidently calls real.
"""

import dataclasses

from facekit import gan, losses
from facekit.models import dcgan


@dataclasses.dataclass
class LSGANConfig(dcgan.DCGANConfig):
    """An LSGAN run: DCGAN's networks and Adam settings, the least-squares loss pair."""

    model: str = "lsgan"


def build(config: LSGANConfig) -> gan.GAN:
    """The DCGAN networks with the least-squares loss pair, compiled."""
    return dcgan.build(config, losses.LOSS_PAIRS["least_squares"])


MODEL = gan.model_spec("lsgan", LSGANConfig, build)
