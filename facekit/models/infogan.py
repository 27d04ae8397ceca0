"""InfoGAN (Chen et al. 2016, "InfoGAN: Interpretable Representation Learning by Information Maximizing GANs").

The generator gets noise z and a code c: one categorical code (a one-hot choice among `categories`) and
`continuous_codes` numbers uniform in [-1, 1]. Nothing says what c means. A head Q on the discriminator's trunk
guesses c back from G(z, c), and both networks are trained to make that guess good, which maximises a lower
bound on the mutual information I(c; G(z, c)):

    L_I    = CE(Q_cat(G(z, c)), c_cat) + continuous_weight * mean over codes of 0.5 (Q_cont(G(z, c)) - c_cont)^2
    D loss = non-saturating D loss + information_weight * L_I      (Q's variables belong to D)
    G loss = non-saturating G loss + information_weight * L_I

The squared error is the Gaussian log-likelihood of Q_cont with unit variance, up to a constant (the paper's
factored Gaussian with its variance fixed). So G learns to make each code value visibly different, and what the
codes come to control (glasses? hair colour? pose?) is found after training, e.g. by an attribute classifier.
The snapshot grid is rows of fixed noise by columns of the categorical code's values, continuous codes at 0.

The defaults are the paper's MNIST configuration (one ten-way categorical code, two continuous codes, 62 noise
variables). Its CelebA configuration (ten ten-way categorical codes, 128 noise variables) needs several
categorical codes, which this module does not implement.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from facekit import data, gan, losses, progress
from facekit.models import conditional, dcgan
from facekit.training import setting

MEASURE_COLUMNS = gan.MEASURE_COLUMNS + ("information", "code_accuracy")
CODE_SEED_OFFSET = 2000  # the codes at sub-step k are drawn from (seed, step, 2000 + k)


@dataclasses.dataclass
class InfoGANConfig(dcgan.DCGANConfig):
    """An InfoGAN run: DCGAN's settings, the codes and the weight of the information term."""

    model: str = "infogan"
    latent_dim: int = setting(62, "length of the noise vector (the paper's for MNIST; lesson 07 measured 100 leaving "
                                  "the codes unread after 300 steps on cartoon faces)")
    categories: int = setting(10, "values of the categorical code")
    continuous_codes: int = setting(2, "continuous codes, each uniform in [-1, 1]")
    information_weight: float = setting(1.0, "lambda: weight of L_I in both networks' losses")
    continuous_weight: float = setting(0.5, "weight of the continuous codes' squared error within L_I")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("categories", "continuous_codes")

    def __post_init__(self):
        super().__post_init__()
        if self.information_weight < 0 or self.continuous_weight < 0:
            raise ValueError("information_weight and continuous_weight must be at least 0")


