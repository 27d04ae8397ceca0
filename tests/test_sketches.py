"""Sketches: dark lines on white paper where the photo has edges, the XDoG formula at any resolution, jitter that
depends on (seed, image) alone, and a cache that serves every subset of the faces the sketches of its own images."""

import math
import os
import warnings

import numpy as np
import pytest
import scipy.ndimage
import skimage.morphology

from facekit import data, sketches, synthetic


@pytest.fixture(scope="module")
def cached_faces(tmp_path_factory):
    """24 synthetic faces at 32x32, prepared (and so cached) by data.prepare."""
    folder = tmp_path_factory.mktemp("sketch-faces")
    source = synthetic.write_synthetic_celeba(folder / "synthetic", 24, seed=3)
    return data.prepare(source, resolution=32, cache_dir=folder / "cache", progress=False)


@pytest.fixture
def faces(cached_faces, tmp_path):
    """The cached faces, in a cache folder of this test's own (no sketch file yet)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    path = cache / "faces-32px.npy"
    np.save(path, np.asarray(cached_faces.images))
    return data.Faces(np.load(path, mmap_mode="r"), cached_faces.filenames, identities=cached_faces.identities,
                      attribute_names=cached_faces.attribute_names, attributes=cached_faces.attributes)


def disc(size=64, radius=16, inside=60, outside=230) -> np.ndarray:
    """uint8 [1, size, size, 3]: a dark disc on a light ground."""
    rows, columns = np.indices((size, size))
    inner = (rows - size / 2) ** 2 + (columns - size / 2) ** 2 < radius**2
    return np.repeat(np.where(inner, inside, outside)[None, ..., None], 3, axis=-1).astype(np.uint8)


@pytest.mark.parametrize("style", sketches.STYLES)
def test_sketches_are_dark_lines_on_white_paper_along_the_edges(style):
    sketch = sketches.draw(disc(), style, seed=0)
    assert sketch.shape == (1, 64, 64, 1) and sketch.dtype == np.uint8
    assert set(np.unique(sketch)) == {0, 255}
    rows, columns = np.indices((64, 64))
    distance = np.hypot(rows - 32, columns - 32)
    lines = sketch[0, ..., 0] == 0
    assert lines[np.abs(distance - 16) < 2].mean() > 0.25  # the disc's outline is drawn
    assert not lines[np.abs(distance - 16) > 4].any()  # paper inside the disc and around it


def test_xdog_is_the_binarised_soft_threshold_with_sizes_scaled_to_the_resolution():
    rng = np.random.default_rng(0)
    smooth = scipy.ndimage.gaussian_filter(rng.uniform(0, 1, (128, 128)), 3)
    photo = np.repeat(np.clip((smooth - smooth.min()) / np.ptp(smooth) * 255, 0, 255)[None, ..., None], 3, -1)
    photo = photo.astype(np.uint8)
    luminance = photo[0, ..., 0] / 255.0  # grey: R = G = B, so the luminance is any channel
    sigma = 0.5 * 128 / 64  # XDOG_SIGMA is given for 64x64
    difference = scipy.ndimage.gaussian_filter(luminance, sigma) - 0.98 * scipy.ndimage.gaussian_filter(
        luminance, 1.6 * sigma)
    # 1 + tanh(phi (D - eps)) < 1/2  <=>  D < eps - atanh(1/2) / phi
    lines = difference < sketches.XDOG_EPSILON - math.atanh(0.5) / sketches.XDOG_PHI
    lines = skimage.morphology.remove_small_objects(lines, max_size=3 * 4, connectivity=2)
    assert 0.02 < lines.mean() < 0.5
    np.testing.assert_array_equal(sketches.xdog(photo)[0, ..., 0], np.where(lines, 0, 255))


def test_xdog_removes_specks_and_keeps_lines():
    paper = np.full((1, 64, 64, 3), 235, np.uint8)
    paper[0, 10, 10] = 0  # a speck
    paper[0, 40:43, 8:56] = 40  # a bar: two long lines along its edges
    lines = sketches.xdog(paper)[0, ..., 0] == 0
    assert not lines[5:16, 5:16].any()
    assert lines[36:47, 8:56].sum() > 48


def test_jitter_depends_on_the_seed_and_the_image_index_only(cached_faces):
    images = np.asarray(cached_faces.images[:12])
    first = sketches.xdog(images, seed=0)
    np.testing.assert_array_equal(first, sketches.xdog(images, seed=0))
    assert sum((a != b).any() for a, b in zip(first, sketches.xdog(images, seed=1))) >= 6
    # image 5 alone, told its index, is drawn as in the batch; told another index, it is jittered otherwise
    np.testing.assert_array_equal(sketches.xdog(images[5:6], seed=0, indices=[5]), first[5:6])
    one_image = np.repeat(images[5:6], 12, axis=0)
    assert len({sketch.tobytes() for sketch in sketches.xdog(one_image, seed=0)}) >= 4
    # without a seed, no jitter: the same image gives one sketch at every index, "xdog-fixed"'s
    fixed = sketches.xdog(one_image)
    assert len({sketch.tobytes() for sketch in fixed}) == 1
    np.testing.assert_array_equal(sketches.draw(one_image, "xdog-fixed", seed=9), fixed)


def test_jitter_varies_sigma_and_line_width_a_little():
    images = np.repeat(disc(radius=20), 60, axis=0)
    jittered = (sketches.xdog(images, seed=0)[..., 0] == 0).sum(axis=(1, 2))
    fixed = (sketches.xdog(images[:1])[..., 0] == 0).sum()
    thick = jittered > 1.5 * fixed  # a 2x2 dilation about doubles a thin outline
    assert 10 <= thick.sum() <= 30  # a third of the sketches, THICK_LINE_SHARE
    assert jittered.max() < 3.5 * fixed and jittered.min() > 0.5 * fixed


def test_bad_images_and_styles_are_refused_by_name():
    with pytest.raises(TypeError, match="uint8.*float32"):
        sketches.xdog(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"RGB images \[N, H, W, 3\].*\[1, 8, 8, 1\]"):
        sketches.canny(np.zeros((1, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="3 image indices"):
        sketches.xdog(np.zeros((3, 8, 8, 3), np.uint8), seed=0, indices=[0, 1])
    with pytest.raises(ValueError, match="unknown sketch style 'pencil'"):
        sketches.draw(np.zeros((1, 8, 8, 3), np.uint8), "pencil")


def test_prepare_caches_the_sketches_beside_the_faces_and_loads_them_later(faces, monkeypatch):
    prepared = sketches.prepare(faces, "xdog", seed=2, progress=False)
    path = faces.images.filename.with_name("faces-32px.sketch-xdog-seed2-v1.npy")
    assert isinstance(prepared, np.memmap) and prepared.filename == path and not prepared.flags.writeable
    np.testing.assert_array_equal(prepared, sketches.xdog(np.asarray(faces.images), seed=2))
    monkeypatch.setattr(sketches, "draw", lambda *arguments: pytest.fail("drew again instead of loading the cache"))
    np.testing.assert_array_equal(sketches.prepare(faces, "xdog", seed=2, progress=False), prepared)


def test_prepared_sketches_are_byte_identical_when_rebuilt_and_differ_by_seed(faces):
    first_path = sketches.prepare(faces, "xdog", seed=0, progress=False).filename
    first = first_path.read_bytes()
    other = sketches.prepare(faces, "xdog", seed=1, progress=False)
    assert other.filename != first_path and (np.asarray(other) != np.load(first_path)).any()
    os.remove(first_path)
    assert sketches.prepare(faces, "xdog", seed=0, progress=False).filename.read_bytes() == first
    # the unjittered styles do not depend on the seed: one file each
    assert sketches.prepare(faces, "canny", seed=0).filename == sketches.prepare(faces, "canny", seed=5).filename
    assert sketches.prepare(faces, "xdog-fixed", seed=7).filename.name.endswith(".sketch-xdog-fixed-v1.npy")


def test_subsets_get_the_sketches_of_their_own_images(faces):
    full = np.asarray(sketches.prepare(faces, "xdog", seed=0, progress=False))
    first, second = faces.split_by_identity((0.5, 0.5), seed=4)
    smiling = faces.select(Smiling=True)
    for subset in (first, second, smiling, first.select(Smiling=False)):
        assert 0 < len(subset) < len(faces)
        rows = subset.images.indices
        prepared = sketches.prepare(subset, "xdog", seed=0, progress=False)
        assert prepared.shape == (len(subset), 32, 32, 1)
        np.testing.assert_array_equal(np.asarray(prepared), full[rows])
        np.testing.assert_array_equal(prepared[:], sketches.xdog(np.asarray(subset.images), seed=0, indices=rows))
    assert len(list(faces.images.filename.parent.glob("*.sketch-*"))) == 1  # one cache serves them all


def test_a_corrupt_or_mismatched_cache_file_is_rebuilt_with_a_warning(faces, tmp_path):
    good = np.array(sketches.prepare(faces, "canny", progress=False))  # a copy: the test overwrites the file
    path = sketches.cache_path(faces.images.filename, "canny", 0)
    abandoned = path.with_name(f".{path.name}.k2x9.npy")  # what a killed build leaves
    for content in (b"not an array", None):
        if content is None:
            np.save(path, np.zeros((len(faces), 32, 32, 3), np.uint8))
        else:
            path.write_bytes(content)
        abandoned.write_bytes(b"half")
        with pytest.warns(sketches.SketchCacheWarning, match="rebuilding") as caught:
            rebuilt = sketches.prepare(faces, "canny", progress=False)
        message = str(caught[0].message)
        assert str(path) in message and ("cannot be read" in message or "not uint8 [24, 32, 32, 1]" in message)
        np.testing.assert_array_equal(rebuilt, good)
        assert not abandoned.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sketches.prepare(faces, "canny", progress=False)  # rebuilt once: loaded without a warning


def test_faces_held_in_memory_are_sketched_without_a_cache(cached_faces, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    in_memory = data.Faces(np.array(cached_faces.images[:6]), cached_faces.filenames[:6])
    prepared = sketches.prepare(in_memory, "xdog", seed=3, progress=False)
    assert type(prepared) is np.ndarray
    np.testing.assert_array_equal(prepared, sketches.xdog(in_memory.images, seed=3))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown sketch style"):
        sketches.prepare(in_memory, "charcoal")
