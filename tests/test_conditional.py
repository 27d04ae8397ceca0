"""What the conditional GANs share: labels from CelebA attributes, their joint distribution (kept in labels.npz and
drawn from when sampling), the control grid of faces to order, and the agreement measure."""

import numpy as np
import pytest
import tensorflow as tf

from facekit import data, registry, synthetic
from facekit.models import conditional
from facekit.training import RunFolder

TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=4, precision="float32",
            attributes=("Male", "Smiling", "Eyeglasses"))
LABELS = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 1], [0, 1, 0]], np.float32)


def faces_with(labels) -> data.Faces:
    """Faces whose Male, Smiling and Eyeglasses are `labels` (0/1 [N, 3]); every other attribute absent."""
    attributes = -np.ones((len(labels), len(synthetic.ATTRIBUTES)), np.int8)
    for column, name in enumerate(TINY["attributes"]):
        attributes[:, synthetic.ATTRIBUTES.index(name)] = np.where(labels[:, column] > 0, 1, -1)
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    return data.Faces(images, [f"{index}.jpg" for index in range(len(labels))], synthetic.ATTRIBUTES, attributes)


def build(name="cgan"):
    tf.keras.utils.set_random_seed(0)
    return registry.model(name).config(**TINY), _module(name).build(registry.model(name).config(**TINY))


def test_labels_are_the_chosen_attributes_as_zero_or_one():
    np.testing.assert_array_equal(conditional.labels_of(faces_with(LABELS), TINY["attributes"]), LABELS)
    unlabelled = data.Faces(np.zeros((2, 32, 32, 3), np.uint8), ["a.jpg", "b.jpg"], source="folder/x")
    with pytest.raises(ValueError, match="folder/x: no attribute labels"):
        conditional.labels_of(unlabelled, ("Male",))


def test_the_joint_distribution_is_the_distinct_vectors_commonest_first():
    vectors, frequencies = conditional.label_distribution(LABELS)
    np.testing.assert_array_equal(vectors, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    np.testing.assert_allclose(frequencies, [3 / 6, 2 / 6, 1 / 6])


def test_control_columns_are_the_commonest_vector_then_one_attribute_switched_each():
    vectors, frequencies = conditional.label_distribution(LABELS)
    labels, names = conditional.control_labels(vectors, frequencies, TINY["attributes"])
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 0, 0], [1, 1, 0], [1, 0, 1]])
    assert names == ["commonest", "-Male", "+Smiling", "+Eyeglasses"]


def test_the_run_keeps_the_distribution_and_sampling_draws_from_it(tmp_path):
    config, model = build()
    model.attach(RunFolder(tmp_path), faces_with(LABELS))
    _, fresh = build()
    fresh.attach(RunFolder(tmp_path))  # as when a run is loaded to sample: read from labels.npz
    np.testing.assert_array_equal(fresh.label_vectors, model.label_vectors)
    drawn = fresh.sampling_inputs(30_000, seed=3)["labels"]
    vectors, counts = np.unique(drawn, axis=0, return_counts=True)
    np.testing.assert_array_equal(vectors, [[0, 1, 0], [0, 1, 1], [1, 0, 0]])  # never a vector the data lacks
    np.testing.assert_allclose(counts / len(drawn), [2 / 6, 1 / 6, 3 / 6], atol=0.01)
    np.testing.assert_array_equal(drawn[:50], fresh.sampling_inputs(50, seed=3)["labels"])
    _, other = build("acgan")
    other.attributes = ("Male", "Bald", "Eyeglasses")
    with pytest.raises(ValueError, match="labels.npz: labels of"):
        other.attach(RunFolder(tmp_path))
    with pytest.raises(FileNotFoundError, match="labels.npz: missing"):
        other.attach(RunFolder(tmp_path / "elsewhere"))


