"""The scale c of KID's kernel (x.y / c + 1)^3 in dlib's face-embedding space (metrics.FACE_KID_SCALE).

Embeds 1,200 random 64x64 CelebA images (np.random.default_rng(0)), prints the faces' norms and mean |x|^2, then
splits the faces found into two disjoint halves A and B and prints KID (20 subsets of half a half) of A against
B and of A against B with 11 times less spread (B's deviations from its mean divided by 11), with c = 128 (the
Inception default, D) and with c = the mean |x|^2. About 4 minutes on one core.

    .venv/bin/python benchmarks/face_kid_scale.py [--source ../shared/celeba]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from facekit import data, faces, metrics  # noqa: E402

SHARED_CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "celeba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SHARED_CELEBA if SHARED_CELEBA.exists() else None,
                        help="CelebA folder (default ../shared/celeba if present, else facekit's default source)")
    parser.add_argument("--count", type=int, default=1200, help="images given to the face detector")
    parser.add_argument("--workers", type=int, default=1, help="face-embedding processes")
    arguments = parser.parse_args()

    images = data.prepare(arguments.source, resolution=64).images
    chosen = np.sort(np.random.default_rng(0).choice(len(images), arguments.count, replace=False))
    embeddings = faces.face_embeddings(np.asarray(images[chosen]), workers=arguments.workers)
    found = embeddings[faces.has_face(embeddings)].astype(np.float64)
    norms = np.linalg.norm(found, axis=1)
    mean_square = float(np.mean(norms**2))
    print(f"{len(found)} faces in {arguments.count} images: norm {norms.mean():.2f} +- {norms.std():.2f}, "
          f"mean |x|^2 {mean_square:.2f}, |mean| {np.linalg.norm(found.mean(axis=0)):.2f}")
    found = found[np.random.default_rng(1).permutation(len(found))]
    half = len(found) // 2
    real_a, real_b = found[:half], found[half : 2 * half]
    narrow = real_b.mean(axis=0) + (real_b - real_b.mean(axis=0)) / 11
    for scale in (None, mean_square):
        for label, other in (("real B", real_b), ("B, 11x less spread", narrow)):
            mean, std = metrics.kernel_inception_distance(real_a, other, subsets=20, seed=0, scale=scale)
            print(f"c = {scale or found.shape[1]:.2f}: KID of real A against {label}: {mean:.1e} +- {std:.1e}")


if __name__ == "__main__":
    main()
