"""What every trainer shares: its settings (`TrainingConfig`, `StepConfig`), the run folder it writes
(config, log.csv, samples/, checkpoints/, progress.gif, losses.png) and the step loop (`run_steps`)."""

import contextlib
import csv
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from facekit import progress
from facekit.data import CROPS, DEFAULT_CROP
from facekit.files import write_text_atomically

RUNS_DIR = Path(os.environ.get("FACEKIT_RUNS", Path(__file__).resolve().parents[1] / "runs"))
GIF_MAX_FRAMES = 40
ROLLING_CHECKPOINTS = 3
SAMPLE_PATTERN = re.compile(r"step_(\d+)\.png$")
CHECKPOINT_PATTERN = re.compile(r"-(\d+)\.index$")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def setting(default, help: str, **argparse_options):
    """A config field with its command-line help (and e.g. choices=...): the one place its default is written."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


@dataclasses.dataclass
class TrainingConfig:
    """Settings every model's run has; saved as run.json and checked on --resume. Models subclass it.

    `model` names the registry entry; `source`, `data` and `profile` are filled in by the trainer (what it trained
    on: its path, and its image count and cache key; the lesson profile, if any) so that a run is resumed, and a
    lesson's run reused, only on the same data.
    """

    model: str = ""
    resolution: int = setting(64, "image size in pixels", choices=(32, 64, 128))
    crop: str = setting(DEFAULT_CROP, "the facekit.data crop of the faces", choices=tuple(sorted(CROPS)))
    limit: int | None = setting(None, "use only the first N images of the source")
    seed: int = setting(0, "seed of the weights, batches, noise and control grid")
    grid_size: int = setting(36, "faces in each snapshot grid")
    heldout: float = setting(0.0, "fraction of the people kept out of training, for evaluation (0: none)")
    source: str = ""
    profile: str = ""
    data: str = ""

    def __post_init__(self):
        for name in self.positive_fields():
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.seed < 0:
            raise ValueError(f"seed must be at least 0, got {self.seed}")

        if not 0 <= self.heldout < 1:
            raise ValueError(f"heldout must be a fraction in [0, 1), got {self.heldout}")

    def positive_fields(self) -> tuple:
        """Names of the integer settings that must be at least 1."""
        return ("resolution", "limit", "grid_size")


@dataclasses.dataclass
class StepConfig(TrainingConfig):
    """Settings of a model trained step by step with the shared loop (`run_steps`)."""

    batch_size: int = setting(64, "images per step")
    steps: int = setting(1000, "training steps (a resumed run may ask for more)")
    snapshot_every: int = setting(50, "steps between control-grid snapshots and checkpoints")
    milestone_every: int = setting(1000, "steps between checkpoints kept for good (the last 3 are kept anyway)")
    precision: str = setting("auto", "Keras dtype policy; auto: mixed_bfloat16 on CPUs with native bfloat16",
                             choices=PRECISIONS)

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("batch_size", "steps", "snapshot_every", "milestone_every")

    def __post_init__(self):
        super().__post_init__()
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto, float32 or mixed_bfloat16, got {self.precision!r}")


def resolve_precision(precision: str = "auto") -> str:
    """The Keras dtype policy to train with: "auto" picks mixed_bfloat16 on a CPU with native bfloat16
    (AMX or AVX512-BF16, about 1.8x faster there) and float32 everywhere else (GPUs, older CPUs)."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, float32 or mixed_bfloat16, got {precision!r}")
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "float32"
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if (" amx_bf16" in flags or " avx512_bf16" in flags) else "float32"


def as_faces(faces):
    """A data.Faces as is, or uint8 images [N, R, R, 3] wrapped as one (no labels, no source)."""
    from facekit import data

    if isinstance(faces, data.Faces):
        return faces
    return data.Faces(faces, [f"{index}" for index in range(len(faces))])


def split(faces, config) -> tuple:
    """(training faces, held-out faces or None): config.heldout of the people kept out, split by config.seed."""
    if not config.heldout:
        return faces, None
    training, heldout = faces.split_by_identity((1 - config.heldout, config.heldout), seed=config.seed)
    return training, heldout


