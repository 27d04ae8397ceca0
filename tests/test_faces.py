"""dlib face detection and embeddings: real faces are found and recognised, noise is not, the table counts add up."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekit import faces

CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "celeba"
needs_celeba = pytest.mark.skipif(not (CELEBA / "img_align_celeba").is_dir(),
                                  reason=f"real CelebA sample not found at {CELEBA}")


def celeba_faces(count, resolution=64):
    """The first `count` CelebA images, centre 178x178 square, resized: uint8 [count, resolution, resolution, 3]."""
    paths = sorted((CELEBA / "img_align_celeba").glob("*.jpg"))[:count]
    images = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            top = (image.height - image.width) // 2
            square = image.crop((0, top, image.width, top + image.width))
            images.append(np.asarray(square.resize((resolution, resolution), Image.LANCZOS)))
    return np.stack(images)


def test_model_files_are_found_and_a_missing_package_is_explained(monkeypatch):
    paths = faces.model_paths()
    assert all(path.is_file() and path.stat().st_size > 1_000_000 for path in paths.values())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(faces.FaceModelsMissing, match="pip install face-recognition-models"):
        faces.model_paths()


def test_noise_has_no_face():
    noise = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    embeddings = faces.face_embeddings(noise, workers=1)
    assert embeddings.shape == (6, 128) and np.isnan(embeddings).all()
    assert [len(boxes) for boxes in faces.detect_faces(noise)] == [0] * 6
    report = faces.detection_report(embeddings, embeddings)
    assert (report.images, report.no_face, report.detected, report.identified) == (6, 6, 0, 0)


def test_identify_uses_the_tolerance_and_skips_rows_without_a_face():
    training = np.zeros((3, 128), np.float32)
    training[1, 0], training[2, 0] = 2.0, np.nan  # row 2: a training image without a face
    queries = np.zeros((4, 128), np.float32)
    queries[0, 0], queries[1, 0], queries[2, 0], queries[3] = 0.5, 1.3, 2.1, np.nan
    identified, nearest, distance = faces.identify(queries, training, tolerance=0.6)
    assert list(identified) == [True, False, True, False]
    assert list(nearest) == [0, 1, 1, -1]
    np.testing.assert_allclose(distance, [0.5, 0.7, 0.1, np.inf], rtol=1e-4)
    report = faces.detection_report(queries, training)
    assert (report.images, report.no_face, report.identified) == (4, 1, 2)
    assert report.per_thousand() == {"no_face_per_1000": 250.0, "identified_per_1000": 500.0}


def test_memorisation_counts_samples_nearer_a_training_face_than_the_unseen_people():
    training = np.zeros((5, 128), np.float32)
    training[:, 0] = [0, 10, 20, 30, np.nan]  # the last training image has no face
    unseen = np.zeros((101, 128), np.float32)
    unseen[:100, 0] = 0.2 + np.arange(100) * 0.01  # unseen people 0.2 to 1.19 from training face 0
    unseen[100] = np.nan
    samples = np.zeros((6, 128), np.float32)
    samples[:, 0] = [10, 20.1, 30.3, 0.25, 5, np.nan]  # a copy, a near copy, two beyond the bar, one far, no face
    report = faces.memorisation(samples, training, unseen)
    threshold = np.quantile(0.2 + np.arange(100) * 0.01, faces.MEMORISED_QUANTILE)  # 0.2099: 1 in 100 is nearer
    assert report.threshold == pytest.approx(threshold, rel=1e-5)
    assert (report.images, report.memorised, report.training_faces, report.unseen_faces) == (6, 2, 4, 100)
    # Unseen people score about the quantile's rate against themselves; the identified count calls 40 of them known.
    assert faces.memorisation(unseen, training, unseen).memorised == 1
    assert faces.detection_report(unseen, training).identified == 40  # within 0.6: "identified"
    with pytest.raises(ValueError, match="no face found among the unseen"):
        faces.memorisation(samples, training, unseen[100:])


def test_same_person_share_counts_only_pairs_with_a_face_on_both_sides():
    outputs = np.zeros((5, 128))
    truth = np.zeros((5, 128))  # float64: a distance of exactly 0.6
    truth[0, 0], truth[1, 0], truth[2, 3] = 0.5, 0.6, 0.9  # same person; at the tolerance (not within); another
    outputs[3] = np.nan  # no face in the output
    truth[4] = np.nan  # no face in the true image
    assert faces.same_person_share(outputs, truth) == (pytest.approx(1 / 3), 3)
    assert faces.same_person_share(outputs, truth, tolerance=0.95) == (1.0, 3)
    share, pairs = faces.same_person_share(outputs[3:], truth[3:])
    assert np.isnan(share) and pairs == 0
    with pytest.raises(ValueError, match="5 and 4 faces"):
        faces.same_person_share(outputs, truth[:4])
    with pytest.raises(ValueError, match=r"truth should be images \[N, H, W, 3\] or face embeddings"):
        faces.same_person_share(outputs, truth[:, :64])


def test_same_person_share_embeds_images_itself():
    noise = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    share, pairs = faces.same_person_share(noise, noise)
    assert np.isnan(share) and pairs == 0


@needs_celeba
def test_same_person_share_of_real_faces_against_themselves_and_against_others():
    images = celeba_faces(8)
    assert faces.same_person_share(images, images[:, :, ::-1]) == (1.0, 8)  # mirrored: the same people
    share, pairs = faces.same_person_share(images, np.roll(images, 1, axis=0))  # each against another person
    assert pairs == 8 and share <= 0.25


@needs_celeba
def test_real_celeba_faces_are_detected_at_64_and_recognised_as_themselves():
    images = celeba_faces(12)
    embeddings = faces.face_embeddings(images, workers=2, chunk_size=4)
    found = faces.has_face(embeddings)
    assert found.sum() >= 10, f"only {found.sum()} of 12 real faces detected at 64x64"
    np.testing.assert_array_equal(faces.face_embeddings(images[:4], workers=1), embeddings[:4])  # same numbers
    identified, nearest, distance = faces.identify(embeddings, embeddings)
    assert np.all(identified[found]) and np.all(distance[found] == 0)
    np.testing.assert_array_equal(nearest[found], np.flatnonzero(found))
    # A mirrored face is still the same person; the other people are mostly not.
    mirrored = faces.face_embeddings(images[found][:, :, ::-1], workers=1)
    flipped_distance = np.linalg.norm(mirrored - embeddings[found], axis=1)
    assert np.nanmedian(flipped_distance) < faces.MATCH_TOLERANCE
    others = np.linalg.norm(embeddings[found][:, None] - embeddings[found][None], axis=2)
    assert np.median(others[~np.eye(len(others), dtype=bool)]) > np.nanmedian(flipped_distance)


@needs_celeba
def test_detect_faces_finds_one_centred_box_in_an_aligned_face():
    boxes = faces.detect_faces(celeba_faces(1))[0]
    assert boxes.shape == (1, 4)
    left, top, right, bottom = boxes[0]
    assert 16 < (left + right) / 2 < 48 and 16 < (top + bottom) / 2 < 48 and right - left > 20


# TensorFlow's start-up notices, which TF_CPP_MIN_LOG_LEVEL does not reach (facekit/__init__.py filters them)
START_UP_NOTICES = ("absl::InitializeLog", "oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard")


def test_evaluate_with_worker_processes_prints_no_tensorflow_start_up_notices(tmp_path):
    from facekit import synthetic

    real = synthetic.write_synthetic_celeba(tmp_path / "real", 60, seed=0)
    generated = tmp_path / "generated"
    generated.mkdir()
    for index, image in enumerate(np.random.default_rng(0).integers(0, 256, (60, 64, 64, 3), dtype=np.uint8)):
        Image.fromarray(image).save(generated / f"{index:03d}.png")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["FACEKIT_DATA"] = str(tmp_path / "data")
    finished = subprocess.run([sys.executable, "-m", "facekit", "evaluate", str(generated), "--real", str(real),
                               "--count", "60", "--metrics", "faces", "ms_ssim"],  # 2 chunks of 50: 2 workers
                              capture_output=True, text=True, env=environment, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert "no_face" in finished.stdout and "ms_ssim" in finished.stdout  # dlib's workers and TensorFlow both ran
    printed = finished.stdout + finished.stderr
    assert not [notice for notice in START_UP_NOTICES if notice in printed], finished.stderr


def test_only_start_up_log_lines_below_the_level_are_dropped():
    import facekit

    info = b"I0000 00:00:1795371235.222530    3231 port.cc:153] oneDNN custom operations are on.\n"
    old_style = b"2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda\n"
    warning = b"W0000 00:00:1795371235.222530    3231 some.cc:1] a warning\n"
    cuda_error = b"E0000 00:00:1795371239.212411    3231 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n"
    other_error = b"E0000 00:00:1795371239.212411    3231 kernel.cc:52] something real went wrong\n"
    python_warning = b"/path/module.py:3: UserWarning: something Python said\n"
    dropped = {level: [line for line in (info, old_style, warning, cuda_error, other_error, python_warning)
                       if facekit._is_start_up_notice(line, level)] for level in (0, 1, 2, 3)}
    assert dropped[0] == []
    assert dropped[1] == [info, old_style]
    assert dropped[2] == [info, old_style, warning, cuda_error]
    assert dropped[3] == [info, old_style, warning, cuda_error, other_error]
