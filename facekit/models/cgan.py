"""cGAN with a projection discriminator (Miyato and Koyama 2018, "cGANs with Projection Discriminator").

The generator is the conditional DCGAN of facekit.models.conditional, G(z, y) on [z, 2y - 1]. The discriminator
scores an image against the labels it is claimed to have:

    D(x, y) = psi(phi(x)) + (2y - 1) . V phi(x)

phi(x) are the discriminator's features [B, F], psi a linear output (how real the image looks at all), and V
[L, F] holds one embedding per attribute, so the second term is large when the image shows what y asks for and
its absences. (2y - 1) lets an absent attribute count against as much as a present one counts for; in the paper y
is one class out of many, and the term is the embedding of that class. Every layer is spectrally normalised and
the loss is the hinge pair, as in the paper: D learns whether image and labels belong together, and G is pushed
to draw what was asked for.
"""

import dataclasses

import keras

from facekit import gan, layers, losses
from facekit.models import conditional
from facekit.training import setting


@dataclasses.dataclass
class CGANConfig(conditional.ConditionalConfig):
    """A projection cGAN run: the paper's Adam (2e-4, betas 0 and 0.9), with one discriminator update a step where
    Miyato and Koyama make five."""

    model: str = "cgan"
    beta_1: float = setting(0.0, "Adam beta_1 of both networks")
    beta_2: float = setting(0.9, "Adam beta_2 of both networks")


class ProjectionGAN(conditional.ConditionalGAN):
    """The engine with a discriminator that reads {"images", "labels"}."""

    def discriminate(self, batch: dict, training: bool = False):
        return self.discriminator({"images": batch["images"], "labels": batch["labels"]}, training=training)


def build_discriminator(resolution: int, filters: int, label_count: int, dtype: str = "float32") -> keras.Model:
    """{"images": [B, R, R, 3] in [-1, 1], "labels": [B, L] of 0/1} -> D(x, y) float32 [B, 1], spectrally
    normalised throughout."""
    images = keras.Input((resolution, resolution, 3), name="images")
    labels = keras.Input((label_count,), name="labels")
    features = conditional.discriminator_features(resolution, filters, dtype, layers.SpectralConv2D)(images)
    features = keras.layers.Activation("linear", dtype="float32")(features)  # phi(x) [B, F], in float32
    unconditional = layers.SpectralDense(1, dtype="float32")(features)  # psi(phi(x)) [B, 1]
    signed = keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32")(labels)  # 2y - 1 [B, L]
    embedded = layers.SpectralDense(features.shape[-1], use_bias=False, dtype="float32")(signed)  # V^T(2y - 1)
    projection = keras.layers.Dot(axes=1, dtype="float32")([features, embedded])  # [B, 1]
    outputs = keras.layers.Add(dtype="float32")([unconditional, projection])
    return keras.Model({"images": images, "labels": labels}, outputs, name="discriminator")


def build(config: CGANConfig) -> ProjectionGAN:
    """The conditional generator and the projection discriminator with the hinge pair, compiled."""
    count = len(config.attributes)
    generator = conditional.build_generator(config.resolution, config.latent_dim, count, config.filters,
                                            config.precision)
    discriminator = build_discriminator(config.resolution, config.filters, count, config.precision)
    model = ProjectionGAN(generator, discriminator, losses.LOSS_PAIRS["hinge"], config.attributes,
                          n_critic=config.n_critic, seed=config.seed, ema_half_life=config.ema_half_life,
                          ema_rampup=config.ema_rampup, name=config.model)
    return gan.compile_gan(model, config)


MODEL = gan.model_spec("cgan", CGANConfig, build)
