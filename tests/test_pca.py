"""Eigenfaces: orthonormal components, variances against exact and scikit-learn PCA, reconstruction, sampling, files."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from facekit.models import pca

SHAPE = (8, 8, 3)  # D = 192 values per image


def _faces(count=600, rank=40, seed=0, dtype=np.uint8):
    """Images [count, 8, 8, 3] near a rank-`rank` affine subspace, with a decaying spectrum like faces have."""
    rng = np.random.default_rng(seed)
    dimension = int(np.prod(SHAPE))
    directions = np.linalg.qr(rng.standard_normal((dimension, rank)))[0]
    coefficients = rng.standard_normal((count, rank)) * 6.0 * np.arange(1, rank + 1) ** -0.7
    flat = 0.1 * np.sin(np.arange(dimension)) + coefficients @ directions.T
    if dtype == np.uint8:
        flat += 0.02 * rng.standard_normal(flat.shape)
        return np.clip(np.round((flat + 1) * 127.5 / 3), 0, 255).astype(np.uint8).reshape((count,) + SHAPE)
    return flat.astype(dtype).reshape((count,) + SHAPE)


def _as_rows(images):
    """The [-1, 1] float64 rows pca works on."""
    rows = images.reshape(len(images), -1).astype(np.float64)
    return rows / 127.5 - 1 if images.dtype == np.uint8 else rows


@pytest.fixture(scope="module")
def images():
    return _faces()


@pytest.fixture(scope="module")
def model(images):
    return pca.fit(images, components=20, seed=0)


def test_components_are_orthonormal_and_ordered_by_variance(model):
    gram = model.components.astype(np.float64) @ model.components.T.astype(np.float64)
    np.testing.assert_allclose(gram, np.eye(20), atol=1e-5)
    assert np.all(np.diff(model.explained_variance) < 0)
    assert 0 < model.explained_variance_ratio.sum() < 1
    assert model.components.dtype == np.float32 and model.components.shape == (20, 192)


def test_mean_variances_and_components_match_an_exact_eigendecomposition(images, model):
    rows = _as_rows(images)
    centred = rows - rows.mean(axis=0)
    covariance = centred.T @ centred / (len(rows) - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    np.testing.assert_allclose(model.mean.reshape(-1), rows.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(model.total_variance, np.trace(covariance), rtol=1e-6)
    # the leading variances are exact; the last few of the 20, a fraction of a percent low: Rayleigh-Ritz values
    # on a subspace never exceed the true eigenvalues
    np.testing.assert_allclose(model.explained_variance[:10], eigenvalues[:10], rtol=1e-5)
    np.testing.assert_allclose(model.explained_variance, eigenvalues[:20], rtol=5e-3)
    assert np.all(model.explained_variance <= eigenvalues[:20] * (1 + 1e-6))
    alignment = np.abs(np.sum(model.components[:10] * eigenvectors[:, :10].T, axis=1))
    np.testing.assert_allclose(alignment, 1.0, atol=1e-4)


@pytest.mark.parametrize("svd_solver", ["full", "randomized"])
def test_explained_variance_matches_scikit_learn(images, model, svd_solver):
    reference = PCA(20, svd_solver=svd_solver, random_state=0).fit(_as_rows(images))
    np.testing.assert_allclose(model.explained_variance, reference.explained_variance_, rtol=5e-3)
    np.testing.assert_allclose(model.explained_variance_ratio, reference.explained_variance_ratio_, rtol=5e-3)
    signs = np.sign(np.sum(model.components[:10] * reference.components_[:10], axis=1))
    np.testing.assert_allclose(model.encode(images, 10), reference.transform(_as_rows(images))[:, :10] * signs,
                               atol=2e-3)


def test_reconstruction_error_falls_with_k_as_the_left_out_variance_predicts(images, model):
    rows = _as_rows(images)
    errors = []
    for k in (1, 2, 5, 10, 20):
        reconstructions = model.reconstruct(images, k)
        assert reconstructions.shape == images.shape and reconstructions.dtype == np.float32
        errors.append(np.mean((reconstructions.reshape(len(rows), -1) - rows) ** 2))
        # mean squared error per value = variance not explained by the first k components, rescaled
        left_out = (model.total_variance - model.explained_variance[:k].sum()) * (len(rows) - 1) / rows.size
        np.testing.assert_allclose(errors[-1], left_out, rtol=1e-3)
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_images_on_a_low_rank_subspace_are_rebuilt_exactly():
    images = _faces(count=300, rank=12, dtype=np.float64)
    model = pca.fit(images, components=12)
    np.testing.assert_allclose(model.reconstruct(images), images, atol=1e-5)
    assert model.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-6)


def test_orthonormalisation_handles_ill_conditioned_and_dependent_columns():
    rng = np.random.default_rng(0)
    scaled = rng.standard_normal((500, 30)) * np.logspace(0, 4, 30)  # condition number about 1e4, as after iterations
    repeated = np.hstack([scaled[:, :10], scaled[:, :10]])  # exactly dependent: Cholesky fails, QR takes over
    for matrix in (scaled, repeated):
        basis = pca._orthonormal(matrix.astype(np.float32))
        np.testing.assert_allclose(basis.T.astype(np.float64) @ basis, np.eye(matrix.shape[1]), atol=1e-5)
    basis = pca._orthonormal(scaled.astype(np.float32))
    projection = basis @ (basis.T @ scaled)  # the basis spans the original columns
    np.testing.assert_allclose(projection, scaled, rtol=1e-4, atol=1e-4 * np.abs(scaled).max())


def test_uint8_float_memmap_and_chunk_size_give_the_same_fit(tmp_path, images, model):
    path = tmp_path / "images.npy"
    np.save(path, images)
    for other in (pca.fit(np.load(path, mmap_mode="r"), components=20, seed=0, chunk_size=37),
                  pca.fit((images.astype(np.float32) / 127.5 - 1), components=20, seed=0)):
        np.testing.assert_allclose(other.explained_variance, model.explained_variance, rtol=1e-5)
        np.testing.assert_allclose(other.components, model.components, atol=1e-4)


def test_same_seed_same_model_and_samples_follow_the_fitted_variances(images, model):
    again = pca.fit(images, components=20, seed=0)
    np.testing.assert_array_equal(again.components, model.components)
    samples = model.sample(4000, seed=1)
    assert samples.shape == (4000,) + SHAPE
    np.testing.assert_array_equal(samples[:5], model.sample(5, seed=1)[:5])
    assert not np.array_equal(samples[:5], model.sample(5, seed=2))
    sample_variances = model.encode(samples).var(axis=0)
    np.testing.assert_allclose(sample_variances, model.explained_variance, rtol=0.1)
    assert model.sample(3, seed=1, k=2).shape == (3,) + SHAPE


def test_component_images_are_scaled_eigenfaces(model):
    pictures = model.component_images(4)
    assert pictures.shape == (4,) + SHAPE
    np.testing.assert_allclose(np.abs(pictures).reshape(4, -1).max(axis=1), 1.0)
    cosines = np.sum(pictures.reshape(4, -1) * model.components[:4], axis=1) / np.linalg.norm(
        pictures.reshape(4, -1), axis=1)
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)


def test_save_load_round_trip_is_plain_arrays(tmp_path, images, model):
    path = model.save(tmp_path / "eigenfaces.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eigenfaces.npz"]  # no temporary file left
    loaded = pca.load(path)
    for field in ("mean", "components", "explained_variance"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(model, field))
    assert (loaded.total_variance, loaded.count) == (model.total_variance, model.count)
    np.testing.assert_array_equal(loaded.reconstruct(images[:3], 5), model.reconstruct(images[:3], 5))
    with np.load(path, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == sorted(pca.MODEL_KEYS)


def test_bad_inputs_are_named(tmp_path, images, model):
    with pytest.raises(ValueError, match="components must be between 1 and"):
        pca.fit(images[:10], components=10)
    with pytest.raises(ValueError, match=r"expected \[N, H, W, 3\]"):
        pca.fit(images[..., 0], components=2)
    with pytest.raises(ValueError, match=r"k must be between 1 and 20"):
        model.reconstruct(images, 21)
    with pytest.raises(ValueError, match=r"expected \[N, 8, 8, 3\]"):
        model.encode(np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="expected uint8 or float pixels"):
        model.encode(images.astype(np.int32))
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz: not an eigenfaces model \(missing mean"):
        pca.load(tmp_path / "other.npz")


def test_a_run_folder_logs_the_error_for_every_k_and_animates_the_samples(tmp_path, images):
    config = pca.PCAConfig(resolution=8, components=12, grid_size=4)
    heldout = _faces(count=50, seed=1)
    run = pca.train(images, tmp_path / "run", config, heldout=heldout, show_progress=False)
    log = run.read_log()
    assert [row["step"] for row in log] == list(range(1, 13))
    model = pca.load_eigenfaces(run.path)
    rows = _as_rows(heldout)
    for k in (1, 5, 12):
        direct = np.mean((model.reconstruct(heldout, k).reshape(len(rows), -1) - rows) ** 2)
        assert log[k - 1]["mean_squared_error"] == pytest.approx(direct, rel=1e-4)
    np.testing.assert_allclose([row["explained_variance_ratio"] for row in log],
                               np.cumsum(model.explained_variance_ratio), rtol=1e-6)
    assert [step for step, _ in run.sample_frames()] == [0, 1, 2, 5, 10, 12]
    assert run.gif_path.exists() and run.losses_path.exists()
    again = pca.train(images, tmp_path / "again", config, heldout=heldout, show_progress=False)
    assert again.gif_path.read_bytes() == run.gif_path.read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        pca.train(images, tmp_path / "run", config, show_progress=False)


def test_bad_settings_are_refused_before_any_data_is_read(tmp_path, capsys):
    from facekit import cli

    missing = tmp_path / "no-such-folder"
    for option, value, message in (("--heldout", "1.5", "heldout must be a fraction in [0, 1)"),
                                   ("--components", "0", "components must be at least 1"),
                                   ("--power-iterations", "-1", "power_iterations must be at least 0")):
        assert cli.main(["train", "pca", "--data", str(missing), "--run", str(tmp_path / "run"), option, value]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_command_line_fits_on_the_faces_and_keeps_identities_out(tmp_path, monkeypatch):
    from facekit import cli, data, synthetic

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    source = synthetic.write_synthetic_celeba(tmp_path / "faces", 80, seed=0)
    status = cli.main(["train", "pca", "--data", str(source), "--run", str(tmp_path / "run"), "--components", "6",
                       "--heldout", "0.25"])
    assert status == 0
    config = pca.load_eigenfaces(tmp_path / "run")
    assert config.components.shape == (6, 64 * 64 * 3)
    assert 40 <= config.count <= 70  # about three quarters of the 80 faces; whole identities kept out
    assert len(list((tmp_path / "run" / "samples").glob("step_*.png"))) == 5  # k = 0, 1, 2, 5, 6
