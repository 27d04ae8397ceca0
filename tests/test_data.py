import io
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facekit
from facekit import data

CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "celeba"
NAMES = tuple("Eyeglasses" if i == 15 else "Male" if i == 20 else f"Attribute_{i}" for i in range(40))


def face_image(number: int, size=(178, 218)) -> Image.Image:
    """A smooth RGB test picture, different for each number (JPEG keeps it close)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width]).reshape(2, 1, 1)
    pixels = np.stack([x * 200 + number * 7, y * 180 + 30, (x + y) * 90 + number * 13], axis=-1) % 256
    return Image.fromarray(pixels.astype(np.uint8))


def attribute_rows(count: int) -> np.ndarray:
    """int8 [count, 40] of +1 / -1, fixed."""
    return np.where(np.random.default_rng(1).random((count, 40)) < 0.3, 1, -1).astype(np.int8)


def write_official(root: Path, count: int = 6) -> Path:
    """CelebA's official layout with `count` images, all four label files; identities i // 2, partitions i % 3."""
    (root / "img_align_celeba").mkdir(parents=True)
    for i in range(count):
        face_image(i).save(root / "img_align_celeba" / f"{i + 1:06d}.jpg", quality=95)
    rows = attribute_rows(count)
    lines = [str(count), " ".join(NAMES) + " "]
    lines += [f"{i + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in row) for i, row in enumerate(rows)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {i % 3}\n" for i in range(count)))
    (root / "identity_CelebA.txt").write_text("".join(f"{i + 1:06d}.jpg {100 + i // 2}\n" for i in range(count)))
    return root


def write_kaggle(root: Path, official: Path) -> Path:
    images = root / "img_align_celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for path in sorted((official / "img_align_celeba").iterdir()):
        (images / path.name).write_bytes(path.read_bytes())
    attribute_lines = (official / "list_attr_celeba.txt").read_text().splitlines()
    csv = ["image_id," + ",".join(NAMES)] + [",".join(line.split()) for line in attribute_lines[2:]]
    (root / "list_attr_celeba.csv").write_text("\n".join(csv) + "\n")
    partition_lines = (official / "list_eval_partition.txt").read_text().splitlines()
    (root / "list_eval_partition.csv").write_text("image_id,partition\n" + "\n".join(
        ",".join(line.split()) for line in partition_lines) + "\n")
    (root / "identity_CelebA.txt").write_bytes((official / "identity_CelebA.txt").read_bytes())
    return root


def write_zip(root: Path, official: Path, extra_members=()) -> Path:
    """img_align_celeba.zip (members img_align_celeba/NNNNNN.jpg) with the label files beside it."""
    root.mkdir(parents=True)
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as archive:
        for path in sorted((official / "img_align_celeba").iterdir()):
            archive.write(path, f"img_align_celeba/{path.name}")
        for member, content in extra_members:
            archive.writestr(member, content)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"):
        (root / name).write_bytes((official / name).read_bytes())
    return root


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


@pytest.fixture
def official(tmp_path):
    return write_official(tmp_path / "celeba")


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def prepare(source, cache_dir, **options):
    return data.prepare(source, cache_dir=cache_dir, progress=False, **options)


