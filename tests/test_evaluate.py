"""Evaluation table: the row for known sets, sampling a DCGAN run, image folders, files written, the printed tables."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from facekit import evaluate, faces, metrics, synthetic


@pytest.fixture(scope="module")
def cartoon_faces(tmp_path_factory):
    """uint8 [16, 64, 64, 3]: the synthetic set's faces, centre square crop (dlib finds most of them)."""
    folder = synthetic.write_synthetic_celeba(tmp_path_factory.mktemp("synthetic") / "celeba", 16, seed=0)
    images = []
    for path in sorted((folder / "img_align_celeba").glob("*.jpg")):
        with Image.open(path) as image:
            top = (image.height - image.width) // 2
            square = image.convert("RGB").crop((0, top, image.width, top + image.width))
            images.append(np.asarray(square.resize((64, 64), Image.LANCZOS)))
    return np.stack(images)


def test_a_set_against_itself_scores_as_identical_and_noise_scores_as_no_faces(cartoon_faces):
    embeddings = faces.face_embeddings(cartoon_faces, workers=1)
    same = evaluate.evaluate(cartoon_faces, cartoon_faces, seed=0, real_embeddings=embeddings, workers=1)
    row = same.metrics
    detected = int(faces.has_face(embeddings).sum())
    assert detected >= 6, "the synthetic faces should mostly be detectable"
    assert row["images"] == 16 and row["swd_avg"] == 0.0
    assert row["no_face"] == 16 - detected and "memorised" not in row  # real faces are training faces: no unseen
    assert row["face_nn"] == 0.0 and row["pixel_nn"] == 0.0
    assert row["face_fd"] == pytest.approx(0, abs=1e-6) and row["ms_ssim"] == row["ms_ssim_real"]
    found = embeddings[faces.has_face(embeddings)]  # KID's kernel scaled for face embeddings, not for Inception's
    assert row["face_kid"] == metrics.kernel_inception_distance(found, found, scale=metrics.FACE_KID_SCALE)[0]
    assert row["face_kid"] != metrics.kernel_inception_distance(found, found)[0]
    assert set(same.grids) == {"neighbours_pixel", "neighbours_face"}
    assert same.grids["neighbours_pixel"].shape == (8 * 66 + 2, 6 * 66 + 2, 3)

    noise = np.random.default_rng(0).integers(0, 256, cartoon_faces.shape, dtype=np.uint8)
    row = evaluate.evaluate(noise, cartoon_faces, metric_groups=("swd", "faces"), real_embeddings=embeddings,
                            workers=1).metrics
    assert row["no_face"] == 16 and "face_fd" not in row and "ms_ssim" not in row
    assert row["swd_avg"] > 50

    # Fewer generated than real images: both sets, and the real embeddings, are cut to the smaller count.
    fewer = evaluate.evaluate(cartoon_faces[:10], cartoon_faces, metric_groups=("faces",), real_embeddings=embeddings,
                              workers=1).metrics
    assert fewer["images"] == 10 and fewer["no_face"] == int((~faces.has_face(embeddings[:10])).sum())
    with pytest.raises(ValueError, match="3 rows for 16 real images"):
        evaluate.evaluate(cartoon_faces, cartoon_faces, metric_groups=("faces",), real_embeddings=embeddings[:3])


def test_copies_of_training_faces_count_as_memorised_and_unseen_people_do_not(cartoon_faces):
    embeddings = faces.face_embeddings(cartoon_faces, workers=1)
    training, unseen = cartoon_faces[:8], cartoon_faces[8:]
    found = faces.has_face(embeddings)
    assert found[:8].sum() >= 3 and found[8:].sum() >= 3
    copies = evaluate.evaluate(training, unseen, metric_groups=("faces",), training=training, workers=1,
                               real_embeddings=embeddings[8:], training_embeddings=embeddings[:8]).metrics
    assert copies["memorised"] == found[:8].sum() and copies["training_faces"] == found[:8].sum()
    others = evaluate.evaluate(unseen, unseen, metric_groups=("faces",), training=training, workers=1,
                               real_embeddings=embeddings[8:], training_embeddings=embeddings[:8]).metrics
    assert others["memorised"] <= 1  # the bar is the 1% quantile of these faces' own distances: the nearest at most
    assert faces.detection_report(embeddings[8:], embeddings[:8]).identified >= 1  # which "identified" would flag


