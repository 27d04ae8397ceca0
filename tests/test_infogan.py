"""InfoGAN: the codes, the information term L_I against a hand computation, Q trained with the discriminator,
the control grid of categories, and reading what each code controls."""

import numpy as np
import pytest
import tensorflow as tf

from facekit.models import infogan

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=4, precision="float32", categories=4,
            continuous_codes=2)


def build(**settings):
    tf.keras.utils.set_random_seed(0)
    return infogan.build(infogan.InfoGANConfig(**{**TINY, **settings}))


def test_codes_are_a_one_hot_category_and_continuous_numbers():
    model = build()
    codes = model.codes(np.array([2, 0]), np.array([[0.5, -1.0], [0.0, 0.25]])).numpy()
    np.testing.assert_array_equal(codes, [[0, 0, 1, 0, 0.5, -1.0], [1, 0, 0, 0, 0.0, 0.25]])
    drawn = model.fake_inputs(tf.constant(3, tf.int64), 0, {"images": tf.zeros((500, 32, 32, 3))})["codes"].numpy()
    assert np.all(drawn[:, :4].sum(axis=1) == 1) and set(drawn[:, :4].argmax(axis=1)) == {0, 1, 2, 3}
    assert -1 <= drawn[:, 4:].min() < -0.9 and 0.9 < drawn[:, 4:].max() <= 1
    again = model.fake_inputs(tf.constant(3, tf.int64), 0, {"images": tf.zeros((500, 32, 32, 3))})["codes"]
    np.testing.assert_array_equal(drawn, again.numpy())  # a pure function of (seed, step, sub-step)


def test_the_information_term_is_cross_entropy_plus_weighted_squared_error():
    model = build(continuous_weight=0.3)
    codes = tf.constant([[0, 1, 0, 0, 0.5, -0.5], [0, 0, 0, 1, -1.0, 0.2]], tf.float32)
    outputs = {"category": tf.constant([[0.1, 2.0, -1.0, 0.0], [1.0, 0.0, 0.0, -2.0]]),
               "continuous": tf.constant([[0.4, -0.1], [0.0, 0.2]])}
    logits = outputs["category"].numpy()
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    cross_entropy = -np.mean([log_probabilities[0, 1], log_probabilities[1, 3]])
    squared = np.mean(0.5 * (outputs["continuous"].numpy() - codes.numpy()[:, 4:]) ** 2)
    loss, accuracy = model.information(codes, outputs)
    assert float(loss) == pytest.approx(cross_entropy + 0.3 * squared, rel=1e-5)
    assert float(accuracy) == 0.5  # the first row's category is guessed, the second's is not


def test_both_networks_minimise_the_information_term_and_q_belongs_to_the_discriminator():
    model = build(information_weight=2.0)
    real = {"images": tf.random.stateless_uniform((4, 32, 32, 3), [0, 1], -1, 1)}
    fake = model.fakes(tf.constant(0, tf.int64), 0, real, training=True)
    outputs = model.discriminator(fake["images"])
    information, _ = model.information(fake["codes"], outputs)
    adversarial = np.mean(np.logaddexp(0.0, -outputs["adversarial"].numpy()))
    g_loss, logs = model.generator_loss(real, fake)
    assert float(g_loss) == pytest.approx(adversarial + 2.0 * float(information), rel=1e-5)
    q_head = {variable.path for variable in model.discriminator.trainable_variables if "dense" in variable.path}
    before = {variable.path: variable.numpy().copy() for variable in model.discriminator.trainable_variables}
    model.discriminator_update(real, fake, tf.constant(0, tf.int64), 0)
    moved = {variable.path for variable in model.discriminator.trainable_variables
             if not np.array_equal(before[variable.path], variable.numpy())}
    assert q_head and q_head <= moved  # Q's hidden layer and heads are trained by D's update


def test_the_control_grid_is_rows_of_noise_by_columns_of_categories():
    model = build()
    inputs, columns = model.control_inputs(grid_size=9)
    assert columns == 4 and inputs["codes"].shape == (8, 6)
    np.testing.assert_array_equal(inputs["codes"][:, :4].argmax(axis=1), [0, 1, 2, 3, 0, 1, 2, 3])
    assert np.all(inputs["codes"][:, 4:] == 0)
    np.testing.assert_array_equal(inputs["noise"][0], inputs["noise"][3])


class ReadsBrightness:
    """A stand-in classifier: "Pale_Skin" when the image is bright, "Male" never."""

    names = ("Pale_Skin", "Male")

    def probabilities(self, images):
        bright = images.astype(np.float32).mean(axis=(1, 2, 3)) > 127.5
        return np.stack([bright.astype(np.float32), np.zeros(len(images))], axis=1)


def test_code_effects_read_each_code_by_the_classifier():
    model = build()
    effects = infogan.code_effects(model, ReadsBrightness(), count=40, seed=0)
    assert list(effects) == ["category 0", "category 1", "category 2", "category 3", "continuous 0", "continuous 1"]
    category_changes = np.array([effects[f"category {value}"]["Pale_Skin"] for value in range(4)])
    assert category_changes.sum() == pytest.approx(0.0, abs=1e-9)  # rates minus their mean over categories
    assert all(effects[code]["Male"] == 0 for code in effects)  # an attribute no code moves
    table = infogan.format_code_effects(effects, top=1)
    assert table.splitlines()[2].startswith("| category 0 | ")
