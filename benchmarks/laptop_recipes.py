"""Which laptop recipe gets a lesson's faces within 3x of real ones: candidate settings trained once each on CelebA,
with a milestone checkpoint every few thousand steps, and the SWD of every milestone against held-out people
beside the real-vs-real floor, so that one run gives the whole curve of SWD against steps and training minutes.

Every candidate trains on the same faces (crop face160, a tenth of the people held out, seed 0); each milestone
draws 796 samples (half the held-out faces of the CelebA sample) from its moving-average generator, compared with
one half of the held-out faces; the floor is the other half against the same half (`evaluate.real_sets`). The last
columns count the samples in which dlib's detector finds no face (32x32 samples enlarged to 64x64 first) and give
their mean MS-SSIM over as many random pairs (how alike they are; the real half's figure in brackets).

    .venv/bin/python benchmarks/laptop_recipes.py [--candidates dcgan-32px began-32px-n16] [--out runs/laptop_recipes]

Restartable: a finished run is reused and a stopped one continues from its last checkpoint
(`training.train_or_resume`); the table is printed and written to --out/table.md.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facekit import data, evaluate, faces, metrics, registry, training  # noqa: E402
from facekit.training import RunFolder  # noqa: E402

COMMON = {"heldout": 0.1, "seed": 0, "profile": "laptop"}
PROGAN_LAPTOP = {"resolution": 32, "filters": 32, "latent_dim": 64, "batch_sizes": (16,) * 6, "fade_images": 12_800,
                 "stabilise_images": 12_800, "steps": 5_600, "milestone_every": 1_400}
CANDIDATES = {  # name: (model, settings)
    "dcgan-32px": ("dcgan", {"resolution": 32, "filters": 32, "batch_size": 64, "steps": 10_000,
                             "milestone_every": 2_000}),
    "began-32px-n16": ("began", {"resolution": 32, "filters": 16, "embedding_dim": 32, "batch_size": 16,
                                 "gamma": 0.7, "steps": 9_000, "milestone_every": 3_000}),
    "began-32px-n16-batch64": ("began", {"resolution": 32, "filters": 16, "embedding_dim": 32, "batch_size": 64,
                                         "gamma": 0.7, "steps": 4_000, "milestone_every": 1_000}),
    "began-32px-n32": ("began", {"resolution": 32, "filters": 32, "embedding_dim": 64, "batch_size": 16,
                                 "gamma": 0.7, "steps": 6_000, "milestone_every": 1_500}),
    # lesson 06's laptop run (3,000 steps of 16) at the paper's learning rate and faster, at gamma 0.7 and 1
    **{f"began-32px-n16-lr{rate:g}" + ("" if gamma == 0.7 else f"-gamma{gamma:g}"): (
        "began", {"resolution": 32, "filters": 16, "embedding_dim": 32, "batch_size": 16, "gamma": gamma,
                  "learning_rate": rate, "steps": 3_000, "milestone_every": 1_500})
       for rate, gamma in ((1e-4, 0.7), (2e-4, 0.7), (4e-4, 0.7), (1e-3, 0.7), (4e-4, 1.0), (1e-3, 1.0))},
    # lesson 07's cGAN (2,000 steps there) run three times as long: where does it pass Bathini's WGAN row (123)?
    "cgan-32px": ("cgan", {"resolution": 32, "filters": 32, "latent_dim": 62, "batch_size": 64, "steps": 6_000,
                           "milestone_every": 2_000}),
    # lesson 10's laptop schedule (7 phases of 12,800 images to 32x32), 32 channels at 32x32 instead of its 16
    "progan-32px-c32-flat": ("progan", {**PROGAN_LAPTOP, "filter_base": 1024, "grow": False}),
    "progan-32px-c32-growing": ("progan", {**PROGAN_LAPTOP, "filter_base": 1024, "grow": True}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba", help="CelebA folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "laptop_recipes")
    parser.add_argument("--candidates", nargs="*", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument("--count", type=int, default=1000, help="samples per milestone (at most half the held out)")
    arguments = parser.parse_args()

    lines = ["| candidate | step | training minutes | SWD avg | SWD per level | floor | ratio | no face per 1,000 | "
             "MS-SSIM (real) |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for name in arguments.candidates:
        model, settings = CANDIDATES[name]
        spec = registry.model(model)
        config = spec.config(**COMMON, **settings, snapshot_every=settings["milestone_every"] // 4)
        prepared = data.prepare(arguments.data, resolution=config.resolution, crop=config.crop)
        run = training.train_or_resume(spec, prepared, arguments.out / name, config)
        sets = evaluate.real_sets(run.path, arguments.data, config.resolution, arguments.count, equal=True)
        floor = metrics.sliced_wasserstein_distance(sets.spare, sets.real)
        real_ms_ssim = metrics.mean_pairwise_ms_ssim(sets.real, pairs=len(sets.real))
        seconds = {row["step"]: row["seconds"] for row in RunFolder(run.path).read_log()}
        for step in range(config.milestone_every, config.steps + 1, config.milestone_every):
            samples = evaluate.sample_run(run.path, len(sets.real), step=step)
            swd = metrics.sliced_wasserstein_distance(samples, sets.real)
            levels = ", ".join(f"{value:.1f}" for key, value in swd.items() if key != "swd_avg")
            faceless = sum(len(boxes) == 0 for boxes in faces.detect_faces(faces.enlarged(samples)))
            lines.append(f"| {name} | {step} | {seconds[step] / 60:.1f} | {swd['swd_avg']:.1f} | {levels} | "
                         f"{floor['swd_avg']:.1f} | {swd['swd_avg'] / floor['swd_avg']:.1f}x | "
                         f"{1000 * faceless / len(samples):.0f} | "
                         f"{metrics.mean_pairwise_ms_ssim(samples, pairs=len(samples)):.3f} ({real_ms_ssim:.3f}) |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    (arguments.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