def test_the_real_floor_compares_two_disjoint_samples():
    images = np.arange(30, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    for count, equal, expected in ((10, True, (10, 10)), (20, True, (15, 15)), (20, False, (20, 10))):
        first, second = evaluate._two_samples(images, count, seed=0, equal=equal)  # 30 faces, never one in both
        assert (len(first), len(second)) == expected and not set(first[:, 0, 0, 0]) & set(second[:, 0, 0, 0])


def test_inception_metrics_are_the_distances_of_the_networks_features(cartoon_faces, monkeypatch):
    import keras

    pooling = keras.Sequential([keras.Input((299, 299, 3)), keras.layers.GlobalAveragePooling2D()])
    monkeypatch.setattr(metrics, "inception_network", lambda: pooling)  # a stand-in: mean colour per image
    generated = cartoon_faces[::-1] // 2
    row = evaluate.evaluate(generated, cartoon_faces, metric_groups=("inception",)).metrics
    features_generated = metrics.inception_features(generated, network=pooling)
    features_real = metrics.inception_features(cartoon_faces, network=pooling)
    assert features_generated.shape == (16, 3)
    assert row["fid"] == pytest.approx(metrics.frechet_distance(features_generated, features_real), rel=1e-6)
    assert row["fid"] > 0.1
    assert row["kid"] == pytest.approx(metrics.kernel_inception_distance(features_generated, features_real)[0])


def test_evaluate_refuses_unknown_metrics_and_mismatched_sizes(cartoon_faces):
    with pytest.raises(ValueError, match="unknown fid"):
        evaluate.evaluate(cartoon_faces, cartoon_faces, metric_groups=("fid",))
    with pytest.raises(ValueError, match="resolution"):
        evaluate.evaluate(cartoon_faces[:, :32, :32], cartoon_faces, metric_groups=("swd",))


def test_a_gan_run_is_sampled_from_its_moving_average_at_the_latest_checkpoint(tmp_path):
    from facekit.models import dcgan

    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    config = dcgan.DCGANConfig(resolution=32, latent_dim=8, filters=4, batch_size=4, steps=4, snapshot_every=2,
                               grid_size=4, precision="float32", ema_half_life=8)
    run = dcgan.MODEL.train(images, tmp_path / "run", config, show_progress=False)
    sampled = evaluate.sample_run(run.path, count=5, seed=7)
    noise = np.random.default_rng(7).standard_normal((5, 8)).astype(np.float32)
    model = dcgan.MODEL.load(run.path)
    assert sampled.shape == (5, 32, 32, 3) and sampled.dtype == np.uint8
    np.testing.assert_array_equal(sampled, evaluate.data.to_uint8(model.generator_ema(noise, training=False)))
    assert not np.allclose(model.generate(noise), model.generator(noise, training=False), atol=1e-6)
    np.testing.assert_array_equal(evaluate.generated_images(run.path, 5, seed=7), sampled)

    run.write_config({**vars(config), "model": "gan9000"})
    with pytest.raises(ValueError, match="unknown model 'gan9000'"):
        evaluate.sample_run(run.path, count=2)


def test_a_vae_run_is_sampled_from_its_prior(tmp_path):
    from facekit.models import vae

    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    config = vae.VAEConfig(resolution=32, latent_dim=4, filters=4, batch_size=4, steps=2, snapshot_every=2,
                           grid_size=4, precision="float32")
    run = vae.train(images, tmp_path / "run", config, show_progress=False)
    sampled = evaluate.sample_run(run.path, count=3, seed=1)
    latents = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(sampled, evaluate.data.to_uint8(vae.load_vae(run.path).sample(latents)))


def test_a_pca_run_is_sampled_from_its_eigenfaces(tmp_path):
    from facekit.models import pca

    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    run = pca.train(images, tmp_path / "run", pca.PCAConfig(components=3, grid_size=4), show_progress=False)
    sampled = evaluate.sample_run(run.path, count=4, seed=2)
    expected = evaluate.data.to_uint8(pca.load_eigenfaces(run.path).sample(4, seed=2))
    np.testing.assert_array_equal(sampled, expected)
    assert len(np.unique(sampled.reshape(4, -1), axis=0)) == 4


def test_the_command_line_evaluates_a_run_and_an_image_folder(tmp_path, monkeypatch, capsys):
    from facekit import cli, data
    from facekit.models import dcgan

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")  # caches go here, not into the repository
    source = synthetic.write_synthetic_celeba(tmp_path / "celeba", 20, seed=0)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    config = dcgan.DCGANConfig(resolution=32, latent_dim=8, filters=4, batch_size=4, steps=1, grid_size=4,
                               precision="float32")
    run = dcgan.MODEL.train(images, tmp_path / "run", config, show_progress=False)
    arguments = ["--real", str(source), "--count", "12", "--metrics", "swd", "ms_ssim", "neighbours"]
    assert cli.main(["evaluate", str(run.path), *arguments]) == 0
    printed = capsys.readouterr().out
    assert "swd_avg" in printed and "evaluation.csv" in printed
    result = json.loads((run.path / "evaluation.json").read_text())
    assert result["metrics"]["images"] == 12 and result["metrics"]["swd_avg"] > 0 and result["seed"] == 0
    assert iio.imread(run.path / "neighbours_pixel.png").shape == (8 * 34 + 2, 6 * 34 + 2, 3)

    folder = tmp_path / "pictures"
    folder.mkdir()
    for index, image in enumerate(evaluate.sample_run(run.path, 12, seed=3)):
        iio.imwrite(folder / f"{index:02d}.png", image)
    assert cli.main(["evaluate", str(folder), *arguments]) == 0
    with open(tmp_path / "pictures_evaluation.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["images"] == "12" and float(row["swd_avg"]) > 0
    assert cli.main(["evaluate", str(tmp_path / "nothing"), *arguments]) == 1
    assert "neither a run folder" in capsys.readouterr().err


def test_image_folders_are_read_in_name_order_and_odd_sizes_are_named(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        iio.imwrite(tmp_path / f"{index:03d}.png", image)
    (tmp_path / "notes.txt").write_text("not an image")
    np.testing.assert_array_equal(evaluate.read_image_folder(tmp_path), images)
    np.testing.assert_array_equal(evaluate.generated_images(tmp_path, count=2), images[:2])
    iio.imwrite(tmp_path / "004.png", np.zeros((16, 20, 3), np.uint8))
    with pytest.raises(ValueError, match=r"004.png: image is 20x16; expected square"):
        evaluate.read_image_folder(tmp_path)
    iio.imwrite(tmp_path / "004.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match=r"004.png: image is 20x20, unlike 000.png \(16 square\)"):
        evaluate.read_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        evaluate.generated_images(tmp_path / "missing", 2)


def test_results_are_written_as_csv_and_json_and_printed_as_tables(tmp_path):
    result = {"target": "runs/x", "real": "celeba", "seed": 0,
              "metrics": {"images": 1000, "swd_avg": 12.34567, "no_face": 120, "memorised": 3}}
    evaluate.write_result(result, tmp_path / "evaluation.json", tmp_path / "evaluation.csv")
    assert json.loads((tmp_path / "evaluation.json").read_text()) == result
    with open(tmp_path / "evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"target": "runs/x", "real": "celeba", "seed": "0", "images": "1000", "swd_avg": "12.35",
                     "no_face": "120", "memorised": "3"}]

    rows = {"real vs real": {"images": 500, "no_face": 20, "memorised": 4, "training_faces": 1800},
            "dcgan": {"images": 500, "no_face": 350, "memorised": 10, "training_faces": 1800}}
    table = evaluate.detection_table(rows).splitlines()
    assert table[0] == "out of 1,000 images" and table[1].split()[-1] == "memorised"
    assert table[2].split()[-2:] == ["40", "8"] and table[3].split()[-2:] == ["700", "20"]
    assert table[4].startswith("memorised: per 1,000 images, faces nearer one of the 1,800 training faces searched "
                               "than 99% of the real faces of unseen people")
    markdown = evaluate.markdown_table({label: {**row, "swd_avg": 1.0} for label, row in rows.items()}).splitlines()
    assert markdown[0] == "| set | can't detect a face | memorised | SWD |"
    assert markdown[3] == "| dcgan | 700 | 20 | 1.0 |"
    assert markdown[-1] == table[4]
    assert evaluate.format_table({"a": {"x": 1.0}, "bb": {"y": 2}}).splitlines() == [
        "set  x  y", "a    1   ", "bb      2"]


def test_a_held_out_run_searches_ten_training_faces_per_image_or_all(tmp_path, monkeypatch):
    from facekit import data

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text('{"model": "dcgan", "heldout": 0.5, "seed": 0}')
    images = np.arange(100, dtype=np.uint8)[:, None, None, None] * np.ones((1, 16, 16, 3), np.uint8)
    faces_of = data.Faces(images, [f"{index}.jpg" for index in range(100)], source=tmp_path,
                          identities=np.arange(100) // 2)
    monkeypatch.setattr(data, "prepare", lambda *arguments, **keywords: faces_of)
    for count, training_count, searched in ((2, None, 20), (10, None, 50), (2, 7, 7), (2, 10**9, 50)):
        sets = evaluate.real_sets(run_dir, None, 16, count, training_count=training_count)
        assert len(sets.training) == searched and len(np.unique(sets.training[:, 0, 0, 0])) == searched
        assert not set(sets.training[:, 0, 0, 0]) & set(sets.real[:, 0, 0, 0])  # the training people only


def test_a_run_is_compared_with_real_faces_in_the_crop_it_trained_on(tmp_path, monkeypatch):
    from facekit import data

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text('{"model": "dcgan", "crop": "face128", "limit": 4}')
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    asked = {}

    def prepare(source, resolution, crop=data.DEFAULT_CROP, limit=None):
        asked.update(resolution=resolution, crop=crop, limit=limit)
        return data.Faces(images, [f"{index}.jpg" for index in range(4)], source=tmp_path)

    monkeypatch.setattr(evaluate, "generated_images", lambda target, count, seed: images)
    monkeypatch.setattr(data, "prepare", prepare)
    evaluate.evaluate_target(run_dir, tmp_path, count=4, metric_groups=["neighbours"])
    assert asked == {"resolution": 64, "crop": "face128", "limit": 4}  # the run's faces, so its split is the same
    assert (run_dir / "evaluation.csv").is_file()


def test_small_faces_are_enlarged_for_the_detector(cartoon_faces):
    small = np.stack([np.asarray(Image.fromarray(image).resize((32, 32), Image.LANCZOS)) for image in cartoon_faces])
    assert sum(len(boxes) for boxes in faces.detect_faces(small)) == 0  # at 32x32 the HOG detector finds nothing
    embeddings = faces.face_embeddings(small, workers=1)
    assert faces.has_face(embeddings).sum() >= 6
    np.testing.assert_array_equal(embeddings, faces.face_embeddings(faces.enlarged(small), workers=1))
    row = evaluate.evaluate(small, small, metric_groups=("faces",), workers=1).metrics
    assert row["no_face"] == 16 - faces.has_face(embeddings).sum()