class InfoGAN(gan.GAN):
    """The engine with codes: G(z, c), and the information term in both losses."""

    def __init__(self, generator, discriminator, categories: int, continuous_codes: int,
                 information_weight: float = 1.0, continuous_weight: float = 0.5, **kwargs):
        super().__init__(generator, discriminator, losses.LOSS_PAIRS["non_saturating"], **kwargs)
        self.categories = categories
        self.continuous_codes = continuous_codes
        self.information_weight = information_weight
        self.continuous_weight = continuous_weight

    @property
    def measure_columns(self) -> tuple:
        return MEASURE_COLUMNS

    def fake_inputs(self, step, sub_step: int, real: dict) -> dict:
        """The engine's noise, and codes drawn from (seed, step, sub_step): a uniform category, uniform numbers."""
        batch_size = tf.shape(real["images"])[0]
        seed = self._seed(step, CODE_SEED_OFFSET + sub_step)
        category = tf.random.stateless_uniform([batch_size], seed, 0, self.categories, dtype=tf.int32)
        continuous = tf.random.stateless_uniform([batch_size, self.continuous_codes],
                                                 tf.random.experimental.stateless_fold_in(seed, 1), -1.0, 1.0)
        return {**super().fake_inputs(step, sub_step, real), "codes": self.codes(category, continuous)}

    def codes(self, category, continuous):
        """Code vectors float32 [B, categories + continuous_codes] from category indices [B] and numbers [B, C]."""
        return tf.concat([tf.one_hot(category, self.categories), tf.cast(continuous, tf.float32)], axis=1)

    def sampling_inputs(self, count: int, seed: int = 0) -> dict:
        """Noise from default_rng(seed), and codes drawn as in training."""
        inputs = super().sampling_inputs(count, seed)
        rng = np.random.default_rng([seed, 1])
        category = rng.integers(0, self.categories, count)
        continuous = rng.uniform(-1, 1, (count, self.continuous_codes))
        return {**inputs, "codes": self.codes(category, continuous).numpy()}

    def control_inputs(self, grid_size: int) -> tuple[dict, int]:
        """Rows of fixed noise by columns of the categorical code's values (continuous codes at 0)."""
        rows = max(1, grid_size // self.categories)
        noise = progress.control_noise(rows, self.latent_dim, self.seed)
        category = np.tile(np.arange(self.categories), rows)
        codes = self.codes(category, np.zeros((len(category), self.continuous_codes))).numpy()
        return {"noise": np.repeat(noise, self.categories, axis=0), "codes": codes}, self.categories

    def information(self, codes, outputs):
        """(L_I float32 [], the fraction of fakes whose category Q guesses right) for codes [B, K + C] and the
        discriminator's outputs on the fakes drawn with them."""
        category = tf.argmax(codes[:, : self.categories], axis=1)
        logits = tf.cast(outputs["category"], tf.float32)
        error = tf.cast(outputs["continuous"], tf.float32) - codes[:, self.categories :]
        loss = (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(category, logits))
                + self.continuous_weight * tf.reduce_mean(0.5 * tf.square(error)))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, axis=1), category), tf.float32))
        return loss, accuracy

    def discriminator_loss(self, real, fake, step, sub_step: int):
        """Non-saturating D loss + information_weight * L_I on the fakes (trains the trunk, D's head and Q)."""
        outputs = self.discriminator(gan.together(real, fake)["images"], training=True)
        real_logits, fake_logits = tf.split(outputs["adversarial"], 2)
        fake_outputs = {name: tf.split(value, 2)[1] for name, value in outputs.items()}
        information, _ = self.information(fake["codes"], fake_outputs)
        loss = self.loss_pair.discriminator(real_logits, fake_logits) + self.information_weight * information
        return loss, {"d_loss": loss, "d_real": self.readout(real_logits), "d_fake": self.readout(fake_logits)}

    def generator_loss(self, real, fake):
        """Non-saturating G loss + information_weight * L_I: G makes its codes recoverable."""
        outputs = self.discriminator(fake["images"], training=True)
        information, accuracy = self.information(fake["codes"], outputs)
        loss = self.loss_pair.generator(outputs["adversarial"]) + self.information_weight * information
        return loss, {"g_loss": loss, "information": information, "code_accuracy": accuracy}


