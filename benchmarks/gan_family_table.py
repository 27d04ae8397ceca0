"""The GAN family at one CPU training budget on real faces: DCGAN, LSGAN, WGAN-GP, hinge + SN and BEGAN, and the
issue's EMA target (DCGAN, 3,600 steps at batch 64, with and without the moving average), in one table each.

Every model trains on the same faces (64x64, crop face160, 10% of the people held out for evaluation), batch 64,
full width (filters 64), seed 0, for `--minutes` of training time (the log's `seconds` column, which leaves out
snapshots and checkpoints). The budget is met by resuming: a short first leg times the model, then the run is
resumed with as many more steps as the remaining time allows (a resumed run is exactly an uninterrupted one of
the same steps), until the training time is within 2% of the budget. Then `python -m facekit compare` evaluates
the runs against the held-out people (can't detect a face, memorised: nearer a training face than 99% of unseen
people, SWD, MS-SSIM, and the real-data row on other held-out faces), 1,000 images each, or half the held-out
faces each when they are fewer than 2,000 (the real row's faces are never in the reference sample).

    .venv/bin/python benchmarks/gan_family_table.py [--minutes 15] [--dcgan-steps 3600] [--out runs/table]

Writes into --out: one run folder per model, table.md/.csv (the family), summary.md (steps and seconds each model
got, divergence, BEGAN's k_t range and M_global first vs last 10%), and with --dcgan-steps: dcgan-NNNN/ (the EMA
run), dcgan-NNNN-generator/ (1,000 samples of the same run's raw generator) and dcgan_ema.md/.csv. Restartable:
finished runs and tables are skipped, a run stopped part-way is resumed from its last checkpoint.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facekit import data, progress, registry  # noqa: E402
from facekit.training import RunFolder, TrainingDiverged  # noqa: E402

MODELS = ("dcgan", "lsgan", "wgan-gp", "hinge", "began")
FIRST_LEG_SECONDS = 45.0  # the first leg's rough length, to time a model (a step's time is guessed from DCGAN's)
GUESSED_STEP_SECONDS = {"dcgan": 0.6, "lsgan": 0.6, "wgan-gp": 4.0, "hinge": 0.8, "began": 8.0}
TOLERANCE = 0.02
COMPARE_MINUTES = 12.0  # the family's `compare` of 5 runs and the real row, 1,000 images each, on a busy 2 cores
MIN_MINUTES = 3.0  # below this, the deadline leaves no family table worth training
OVERHEAD_MINUTES = 2.0  # per model: building and tracing each leg, restoring, snapshots, GIF and plot
STATUS_NAME = "status.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba", help="CelebA folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "table")
    parser.add_argument("--minutes", type=float, default=15.0, help="training minutes per model")
    parser.add_argument("--models", nargs="*", choices=MODELS, default=list(MODELS),
                        help="models of the family table (none: skip it)")
    parser.add_argument("--dcgan-steps", type=int, default=0,
                        help="first train the EMA target: DCGAN for this many steps (e.g. 3600; 0: skip)")
    parser.add_argument("--deadline", default=None,
                        help="HH:MM UTC by which everything must be done: after the EMA target, --minutes is cut "
                             "to what fits (the same budget for every model, kept in status.json for a restart)")
    parser.add_argument("--count", type=int, default=1000, help="images per set in the evaluation")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (for a quick try)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--crop", default="face160")
    parser.add_argument("--heldout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if not arguments.data.exists():
        raise SystemExit(f"{arguments.data}: no CelebA folder there; pass --data with the real faces "
                         f"(this table is measured on real CelebA images, not the synthetic set)")
    arguments.out.mkdir(parents=True, exist_ok=True)
    settings = dict(resolution=64, crop=arguments.crop, limit=arguments.limit, seed=arguments.seed,
                    heldout=arguments.heldout, batch_size=arguments.batch_size, filters=arguments.filters)
    say(f"loading {arguments.data} (64x64, crop {arguments.crop}, limit {arguments.limit})")
    faces = data.prepare(arguments.data, resolution=64, crop=arguments.crop, limit=arguments.limit, progress=False)
    say(f"{len(faces)} faces")

    if arguments.dcgan_steps:
        ema_target(faces, arguments, settings)
    if arguments.models:
        arguments.minutes = family_minutes(arguments)
        if not arguments.minutes:
            say(f"no time left before {arguments.deadline} for a family budget of at least {MIN_MINUTES:g} minutes "
                f"per model; rerun later (finished runs are kept and skipped)")
            return
        say(f"family budget: {arguments.minutes:.2f} training minutes per model")
        runs = [train_for_budget(name, faces, arguments.out / name, settings, arguments.minutes * 60, arguments.out)
                for name in arguments.models]
        table = arguments.out / "table.md"
        if not table.exists():
            compare(runs, arguments, table)
        summary = summarize(runs, arguments)
        (arguments.out / "summary.md").write_text(summary + "\n")
        print(table.read_text())
        print(summary)


def family_minutes(arguments) -> float:
    """--minutes, or less when --deadline leaves less (0: less than MIN_MINUTES, no family now): the time left, minus the comparison (COMPARE_MINUTES) and
    each model's overhead outside training (OVERHEAD_MINUTES: building, tracing, resuming, snapshots), shared out.
    Decided once and kept in status.json, so that a restarted table gives every model the same budget."""
    status = read_status(arguments.out)
    if "family_minutes" in status:
        return status["family_minutes"]["minutes"]
    minutes = arguments.minutes
    if arguments.deadline:
        hours, mins = map(int, arguments.deadline.split(":"))
        now = time.gmtime()
        left = (hours * 60 + mins) - (now.tm_hour * 60 + now.tm_min + now.tm_sec / 60)
        unfinished = [name for name in arguments.models if not status.get(name, {}).get("finished")]
        fits = (left - COMPARE_MINUTES) / max(1, len(unfinished)) - OVERHEAD_MINUTES
        minutes = min(minutes, math.floor(fits * 4) / 4)
        if minutes < MIN_MINUTES:
            return 0.0  # not recorded: a later run with more time left decides afresh
    update_status(arguments.out, "family_minutes", minutes=minutes, deadline=arguments.deadline)
    return minutes


def ema_target(faces, arguments, settings) -> None:
    """DCGAN for --dcgan-steps steps with EMA on; compare its EMA samples and its raw generator's with real faces."""
    name = f"dcgan-{arguments.dcgan_steps}"
    run_dir = arguments.out / name
    status = read_status(arguments.out)
    if not status.get(name, {}).get("finished"):
        spec = registry.model("dcgan")
        config = spec.config(**settings, steps=arguments.dcgan_steps)
        resume = (run_dir / "run.json").exists()
        say(f"{name}: training {arguments.dcgan_steps} steps (EMA half-life {config.ema_half_life} images)"
            + (", resuming" if resume else ""))
        diverged = train_leg(spec, faces, run_dir, config, resume)
        update_status(arguments.out, name, finished=True, diverged=diverged, **log_facts(run_dir))
    table = arguments.out / "dcgan_ema.md"
    if table.exists():
        say(f"{table} exists; skipping its evaluation")
        print(table.read_text())
        return
    generator_dir = arguments.out / f"{name}-generator"
    write_raw_generator_samples(run_dir, generator_dir, arguments.count, arguments.seed)
    compare([run_dir, generator_dir], arguments, table)
    print(table.read_text())


