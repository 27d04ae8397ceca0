"""The synthetic face set: official CelebA layout, determinism, attributes that are true of the images."""

import dataclasses
import filecmp

import numpy as np
import pytest
from PIL import Image

from facekit import synthetic

COUNT = 120


@pytest.fixture(scope="module")
def face_set(tmp_path_factory):
    """The written set read back: folder, names, attributes int [N, 40], identities, partitions, images float [N, H, W, 3]."""
    folder = synthetic.write_synthetic_celeba(tmp_path_factory.mktemp("faces") / "synthetic", COUNT, seed=3)
    lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    rows = [line.split() for line in lines[2:]]
    names = [row[0] for row in rows]
    identities = dict(line.split() for line in (folder / "identity_CelebA.txt").read_text().splitlines())
    partitions = dict(line.split() for line in (folder / "list_eval_partition.txt").read_text().splitlines())
    images = np.stack([np.asarray(Image.open(folder / "img_align_celeba" / name), np.float32) for name in names])
    return {
        "folder": folder, "lines": lines, "names": names, "images": images,
        "attributes": np.array([[int(value) for value in row[1:]] for row in rows]),
        "identities": np.array([int(identities[name]) for name in names]),
        "partitions": np.array([int(partitions[name]) for name in names]),
    }


def column(face_set, name):
    return face_set["attributes"][:, synthetic.ATTRIBUTES.index(name)] == 1


def test_layout_and_file_formats_are_celeba_official(face_set):
    folder, lines = face_set["folder"], face_set["lines"]
    assert len(synthetic.ATTRIBUTES) == 40
    assert synthetic.ATTRIBUTES[0] == "5_o_Clock_Shadow" and synthetic.ATTRIBUTES[-1] == "Young"
    assert lines[0] == str(COUNT) and lines[1].split() == list(synthetic.ATTRIBUTES)
    assert face_set["names"] == [f"{number:06d}.jpg" for number in range(1, COUNT + 1)]
    assert lines[2].startswith("000001.jpg ") and len(lines[2]) == len("000001.jpg") + 40 * 3
    assert set(np.unique(face_set["attributes"])) == {-1, 1}
    assert sorted(path.name for path in (folder / "img_align_celeba").iterdir()) == face_set["names"]
    with Image.open(folder / "img_align_celeba" / "000001.jpg") as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (178, 218)
    assert [path.name for path in folder.parent.iterdir()] == ["synthetic"]  # no temporary folder left


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path):
    first = synthetic.write_synthetic_celeba(tmp_path / "a", 24, seed=5)
    second = synthetic.write_synthetic_celeba(tmp_path / "b", 24, seed=5)
    other = synthetic.write_synthetic_celeba(tmp_path / "c", 24, seed=6)
    files = ["list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"]
    files += [f"img_align_celeba/{number:06d}.jpg" for number in range(1, 25)]
    assert all(filecmp.cmp(first / name, second / name, shallow=False) for name in files)
    assert not any(filecmp.cmp(first / name, other / name, shallow=False) for name in files[3:])


def test_existing_set_is_returned_untouched_and_a_different_one_refused(tmp_path):
    folder = synthetic.write_synthetic_celeba(tmp_path / "faces", 6, seed=1)
    written = (folder / "img_align_celeba" / "000001.jpg").stat().st_mtime_ns
    assert synthetic.write_synthetic_celeba(folder, 6, seed=1) == folder
    assert (folder / "img_align_celeba" / "000001.jpg").stat().st_mtime_ns == written
    with pytest.raises(FileExistsError, match="faces"):
        synthetic.write_synthetic_celeba(folder, 6, seed=2)
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError, match="other"):
        synthetic.write_synthetic_celeba(tmp_path / "other", 6)
    with pytest.raises(ValueError, match="count=0"):
        synthetic.write_synthetic_celeba(tmp_path / "empty", 0)


