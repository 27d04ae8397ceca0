"""GAN losses as pairs of small functions over discriminator outputs, named for their papers (as TF-GAN's catalogue).

Every function takes the discriminator's outputs, float of any dtype, [B, 1] or [B], casts them to float32 and
returns a float32 scalar (means over the batch). `real` is D(x) on real images, `fake` is D(G(z)); the discriminator
minimises the first function of a pair, the generator the second.

    non_saturating   Goodfellow et al. 2014, "Generative Adversarial Nets". D outputs a logit, sigmoid(D) = P(real).
                     D: mean(softplus(-real)) + mean(softplus(fake))   (cross-entropy: reals labelled 1, fakes 0)
                     G: mean(softplus(-fake))                          (-log D(G(z)), the paper's practical choice)
                     The paper's minimax G loss, log(1 - D(G(z))) = mean(-softplus(fake)), is kept as
                     `minimax_generator_loss` to show that it saturates: its gradient vanishes while D wins.
    least_squares    Mao et al. 2017, "Least Squares Generative Adversarial Networks", targets a=0, b=1, c=1 on a
                     linear output.
                     D: 0.5 * mean((real - 1)^2) + 0.5 * mean(fake^2)
                     G: 0.5 * mean((fake - 1)^2)
    wasserstein      Arjovsky et al. 2017, "Wasserstein GAN"; with Gulrajani et al. 2017, "Improved Training of
                     Wasserstein GANs", whose `gradient_penalty` (times lambda = 10) is added to the critic's loss.
                     D: mean(fake) - mean(real)
                     G: -mean(fake)
    hinge            Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization for GANs".
                     D: mean(relu(1 - real)) + mean(relu(1 + fake))
                     G: -mean(fake)

Karras et al. 2018 ("Progressive Growing of GANs") add to the WGAN-GP critic's loss `drift_penalty`, E[D(x)^2]
times epsilon_drift = 0.001, which keeps the critic's values from drifting far from zero.

`LOSS_PAIRS` holds the four pairs by name and `loss_pair(name)` looks one up.
"""

import dataclasses
from typing import Callable

import keras
import tensorflow as tf


def minimax_generator_loss(fake_logits):
    """The saturating original G loss E[log(1 - D(G(z)))] = mean(-softplus(fake)): float32 [] from [B, 1] or [B]."""
    return keras.ops.mean(-keras.ops.softplus(_float32(fake_logits)))


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """mean(softplus(-real)) + mean(softplus(fake)): float32 [] from two logits [B, 1] or [B]."""
    return (keras.ops.mean(keras.ops.softplus(-_float32(real_logits)))
            + keras.ops.mean(keras.ops.softplus(_float32(fake_logits))))


def non_saturating_generator_loss(fake_logits):
    """mean(softplus(-fake)), i.e. -log D(G(z)): float32 [] from logits [B, 1] or [B]."""
    return keras.ops.mean(keras.ops.softplus(-_float32(fake_logits)))


def least_squares_discriminator_loss(real, fake):
    """0.5 * mean((real - 1)^2) + 0.5 * mean(fake^2): float32 [] from two linear outputs [B, 1] or [B]."""
    return (0.5 * keras.ops.mean(keras.ops.square(_float32(real) - 1.0))
            + 0.5 * keras.ops.mean(keras.ops.square(_float32(fake))))


def least_squares_generator_loss(fake):
    """0.5 * mean((fake - 1)^2): float32 [] from linear outputs [B, 1] or [B]."""
    return 0.5 * keras.ops.mean(keras.ops.square(_float32(fake) - 1.0))


def wasserstein_discriminator_loss(real, fake):
    """mean(fake) - mean(real), the critic's negated Wasserstein estimate: float32 [] from [B, 1] or [B] each."""
    return keras.ops.mean(_float32(fake)) - keras.ops.mean(_float32(real))


def wasserstein_generator_loss(fake):
    """-mean(fake): float32 [] from critic values [B, 1] or [B]."""
    return -keras.ops.mean(_float32(fake))


def hinge_discriminator_loss(real, fake):
    """mean(relu(1 - real)) + mean(relu(1 + fake)): float32 [] from two critic values [B, 1] or [B]."""
    return (keras.ops.mean(keras.ops.relu(1.0 - _float32(real)))
            + keras.ops.mean(keras.ops.relu(1.0 + _float32(fake))))


def hinge_generator_loss(fake):
    """-mean(fake): float32 [] from critic values [B, 1] or [B]."""
    return -keras.ops.mean(_float32(fake))


def gradient_penalty(critic, real_images, fake_images, seed, epsilon: float = 1e-10):
    """WGAN-GP's mean((||grad critic(x_hat)|| - 1)^2), unweighted: (penalty float32 [], gradient norms float32 [B]).

    real_images, fake_images: float [B, H, W, C], or any [B, ...] (points [B, 2] of a 2-D toy); seed: int pair or
    int tensor [2]. x_hat = real + alpha * (fake - real) with alpha ~ U(0, 1) per image, a pure function of `seed`
    (the same B values whatever the rank). The norm is sqrt(sum of squares + epsilon),
    finite in value and gradient when the critic's gradient is zero. Differentiable with respect to the critic's
    weights (an outer GradientTape sees second-order gradients); the caller multiplies the penalty by lambda = 10.
    """
    real_images = tf.cast(real_images, tf.float32)
    fake_images = tf.cast(fake_images, tf.float32)
    alpha_shape = tf.concat([tf.shape(real_images)[:1], tf.ones([tf.rank(real_images) - 1], tf.int32)], axis=0)
    alpha = tf.random.stateless_uniform(alpha_shape, seed=seed)  # [B, 1, ..., 1]
    interpolates = real_images + alpha * (fake_images - real_images)
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        scores = tf.cast(critic(interpolates, training=True), tf.float32)
    gradients = tape.gradient(scores, interpolates, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    gradients = tf.cast(gradients, tf.float32)
    gradient_norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients))) + epsilon)
    return tf.reduce_mean(tf.square(gradient_norms - 1.0)), gradient_norms


def drift_penalty(real):
    """mean(real^2), Progressive GAN's drift term (times epsilon_drift = 0.001 in the critic's loss): float32 []
    from critic values on real images [B, 1] or [B]."""
    return keras.ops.mean(keras.ops.square(_float32(real)))


@dataclasses.dataclass(frozen=True)
class LossPair:
    """A discriminator loss and the generator loss it is trained against.

    probability: True when the discriminator outputs a logit whose sigmoid is P(real), so that D(x) is reported
    as sigmoid(D(x)) (as the PyTorch DCGAN tutorial prints it); False for critics whose raw value is reported.
    """

    name: str
    discriminator: Callable
    generator: Callable
    probability: bool


LOSS_PAIRS = {
    "non_saturating": LossPair("non_saturating", non_saturating_discriminator_loss, non_saturating_generator_loss,
                               probability=True),
    "least_squares": LossPair("least_squares", least_squares_discriminator_loss, least_squares_generator_loss,
                              probability=False),
    "wasserstein": LossPair("wasserstein", wasserstein_discriminator_loss, wasserstein_generator_loss,
                            probability=False),
    "hinge": LossPair("hinge", hinge_discriminator_loss, hinge_generator_loss, probability=False),
}


def loss_pair(name: str) -> LossPair:
    """The LossPair called `name`; ValueError naming the known pairs for any other name."""
    if name not in LOSS_PAIRS:
        raise ValueError(f"unknown loss pair {name!r}; known pairs: {', '.join(LOSS_PAIRS)}")
    return LOSS_PAIRS[name]


def _float32(values):
    return keras.ops.cast(values, "float32")
