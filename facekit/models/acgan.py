"""ACGAN (Odena, Olah and Shlens 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs").

The generator is the conditional DCGAN of facekit.models.conditional, G(z, y). The discriminator sees the image
alone and has two heads on one trunk: the usual real-or-fake logit, and an auxiliary classifier, one sigmoid logit
per attribute, that says which attributes the image shows. With the non-saturating pair and binary cross-entropy
BCE(logits, y) (mean over attributes and images):

    D loss = adversarial D loss + BCE(C(x), y_real) [+ w * BCE(C(G(z, y)), y)]
    G loss = adversarial G loss + BCE(C(G(z, y)), y)

so G is rewarded for faces whose attributes the classifier reads as asked. The paper also trains D's classifier on
fakes (w = 1); here w defaults to 0, the classifier learning from real faces only, and `--fake-auxiliary-weight 1`
is the paper's choice. Neither removes the bias Shu, Bui and Ermon (2017) describe (and Gong et al. 2019): it
comes from G's own auxiliary term, which both keep, and which rewards faces the classifier reads with certainty,
so that G favours the easiest, most typical face of each label vector and draws fewer kinds of faces (their
analysis takes the classifier to be the real data's p(y | x), what w = 0 trains it towards).
benchmarks/acgan_fake_auxiliary.py measures the two settings side by side at lesson 07's budget.
"""

import dataclasses

import keras
import tensorflow as tf

from facekit import gan, losses
from facekit.models import conditional
from facekit.training import setting

MEASURE_COLUMNS = gan.MEASURE_COLUMNS + ("auxiliary_real", "auxiliary_fake")


@dataclasses.dataclass
class ACGANConfig(conditional.ConditionalConfig):
    """An ACGAN run: DCGAN's Adam settings and the auxiliary classifier's weights."""

    model: str = "acgan"
    auxiliary_weight: float = setting(1.0, "weight of the auxiliary classifier's loss in both networks' losses")
    fake_auxiliary_weight: float = setting(0.0, "weight of the classifier's loss on fakes in D's loss (paper: 1)")

    def __post_init__(self):
        super().__post_init__()
        if self.auxiliary_weight < 0 or self.fake_auxiliary_weight < 0:
            raise ValueError("auxiliary_weight and fake_auxiliary_weight must be at least 0")


class AuxiliaryClassifierGAN(conditional.ConditionalGAN):
    """The engine with ACGAN's losses; logs the classifier's cross-entropy on real and on fake images."""

    def __init__(self, generator, discriminator, attributes, auxiliary_weight: float = 1.0,
                 fake_auxiliary_weight: float = 0.0, **kwargs):
        super().__init__(generator, discriminator, losses.LOSS_PAIRS["non_saturating"], attributes, **kwargs)
        self.auxiliary_weight = auxiliary_weight
        self.fake_auxiliary_weight = fake_auxiliary_weight

    @property
    def measure_columns(self) -> tuple:
        return MEASURE_COLUMNS

    def discriminator_loss(self, real, fake, step, sub_step: int):
        """Adversarial loss + auxiliary BCE on real faces (+ on fakes, times fake_auxiliary_weight)."""
        outputs = self.discriminator(gan.together(real, fake)["images"], training=True)
        real_logits, fake_logits = tf.split(outputs["adversarial"], 2)
        real_classes, fake_classes = tf.split(outputs["auxiliary"], 2)
        auxiliary_real = auxiliary_loss(real["labels"], real_classes)
        auxiliary_fake = auxiliary_loss(fake["labels"], fake_classes)
        loss = (self.loss_pair.discriminator(real_logits, fake_logits) + self.auxiliary_weight * auxiliary_real
                + self.auxiliary_weight * self.fake_auxiliary_weight * auxiliary_fake)
        return loss, {"d_loss": loss, "d_real": self.readout(real_logits), "d_fake": self.readout(fake_logits),
                      "auxiliary_real": auxiliary_real}

    def generator_loss(self, real, fake):
        """Adversarial loss + auxiliary BCE of the fakes against the labels they were drawn with."""
        outputs = self.discriminator(fake["images"], training=True)
        auxiliary_fake = auxiliary_loss(fake["labels"], outputs["auxiliary"])
        loss = self.loss_pair.generator(outputs["adversarial"]) + self.auxiliary_weight * auxiliary_fake
        return loss, {"g_loss": loss, "auxiliary_fake": auxiliary_fake}


def auxiliary_loss(labels, logits):
    """Binary cross-entropy of per-attribute logits [B, L] against 0/1 labels [B, L], mean over both: float32 []."""
    return tf.reduce_mean(keras.losses.binary_crossentropy(tf.cast(labels, tf.float32), tf.cast(logits, tf.float32),
                                                           from_logits=True))


def build_discriminator(resolution: int, filters: int, label_count: int, dtype: str = "float32") -> keras.Model:
    """Images [B, R, R, 3] in [-1, 1] -> {"adversarial": real-or-fake logit [B, 1], "auxiliary": one logit per
    attribute [B, L]}, both float32, on DCGAN's trunk."""
    images = keras.Input((resolution, resolution, 3), name="images")
    features = conditional.discriminator_features(resolution, filters, dtype)(images)  # [B, F]
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    adversarial = keras.layers.Dense(1, kernel_initializer=initializer, dtype="float32", name="adversarial")
    auxiliary = keras.layers.Dense(label_count, kernel_initializer=initializer, dtype="float32", name="auxiliary")
    return keras.Model(images, {"adversarial": adversarial(features), "auxiliary": auxiliary(features)},
                       name="discriminator")


def build(config: ACGANConfig) -> AuxiliaryClassifierGAN:
    """The conditional generator and the two-headed discriminator, compiled with DCGAN's Adam."""
    count = len(config.attributes)
    generator = conditional.build_generator(config.resolution, config.latent_dim, count, config.filters,
                                            config.precision)
    discriminator = build_discriminator(config.resolution, config.filters, count, config.precision)
    model = AuxiliaryClassifierGAN(generator, discriminator, config.attributes, config.auxiliary_weight,
                                   config.fake_auxiliary_weight, n_critic=config.n_critic, seed=config.seed,
                                   ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup,
                                   name=config.model)
    return gan.compile_gan(model, config)


MODEL = gan.model_spec("acgan", ACGANConfig, build)
