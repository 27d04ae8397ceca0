"""Fixtures of the image-to-image tests (test_image_to_image, test_pix2pix, test_superres, test_translate), which
sample runs by preparing their source again."""

import pytest

from facekit import data, synthetic


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """facekit.data's cache (and the sketches' beside it) in a temporary folder for a module's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "DATA_DIR", tmp_path_factory.mktemp("data"))
        yield


@pytest.fixture(scope="module")
def synthetic_faces(data_cache, tmp_path_factory):
    """120 synthetic faces at 32x32, prepared from a CelebA-layout source (12 of them held out at heldout 0.1)."""
    source = synthetic.write_synthetic_celeba(tmp_path_factory.mktemp("faces") / "celeba", 120, seed=0)
    return data.prepare(source, resolution=32, progress=False)
