"""Eigenfaces fit time and accuracy: facekit.models.pca (randomized subspace iteration in chunks) beside scikit-learn.

Both fit the top `--components` principal components of the same images (uint8 [N, 64, 64, 3] on the [-1, 1]
scale). facekit streams a memory-mapped uint8 array chunk by chunk; scikit-learn's PCA(svd_solver="randomized")
needs the whole float32 matrix in memory, so its time includes that conversion. The script prints wall and CPU
time, the peak memory its arrays take, and the explained variance of both side by side. Rayleigh-Ritz values never exceed the true
eigenvalues, so where the two differ the larger one is the closer; `--converged` adds a slow run with many power
iterations and double the oversampling as a reference.

The faces: `--data` (default: the real CelebA sample in ../shared/celeba when present, else facekit's default
source). When it holds fewer than `--count` images, mirror images are appended to reach the count (a mirrored face
is a face; the script says how many).

    .venv/bin/python benchmarks/bench_pca.py [--count 20000] [--components 200] [--resolution 64] [--converged]
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facekit import data  # noqa: E402
from facekit.models import pca  # noqa: E402

SHARED_CELEBA = ROOT.parent / "shared" / "celeba"
SHOWN_COMPONENTS = (1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_CELEBA if SHARED_CELEBA.exists() else None)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--converged", action="store_true", help="also run facekit with 10 power iterations")
    parser.add_argument("--skip-sklearn", action="store_true", help="only time facekit (e.g. at 128x128)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        images = faces_on_disk(arguments.data, arguments.count, arguments.resolution, Path(folder))
        results = {}
        results["facekit"] = timed(lambda: pca.fit(images, arguments.components).explained_variance)
        if not arguments.skip_sklearn:
            results["scikit-learn"] = timed(lambda: sklearn_variances(images, arguments.components))
        if arguments.converged:
            results["facekit, converged"] = timed(lambda: pca.fit(
                images, arguments.components, power_iterations=10, oversamples=arguments.components).explained_variance)
        report(results, arguments.components)


def faces_on_disk(source, count: int, resolution: int, folder: Path) -> np.memmap:
    """`count` prepared faces uint8 [count, R, R, 3] as a memory-mapped .npy (mirror images appended if needed)."""
    faces = data.prepare(source, resolution=resolution, limit=count, progress=False)
    mirrored = min(count - len(faces), len(faces))
    path = folder / "faces.npy"
    np.save(path, np.concatenate([faces.images, faces.images[:mirrored, :, ::-1]]))
    images = np.load(path, mmap_mode="r")
    print(f"{len(images):,} faces {resolution}x{resolution} from {faces.source} "
          f"({len(faces):,} prepared + {mirrored:,} of them mirrored); {os.cpu_count()} CPU cores visible")
    return images


def sklearn_variances(images, components: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    rows = np.asarray(images).reshape(len(images), -1).astype(np.float32) / np.float32(127.5) - np.float32(1)
    return PCA(components, svd_solver="randomized", random_state=0).fit(rows).explained_variance_


def timed(fit) -> dict:
    """Run fit(); its variances, wall and CPU seconds, and the peak of NumPy memory allocated meanwhile."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    variances = fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_gb = tracemalloc.get_traced_memory()[1] / 2**30
    tracemalloc.stop()
    return {"variances": variances, "wall": wall, "cpu": cpu, "peak_gb": peak_gb}


def report(results: dict, components: int) -> None:
    print(f"\n{'':22}{'wall s':>9}{'CPU s':>9}{'peak memory GB':>16}   (arrays allocated by the fit; the memmap is not counted)")
    for name, result in results.items():
        print(f"{name:22}{result['wall']:9.1f}{result['cpu']:9.1f}{result['peak_gb']:16.2f}")
    print("\nexplained variance of component k (pixels on the [-1, 1] scale)")
    print(f"{'k':>5}" + "".join(f"{name:>22}" for name in results))
    for k in [k for k in SHOWN_COMPONENTS if k <= components]:
        print(f"{k:5d}" + "".join(f"{result['variances'][k - 1]:22.6f}" for result in results.values()))
    print(f"{'sum':>5}" + "".join(f"{result['variances'].sum():22.4f}" for result in results.values()))
    reference_name = list(results)[-1]
    reference = results[reference_name]["variances"]
    for name, result in list(results.items())[:-1]:
        relative = result["variances"] / reference - 1
        print(f"{name} vs {reference_name}: relative difference top 50 at most {np.abs(relative[:50]).max():.1e}, "
              f"all {components} at most {np.abs(relative).max():.1e} (component {np.abs(relative).argmax() + 1})")


if __name__ == "__main__":
    main()