def write_raw_generator_samples(run_dir: Path, folder: Path, count: int, seed: int) -> None:
    """`count` faces of a run's raw (non-averaged) generator as PNG files, from the noise `sample` uses."""
    if folder.exists() and len(list(folder.glob("*.png"))) >= count:
        return
    model = registry.model("dcgan").load(run_dir)
    noise = np.random.default_rng(seed).standard_normal((count, model.latent_dim)).astype(np.float32)
    images = np.concatenate([np.asarray(model.generator(noise[start : start + 250], training=False), np.float32)
                             for start in range(0, count, 250)])
    from facekit import evaluate

    evaluate.write_image_folder(progress.to_uint8(images), folder, overwrite=True)  # a partial set
    say(f"wrote {count} samples of {run_dir.name}'s raw generator to {folder}")


def train_for_budget(name: str, faces, run_dir: Path, settings: dict, budget: float, out: Path) -> Path:
    """Train model `name` into run_dir until the log's training seconds reach `budget` (within 2%); resumable."""
    status = read_status(out).get(name, {})
    if status.get("finished"):
        say(f"{name}: finished earlier ({status.get('steps')} steps, {status.get('seconds')} s); skipping")
        return run_dir
    spec = registry.model(name)
    diverged = None
    while True:
        facts = log_facts(run_dir)
        done, seconds = facts["steps"], facts["seconds"]
        if seconds >= budget * (1 - TOLERANCE):
            break
        if done == 0:
            steps = max(2, round(FIRST_LEG_SECONDS / GUESSED_STEP_SECONDS[name]))
        else:
            step_seconds = facts["step_seconds"]
            steps = done + max(1, math.ceil((budget - seconds) / step_seconds))
        say(f"{name}: {done} steps, {seconds:.0f} s of {budget:.0f} s so far; training to step {steps}")
        config = spec.config(**settings, steps=steps)
        diverged = train_leg(spec, faces, run_dir, config, resume=(run_dir / "run.json").exists())
        if diverged:
            break
    facts = log_facts(run_dir)
    update_status(out, name, finished=True, diverged=diverged, **facts)
    say(f"{name}: done, {facts['steps']} steps in {facts['seconds']:.0f} s of training"
        + (f"; DIVERGED: {diverged}" if diverged else ""))
    return run_dir