def test_identities_keep_one_partition_and_partitions_follow_file_order(face_set):
    identities, partitions = face_set["identities"], face_set["partitions"]
    for identity in np.unique(identities):
        assert len(set(partitions[identities == identity])) == 1
    assert np.all(np.diff(partitions) >= 0)  # train, then val, then test, like CelebA
    assert 0.75 <= np.mean(partitions == 0) <= 0.9
    assert len(np.unique(identities)) >= COUNT // 8  # several images per identity
    assert np.mean(np.bincount(identities)[np.unique(identities)] > 1) > 0.8


def test_eyeglasses_add_dark_pixels_around_the_eyes_of_the_same_person(face_set):
    images, glasses, identities = face_set["images"], column(face_set, "Eyeglasses"), face_set["identities"]
    sharp = ~column(face_set, "Blurry")
    band = images[:, 102:123, 56:123].mean(axis=-1)
    dark = (band < 0.6 * np.median(band, axis=(1, 2), keepdims=True)).sum(axis=(1, 2))
    compared = 0
    for identity in np.unique(identities):
        mine = (identities == identity) & sharp
        if glasses[mine].any() and not glasses[mine].all():
            assert dark[mine & glasses].mean() > dark[mine & ~glasses].mean() + 100
            compared += 1
    assert compared >= 2
    assert 0.1 < glasses.mean() < 0.5


def test_wearing_hat_covers_the_background_above_the_head(face_set):
    images, hat = face_set["images"], column(face_set, "Wearing_Hat")
    centre = images[:, 14:25, 82:97].mean(axis=(1, 2))
    sides = (images[:, 14:25, 2:10].mean(axis=(1, 2)) + images[:, 14:25, 168:176].mean(axis=(1, 2))) / 2
    change = np.abs(centre - sides).mean(axis=-1)  # the light is a linear gradient: the sides' mean predicts the centre
    assert hat.sum() >= 5 and (~hat).sum() >= 5
    assert change[~hat].max() < 25 < 45 < change[hat].min()


def test_hair_colours_exclude_each_other_and_order_the_hair_brightness(face_set):
    names = ["Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair"]
    colours = np.stack([column(face_set, name) for name in names], axis=1)
    assert colours.sum(axis=1).max() == 1
    assert not (colours.any(axis=1) & column(face_set, "Bald")).any()
    visible = ~column(face_set, "Wearing_Hat")
    brightness = face_set["images"][:, 40:53, 80:99].mean(axis=(1, 2, 3))
    mean = {name: brightness[colours[:, k] & visible].mean() for k, name in enumerate(names)}
    assert mean["Black_Hair"] + 25 < mean["Brown_Hair"] < mean["Blond_Hair"] - 60
    assert mean["Gray_Hair"] > mean["Brown_Hair"] + 60


def test_attributes_the_drawing_does_not_control_are_minus_one_everywhere(face_set):
    for name in ("Attractive", "Chubby", "Double_Chin", "High_Cheekbones"):
        assert not column(face_set, name).any()
    for name in ("Smiling", "Male", "Eyeglasses", "Pale_Skin", "Wearing_Hat", "Young", "Bangs", "No_Beard"):
        assert 0 < column(face_set, name).mean() < 1, name
    assert not (column(face_set, "Male") & column(face_set, "Wearing_Lipstick")).any()
    assert not (column(face_set, "Mustache") & column(face_set, "No_Beard")).any()


def test_smiling_mouths_are_wider_than_neutral_ones_of_the_same_person():
    portraits, identities, _ = synthetic._sample_set(80, seed=0)
    smiling = np.array([portrait.smiling for portrait in portraits])
    lips = []
    for portrait in portraits:
        neutral_light = dataclasses.replace(portrait, light=(1.0, 0.0, 0.0, 0.0, 0.0))
        pixels = np.asarray(synthetic.draw_face(neutral_light), np.float32)
        skin = np.array(portrait.person.skin, np.float32)
        lips.append((np.abs(pixels[138:162, 60:119] - skin).sum(axis=-1) > 60).sum())
    lips = np.array(lips)
    assert lips[smiling].mean() > lips[~smiling].mean() * 1.5
