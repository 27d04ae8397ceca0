"""What Pillow's `draft` saves when preparing CelebA at 64x64: each JPEG (held in memory, one process) decoded at
full scale and at half scale (what `data.prepare`'s draft picks for the face160 crop at 64x64), alone and followed
by the crop and Lanczos resize to 64x64. Each image is timed `--repeats` times per method, the methods alternating,
and the fastest time of each is kept, so that a busy machine's bursts do not count; the sums are reported.

    .venv/bin/python benchmarks/bench_draft.py [--source ../shared/celeba] [--count 1000] [--repeats 5]

Without CelebA in the default place it says so and exits (status 0), so that `make bench` runs everywhere.
"""

import argparse
import io
import platform
import sys
import time
from pathlib import Path

import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facekit import data  # noqa: E402

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "celeba"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=None, help="CelebA folder in the official layout "
                        f"(default {DEFAULT_SOURCE})")
    parser.add_argument("--count", type=int, default=1000, help="images")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each image by each method; fastest kept")
    arguments = parser.parse_args()
    source = arguments.source or DEFAULT_SOURCE
    paths = sorted((source / "img_align_celeba").glob("*.jpg"))[: arguments.count]
    if not paths:
        message = f"{source / 'img_align_celeba'}: no JPEG images"
        if arguments.source is None:
            print(f"bench_draft: skipped, {message} (pass --source to time another CelebA copy)")
            return
        sys.exit(f"{message}; pass --source")
    blobs = [path.read_bytes() for path in paths]
    box = data.CROPS[data.DEFAULT_CROP]
    methods = {"decode, full scale": lambda blob: _decode(blob, False),
               "decode, draft 1/2": lambda blob: _decode(blob, True),
               "decode + crop + Lanczos to 64, full scale": lambda blob: _prepare(blob, box, False),
               "decode + crop + Lanczos to 64, draft 1/2": lambda blob: _prepare(blob, box, True)}
    print(f"{len(blobs)} images from {source}, crop {data.DEFAULT_CROP} {box}; Pillow {PIL.__version__}, "
          f"{_processor()}")
    totals = dict.fromkeys(methods, 0.0)
    for blob in blobs:
        best = dict.fromkeys(methods, float("inf"))
        for _ in range(arguments.repeats):
            for name, run in methods.items():
                started = time.perf_counter()
                run(blob)
                best[name] = min(best[name], time.perf_counter() - started)
        for name in methods:
            totals[name] += best[name]
    for name, seconds in totals.items():
        print(f"  {name:42s} {seconds * 1e3 / len(blobs):.3f} ms/image")
    names = list(methods)
    print(f"draft 1/2: the decode alone {totals[names[0]] / totals[names[1]]:.2f}x faster, decode + crop + resize "
          f"{totals[names[2]] / totals[names[3]]:.2f}x faster")


def _decode(blob: bytes, half: bool) -> Image.Image:
    image = Image.open(io.BytesIO(blob))
    if half:
        image.draft("RGB", (image.size[0] // 2, image.size[1] // 2))
    image.load()
    return image


def _prepare(blob: bytes, box, half: bool) -> Image.Image:
    """As data.prepare does for one file (its draft picks half scale for face160 at 64x64)."""
    image = _decode(blob, half)
    scale = 0.5 if half else 1.0
    return image.convert("RGB").resize((64, 64), Image.LANCZOS, box=tuple(value * scale for value in box))


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
