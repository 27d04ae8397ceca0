"""Every lesson executed top to bottom in one profile, as a student (or CI) runs it: wall time, peak memory, and for
the lessons that train generative models, their runs measured against real faces; and the GIFs an instructor shows.

Each lesson runs in a fresh Jupyter kernel (nbclient, the executor nbval and JupyterLab use) with FACEKIT_PROFILE
set and its runs in RESULTS/PROFILE-runs/ (FACEKIT_RUNS), so that lessons reuse each other's runs as a student's do
and nothing else (a test, another profile) touches them. Recorded per lesson: wall time, the kernel's peak resident set size (VmHWM: the kernel process itself; the
short-lived image-decoding workers of `data.prepare` are not included), and, with --measure, every run folder the
lesson wrote that draws faces, compared by `facekit.evaluate.compare` (1,000 images per row unless --count: can't
detect a face, SWD, MS-SSIM, and a real row of held-out faces). With --gifs DIR, each lesson's progress GIFs and
last grids are copied to DIR/LESSON/RUN.gif and DIR/LESSON/RUN.png. Each lesson, executed, is kept with its
outputs (what its cells printed and drew) as RESULTS/PROFILE-runs/LESSON.executed.ipynb.

The machine's load average (the larger of the 5-minute one before and the 5- or 15-minute one after) is recorded
beside each time: on a shared machine a time measured under a load above the core count is an upper bound.

A lesson's own earlier runs are removed before it runs (unless --reuse-runs), so its time is a student's first
run; the runs of the lessons before it are kept, as a student's are.

Restartable: results go to RESULTS/PROFILE.json, and a lesson already passed on the same code (the same lesson
file, facekit package and requirements: a hash of their bytes) in the same profile is skipped, so a stopped run
continues where it was. A table (Markdown) is printed and written beside the JSON.

    .venv/bin/python benchmarks/lesson_profiles.py [--profile laptop] [--lessons 03 05] [--measure] [--gifs gifs]
    make gifs          (the same with --gifs gifs; FACEKIT_PROFILE chooses the profile)
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_CELEBA = ROOT.parent / "shared" / "celeba"
RESULTS = ROOT / "runs" / "lesson_profiles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("smoke", "laptop", "full"), default=None,
                        help="default: $FACEKIT_PROFILE, else full with a GPU and laptop without")
    parser.add_argument("--lessons", nargs="+", default=None, help="lesson numbers or file names (default: all)")
    parser.add_argument("--data", type=Path, default=None,
                        help="CelebA source for the lessons (default: $FACEKIT_CELEBA, else ../shared/celeba if "
                             "present, else the lessons' own default)")
    parser.add_argument("--measure", action="store_true", help="compare each lesson's face-drawing runs with real faces")
    parser.add_argument("--count", type=int, default=1000, help="images per row of --measure")
    parser.add_argument("--gifs", type=Path, default=None, help="collect each lesson's GIFs and last grids here")
    parser.add_argument("--step-cap", type=int, default=None,
                        help="train at most this many steps per run, every other setting of the profile kept "
                             "(FACEKIT_STEP_CAP): the full profile's shapes, memory and code paths on a CPU")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every cell even after one fails (with --step-cap, claims about trained models "
                             "may fail; errors of shape or memory are what is looked for)")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="keep the runs a lesson wrote before (default: they are removed first, so that its time "
                             "is a student's first run; runs of earlier lessons are always kept, as a student's are)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where results and runs go")
    parser.add_argument("--readme", action="store_true",
                        help="print the README's lesson table from the results recorded so far (smoke, laptop, "
                             "full-cap12) and the full profile's counted GPU minutes, and run nothing")
    arguments = parser.parse_args()
    if arguments.readme:
        print(readme_table(arguments.results))
        return
    if arguments.profile is None:
        sys.path.insert(0, str(ROOT))
        import facekit

        arguments.profile = facekit.profile().name
    name = arguments.profile + (f"-cap{arguments.step_cap}" if arguments.step_cap else "")
    runs_dir = arguments.results / f"{name}-runs"
    environment = {**os.environ, "FACEKIT_PROFILE": arguments.profile, "FACEKIT_RUNS": str(runs_dir)}
    if arguments.step_cap:
        environment["FACEKIT_STEP_CAP"] = str(arguments.step_cap)
    source = arguments.data or (Path(os.environ["FACEKIT_CELEBA"]) if os.environ.get("FACEKIT_CELEBA") else None) \
        or (SHARED_CELEBA if SHARED_CELEBA.exists() else None)
    if source is not None:
        environment["FACEKIT_CELEBA"] = str(source.resolve())
    results_path = arguments.results / f"{name}.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    print(f"profile {arguments.profile}, data {source or 'the lessons default'}; {processor()}", flush=True)

    for notebook in lessons(arguments.lessons):
        key = code_key(notebook)
        done = results.get(notebook.stem)
        if done and done["key"] == key and done["status"] == "passed" and (not arguments.measure or "measures" in done):
            print(f"{notebook.stem}: measured on this code already ({done['minutes']:.1f} min), kept", flush=True)
        else:
            if not arguments.reuse_runs:
                remove_own_runs(notebook, runs_dir)
            done = execute(notebook, environment, runs_dir, arguments.keep_going)
            done["key"] = key
            if arguments.measure and done["runs"]:
                done["measures"] = measure(done["runs"], arguments.count, environment)
            results[notebook.stem] = done
            write_json(results_path, results)
            print(f"{notebook.stem}: {done['status']} in {done['minutes']:.1f} min, peak {done['peak_gb']:.2f} GB, "
                  f"runs {', '.join(done['runs']) or 'none'}", flush=True)
        if arguments.gifs:
            collect(notebook.stem, done["runs"], runs_dir, arguments.gifs)
    table = markdown_table(results, name)
    (arguments.results / f"{name}.md").write_text(table + "\n")
    print(table)


def lessons(chosen) -> list[Path]:
    """The lesson notebooks in teaching order, or those `chosen` (numbers like 03, or file names)."""
    every = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not chosen:
        return every
    picked = [path for path in every if any(path.name.startswith(name) or path.stem == name for name in chosen)]
    if len(picked) != len(chosen):
        sys.exit(f"lessons {chosen}: found {[path.name for path in picked]}")
    return picked


def code_key(notebook: Path) -> str:
    """A hash of what a lesson's result depends on: its own file, the facekit package and requirements.txt."""
    digest = hashlib.sha256()
    for path in [notebook, ROOT / "requirements.txt", *sorted((ROOT / "facekit").rglob("*.py"))]:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def remove_own_runs(notebook: Path, runs_dir: Path) -> None:
    """Remove what a lesson wrote into runs_dir (its entries are named by its number: 09_dcgan, 09_vae, ...)."""
    for path in sorted(runs_dir.glob(notebook.stem[:3] + "*")):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def execute(notebook: Path, environment: dict, runs_dir: Path, keep_going: bool = False) -> dict:
    """Run a lesson in a fresh kernel (in a child process, so that each lesson's memory is its own); returns its
    status, minutes, peak GB and the run folders it wrote."""
    started, load_before = time.time(), os.getloadavg()[1]
    executed = runs_dir / f"{notebook.stem}.executed.ipynb"  # with its outputs, for reading what it printed
    completed = subprocess.run([sys.executable, __file__, "--execute-one", str(notebook), str(keep_going),
                                str(executed)],
                               env=environment,
                               capture_output=True, text=True, cwd=ROOT)
    report = json.loads(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 else \
        {"status": "failed: " + (completed.stderr.strip().splitlines() or ["?"])[-1][:300], "peak_gb": 0.0}
    runs = [str(path.parent) for path in sorted(runs_dir.rglob("run.json"))
            if path.parent.joinpath("log.csv").exists() and path.parent.joinpath("log.csv").stat().st_mtime >= started]
    minutes = (time.time() - started) / 60
    return {**report, "minutes": minutes, "runs": runs, "commit": git("rev-parse", "--short", "HEAD"),
            "processor": processor(), "load": max(load_before, os.getloadavg()[1 if minutes < 10 else 2])}


def execute_one(notebook: Path, keep_going: bool, executed: Path) -> None:
    """(child process) Execute `notebook` with nbclient, write it with its outputs to `executed` and print
    {"status", "peak_gb"} as JSON; `keep_going`: every cell, the failures listed."""
    import nbclient
    import nbformat

    document = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(document, timeout=None, kernel_name="python3",
                                     resources={"metadata": {"path": str(notebook.parent)}})
    failures = []
    with client.setup_kernel():
        pid = client.km.provisioner.process.pid
        for index, cell in enumerate(document.cells):
            try:
                client.execute_cell(cell, index)
            except nbclient.exceptions.CellExecutionError as error:
                failures.append(f"cell {index}: " + " / ".join(str(error).strip().splitlines()[-2:])[:200])
                if not keep_going:
                    break
        peak_gb = peak_resident_gb(pid)
    sys.path.insert(0, str(ROOT))
    from facekit.files import write_text_atomically

    executed.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(executed, nbformat.writes(document))
    status = "passed" if not failures else f"failed ({len(failures)}): " + "; ".join(failures)
    print(json.dumps({"status": status, "peak_gb": peak_gb}))


def peak_resident_gb(pid: int) -> float:
    """The peak resident set size of a live process (Linux's VmHWM), in GB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def measure(runs: list[str], count: int, environment: dict) -> dict:
    """Each face-drawing run among `runs` compared with the real faces of its source (in a child process)."""
    script = ("import json, sys; from facekit import evaluate, registry\n"
              "runs = [run for run in sys.argv[2:] if registry.model_of_run(run)[0].sample is not None]\n"
              "rows = {}\n"
              "for run in runs:\n"
              "    rows.update({(run if name != 'real' else f'real ({run})'): row for name, row in\n"
              "                 evaluate.compare([run], count=int(sys.argv[1]), metric_groups=('swd', 'faces', "
              "'ms_ssim')).items()})\n"
              "print(json.dumps(rows, default=float))")
    completed = subprocess.run([sys.executable, "-c", script, str(count), *runs], env=environment, cwd=ROOT,
                               capture_output=True, text=True)
    if completed.returncode:
        return {"error": (completed.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def collect(lesson: str, runs: list[str], runs_dir: Path, folder: Path) -> None:
    """Copy each run's progress GIF and last grid to folder/lesson/RUN.gif and .png."""
    for run in runs:
        path = Path(run)
        name = path.relative_to(runs_dir).as_posix().replace("/", "-")
        target = folder / lesson
        target.mkdir(parents=True, exist_ok=True)
        if (path / "progress.gif").exists():
            shutil.copyfile(path / "progress.gif", target / f"{name}.gif")
        grids = sorted((path / "samples").glob("*.png"))
        if grids:
            shutil.copyfile(grids[-1], target / f"{name}.png")


def markdown_table(results: dict, profile: str) -> str:
    lines = [f"| lesson | {profile} time | load | peak memory | status | commit |", "|---|---:|---:|---:|---|---|"]
    for lesson, done in sorted(results.items()):
        lines.append(f"| {lesson} | {done['minutes']:.1f} min | {_number(done.get('load'))} | {done['peak_gb']:.1f} GB | "
                     f"{done['status']} | {done['commit']} |")
    measured = [(lesson, done["measures"]) for lesson, done in sorted(results.items()) if done.get("measures")]
    if measured:
        lines += ["", "| lesson | set | can't detect a face | SWD avg | MS-SSIM |", "|---|---|---:|---:|---:|"]
        for lesson, rows in measured:
            for name, row in rows.items():
                if isinstance(row, dict):
                    lines.append(f"| {lesson} | {name} | {row.get('no_face', '')} of {row.get('images', '')} | {_number(row.get('swd_avg'))} | "
                                 f"{_number(row.get('ms_ssim'))} |")
    return "\n".join(lines)


def readme_table(results_dir: Path) -> str:
    """Per lesson: what it teaches (its title), its smoke and laptop times as recorded (load beside), the full
    profile's training counted in T4 minutes, and the peak memory of its full settings run for 12 steps."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from profile_compute import t4_minutes

    recorded = {name: json.loads(path.read_text()) if (path := results_dir / f"{name}.json").exists() else {}
                for name in ("smoke", "laptop", "full-cap12")}
    gpu = t4_minutes("full")
    lines = ["| lesson | teaches | smoke (CI) | laptop (2-core CPU) | full: training on a T4, counted | "
             "full: peak memory (12 steps on the CPU) |", "|---|---|---:|---:|---:|---:|"]
    for notebook in lessons(None):
        title = json.loads(notebook.read_text())["cells"][0]["source"][0].split("·", 1)[-1].strip()
        times = []
        for name in ("smoke", "laptop"):
            done = recorded[name].get(notebook.stem)
            times.append("" if not done else f"{done['minutes']:.1f} min" +
                         ("" if done["status"] == "passed" else " (failed)") +
                         (f" (load {done['load']:.1f})" if done.get("load", 0) > 2.5 else ""))
        capped = recorded["full-cap12"].get(notebook.stem)
        gpu_time = f"{gpu[notebook.stem]:.0f} min" if notebook.stem in gpu else "no training"
        memory = f"{capped['peak_gb']:.1f} GB" if capped else ""
        lines.append(f"| {notebook.name} | {title} | {times[0]} | {times[1]} | {gpu_time} | {memory} |")
    return "\n".join(lines)


def _number(value) -> str:
    return "" if value is None else f"{value:.3g}"


def processor() -> str:
    name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = Path("/proc/cpuinfo").read_text()
    return f"{name}, {os.cpu_count()} cores, AMX {'yes' if 'amx_bf16' in flags else 'no'}, " \
           f"AVX512-BF16 {'yes' if 'avx512_bf16' in flags else 'no'}"


def git(*words) -> str:
    return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, indent=1))
    temporary.replace(path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--execute-one"]:
        execute_one(Path(sys.argv[2]), sys.argv[3] == "True", Path(sys.argv[4]))
    else:
        main()
