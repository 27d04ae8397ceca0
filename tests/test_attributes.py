"""The attribute classifier: the report against hand counts, learning on held-out synthetic people, seeded flips,
resume == uninterrupted, any input size, the command line's table and CSV, and the errors it gives."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from facekit import attributes, data, synthetic, training
from facekit.cli import main
from facekit.training import RunFolder

CELEBA = Path(os.environ.get("FACEKIT_SHARED_CELEBA", Path(__file__).resolve().parents[2] / "shared" / "celeba"))
TINY = dict(resolution=32, filters=8, batch_size=16, snapshot_every=2, precision="float32", heldout=0.2)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return synthetic.write_synthetic_celeba(tmp_path_factory.mktemp("faces") / "celeba", 400, seed=0)


@pytest.fixture(scope="module")
def faces(source, tmp_path_factory):
    return data.prepare(source, resolution=32, progress=False, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def trained(faces, tmp_path_factory):
    """A classifier trained for 150 steps of 32 synthetic faces (20% of the people held out)."""
    config = attributes.AttributeConfig(**{**TINY, "filters": 16, "batch_size": 32, "steps": 150,
                                           "snapshot_every": 150, "learning_rate_half_life": 100, "dropout": 0.0})
    return attributes.train(faces, tmp_path_factory.mktemp("runs") / "trained", config, show_progress=False)


def test_report_matches_hand_counts():
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 0], [0, 0]], bool)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.4], [0.7, 0.6], [0.6, 0.2], [0.1, 0.3]], np.float32)
    first, second = attributes.report(probabilities, ("A", "B"), labels)
    # A: predicted yes on 1, 3, 4; true on 1, 2, 3 -> right on 1, 3, 5; TPR 2/3, TNR 1/2; 3 of 5 true
    assert first == {"attribute": "A", "predicted_rate": pytest.approx(3 / 5), "accuracy": pytest.approx(3 / 5),
                     "balanced_accuracy": pytest.approx((2 / 3 + 1 / 2) / 2), "majority_baseline": pytest.approx(3 / 5)}
    # B: predicted yes on 3 only, true on 3 only: all right; 1 of 5 true, so the baseline is 4/5
    assert (second["accuracy"], second["balanced_accuracy"], second["majority_baseline"]) == (1.0, 1.0, 0.8)
    unlabelled = attributes.report(probabilities, ("A", "B"))
    assert [row["predicted_rate"] for row in unlabelled] == [pytest.approx(0.6), pytest.approx(0.2)]
    assert all(row[column] is None for row in unlabelled for column in attributes.REPORT_COLUMNS[2:])
    # -1/+1 labels (CelebA's) read as 0/1; one class only: balanced accuracy is that class's rate
    signed = attributes.report(probabilities[:2, :1], ("A",), np.array([[1], [1]]))[0]
    assert (signed["accuracy"], signed["balanced_accuracy"], signed["majority_baseline"]) == (0.5, 0.5, 1.0)
    table = attributes.format_report([first, second]).splitlines()
    assert table[-1].split() == ["mean", "40.0%", "80.0%", f"{100 * (7 / 12 + 1) / 2:.1f}%", "70.0%"]


def test_a_short_run_learns_eyeglasses_and_sex_on_people_it_never_saw(trained, faces):
    classifier = attributes.load(trained.path)
    assert classifier.names == synthetic.ATTRIBUTES and len(classifier.names) == 40
    heldout = attributes.heldout_faces(trained.path, faces)
    trained_on, _ = training.split(faces, attributes.AttributeConfig(**trained.read_config()))
    assert set(heldout.identities).isdisjoint(trained_on.identities) and 60 <= len(heldout) <= 100
    rows = {row["attribute"]: row for row in attributes.report(classifier.probabilities(heldout.images),
                                                                classifier.names, attributes.labels_of(heldout))}
    # measured: Eyeglasses 95.0% (baseline 85.0%), Male 65.0% (50.0%), Wearing_Hat 93.8% (75.0%)
    for name in ("Eyeglasses", "Male", "Wearing_Hat"):
        assert rows[name]["accuracy"] >= rows[name]["majority_baseline"] + 0.05, rows[name]
        assert rows[name]["balanced_accuracy"] >= 0.6, rows[name]
    log = trained.read_log()
    assert list(log[0]) == ["step", "loss", "accuracy", "seconds"] and log[-1]["loss"] < log[0]["loss"]
    assert not trained.gif_path.exists() and trained.sample_frames() == [] and trained.losses_path.is_file()


def test_flips_are_a_pure_function_of_seed_and_step():
    images = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32)
    once, again = attributes.flip(images, 0, 5).numpy(), attributes.flip(images, 0, 5).numpy()
    np.testing.assert_array_equal(once, again)
    mirrored = [not np.array_equal(out, image) for out, image in zip(once, images)]
    assert 4 <= sum(mirrored) <= 28  # about half, each image either kept or exactly mirrored
    np.testing.assert_array_equal(once[mirrored], images[mirrored][:, :, ::-1])
    assert not np.array_equal(attributes.flip(images, 0, 6).numpy(), once)
    assert not np.array_equal(attributes.flip(images, 1, 5).numpy(), once)


def test_resumed_run_equals_uninterrupted_run(faces, tmp_path):
    subset = data.Faces(faces.images[:80], faces.filenames[:80], faces.attribute_names, faces.attributes[:80],
                        identities=faces.identities[:80])
    whole = attributes.train(subset, tmp_path / "whole", attributes.AttributeConfig(steps=4, **TINY),
                             show_progress=False)
    attributes.train(subset, tmp_path / "split", attributes.AttributeConfig(steps=2, **TINY), show_progress=False)
    split = attributes.train(subset, tmp_path / "split", attributes.AttributeConfig(steps=4, **TINY), resume=True,
                             show_progress=False)
    assert [row["step"] for row in split.read_log()] == [1, 2, 3, 4]
    for column in ("loss", "accuracy"):
        assert [row[column] for row in whole.read_log()] == [row[column] for row in split.read_log()]
    first, second = attributes.load(whole.path), attributes.load(split.path)
    for a, b in zip(first.model.weights, second.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(attributes.load(whole.path, step=2).model.weights[0].numpy(),
                              first.model.weights[0].numpy())


def test_probabilities_take_any_size_in_batches(trained, faces):
    classifier = attributes.load(trained.path)
    classifier.batch_size = 7
    small = np.asarray(faces.images[:10])
    probabilities = classifier.probabilities(small)
    assert probabilities.shape == (10, 40) and probabilities.dtype == np.float32
    assert 0 <= probabilities.min() and probabilities.max() <= 1
    enlarged = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)  # 64x64, the same faces
    assert np.abs(classifier.probabilities(enlarged) - probabilities).mean() < 0.05
    np.testing.assert_array_equal(classifier.predict(small), probabilities > 0.5)


def test_the_command_line_scores_held_out_people_and_writes_the_csv(trained, source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    out = tmp_path / "scores.csv"
    assert main(["attributes", str(trained.path), str(source), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held-out people" in printed and "Eyeglasses" in printed and printed.count("mean") == 1
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["attribute", "predicted_rate", "accuracy", "balanced_accuracy", "majority_baseline"]
    assert [row["attribute"] for row in rows] == [*synthetic.ATTRIBUTES, "mean"]
    assert 0 <= float(rows[15]["accuracy"]) <= 1 and rows[15]["attribute"] == "Eyeglasses"

    folder = tmp_path / "pictures"
    from facekit import evaluate

    evaluate.write_image_folder(np.asarray(data.prepare(source, resolution=32, progress=False).images[:6]), folder)
    assert main(["attributes", str(trained.path), str(folder), "--csv", str(out)]) == 0
    assert "scored 6 images" in capsys.readouterr().out
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["accuracy"] == "" and float(rows[0]["predicted_rate"]) in {index / 6 for index in range(7)}


def test_errors_are_one_line_naming_the_problem(trained, tmp_path, capsys):
    unlabelled = np.zeros((8, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="no attribute labels"):
        attributes.train(unlabelled, tmp_path / "run", attributes.AttributeConfig(steps=1, **TINY))
    assert not (tmp_path / "run").exists()

    unfinished = RunFolder(tmp_path / "unfinished")
    unfinished.start(trained.read_config(), resume=False)
    (tmp_path / "empty").mkdir()
    for arguments, reason in ((["attributes", str(trained.path), str(tmp_path / "nothing")], "nothing: no such"),
                              (["attributes", str(trained.path), str(tmp_path / "empty")], "empty: no .png"),
                              (["attributes", str(unfinished.path), str(tmp_path / "empty")], "no checkpoint"),
                              (["attributes", str(trained.path), str(trained.path)], "draws no faces"),
                              (["sample", str(trained.path), "--count", "2", "--out", str(tmp_path / "out")],
                               f"{trained.path} is an attribute classifier: it draws no faces")):
        assert main(arguments) == 1
        error = capsys.readouterr().err.strip()
        assert reason in error and len(error.splitlines()) == 1, error


@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"real-data test: no CelebA at {CELEBA}")
def test_on_real_faces_a_tiny_classifier_beats_the_baseline_on_sex_and_smiles(tmp_path):
    faces = data.prepare(CELEBA, resolution=32, limit=3000, progress=False)
    config = attributes.AttributeConfig(resolution=32, filters=8, batch_size=64, steps=120, snapshot_every=120,
                                        learning_rate_half_life=60)
    run = attributes.train(faces, tmp_path / "run", config, show_progress=False)
    heldout = attributes.heldout_faces(run.path, faces)
    rows = {row["attribute"]: row for row in attributes.report(
        attributes.load(run.path).probabilities(heldout.images), attributes.NAMES, attributes.labels_of(heldout))}
    # measured on 300 held-out faces: Male 77.7% (baseline 57.7%), Smiling 75.0% (56.7%); the full recipe's
    # numbers are benchmarks/attribute_classifier.py's
    for name in ("Male", "Smiling"):
        assert rows[name]["accuracy"] >= rows[name]["majority_baseline"] + 0.1, rows[name]