def config_for(config, faces, **resolved):
    """`config` completed for training on `faces`: the data source and its signature (image count, and the
    cache key of prepared faces) recorded, and `resolved` settings (such as the precision "auto" resolved to)
    filled in. Checks that the faces have the configured resolution."""
    if faces.images.shape[1:3] != (config.resolution, config.resolution):
        raise ValueError(f"the faces are {faces.images.shape[2]}x{faces.images.shape[1]} but the config asks for "
                         f"resolution {config.resolution}")
    source = str(faces.source) if faces.source is not None else config.source
    signature = f"{len(faces)} images" + (f", cache {faces.signature}" if faces.signature else "")
    return dataclasses.replace(config, source=source, data=signature, **resolved)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class RunFolder:
    """One training run on disk.

    run.json        what was trained and how (written once, checked on resume)
    log.csv         one row per step: step, the losses, seconds (training time so far)
    samples/        step_000100.png: the control-noise grid at each snapshot
    checkpoints/    TensorFlow checkpoints of models and optimizer state (no pickle): the last 3, and
                    milestones/ every config.milestone_every steps, kept for good
    progress.gif    the samples as a step-labelled animation
    losses.png      the loss curves
    """

    def __init__(self, path):
        self.path = Path(path)
        self.config_path = self.path / "run.json"
        self.log_path = self.path / "log.csv"
        self.samples_dir = self.path / "samples"
        self.checkpoints_dir = self.path / "checkpoints"
        self.milestones_dir = self.checkpoints_dir / "milestones"
        self.gif_path = self.path / "progress.gif"
        self.losses_path = self.path / "losses.png"

    def start(self, config: dict, resume: bool) -> None:
        """Check (see `check`) and write run.json: for a loop of one's own, such as a lesson's."""
        self.check(config, resume)
        self.write_config(config)

    def check(self, config: dict, resume: bool) -> None:
        """Check that a new run may start here (no run in the folder), or that `config` matches the run being
        resumed (steps aside; a run recorded without a data signature is not checked for one). Writes nothing."""
        if resume:
            if not self.config_path.exists():
                raise FileNotFoundError(f"--resume: {self.config_path} does not exist; nothing to resume")
            saved = self.read_config()
            config = json.loads(json.dumps(config))  # as run.json holds it (tuples as lists)
            different = {key: (saved.get(key), value) for key, value in config.items() if saved.get(key) != value}
            different.pop("steps", None)
            if "data" not in saved:
                different.pop("data", None)
            if different:
                details = ", ".join(f"{key}: run has {old!r}, asked {new!r}" for key, (old, new) in different.items())
                raise ValueError(f"--resume {self.path}: settings differ from the saved run ({details})")
        elif self.config_path.exists() or self.log_path.exists():
            raise FileExistsError(f"{self.path} already holds a run; pass --resume to continue it or pick a new folder")

    def record(self, config: dict, trained: int) -> None:
        """Write run.json as training starts at step `trained`; a resumed run already past the steps asked keeps
        its own (and says so)."""
        if self.config_path.exists() and config["steps"] < trained:
            print(f"{self.path}: already trained {trained} steps, past the {config['steps']} asked; "
                  f"{self.config_path.name} keeps steps={self.read_config()['steps']}", file=sys.stderr)
            return
        self.write_config(config)

    def write_config(self, config: dict) -> None:
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        """run.json as a dict; a ValueError naming the file when it is not a JSON object."""
        try:
            config = json.loads(self.config_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.config_path}: not valid JSON ({error})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{self.config_path}: expected a JSON object of settings, found {type(config).__name__}")
        return config

    def append_log(self, row: dict) -> None:
        """Append one row to log.csv (writing the header first if the file is new)."""
        is_new = not self.log_path.exists()
        with open(self.log_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if is_new:
                writer.writeheader()
            writer.writerow(row)

    def read_log(self) -> list[dict]:
        """log.csv as a list of rows with float values (step as int). A half-written last row (the process
        stopped while writing it) is dropped, with a line on stderr; a bad row before it is a ValueError."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        parsed = []
        for index, row in enumerate(rows):
            try:
                if None in row or None in row.values():
                    raise ValueError("fields missing or extra")
                parsed.append({key: int(value) if key == "step" else float(value) for key, value in row.items()})
            except ValueError as error:
                line = index + 2  # after the header
                if index < len(rows) - 1:
                    raise ValueError(f"{self.log_path} line {line}: not a row of numbers ({error})") from None
                print(f"{self.log_path} line {line}: half-written last row dropped (the checkpoint is what counts)",
                      file=sys.stderr)
        return parsed

    def truncate_log(self, last_step: int) -> list[dict]:
        """Drop rows after `last_step` (written after the checkpoint a resumed run restarts from)."""
        rows = [row for row in self.read_log() if row["step"] <= last_step]
        if rows:
            lines = [",".join(rows[0])] + [",".join(_format(value) for value in row.values()) for row in rows]
            write_text_atomically(self.log_path, "\n".join(lines) + "\n")
        else:
            self.log_path.unlink(missing_ok=True)
        return rows

    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:06d}.png"

    def sample_frames(self) -> list[tuple[int, Path]]:
        """(step, path) of every saved snapshot, in step order."""
        frames = [(int(match.group(1)), path) for path in self.samples_dir.glob("step_*.png")
                  if (match := SAMPLE_PATTERN.search(path.name))]
        return sorted(frames)

    def write_gif(self, out_path=None, max_frames: int = GIF_MAX_FRAMES) -> Path:
        """Rebuild the step-labelled GIF from the saved snapshots (no retraining needed).

        Long runs are thinned to `max_frames` evenly spaced snapshots (first and last kept) to keep the file small.
        """
        frames = self.sample_frames()
        if not frames:
            raise FileNotFoundError(f"{self.samples_dir}: no step_*.png snapshots to make a GIF from")
        if len(frames) > max_frames:
            frames = [frames[round(index)] for index in np.linspace(0, len(frames) - 1, max_frames)]
        return progress.save_gif([path for _, path in frames], out_path or self.gif_path,
                                 labels=[f"step {step}" for step, _ in frames])

    def finish(self, loss_columns=None, measure_columns=()) -> None:
        """Write progress.gif (when the run saved snapshots) and losses.png (the losses, and the model's own
        measures in a panel below)."""
        if self.sample_frames():
            self.write_gif()
        rows = self.read_log()
        progress.plot_losses(self.log_path, self.losses_path, columns=loss_columns,
                             smoothing=max(1, len(rows) // 50), measures=list(measure_columns))

    def checkpoint_manager(self, max_to_keep: int = ROLLING_CHECKPOINTS, **trackables):
        """A tf.train.CheckpointManager over checkpoints/ for the given models, optimizers and variables. The
        index file (checkpoints/checkpoint) is rewritten from the checkpoints on disk when it is missing, so that
        the manager keeps rotating them; temporary folders of interrupted saves are removed."""
        import tensorflow as tf

        for stale in self.checkpoints_dir.glob("**/*_temp"):
            shutil.rmtree(stale, ignore_errors=True)
        rolling = [prefix for _, prefix in sorted(_checkpoint_files(self.checkpoints_dir))]
        if rolling and not (self.checkpoints_dir / "checkpoint").exists():  # times too, or the manager keeps them all
            lines = [f'model_checkpoint_path: "{rolling[-1].name}"', "last_preserved_timestamp: 0"]
            lines += [f'all_model_checkpoint_paths: "{prefix.name}"' for prefix in rolling]
            lines += [f"all_model_checkpoint_timestamps: {prefix.with_suffix('.index').stat().st_mtime}"
                      for prefix in rolling]
            write_text_atomically(self.checkpoints_dir / "checkpoint", "\n".join(lines) + "\n")
        checkpoint = tf.train.Checkpoint(**trackables)
        return tf.train.CheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=max_to_keep)

    def save_milestone(self, manager, step: int) -> str:
        """Keep the state of `manager`'s checkpoint at `step` for good, in checkpoints/milestones/."""
        return manager.checkpoint.write(str(self.milestones_dir / f"ckpt-{step}"))

    def checkpoint(self, step: int | None = None) -> str:
        """The checkpoint prefix to load: the latest, or the one (rolling or milestone) saved at `step`."""
        saved = _saved_checkpoints(self.checkpoints_dir)
        if step is None:
            if not saved:
                raise FileNotFoundError(f"{self.checkpoints_dir}: no checkpoint to load")
            return saved[0][1]
        if step not in dict(saved):
            raise FileNotFoundError(f"{self.checkpoints_dir}: no checkpoint at step {step}; "
                                    f"saved: {', '.join(map(str, sorted(dict(saved)))) or 'none'}")
        return dict(saved)[step]

    def restore(self, checkpoint, step: int | None = None) -> str:
        """Restore a tf.train.Checkpoint (the networks to sample with; other objects may be left out) from the
        newest checkpoint that restores, or the one at `step`; returns its prefix. A damaged one (a truncated
        file) is skipped with a line on stderr saying why."""
        newest = self.checkpoint(step)  # a FileNotFoundError when there is none
        prefixes = [newest] if step is not None else [path for _, path in _saved_checkpoints(self.checkpoints_dir)]
        return _restore_first(checkpoint, prefixes, self.checkpoints_dir, partial=True)

    def milestones(self) -> list[tuple[int, str]]:
        """(step, checkpoint prefix) of every milestone checkpoint, in step order."""
        return [(step, str(prefix)) for step, prefix in sorted(_checkpoint_files(self.milestones_dir))]


def start_run(faces, run_dir, config, resume: bool) -> tuple:
    """A trainer's first steps: the config completed for `faces` (source, resolved precision), the faces it
    trains on (less its held-out people), the run folder checked (for a new run or to resume), the seeds set and
    TensorFlow's ops made deterministic (so that a resumed run equals an uninterrupted one on a GPU too).
    Returns (training faces, config, run)."""
    import facekit

    faces = as_faces(faces)
    config = config_for(config, faces, precision=resolve_precision(config.precision))
    training, _ = split(faces, config)
    run = RunFolder(run_dir)
    run.check(dataclasses.asdict(config), resume=resume)  # run.json is written by run_steps, once all is ready
    facekit.seed_everything(config.seed)
    return training, config, run


def differences(run_dir, config, faces) -> list[str]:
    """How the run in run_dir differs from what training `config` on `faces` would record ("key: run has X,
    now Y"), steps aside (a run may be continued to more steps); empty when it matches."""
    run = RunFolder(run_dir)
    if not run.config_path.exists():
        return [f"{run.config_path} does not exist"]
    resolved = {"precision": resolve_precision(config.precision)} if isinstance(config, StepConfig) else {}
    wanted = json.loads(json.dumps(dataclasses.asdict(config_for(config, as_faces(faces), **resolved))))
    saved = run.read_config()
    unchecked = {"steps"} | ({"data"} - saved.keys())  # a run recorded without a data signature is not checked
    return [f"{key}: run has {saved.get(key)!r}, now {wanted.get(key)!r}" for key in sorted(wanted.keys() | saved.keys())
            if key not in unchecked and saved.get(key) != wanted.get(key)]


def train_or_resume(spec, faces, run_dir, config, show_progress: bool = False) -> "RunFolder":
    """spec.train(faces, run_dir, config), continuing the run already in run_dir if it has the same settings (a
    finished one is reused as it is, a stopped one continues from its last checkpoint); a run with other
    settings is replaced. Prints which, and why: what a lesson needs so that a rerun loses nothing."""
    import shutil

    run = RunFolder(run_dir)
    resume = run.config_path.exists()
    if resume and (changed := differences(run_dir, config, faces)):
        print(f"{run.path}: replaced, it was trained with other settings ({'; '.join(changed)})")
        shutil.rmtree(run.path)
        resume = False
    done = len(run.read_log()) if resume else 0
    state = ("training" if not resume else "finished run reused" if done >= config.steps else
             f"continuing from its last checkpoint ({done} of {config.steps} steps logged)")
    print(f"{run.path}: {state}")
    return spec.train(faces, run.path, config, resume=resume, show_progress=show_progress)


def run_steps(run: "RunFolder", manager, batches, config, train_step, render_control, loss_columns, resume: bool,
              show_progress: bool = True, description: str = "train", measure_columns=(),
              grid_columns: int | None = None) -> "RunFolder":
    """The loop every trainer shares, around its own `train_step(step, batch) -> {column: value}`.

    batches(start_step) gives the stream of training batches from that step on (each a pure function of the
    seed and the step, so that a resumed run sees what an uninterrupted one would). When resuming it restores the
    newest checkpoint that restores (and drops log rows written after it; logged steps with no checkpoint to
    restore stop it), and writes the milestone of that step if the run stopped before writing it. Writes run.json,
    logs each step's values and training seconds, and every config.snapshot_every steps (and at the last) saves
    the grid `render_control()` draws (`grid_columns` images a row; default square) and a checkpoint; every
    config.milestone_every steps it also keeps a milestone checkpoint. render_control=None (a model that draws no
    images) saves checkpoints alone.
    A NaN or infinite value stops the run (TrainingDiverged), a failed write (a full disk) too, with an OSError
    naming the run. Ends with progress.gif (when there are snapshots) and losses.png (losses, then measures).
    """
    from tqdm.auto import tqdm

    start_step = _resume_step(run, manager, config) if resume else 0
    run.record(dataclasses.asdict(config), start_step)
    rows = run.truncate_log(start_step) if resume else []
    seconds = rows[-1]["seconds"] if rows else 0.0
    if start_step == 0 and render_control is not None:
        progress.save_grid(render_control(), run.sample_path(0), columns=grid_columns)
    stream = iter(batches(start_step))
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, disable=not show_progress,
               desc=description, unit="step")
    for step in bar:
        started = time.perf_counter()
        values = train_step(step, next(stream))
        seconds += time.perf_counter() - started
        check_finite(step + 1, values, manager)
        with _saving(run):
            run.append_log({"step": step + 1, **values, "seconds": round(seconds, 4)})
            if (step + 1) % config.snapshot_every == 0 or step + 1 == config.steps:
                if render_control is not None:
                    progress.save_grid(render_control(), run.sample_path(step + 1), columns=grid_columns)
                manager.save(checkpoint_number=step + 1)
            if (step + 1) % config.milestone_every == 0:
                run.save_milestone(manager, step + 1)
        bar.set_postfix({name: f"{value:.3f}" for name, value in values.items()})
    with _saving(run):
        run.finish(loss_columns=loss_columns, measure_columns=measure_columns)
    return run


