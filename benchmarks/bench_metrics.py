"""How long the evaluation metrics take on CPU, on real CelebA faces at 64x64 (or the kit's default source).

Times, each on its own: SWD between two sets of 2,000 images; dlib face embeddings (detection + 128-d embedding)
of 1,000 images, then the detection table against 1,000 training faces; MS-SSIM over 1,000 random pairs; Fréchet
and kernel distances in the face-embedding space; nearest pixel-space neighbours of 1,000 images among 2,000.

    .venv/bin/python benchmarks/bench_metrics.py [--source ../shared/celeba] [--swd-count 2000] [--face-count 1000]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from facekit import faces, metrics  # noqa: E402

SHARED_CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "celeba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SHARED_CELEBA if SHARED_CELEBA.exists() else None,
                        help="CelebA folder (default ../shared/celeba if present, else facekit's default source)")
    parser.add_argument("--swd-count", type=int, default=2000, help="images in each SWD set")
    parser.add_argument("--face-count", type=int, default=1000, help="images given to the face detector")
    parser.add_argument("--workers", type=int, default=None, help="face-embedding processes (default: cores)")
    arguments = parser.parse_args()

    needed = max(2 * arguments.swd_count, 2 * arguments.face_count)
    started = time.perf_counter()
    images = load_images(arguments.source, needed)
    print(f"{len(images)} images {images.shape[1]}x{images.shape[2]} loaded in {time.perf_counter() - started:.1f} s "
          f"(from {arguments.source or 'the default source'}); cores available: {len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every timing below)")

    half = len(images) // 2
    swd_count = min(arguments.swd_count, half)
    swd = timed(f"SWD, {swd_count} vs {swd_count} images",
                lambda: metrics.sliced_wasserstein_distance(images[:swd_count], images[half : half + swd_count]))
    print("    " + ", ".join(f"{name} {value:.2f}" for name, value in swd.items()))

    face_count = min(arguments.face_count, half)
    generated, training = images[:face_count], images[half : half + face_count]
    generated_embeddings = timed(f"face embeddings of {face_count} images (the detection rate)",
                                 lambda: faces.face_embeddings(generated, workers=arguments.workers))
    training_embeddings = timed(f"face embeddings of {face_count} training images (once per data set)",
                                lambda: faces.face_embeddings(training, workers=arguments.workers))
    report = timed("detection table", lambda: faces.detection_report(generated_embeddings, training_embeddings))
    print(f"    out of {report.images}: no face {report.no_face}, within {report.tolerance} of one of {face_count} "
          f"training faces {report.identified} (face_recognition's 'same person', which most unseen people meet)")

    found_generated = generated_embeddings[faces.has_face(generated_embeddings)]
    found_training = training_embeddings[faces.has_face(training_embeddings)]
    distance = timed("Fréchet distance, face-embedding space",
                     lambda: metrics.frechet_distance(found_generated, found_training))
    kid = timed("KID, face-embedding space", lambda: metrics.kernel_inception_distance(found_generated, found_training))
    print(f"    FD {distance:.4f}, KID {kid[0]:.2e} ± {kid[1]:.1e}")
    score = timed("MS-SSIM, 1000 random pairs", lambda: metrics.mean_pairwise_ms_ssim(images[:face_count], 1000))
    print(f"    mean MS-SSIM {score:.3f}")
    timed(f"nearest pixel neighbours, {face_count} among {half}",
          lambda: metrics.nearest_neighbours(images[:face_count], images[half:], k=5))


def load_images(source, count: int) -> np.ndarray:
    """uint8 [count, 64, 64, 3] through facekit.data.prepare."""
    from facekit import data

    faces_set = data.prepare(source, resolution=64, limit=count)
    return np.asarray(faces_set.images[:count])


def timed(label: str, work):
    started = time.perf_counter()
    result = work()
    print(f"{label}: {time.perf_counter() - started:.1f} s")
    return result


if __name__ == "__main__":
    main()