def code_effects(model: InfoGAN, classifier, count: int = 200, seed: int = 0) -> dict:
    """What each code came to control, read by an attribute classifier: {code name: {attribute: change}}.

    "category k": the predicted rate of each attribute over `count` samples drawn with category k, minus its mean
    over all categories (same noise for every category; continuous codes at 0). "continuous j": the rate with
    code j at +1 minus the rate at -1 (same noise, category drawn at random, other continuous codes at 0).
    classifier: has `names` and `probabilities(uint8 images) -> [N, A]` (facekit.attributes).
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((count, model.latent_dim)).astype(np.float32)

    def rates(category, continuous):
        images = model.generate({"noise": noise, "codes": model.codes(category, continuous).numpy()})
        return (classifier.probabilities(data.to_uint8(images)) >= 0.5).mean(axis=0)

    zeros = np.zeros((count, model.continuous_codes))
    by_category = np.stack([rates(np.full(count, value), zeros) for value in range(model.categories)])
    effects = {f"category {value}": dict(zip(classifier.names, by_category[value] - by_category.mean(axis=0)))
               for value in range(model.categories)}
    random_category = rng.integers(0, model.categories, count)
    for code in range(model.continuous_codes):
        low, high = zeros.copy(), zeros.copy()
        low[:, code], high[:, code] = -1.0, 1.0
        change = rates(random_category, high) - rates(random_category, low)
        effects[f"continuous {code}"] = dict(zip(classifier.names, change))
    return effects


def format_code_effects(effects: dict, top: int = 3) -> str:
    """A Markdown table: each code and the `top` attributes whose predicted rate it moves most (signed)."""
    lines = ["| code | attributes it moves most (change in predicted rate) |", "|---|---|"]
    for code, changes in effects.items():
        largest = sorted(changes.items(), key=lambda item: -abs(item[1]))[:top]
        lines.append(f"| {code} | " + ", ".join(f"{name} {change:+.2f}" for name, change in largest) + " |")
    return "\n".join(lines)


def build_generator(resolution: int, latent_dim: int, code_length: int, filters: int,
                    dtype: str = "float32") -> keras.Model:
    """{"noise": [B, latent_dim], "codes": [B, K + C]} -> images [B, R, R, 3] in [-1, 1]: DCGAN's generator on
    the concatenation [z, c]."""
    noise = keras.Input((latent_dim,), name="noise")
    codes = keras.Input((code_length,), name="codes")
    both = keras.layers.Concatenate(dtype=dtype)([noise, codes])  # [B, latent_dim + K + C]
    body = dcgan.build_generator(resolution, latent_dim + code_length, filters, dtype)
    return keras.Model({"noise": noise, "codes": codes}, body(both), name="generator")


def build_discriminator(resolution: int, filters: int, categories: int, continuous_codes: int,
                        dtype: str = "float32") -> keras.Model:
    """Images [B, R, R, 3] -> {"adversarial": logit [B, 1], "category": Q's logits [B, K], "continuous": Q's
    means [B, C]}: DCGAN's trunk shared by D's output and the Q head (one hidden layer), outputs float32."""
    images = keras.Input((resolution, resolution, 3), name="images")
    features = conditional.discriminator_features(resolution, filters, dtype)(images)  # [B, F]
    initializer = keras.initializers.RandomNormal(stddev=0.02)
    hidden = keras.layers.Dense(128, kernel_initializer=initializer, dtype=dtype)(features)  # Q's layer [B, 128]
    hidden = keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype)(hidden)
    outputs = {
        "adversarial": keras.layers.Dense(1, kernel_initializer=initializer, dtype="float32")(features),
        "category": keras.layers.Dense(categories, kernel_initializer=initializer, dtype="float32")(hidden),
        "continuous": keras.layers.Dense(continuous_codes, kernel_initializer=initializer, dtype="float32")(hidden),
    }
    return keras.Model(images, outputs, name="discriminator")


def build(config: InfoGANConfig) -> InfoGAN:
    """InfoGAN's generator and its discriminator with the Q head, compiled with DCGAN's Adam."""
    generator = build_generator(config.resolution, config.latent_dim, config.categories + config.continuous_codes,
                                config.filters, config.precision)
    discriminator = build_discriminator(config.resolution, config.filters, config.categories,
                                        config.continuous_codes, config.precision)
    model = InfoGAN(generator, discriminator, config.categories, config.continuous_codes,
                    config.information_weight, config.continuous_weight, n_critic=config.n_critic,
                    seed=config.seed, ema_half_life=config.ema_half_life, ema_rampup=config.ema_rampup,
                    name=config.model)
    return gan.compile_gan(model, config)


MODEL = gan.model_spec("infogan", InfoGANConfig, build)