def restore_latest(manager) -> int:
    """Restore the newest checkpoint of a tf.train.CheckpointManager that restores (rolling or milestone, found
    by their files), in place; returns its step (0 if there is none). A damaged one is skipped with a line on
    stderr saying why; when none restores, a RuntimeError naming the folder."""
    directory = Path(manager.directory)
    saved = _saved_checkpoints(directory)
    if not saved:
        return 0
    prefix = _restore_first(manager.checkpoint, [path for _, path in saved], directory, partial=False)
    return int(prefix.rsplit("-", 1)[1])


def check_finite(step: int, losses: dict, manager=None) -> None:
    """Raise TrainingDiverged if any loss is NaN or infinite, naming the last good checkpoint."""
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if bad:
        last = manager.latest_checkpoint if manager is not None else None
        kept = f"last good checkpoint kept: {last}" if last else "no checkpoint was saved yet"
        details = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise TrainingDiverged(f"step {step}: training diverged ({details}); {kept}")


def _resume_step(run: RunFolder, manager, config) -> int:
    """restore_latest for a resumed run, which refuses to start again from step 0 when log.csv records steps that
    a checkpoint was saved after (it would overwrite them), and saves the milestone of the step it restarts at
    when the run stopped before writing it."""
    start_step = restore_latest(manager)
    logged = run.read_log()
    due = min(config.snapshot_every, run.read_config().get("steps", config.steps))
    if start_step == 0 and logged and logged[-1]["step"] >= due:
        raise RuntimeError(f"--resume {run.path}: {run.log_path.name} records {logged[-1]['step']} steps but "
                           f"{run.checkpoints_dir} holds no checkpoint to continue from; nothing was changed "
                           f"(put the checkpoints back, or train into a new folder)")
    if start_step and start_step % config.milestone_every == 0 and start_step not in dict(run.milestones()):
        run.save_milestone(manager, start_step)
    return start_step


