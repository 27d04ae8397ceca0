"""Progressive GAN growing against the same networks not growing (its grow=False: trained at the final resolution
from the first step) at equal training time, beside the kit's DCGAN and hinge + SN at that time each: one table.

The four runs train on the same faces (--resolution, default the configs' 64; the configs' crop; --heldout of the
people kept out for evaluation) at their configs' defaults otherwise. --minutes (default 60) is the whole table's
training time, a quarter for each run (the log's `seconds`, which count each leg's tracing but not snapshots or
checkpoints; building, sampling and the comparison come on top). The growing run's fade-ins and stabilisations
are all one number of images, sized so that at guessed step times (PROGAN_STEP_SECONDS) it has faded in its final
resolution by half its time; summary.md says when it did. The time is met by resuming, as gan_family_table.py
meets it: legs go by the log's median step time at each resolution, spending at most FIRST_LEG_SECONDS of guessed
time at resolutions not yet timed, until a run's training time is within 2% of its quarter. Then
`python -m facekit compare` evaluates the runs against the held-out people, --count images each (half the
held-out faces each when they are fewer than twice that).

    .venv/bin/python benchmarks/progressive_table.py [--minutes 60] [--out runs/progressive]

Writes into --out: a run folder per run (progan, progan-no-grow, dcgan, hinge), comparison.md/.csv (compare's
table, and every metric), table.md/.csv (per set: can't detect a face of 1,000, SWD per level and averaged,
MS-SSIM, training images per second), summary.md (the budget, and each run's steps, seconds, images and
divergence; when the ProGAN runs reached their final resolution's stabilisation) and progan_last_frame.png (the
growing run's last snapshot grid, for the README). Restartable: finished runs and the comparison are skipped, a
run stopped part-way is resumed from its last checkpoint.
"""

import argparse
import csv
import io
import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_family_table import (FIRST_LEG_SECONDS, GUESSED_STEP_SECONDS, TOLERANCE, compare, read_status,  # noqa: E402
                              say, train_leg, update_status)
from readme_figures import ROW, last_grid, row, save_png  # noqa: E402

from facekit import data, registry  # noqa: E402
from facekit.files import write_text_atomically  # noqa: E402
from facekit.models import progan  # noqa: E402
from facekit.training import RunFolder  # noqa: E402

RUNS = {"progan": ("progan", {}), "progan-no-grow": ("progan", {"grow": False}),  # folder: (model, own settings)
        "dcgan": ("dcgan", {}), "hinge": ("hinge", {})}
GROWING = "progan"
# seconds a ProGAN step takes at each resolution with its default widths and batch sizes (its docstring's, measured
# on this project's busy 2 cores in mixed_bfloat16): the guesses that size the growing run's phases and first legs
PROGAN_STEP_SECONDS = {4: 0.013, 8: 0.042, 16: 0.14, 32: 0.30, 64: 0.50}
GROWN_BY = 0.5  # the fraction of its time by which the growing run should have faded in its final resolution
FRAME_NAME = "progan_last_frame.png"


def main() -> None:
    default = registry.model(GROWING).config()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba", help="CelebA folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "progressive")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="training minutes of the whole table, a quarter for each run")
    parser.add_argument("--resolution", type=int, choices=(32, 64), default=default.resolution,
                        help="final image size of every run (32: a quicker try)")
    parser.add_argument("--heldout", type=float, default=0.1, help="fraction of the people kept out of training")
    parser.add_argument("--count", type=int, default=1000, help="images per set in the evaluation")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (for a quick try)")
    parser.add_argument("--seed", type=int, default=default.seed, help="seed of the runs and the evaluation")
    arguments = parser.parse_args()
    if not arguments.data.exists():
        raise SystemExit(f"{arguments.data}: no CelebA folder there; pass --data with the real faces")
    arguments.out.mkdir(parents=True, exist_ok=True)
    shared = dict(resolution=arguments.resolution, limit=arguments.limit, heldout=arguments.heldout,
                  seed=arguments.seed)
    budget = decide_budget(arguments, progan.ProGANConfig(**shared))
    settings = {name: {**shared, **own} for name, (_, own) in RUNS.items()}
    settings[GROWING].update(fade_images=budget["phase_images"], stabilise_images=budget["phase_images"])
    say(f"budget: {budget['minutes']:g} training minutes, {budget['minutes'] / len(RUNS):g} per run; the growing "
        f"run's phases {budget['phase_images']} images each")
    say(f"loading {arguments.data} ({arguments.resolution}x{arguments.resolution}, crop {default.crop}, limit "
        f"{arguments.limit})")
    faces = data.prepare(arguments.data, resolution=arguments.resolution, crop=default.crop, limit=arguments.limit,
                         progress=False)
    say(f"{len(faces)} faces")

    seconds = budget["minutes"] * 60 / len(RUNS)
    facts = {name: train_for_budget(name, faces, arguments.out, settings[name], seconds) for name in RUNS}
    comparison = arguments.out / "comparison.md"
    if comparison.with_suffix(".csv").exists():
        say(f"{comparison} exists; skipping the comparison")
    else:
        compare([arguments.out / name for name in RUNS], arguments, comparison)
    table = write_table(comparison.with_suffix(".csv"), facts, arguments.out / "table.md")
    summary = summarize(facts, budget, arguments, default.crop)
    write_text_atomically(arguments.out / "summary.md", summary + "\n")
    frame = write_last_frame(arguments.out / GROWING, arguments.out / FRAME_NAME, facts[GROWING]["seconds"])
    print(table)
    print()
    print(summary)
    print()
    print(frame)


