"""Fixtures of the image-to-image tests (test_image_to_image, test_pix2pix, test_superres, test_translate), which
sample runs by preparing their source again."""

import pytest

from facekit import data, registry, synthetic
from facekit.models import image_to_image


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


@pytest.fixture
def briefly_trained(tmp_path, synthetic_faces):
    """A function (model name, its network settings) -> (the run's model, the inputs uint8 [12, r, r, C] and true
    faces uint8 [12, 32, 32, 3] of 12 held-out people): 300 steps of 16 synthetic pairs at 32x32, float32."""

    def train(name: str, **settings):
        spec = registry.model(name)
        config = spec.config(resolution=32, batch_size=16, steps=300, snapshot_every=300, grid_size=3,
                             precision="float32", **settings)
        model = spec.load(spec.train(synthetic_faces, tmp_path / name, config, show_progress=False).path)
        return (model, *image_to_image.heldout_pairs(model, 12))

    return train