@contextlib.contextmanager
def _saving(run: RunFolder):
    """Turn a failed write of the run (a full disk) into one OSError naming the run and how to continue."""
    import tensorflow as tf

    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        raise OSError(f"{run.path}: could not save ({_first_line(error)}); the run is kept up to its last checkpoint, "
                      f"and --resume continues it") from error


def _checkpoint_files(directory: Path) -> list[tuple[int, Path]]:
    """(step, prefix) of the checkpoints (NAME-STEP.index) whose index file is in `directory` (not its subfolders)."""
    found = [(CHECKPOINT_PATTERN.search(path.name), path.with_suffix("")) for path in directory.glob("*.index")]
    return [(int(match.group(1)), prefix) for match, prefix in found if match]


def _saved_checkpoints(checkpoints_dir: Path) -> list[tuple[int, str]]:
    """(step, prefix) of every checkpoint on disk, rolling and milestones, newest first (at one step, rolling
    first), found by their files rather than by the index file."""
    found = [(step, 0, str(prefix)) for step, prefix in _checkpoint_files(checkpoints_dir)]
    found += [(step, 1, str(prefix)) for step, prefix in _checkpoint_files(checkpoints_dir / "milestones")]
    return [(step, prefix) for step, _, prefix in sorted(found, key=lambda item: (-item[0], item[1]))]


def _restore_first(checkpoint, prefixes, directory, partial: bool) -> str:
    """Restore `checkpoint` from the first of `prefixes` that restores (every object of it found there; the
    checkpoint may hold more when `partial`), saying on stderr which were skipped and why; returns that prefix.
    A checkpoint that holds other objects than `checkpoint` (run.json describes other networks) is an
    AssertionError at once, as no older one would differ."""
    import tensorflow as tf

    failures = []
    for prefix in prefixes:
        try:
            status = checkpoint.restore(prefix)
        except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
            failures.append(f"{Path(prefix).name}: {_first_line(error)}")
            continue
        status.assert_existing_objects_matched()
        if partial:
            status.expect_partial()
        if failures:
            print(f"{directory}: skipped {'; '.join(failures)}; restored {Path(prefix).name}", file=sys.stderr)
        return prefix
    raise RuntimeError(f"{directory}: no checkpoint restores ({'; '.join(failures)})")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _format(value) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))