def decide_budget(arguments, config) -> dict:
    """{"minutes": the table's training minutes, "phase_images": images of each of the growing run's phases},
    decided once and kept in status.json, so that a restarted table trains every run as it began."""
    status = read_status(arguments.out)
    if "budget" in status:
        return status["budget"]
    seconds = arguments.minutes * 60 / len(RUNS)
    growth = progan.Schedule.of(config).phases[:-1]  # to the end of the final fade-in; only resolutions, batches read
    seconds_per_image = sum(PROGAN_STEP_SECONDS[phase.resolution] / phase.batch_size for phase in growth)
    budget = {"minutes": arguments.minutes, "phase_images": max(1, math.floor(GROWN_BY * seconds / seconds_per_image))}
    update_status(arguments.out, "budget", **budget)
    return budget


def train_for_budget(name: str, faces, out: Path, settings: dict, budget: float) -> dict:
    """Train run `name` into out/name until the log's training seconds reach `budget` (within TOLERANCE); resumable.
    Returns its facts (run_facts, and diverged), kept in status.json."""
    status = read_status(out).get(name, {})
    if status.get("finished"):
        say(f"{name}: finished earlier ({status['steps']} steps, {status['seconds']:.0f} s); skipping")
        return status
    spec = registry.model(RUNS[name][0])
    run_dir = out / name
    diverged = None
    while True:
        rows = RunFolder(run_dir).read_log()
        done, seconds = (rows[-1]["step"], rows[-1]["seconds"]) if rows else (0, 0.0)
        if seconds >= budget * (1 - TOLERANCE):
            break
        steps = leg_end(spec.config(**settings), rows, budget)
        say(f"{name}: {done} steps, {seconds:.0f} s of {budget:.0f} s so far; training to step {steps}")
        diverged = train_leg(spec, faces, run_dir, spec.config(**settings, steps=steps),
                             resume=(run_dir / "run.json").exists())
        if diverged:
            break
    facts = {**run_facts(run_dir), "diverged": diverged}
    update_status(out, name, finished=True, **facts)
    say(f"{name}: done, {facts['steps']} steps in {facts['seconds']:.0f} s of training"
        + (f"; DIVERGED: {diverged}" if diverged else ""))
    return facts


def leg_end(config, rows: list, budget: float) -> int:
    """The step the next leg trains to: as far as `budget` goes at the log's median step time at each resolution,
    and through resolutions not timed yet at most FIRST_LEG_SECONDS of guessed step times (at least one step)."""
    resolution_at = resolution_function(config)
    measured = step_seconds(rows, resolution_at)
    done, seconds = (rows[-1]["step"], rows[-1]["seconds"]) if rows else (0, 0.0)
    step, guessed = done, 0.0
    while seconds < budget:
        resolution = resolution_at(step)
        cost = measured.get(resolution)
        if cost is None:
            cost = PROGAN_STEP_SECONDS[resolution] if config.model == "progan" else GUESSED_STEP_SECONDS[config.model]
            guessed += cost
            if guessed > FIRST_LEG_SECONDS and step > done:
                break
        seconds += cost
        step += 1
    return max(step, done + 1)


def step_seconds(rows: list, resolution_at) -> dict:
    """{resolution: the median seconds of the logged steps at it} (a median, so that a leg's traced first step
    weighs little)."""
    times, previous = {}, 0.0
    for logged in rows:
        times.setdefault(resolution_at(logged["step"] - 1), []).append(logged["seconds"] - previous)
        previous = logged["seconds"]
    return {resolution: statistics.median(values) for resolution, values in times.items()}