def test_the_control_grid_is_rows_of_fixed_noise_by_columns_of_label_vectors(tmp_path):
    config, model = build()
    model.attach(RunFolder(tmp_path), faces_with(LABELS))
    inputs, columns = model.control_inputs(grid_size=9)
    assert columns == 4 and inputs["noise"].shape == (8, 8)  # 9 // 4 = 2 rows of 4
    np.testing.assert_array_equal(inputs["noise"][0], inputs["noise"][3])  # a row shares its noise
    assert not np.array_equal(inputs["noise"][0], inputs["noise"][4])
    np.testing.assert_array_equal(inputs["labels"][4:], inputs["labels"][:4])  # every row asks the same
    images = model.generate(inputs)
    assert not np.allclose(images[0], images[1], atol=1e-4)  # same noise, other labels: another face


def test_fakes_are_drawn_with_the_labels_of_the_real_sub_batch():
    _, model = build()
    real = {"images": tf.zeros((4, 32, 32, 3)), "labels": tf.constant(LABELS[:4])}
    fake = model.fakes(tf.constant(0, tf.int64), 0, real)
    np.testing.assert_array_equal(fake["labels"].numpy(), LABELS[:4])
    assert fake["images"].shape == (4, 32, 32, 3)


class ReadsEveryoneAsMale:
    """A stand-in classifier: every face is Male and none Smiling; it knows no Eyeglasses."""

    names = ("Smiling", "Male")

    def probabilities(self, images):
        return np.tile([[0.1, 0.9]], (len(images), 1))


def test_agreement_counts_samples_whose_reading_equals_the_request(tmp_path):
    _, model = build()
    model.attach(RunFolder(tmp_path), faces_with(LABELS))
    rows = {row["attribute"]: row for row in conditional.agreement(model, ReadsEveryoneAsMale(), count=600)}
    assert set(rows) == {"Male", "Smiling"}  # attributes the classifier does not know are left out
    male, smiling = rows["Male"], rows["Smiling"]
    assert male["predicted_rate"] == 1.0 and smiling["predicted_rate"] == 0.0
    assert male["agreement"] == pytest.approx(male["requested_rate"])
    assert smiling["agreement"] == pytest.approx(1 - smiling["requested_rate"])
    assert male["requested_rate"] == pytest.approx(0.5, abs=0.05)
    assert male["chance"] == pytest.approx(male["agreement"])  # the reading ignores the request: chance is all
    assert male["balanced_agreement"] == 0.5 and smiling["balanced_agreement"] == 0.5  # ignoring it scores 0.5


def test_balanced_agreement_weighs_the_rare_request_as_much_as_the_common_one():
    requested = np.array([True] * 5 + [False] * 95)
    never = np.zeros(100, bool)  # a reading that never sees the rare attribute: raw agreement 0.95, balanced 0.5
    assert conditional.balanced_agreement(never, requested) == 0.5
    half_found = never.copy()
    half_found[:2] = True  # 2 of the 5 found, 3 false alarms among the 95
    half_found[50:53] = True
    assert conditional.balanced_agreement(half_found, requested) == pytest.approx((2 / 5 + 92 / 95) / 2)
    assert np.isnan(conditional.balanced_agreement(never, np.zeros(100, bool)))


def _module(name):
    import importlib

    return importlib.import_module(f"facekit.models.{name}")


def test_a_conditional_runs_snapshots_have_one_column_per_order(tmp_path):
    from PIL import Image

    from facekit import progress

    spec = registry.model("cgan")
    run = spec.train(faces_with(LABELS), tmp_path / "run", spec.config(**TINY, steps=2, grid_size=8),
                     show_progress=False)
    snapshot = np.asarray(Image.open(run.sample_path(2)))
    expected = progress.image_grid(np.zeros((8, 32, 32, 3), np.uint8), columns=4)  # 2 rows of 4 orders
    assert snapshot.shape == expected.shape
    assert (run.path / conditional.LABELS_FILE).exists() and run.gif_path.exists()
