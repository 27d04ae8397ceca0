"""WGAN-GP (Gulrajani et al. 2017): a critic estimates the Wasserstein distance, kept 1-Lipschitz by a penalty.

    critic loss = E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2],  x_hat = x + alpha (G(z) - x)
    G loss      = -E[D(G(z))]

alpha ~ U(0, 1) per image, lambda = 10, five critic updates per generator update, Adam 1e-4 with betas (0, 0.9),
as in the paper. The critic is DCGAN's discriminator, which has no batch norm (batch norm would make each image's
gradient depend on the rest of the batch, which the per-image penalty forbids). Mixed precision: the generator
may run in bfloat16, but the critic and the penalty always run in float32 (second derivatives in bfloat16 are
too coarse for a penalty that must hold the norm at 1).
"""

import dataclasses

from facekit import gan, losses
from facekit.models import dcgan
from facekit.training import setting


@dataclasses.dataclass
class WGANGPConfig(dcgan.DCGANConfig):
    """A WGAN-GP run: the paper's optimiser, critic updates and penalty weight."""

    model: str = "wgan-gp"
    learning_rate: float = setting(1e-4, "Adam learning rate of both networks")
    beta_1: float = setting(0.0, "Adam beta_1 of both networks")
    beta_2: float = setting(0.9, "Adam beta_2 of both networks")
    n_critic: int = setting(5, "critic updates per generator update (each on its own real sub-batch)")
    gradient_penalty_weight: float = setting(10.0, "lambda: weight of the gradient penalty")


def build(config: WGANGPConfig) -> gan.GAN:
    """DCGAN's generator and a float32 critic with the Wasserstein pair and the gradient penalty, compiled."""
    critic = dcgan.build_discriminator(config.resolution, config.filters, "float32")
    return dcgan.build(config, losses.LOSS_PAIRS["wasserstein"], discriminator=critic,
                       gradient_penalty_weight=config.gradient_penalty_weight)


MODEL = gan.model_spec("wgan-gp", WGANGPConfig, build)
