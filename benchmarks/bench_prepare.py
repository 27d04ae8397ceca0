"""Preparing CelebA at 64x64: facekit.data.prepare and the `python -m facekit prepare` command (interpreter start-up
and imports included) versus the classic loop, side by side, in images per second.

The classic loop (as in the widely copied course code) does, one file at a time:
    Image.open(path).crop(box) -> .thumbnail((64, 64)) -> np.uint8(np.asarray(image))
facekit decodes JPEGs at reduced scale (Pillow's draft), resizes with Lanczos, spreads the files over worker
processes and writes the memory-mapped cache; each facekit round uses a fresh cache folder (the command's: a fresh
FACEKIT_DATA), so nothing is reused.
Both use the same crop box and the same first --count files. Rounds alternate; the best of each is reported,
with the CPU time per image (this process and its workers): on a busy machine the wall-clock rate says little about
what two free cores would give, the CPU time does.

    .venv/bin/python benchmarks/bench_prepare.py [--source ../shared/celeba] [--count 3000] [--rounds 3]

Without CelebA in the default place it says so and exits (status 0), so that `make bench` runs everywhere.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facekit import data  # noqa: E402

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "celeba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=None,
                        help=f"CelebA folder in the official layout (default {DEFAULT_SOURCE})")
    parser.add_argument("--count", type=int, default=3000, help="images per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two; best is reported")
    parser.add_argument("--crop", choices=sorted(data.CROPS), default=data.DEFAULT_CROP)
    arguments = parser.parse_args()
    given = arguments.source is not None
    arguments.source = arguments.source or DEFAULT_SOURCE
    folder = arguments.source / "img_align_celeba"
    paths = sorted(folder.glob("*.jpg"))[:arguments.count]
    if not paths:
        if not given:
            print(f"bench_prepare: skipped, {folder}: no JPEG images (pass --source to time another CelebA copy)")
            return
        sys.exit(f"{folder}: no JPEG images; pass --source")
    box = data.CROPS[arguments.crop]
    print(f"{len(paths)} images from {arguments.source}, crop {arguments.crop} {box} -> 64x64, "
          f"{len(os.sched_getaffinity(0))} cores available")
    contestants = {"classic loop": lambda: classic_loop(paths, box),
                   "facekit.data.prepare": lambda: facekit_prepare(arguments.source, arguments.crop, len(paths)),
                   "python -m facekit prepare": lambda: command_prepare(arguments.source, arguments.crop, len(paths))}
    best = {name: (0.0, float("inf")) for name in contestants}
    for round_number in range(1, arguments.rounds + 1):
        for name, run in contestants.items():
            started, cpu_started = time.perf_counter(), cpu_seconds()
            images = run()
            rate = len(images) / (time.perf_counter() - started)
            cpu_ms = (cpu_seconds() - cpu_started) * 1000 / len(images)
            best[name] = (max(best[name][0], rate), min(best[name][1], cpu_ms))
            print(f"  round {round_number}  {name:26s} {rate:7.0f} images/s  {cpu_ms:5.2f} CPU ms/image  "
                  f"{images.shape}")
    print("best of each:")
    for name, (rate, cpu_ms) in best.items():
        print(f"  {name:26s} {rate:7.0f} images/s  {cpu_ms:5.2f} CPU ms/image")
    classic_rate, classic_cpu = best["classic loop"]
    for name in list(contestants)[1:]:
        rate, cpu_ms = best[name]
        print(f"  {name} / classic loop: {rate / classic_rate:.2f}x images/s, {classic_cpu / cpu_ms:.2f}x less CPU "
              "per image")


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def classic_loop(paths, box) -> np.ndarray:
    """uint8 [N, 64, 64, 3], one file at a time, the classic way."""
    faces = []
    for path in paths:
        image = Image.open(path).crop(box)
        image.thumbnail((64, 64))
        faces.append(np.uint8(np.asarray(image)))
    return np.stack(faces)


def facekit_prepare(source, crop, count) -> np.ndarray:
    """uint8 [N, 64, 64, 3] through facekit.data.prepare with a fresh cache folder (so nothing is reused)."""
    with tempfile.TemporaryDirectory() as cache_dir:
        faces = data.prepare(source, resolution=64, crop=crop, limit=count, progress=False, cache_dir=cache_dir)
        return np.array(faces.images)


def command_prepare(source, crop, count) -> np.ndarray:
    """uint8 [N, 64, 64, 3] through the whole `python -m facekit prepare` command, with a fresh FACEKIT_DATA."""
    with tempfile.TemporaryDirectory() as data_dir:
        subprocess.run([sys.executable, "-m", "facekit", "prepare", str(source), "--resolution", "64", "--crop", crop,
                        "--limit", str(count)], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "FACEKIT_DATA": data_dir}, cwd=Path(__file__).resolve().parents[1])
        return np.load(next(Path(data_dir, "cache").glob("*.npy")))


if __name__ == "__main__":
    main()