def test_official_layout_gives_images_and_labels(official, cache_dir):
    faces = prepare(official, cache_dir, resolution=32)
    assert len(faces) == 6 and faces.images.shape == (6, 32, 32, 3) and faces.images.dtype == np.uint8
    assert faces.filenames == [f"{i:06d}.jpg" for i in range(1, 7)] and faces.skipped == []
    assert faces.attribute_names == NAMES
    np.testing.assert_array_equal(faces.attributes, attribute_rows(6))
    np.testing.assert_array_equal(faces.partitions, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(faces.identities, [100, 100, 101, 101, 102, 102])
    assert faces.source == official and faces.crop == data.DEFAULT_CROP


def test_pixels_match_a_direct_crop_and_lanczos_resize(official, cache_dir):
    path = official / "img_align_celeba" / "000003.jpg"
    # no reduced-scale decoding when the crop is not larger than the output: exactly Pillow's Lanczos resize
    exact = prepare(official, cache_dir, resolution=128, crop="face128").images[2]
    expected = Image.open(path).resize((128, 128), Image.LANCZOS, box=data.CROPS["face128"])
    np.testing.assert_array_equal(exact, np.asarray(expected))
    # at 64x64 the JPEG is decoded at half scale first: close to the full-scale result, not equal
    drafted = prepare(official, cache_dir, resolution=64, crop="face160").images[2].astype(float)
    full_scale = np.asarray(Image.open(path).resize((64, 64), Image.LANCZOS, box=data.CROPS["face160"]), float)
    assert 0 < np.abs(drafted - full_scale).mean() < 2.0


def test_crops_are_documented_squares_inside_the_frame():
    assert data.CROPS == {"square178": (0, 20, 178, 198), "face160": (9, 29, 169, 189),
                          "face128": (25, 57, 153, 185)}
    for name, (left, top, right, bottom) in data.CROPS.items():
        assert right - left == bottom - top and 0 <= left and right <= 178 and 0 <= top and bottom <= 218
        assert name in data.__doc__
    assert data.DEFAULT_CROP in data.CROPS


def test_kaggle_layout_and_zip_give_the_same_faces(tmp_path, official, cache_dir):
    reference = prepare(official, cache_dir, resolution=32)
    zipped = write_zip(tmp_path / "zipped", official)
    for source in (write_kaggle(tmp_path / "kaggle", official), zipped, zipped / "img_align_celeba.zip"):
        faces = prepare(source, cache_dir, resolution=32)
        np.testing.assert_array_equal(faces.images, reference.images)
        assert faces.filenames == reference.filenames
        np.testing.assert_array_equal(faces.attributes, reference.attributes)
        np.testing.assert_array_equal(faces.partitions, reference.partitions)
        np.testing.assert_array_equal(faces.identities, reference.identities)


def test_label_files_are_optional(tmp_path, official, cache_dir):
    for name in ("identity_CelebA.txt", "list_eval_partition.txt"):
        (official / name).unlink()
    faces = prepare(official, cache_dir, resolution=16)
    assert faces.partitions is None and faces.identities is None and faces.attributes.shape == (6, 40)
    with pytest.warns(data.IdentitySplitWarning, match="split by image"):
        assert [len(part) for part in faces.split_by_identity()] == [3, 3]
    (official / "list_attr_celeba.txt").unlink()
    faces = prepare(official, cache_dir, resolution=16)
    assert len(faces) == 6 and faces.attributes is None
    with pytest.raises(data.CelebAError, match="attribute"):
        faces.select(Eyeglasses=True)


def test_other_modes_and_png_are_converted_and_used(tmp_path, cache_dir):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    base = face_image(3)
    base.save(folder / "000001.jpg", quality=95)
    base.convert("L").save(folder / "000002.jpg")
    (folder / "000003.jpg").write_bytes(jpeg_bytes(base.convert("CMYK")))
    base.convert("RGBA").save(folder / "000004.png")
    base.save(folder / "000005.png")
    faces = prepare(tmp_path / "celeba", cache_dir, resolution=32)
    assert len(faces) == 5 and faces.skipped == []
    gray = faces.images[1].astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    colour = faces.images[[0, 2, 3, 4]].astype(float)
    assert np.abs(colour - colour[-1]).mean(axis=(1, 2, 3)).max() < 4  # same picture whatever the mode


def test_wrong_size_frame_gets_the_same_relative_crop(tmp_path, cache_dir):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    face_image(5).save(folder / "000001.jpg", quality=95)
    face_image(5).resize((356, 436), Image.LANCZOS).save(folder / "000002.jpg", quality=95)
    face_image(5).resize((200, 150), Image.LANCZOS).save(folder / "000003.jpg", quality=95)
    faces = prepare(tmp_path / "celeba", cache_dir, resolution=32, crop="face128")
    assert len(faces) == 3
    assert np.abs(faces.images[0].astype(float) - faces.images[1]).mean() < 3
    assert data._box_for_frame(data.CROPS["face128"], 356, 436) == (50.0, 114.0, 306.0, 370.0)
    left, top, right, bottom = data._box_for_frame(data.CROPS["face128"], 200, 150)
    assert right - left == pytest.approx(bottom - top) and 0 <= top and bottom <= 150 and 0 <= left and right <= 200


def test_bad_files_are_skipped_with_the_reason(official, cache_dir):
    folder = official / "img_align_celeba"
    good = (folder / "000002.jpg").read_bytes()
    (folder / "000002.jpg").write_bytes(good[: len(good) // 2])
    (folder / "000003.jpg").write_bytes(b"")
    (folder / "000004.jpg").write_text("these are not the pixels you are looking for")
    (folder / "000005.jpg").write_bytes(good[:200] + bytes(np.random.default_rng(0).integers(0, 256, 3000,
                                                                                            dtype=np.uint8)))
    faces = prepare(official, cache_dir, resolution=32)
    assert faces.filenames == ["000001.jpg", "000006.jpg"] and len(faces.images) == 2
    reasons = dict(faces.skipped)
    assert set(reasons) == {"000002.jpg", "000003.jpg", "000004.jpg", "000005.jpg"}
    assert reasons["000002.jpg"].startswith("truncated image")
    assert reasons["000003.jpg"] == "empty file"
    assert reasons["000004.jpg"] == "not an image Pillow can read"
    assert reasons["000005.jpg"]
    np.testing.assert_array_equal(faces.attributes, attribute_rows(6)[[0, 5]])
    np.testing.assert_array_equal(faces.identities, [100, 102])


def test_strict_raises_on_the_first_problem_and_writes_nothing(official, cache_dir):
    (official / "img_align_celeba" / "000004.jpg").write_bytes(b"")
    with pytest.raises(data.CelebAError, match=r"^000004.jpg: empty file$"):
        prepare(official, cache_dir, resolution=32, strict=True, workers=1)
    assert not cache_dir.exists() or os.listdir(cache_dir) == []


def test_bad_attribute_rows_are_reported_by_line(official, cache_dir):
    path = official / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[3] = "000002.jpg  1 -1  1"  # line 4 of the file
    lines[4] = lines[4].replace("-1", "2", 1)  # line 5
    del lines[5]  # 000004.jpg has no row
    path.write_text("\n".join(lines) + "\n")
    faces = prepare(official, cache_dir, resolution=16)
    assert faces.filenames == ["000001.jpg", "000005.jpg", "000006.jpg"]
    assert dict(faces.skipped) == {
        "000002.jpg": "list_attr_celeba.txt line 4: expected 40 values, found 3",
        "000003.jpg": f"list_attr_celeba.txt line 5: expected values in -1, 1, found {' '.join(lines[4].split()[1:])}",
        "000004.jpg": "no row in list_attr_celeba.txt"}
    with pytest.raises(data.CelebAError, match=r"^000002.jpg: list_attr_celeba.txt line 4: expected 40 values, "
                                               r"found 3$"):
        prepare(official, cache_dir, resolution=16, strict=True)


def test_bad_partition_and_identity_rows(official, cache_dir):
    (official / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg x\n000003.jpg 0\n000004.jpg 1\n"
                                                     "000005.jpg 2\n000006.jpg 2\n")
    (official / "identity_CelebA.txt").write_text("000001.jpg 1\n000002.jpg 1\n000003.jpg 1 2\n000004.jpg 3\n"
                                                 "000005.jpg 4\n000006.jpg 5\n")
    faces = prepare(official, cache_dir, resolution=16)
    assert dict(faces.skipped) == {
        "000002.jpg": "list_eval_partition.txt line 2: expected values in 0, 1, 2, found x",
        "000003.jpg": "identity_CelebA.txt line 3: expected 1 values, found 2"}
    np.testing.assert_array_equal(faces.partitions, [0, 1, 2, 2])


def test_zip_entries_outside_the_folder_are_refused(tmp_path, official, cache_dir):
    picture = jpeg_bytes(face_image(9))
    members = [("../escape.jpg", picture), ("/absolute.jpg", picture), ("img_align_celeba/../../up.jpg", picture)]
    source = write_zip(tmp_path / "zipped", official, members)
    faces = prepare(source, cache_dir, resolution=16)
    assert len(faces) == 6
    assert dict(faces.skipped) == {member: f"zip entry {member!r} points outside the archive's folder"
                                   for member, _ in members}
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "up.jpg").exists()
    with pytest.raises(data.CelebAError, match="points outside"):
        prepare(source, cache_dir, resolution=16, strict=True)


def test_second_call_reads_the_cache_without_decoding(official, cache_dir, monkeypatch):
    first = prepare(official, cache_dir, resolution=32, limit=5)
    files = sorted(path.name for path in cache_dir.iterdir())
    assert [Path(name).suffix for name in files] == [".json", ".npz", ".npy"] and not any(
        name.startswith(".") for name in files)

    def no_decoding(*arguments):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(data, "_decode_face", no_decoding)
    second = prepare(official, cache_dir, resolution=32, limit=5)
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    np.testing.assert_array_equal(second.images, first.images)
    assert second.filenames == first.filenames and second.skipped == first.skipped
    np.testing.assert_array_equal(second.attributes, first.attributes)
    # another limit, crop or size, or a changed file, is another cache entry: it decodes (here: the failure)
    for options in ({"limit": 4}, {"crop": "face128"}, {"resolution": 16}):
        with pytest.raises(data.CelebAError, match="no image could be prepared"):
            prepare(official, cache_dir, **{"resolution": 32, "limit": 5, **options})
    (official / "img_align_celeba" / "000001.jpg").write_bytes(jpeg_bytes(face_image(42)))
    with pytest.raises(data.CelebAError, match="decoded although cached"):
        prepare(official, cache_dir, resolution=32, limit=5)


def test_worker_processes_give_the_same_result(tmp_path, cache_dir):
    source = write_official(tmp_path / "many", count=150)
    one = prepare(source, cache_dir / "one", resolution=16, workers=1)
    two = prepare(source, cache_dir / "two", resolution=16, workers=2)
    np.testing.assert_array_equal(one.images, two.images)
    assert one.filenames == two.filenames and len(one) == 150
    zipped = write_zip(tmp_path / "zipped", source)
    for workers in (1, 2):  # the second forks after this process has the archive open
        faces = prepare(zipped, cache_dir / f"zip{workers}", resolution=16, workers=workers)
        np.testing.assert_array_equal(faces.images, one.images)


def test_default_source_order(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    calls = []
    fake = types.SimpleNamespace(write_synthetic_celeba=lambda out_dir, count, seed=0: calls.append(
        (out_dir, count, seed)) or out_dir)
    monkeypatch.setattr(facekit, "synthetic", fake, raising=False)
    monkeypatch.setitem(sys.modules, "facekit.synthetic", fake)
    monkeypatch.delenv("FACEKIT_CELEBA", raising=False)
    assert data.default_source() == tmp_path / "synthetic"
    assert calls == [(tmp_path / "synthetic", data.DEFAULT_SYNTHETIC_COUNT, 0)]
    (tmp_path / "celeba").mkdir()
    assert data.default_source() == tmp_path / "celeba"
    monkeypatch.setenv("FACEKIT_CELEBA", str(tmp_path / "elsewhere"))
    assert data.default_source() == tmp_path / "elsewhere"
    assert len(calls) == 1


def test_to_float_and_back():
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    floats = data.to_float(levels)
    assert floats.dtype == np.float32 and floats.min() == -1 and floats.max() == 1
    np.testing.assert_array_equal(data.to_uint8(floats), levels)
    np.testing.assert_array_equal(data.to_uint8(np.array([-3.0, 3.0])), [0, 255])


def labelled_faces(count=40):
    images = np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1).repeat(3, axis=-1)
    attributes = np.where(np.random.default_rng(2).random((count, 40)) < 0.4, 1, -1).astype(np.int8)
    return data.Faces(images, [f"{i:06d}.jpg" for i in range(count)], NAMES, attributes,
                      np.arange(count) % 3, np.arange(count) // 3)


def test_select_and_partition():
    faces = labelled_faces()
    glasses = faces.select(Eyeglasses=True)
    expected = np.flatnonzero(faces.attributes[:, 15] == 1)
    assert glasses.images[:, 0, 0, 0].tolist() == expected.tolist() and len(expected) > 0
    women_with_glasses = faces.select(Eyeglasses=True, Male=False)
    assert women_with_glasses.filenames == [faces.filenames[i] for i in expected if faces.attributes[i, 20] == -1]
    assert (faces.partition("test").partitions == 2).all() and len(faces.partition("valid")) == 13
    with pytest.raises(data.CelebAError, match="unknown attribute 'Glasses'"):
        faces.select(Glasses=True)


def test_split_by_identity_keeps_people_apart():
    faces = labelled_faces(300)
    parts = faces.split_by_identity((0.8, 0.1, 0.1), seed=3)
    people = [set(part.identities.tolist()) for part in parts]
    assert not (people[0] & people[1]) and not (people[0] & people[2]) and not (people[1] & people[2])
    assert sum(len(part) for part in parts) == 300
    assert abs(len(parts[0]) - 240) <= 3 and abs(len(parts[1]) - 30) <= 3
    again = faces.split_by_identity((0.8, 0.1, 0.1), seed=3)
    assert [part.filenames for part in again] == [part.filenames for part in parts]
    assert faces.split_by_identity((0.8, 0.1, 0.1), seed=4)[1].filenames != parts[1].filenames
    assert len(faces.split_by_identity((0.5,), seed=0)[0]) == 150


def synthetic_without(tmp_path, removed, count=200):
    """The synthetic set in the official layout without the label files `removed`: (folder, {filename: person})."""
    from facekit import synthetic

    folder = synthetic.write_synthetic_celeba(tmp_path / "faces", count, seed=0)
    people = dict(line.split() for line in (folder / "identity_CelebA.txt").read_text().splitlines())
    for name in removed:
        (folder / name).unlink()
    return folder, people


def people_in(part, people) -> set:
    return {people[filename] for filename in part.filenames}


def test_without_identities_the_partitions_keep_people_apart(tmp_path):
    folder, people = synthetic_without(tmp_path, ["identity_CelebA.txt"])
    faces = data.prepare(folder, resolution=8, cache_dir=tmp_path / "cache", progress=False)
    assert faces.identities is None and set(faces.partitions) == {0, 1, 2}
    counts = np.bincount(faces.partitions)  # train / valid / test, about 80 / 10 / 10 % of the 200

    with pytest.warns(data.IdentitySplitWarning, match="no identity file .* follows the partition file") as caught:
        training, heldout = faces.split_by_identity((0.9, 0.1), seed=0)
    assert len(caught) == 1 and "for 90% / 10% asked" in str(caught[0].message)
    assert not people_in(training, people) & people_in(heldout, people)
    assert not set(training.partitions) & set(heldout.partitions)  # whole partitions
    # train+test | valid (sampled to 20) leaves 4 images short of 180 | 20; train+valid | test would leave 5
    assert tuple(counts) == (161, 24, 15) and (len(training), len(heldout)) == (176, 20)

    with pytest.warns(data.IdentitySplitWarning, match=f"50.0% / {(counts[1] + counts[2]) / 2:.1f}% of the images for 50% / 50% asked"):
        halves = faces.split_by_identity((0.5, 0.5), seed=0)
    assert [len(half) for half in halves] == [100, counts[1] + counts[2]]  # train can give half; valid+test cannot
    assert not people_in(halves[0], people) & people_in(halves[1], people)
    assert set(halves[0].partitions) == {0} and len(set(halves[0].filenames)) == 100  # a sample of train

    with pytest.warns(data.IdentitySplitWarning):
        three = faces.split_by_identity((0.8, 0.1, 0.1), seed=0)
        again = faces.split_by_identity((0.5, 0.5), seed=0)
        other_seed = faces.split_by_identity((0.5, 0.5), seed=1)
    assert [set(part.partitions) for part in three] == [{0}, {1}, {2}]
    assert [part.filenames for part in again] == [half.filenames for half in halves]
    assert other_seed[0].filenames != halves[0].filenames and other_seed[1].filenames == halves[1].filenames


def test_without_identities_or_partitions_the_split_is_by_image_and_says_so(tmp_path):
    folder, _ = synthetic_without(tmp_path, ["identity_CelebA.txt", "list_eval_partition.txt"])
    faces = data.prepare(folder, resolution=8, cache_dir=tmp_path / "cache", progress=False)
    with pytest.warns(data.IdentitySplitWarning, match=r"no partition file either: split by image \(seed \d\)"):
        training, heldout = faces.split_by_identity((0.9, 0.1), seed=3)
        again = faces.split_by_identity((0.9, 0.1), seed=3)
        other_seed = faces.split_by_identity((0.9, 0.1), seed=4)
        part_only = faces.split_by_identity((0.25,), seed=3)
    assert (len(training), len(heldout), len(part_only[0])) == (180, 20, 50)
    assert sorted(training.filenames + heldout.filenames) == faces.filenames
    assert again[1].filenames == heldout.filenames and other_seed[1].filenames != heldout.filenames

    # with a partition file but only the first images (all in CelebA's train partition): by image as well
    folder, _ = synthetic_without(tmp_path / "limited", ["identity_CelebA.txt"])
    first = data.prepare(folder, resolution=8, cache_dir=tmp_path / "cache", progress=False, limit=40)
    assert set(first.partitions) == {0}
    with pytest.warns(data.IdentitySplitWarning, match="40 images lie in fewer partitions than the 2 sets"):
        assert [len(part) for part in first.split_by_identity((0.5, 0.5))] == [20, 20]


def test_command_line_trains_pca_on_celeba_without_an_identity_file(tmp_path, monkeypatch):
    from facekit import cli

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    folder, people = synthetic_without(tmp_path, ["identity_CelebA.txt"], count=80)
    with pytest.warns(data.IdentitySplitWarning, match="follows the partition file"):
        status = cli.main(["train", "pca", "--data", str(folder), "--run", str(tmp_path / "run"), "--components", "4"])
    assert status == 0 and (tmp_path / "run" / "checkpoints" / "eigenfaces.npz").is_file()


def batch_indices(dataset, steps):
    """The image numbers in each of the first `steps` batches (images[i] is filled with i)."""
    return [data.to_uint8(batch.numpy())[:, 0, 0, 0].tolist() for batch, _ in zip(dataset, range(steps))]


def test_batches_resume_exactly_and_cover_each_epoch():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1) * 20
    images = np.broadcast_to(images, (10, 2, 2, 3)).copy()
    dataset = data.batches(images, batch_size=4, seed=7)
    first = next(iter(dataset))
    assert first.shape == (4, 2, 2, 3) and first.dtype.name == "float32"
    np.testing.assert_array_equal(first.numpy(), data.to_float(images[data.to_uint8(first.numpy())[:, 0, 0, 0] // 20]))
    fresh = [[value // 20 for value in batch] for batch in batch_indices(dataset, 10)]
    resumed = [[value // 20 for value in batch] for batch in batch_indices(data.batches(images, 4, 7, start_step=6), 4)]
    assert resumed == fresh[6:]
    stream = [index for batch in fresh for index in batch]  # 40 = four epochs of 10
    epochs = [stream[start:start + 10] for start in range(0, 40, 10)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 4  # reshuffled each epoch
    other_seed = [[value // 20 for value in batch] for batch in batch_indices(data.batches(images, 4, 8), 3)]
    assert other_seed != fresh[:3]


def test_a_stream_started_after_some_images_continues_the_same_epochs():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1) * 20
    whole = [value // 20 for batch in batch_indices(data.batches(images, 2, seed=7), 10) for value in batch]
    later = data.batch_dicts(images, 3, seed=7, start_step=1, images_before=4)  # after 4 images, 3 at a time
    continued = [value // 20 for batch, _ in zip(later, range(4))
                 for value in data.to_uint8(batch["images"].numpy())[:, 0, 0, 0]]
    assert continued == whole[7:19]  # images 4 + 3 = 7 onwards of the one stream, across the epoch boundary
    with pytest.raises(ValueError, match="images_before=-1"):
        data.batch_dicts(images, 3, seed=7, images_before=-1)


@pytest.mark.celeba
@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"real CelebA sample not found at {CELEBA}")
def test_real_celeba_sample(tmp_path, monkeypatch):
    faces = prepare(CELEBA, tmp_path, resolution=64, limit=500)
    assert faces.images.shape == (500, 64, 64, 3) and faces.skipped == []
    lines = (CELEBA / "list_attr_celeba.txt").read_text().splitlines()[2:]
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    glasses = [name for name in faces.filenames if rows[name][15] == "1"]
    assert faces.select(Eyeglasses=True).filenames == glasses and 0 < len(glasses) < 100
    assert (faces.partitions == 0).all() and len(faces.partition("train")) == 500
    halves = faces.split_by_identity((0.5, 0.5), seed=0)
    assert not set(halves[0].identities.tolist()) & set(halves[1].identities.tolist())
    # close to the classic crop + thumbnail of the same file
    classic = Image.open(CELEBA / "img_align_celeba" / faces.filenames[0]).crop(data.CROPS["face160"])
    classic.thumbnail((64, 64))
    assert np.abs(faces.images[0].astype(float) - np.asarray(classic)).mean() < 3
    monkeypatch.setattr(data, "_decode_face", None)  # a second call must not decode
    np.testing.assert_array_equal(prepare(CELEBA, tmp_path, resolution=64, limit=500).images, faces.images)


def test_batch_dicts_carry_each_images_labels_with_it():
    images = (np.arange(30, dtype=np.uint8)[:, None, None, None] * 8).repeat(2, 1).repeat(2, 2).repeat(3, 3)
    labels = np.stack([np.arange(30), -np.arange(30)], axis=1).astype(np.int8)
    for batch, _ in zip(data.batch_dicts(images, 4, seed=3, labels=labels), range(10)):
        numbers = data.to_uint8(batch["images"].numpy())[:, 0, 0, 0].astype(int) // 8
        np.testing.assert_array_equal(batch["labels"].numpy(), np.stack([numbers, -numbers], axis=1))
    first = next(iter(data.batch_dicts(images, 4, seed=3)))
    assert set(first) == {"images"}
    np.testing.assert_array_equal(first["images"], next(iter(data.batches(images, 4, seed=3))))
    with pytest.raises(ValueError, match="5 label rows for 30 images"):
        data.batch_dicts(images, 4, seed=3, labels=labels[:5])


def test_a_subset_of_the_cache_reads_its_rows_without_copying_the_set(tmp_path):
    """A held-out split of a memory-mapped cache keeps indices, not a copy of the training images (2.2 GB for
    CelebA at 64x64): building it allocates a small fraction of the images' bytes, and every way of reading it
    gives the rows a copy would."""
    import tracemalloc

    count = 2000
    pixels = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "cache.npy", pixels)
    cached = np.load(tmp_path / "cache.npy", mmap_mode="r")
    faces = data.Faces(images=cached, filenames=[f"{i:06d}.jpg" for i in range(count)],
                       identities=np.arange(count) // 4)
    tracemalloc.start()
    training, heldout = faces.split_by_identity((0.9, 0.1), seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < pixels.nbytes / 20, f"the split allocated {peak} bytes for {pixels.nbytes} bytes of images"
    chosen = np.array([int(name[:6]) for name in training.filenames])
    np.testing.assert_array_equal(np.asarray(training.images), pixels[chosen])
    assert training.images.shape == (len(chosen), 32, 32, 3) and training.images.dtype == np.uint8
    np.testing.assert_array_equal(training.images[7], pixels[chosen[7]])
    np.testing.assert_array_equal(training.images[10:20], pixels[chosen[10:20]])
    np.testing.assert_array_equal(training.images[[5, 2, 9]], pixels[chosen[[5, 2, 9]]])  # order kept
    np.testing.assert_array_equal(training.images[3, :, :, 0], pixels[chosen[3], :, :, 0])
    inner = training.split_by_identity((0.5, 0.5), seed=2)[0]  # a subset of a subset: indices compose
    np.testing.assert_array_equal(np.asarray(inner.images), pixels[[int(name[:6]) for name in inner.filenames]])
    assert training.images.astype(np.float32).mean() == pytest.approx(pixels[chosen].mean())
    first = next(iter(data.batch_dicts(training.images, 8, seed=3)))["images"]
    np.testing.assert_array_equal(first, next(iter(data.batch_dicts(pixels[chosen], 8, seed=3)))["images"])