def train_leg(spec, faces, run_dir: Path, config, resume: bool) -> str | None:
    """Train (or resume) up to config.steps; returns the divergence message if the run diverged, else None."""
    import keras

    keras.backend.clear_session()  # each leg builds its networks afresh; free the last leg's
    try:
        spec.train(faces, run_dir, config, resume=resume, show_progress=False)
    except TrainingDiverged as error:
        say(f"{spec.name}: {error}")
        return str(error)
    return None


def compare(runs, arguments, table: Path) -> None:
    """`python -m facekit compare` over the runs (and image folders), written to table (Markdown) and its CSV."""
    command = [sys.executable, "-m", "facekit", "compare", *map(str, runs), "--real", str(arguments.data),
               "--count", str(arguments.count), "--seed", str(arguments.seed), "--out", str(table)]
    say("$ " + " ".join(command))
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    say(f"compared in {time.perf_counter() - started:.0f} s")


def summarize(runs, arguments) -> str:
    """Markdown: the budget, steps and training seconds each model got, divergence, and BEGAN's k_t, M_global."""
    status = read_status(arguments.out)
    lines = [f"Budget: {arguments.minutes:g} training minutes per model (the log's seconds column), batch "
             f"{arguments.batch_size}, filters {arguments.filters}, 64x64 {arguments.crop}, heldout "
             f"{arguments.heldout}, seed {arguments.seed}, {os.cpu_count()} cores.", "",
             "| model | steps | training seconds | s / step | real images seen | diverged |",
             "|---|---:|---:|---:|---:|---|"]
    for run_dir in runs:
        facts = status.get(run_dir.name, log_facts(run_dir))
        config = RunFolder(run_dir).read_config()
        images = facts["steps"] * config["batch_size"] * config.get("n_critic", 1)
        lines.append(f"| {run_dir.name} | {facts['steps']} | {facts['seconds']:.0f} | "
                     f"{facts['seconds'] / max(1, facts['steps']):.2f} | {images} | "
                     f"{'yes: ' + facts['diverged'] if facts.get('diverged') else 'no'} |")
    for run_dir in runs:
        rows = RunFolder(run_dir).read_log()
        if rows and "k_t" in rows[0]:
            k_t = np.array([row["k_t"] for row in rows])
            m_global = np.array([row["m_global"] for row in rows])
            tenth = max(1, len(rows) // 10)
            first, last = m_global[:tenth].mean(), m_global[-tenth:].mean()
            lines += ["", f"{run_dir.name}: k_t in [{k_t.min():.4f}, {k_t.max():.4f}] (last {k_t[-1]:.4f}); "
                          f"M_global mean of the first 10% of steps {first:.4f}, of the last 10% {last:.4f} "
                          f"({'fell' if last < first else 'did not fall'})"]
    return "\n".join(lines)


def log_facts(run_dir: Path) -> dict:
    """steps done, training seconds, and the recent seconds per step, from a run's log.csv (zeros if none)."""
    rows = RunFolder(run_dir).read_log()
    if not rows:
        return {"steps": 0, "seconds": 0.0, "step_seconds": None}
    recent = rows[len(rows) // 2 :] if len(rows) > 2 else rows
    first = recent[0]
    step_seconds = ((rows[-1]["seconds"] - first["seconds"]) / (rows[-1]["step"] - first["step"])
                    if rows[-1]["step"] > first["step"] else rows[-1]["seconds"] / rows[-1]["step"])
    return {"steps": rows[-1]["step"], "seconds": rows[-1]["seconds"], "step_seconds": step_seconds}


def read_status(out: Path) -> dict:
    path = out / STATUS_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def update_status(out: Path, name: str, **facts) -> None:
    status = read_status(out)
    status[name] = facts
    (out / STATUS_NAME).write_text(json.dumps(status, indent=2) + "\n")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {message}", flush=True)


if __name__ == "__main__":
    main()