def resolution_function(config):
    """step -> the resolution the run trains at: its schedule's for ProGAN, else the config's."""
    if config.model == "progan":
        return progan.Schedule.of(config).resolution_at
    return lambda step: config.resolution


def run_facts(run_dir: Path) -> dict:
    """model, steps, training seconds and real images shown of a run (and for ProGAN, the step and seconds at which
    its final resolution's stabilisation began: None if not reached)."""
    _, config = registry.model_of_run(run_dir)
    rows = RunFolder(run_dir).read_log()
    steps, seconds = rows[-1]["step"], rows[-1]["seconds"]
    facts = {"model": config.model, "steps": steps, "seconds": seconds,
             "images": steps * config.batch_size * config.n_critic}
    if config.model == "progan":
        schedule = progan.Schedule.of(config)
        stable = schedule.phases[-1].start  # steps trained when it began: 0 for the run that does not grow
        logged = {0: 0.0, **{row["step"]: row["seconds"] for row in rows}}
        facts.update(images=schedule.images_before(steps), stable_step=stable, stable_seconds=logged.get(stable))
    return facts


def write_table(comparison_csv: Path, facts: dict, markdown: Path) -> str:
    """table.md and table.csv: per set of the comparison, can't detect a face (per 1,000), SWD per level and
    averaged, MS-SSIM, and training images per second (none for the real row); returns the Markdown."""
    with open(comparison_csv, newline="") as handle:
        sets = list(csv.DictReader(handle))
    levels = sorted((column for column in sets[0] if column.startswith("swd_") and column != "swd_avg"),
                    key=lambda column: -int(column[4:]))
    header = ["set", "can't detect a face (of 1,000)", *(f"SWD {column[4:]}" for column in levels), "SWD average",
              "MS-SSIM", "training images / s"]
    cells = []
    for result in sets:
        run = facts.get(result["set"])
        cells.append([result["set"], str(round(float(result["no_face"]) * 1000 / float(result["images"]))),
                      *(f"{float(result[column]):.1f}" for column in [*levels, "swd_avg"]),
                      f"{float(result['ms_ssim']):.3f}", f"{run['images'] / run['seconds']:.1f}" if run else ""])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *cells])
    write_text_atomically(markdown.with_suffix(".csv"), text.getvalue())
    write_text_atomically(markdown, "\n".join(lines) + "\n")
    return "\n".join(lines)


def summarize(facts: dict, budget: dict, arguments, crop: str) -> str:
    """Markdown: the budget and settings, then each run's steps, seconds, images, divergence and (ProGAN) when its
    final resolution's stabilisation began."""
    seconds = budget["minutes"] * 60 / len(RUNS)
    lines = [f"Budget: {budget['minutes']:g} training minutes (the log's seconds), {seconds / 60:g} per run; "
             f"{arguments.resolution}x{arguments.resolution} {crop}, heldout {arguments.heldout}, seed "
             f"{arguments.seed}, limit {arguments.limit}, {os.cpu_count()} cores; each run at its config's defaults "
             f"otherwise, progan-no-grow with grow=False, the growing run's fade-ins and stabilisations "
             f"{budget['phase_images']} images each (sized to fade in {arguments.resolution}x{arguments.resolution} "
             f"by {GROWN_BY:.0%} of its time at guessed step times).", "",
             "| run | model | steps | training seconds | s / step | real images seen | final resolution stable from "
             "| diverged |", "|---|---|---:|---:|---:|---:|---|---|"]
    for name, run in facts.items():
        stable = "" if "stable_step" not in run else "not reached" if run["stable_seconds"] is None else (
            f"step {run['stable_step']}, {run['stable_seconds']:.0f} s ({run['stable_seconds'] / seconds:.0%})")
        lines.append(f"| {name} | {run['model']} | {run['steps']} | {run['seconds']:.0f} | "
                     f"{run['seconds'] / run['steps']:.3f} | {run['images']} | {stable} | "
                     f"{'yes: ' + run['diverged'] if run.get('diverged') else 'no'} |")
    return "\n".join(lines)


def write_last_frame(run_dir: Path, path: Path, seconds: float) -> str:
    """The growing run's last snapshot grid (its first 2 rows of ROW faces, labelled with the run's training time)
    as a README picture at `path` (a 256-colour PNG under 100 KB, as readme_figures.py writes them); returns a line
    naming it."""
    tiles, step = last_grid(run_dir)
    picture = row(tiles[: 2 * ROW], f"Progressive GAN, growing: step {step}, {seconds / 60:.1f} training minutes")
    return f"{path}: {save_png(picture, path):.0f} KB, the last snapshot of {run_dir} (step {step})"


if __name__ == "__main__":
    main()
