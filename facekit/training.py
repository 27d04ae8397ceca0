"""What every trainer shares: its settings (`TrainingConfig`, `StepConfig`), the run folder it writes
(config, log.csv, samples/, checkpoints/, progress.gif, losses.png) and the step loop (`run_steps`)."""

import csv
import dataclasses
import json
import math
import os
import re
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
PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def setting(default, help: str, **argparse_options):
    """A config field with its command-line help (and e.g. choices=...): the one place its default is written."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


@dataclasses.dataclass
class TrainingConfig:
    """Settings every model's run has; saved as run.json and checked on --resume. Models subclass it.

    `model` names the registry entry; `source` and `profile` are filled in by the trainer (what it trained on,
    and the lesson profile, if any) so that a lesson reuses a run only when they match.
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

    def __post_init__(self):
        for name in self.positive_fields():
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")

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
    """`config` completed for training on `faces`: the data source recorded, and `resolved` settings (such as
    the precision "auto" resolved to) filled in. Checks that the faces have the configured resolution."""
    if faces.images.shape[1:3] != (config.resolution, config.resolution):
        raise ValueError(f"the faces are {faces.images.shape[2]}x{faces.images.shape[1]} but the config asks for "
                         f"resolution {config.resolution}")
    source = str(faces.source) if faces.source is not None else config.source
    return dataclasses.replace(config, source=source, **resolved)


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
        """Create the folder for a new run, or check that `config` matches the run being resumed."""
        if resume:
            if not self.config_path.exists():
                raise FileNotFoundError(f"--resume: {self.config_path} does not exist; nothing to resume")
            saved = self.read_config()
            config = json.loads(json.dumps(config))  # as run.json holds it (tuples as lists)
            different = {key: (saved.get(key), value) for key, value in config.items() if saved.get(key) != value}
            different.pop("steps", None)
            if different:
                details = ", ".join(f"{key}: run has {old!r}, asked {new!r}" for key, (old, new) in different.items())
                raise ValueError(f"--resume {self.path}: settings differ from the saved run ({details})")
        else:
            if self.config_path.exists() or self.log_path.exists():
                raise FileExistsError(f"{self.path} already holds a run; pass --resume to continue it or pick a new folder")
            self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.write_config(config)

    def write_config(self, config: dict) -> None:
        write_text_atomically(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        return json.loads(self.config_path.read_text())

    def append_log(self, row: dict) -> None:
        """Append one row to log.csv (writing the header first if the file is new)."""
        is_new = not self.log_path.exists()
        with open(self.log_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if is_new:
                writer.writeheader()
            writer.writerow(row)

    def read_log(self) -> list[dict]:
        """log.csv as a list of rows with float values (step as int)."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, newline="") as handle:
            return [
                {key: int(value) if key == "step" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)
            ]

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
        """A tf.train.CheckpointManager over checkpoints/ for the given models, optimizers and variables."""
        import tensorflow as tf

        checkpoint = tf.train.Checkpoint(**trackables)
        return tf.train.CheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=max_to_keep)

    def save_milestone(self, manager, step: int) -> str:
        """Keep the state of `manager`'s checkpoint at `step` for good, in checkpoints/milestones/."""
        return manager.checkpoint.write(str(self.milestones_dir / f"ckpt-{step}"))

    def checkpoint(self, step: int | None = None) -> str:
        """The checkpoint prefix to load: the latest, or the one (rolling or milestone) saved at `step`."""
        import tensorflow as tf

        if step is None:
            latest = tf.train.latest_checkpoint(self.checkpoints_dir)
            if latest is None:
                raise FileNotFoundError(f"{self.checkpoints_dir}: no checkpoint to load")
            return latest
        state = tf.train.get_checkpoint_state(self.checkpoints_dir)
        rolling = [(int(path.rsplit("-", 1)[1]), path) for path in (state.all_model_checkpoint_paths if state else [])]
        saved = dict(rolling + self.milestones())
        if step not in saved:
            raise FileNotFoundError(f"{self.checkpoints_dir}: no checkpoint at step {step}; "
                                    f"saved: {', '.join(map(str, sorted(saved))) or 'none'}")
        return saved[step]

    def milestones(self) -> list[tuple[int, str]]:
        """(step, checkpoint prefix) of every milestone checkpoint, in step order."""
        found = [(int(path.name[len("ckpt-"):-len(".index")]), str(path.with_suffix("")))
                 for path in self.milestones_dir.glob("ckpt-*.index")]
        return sorted(found)


def start_run(faces, run_dir, config, resume: bool) -> tuple:
    """A trainer's first steps: the config completed for `faces` (source, resolved precision), the faces it
    trains on (less its held-out people), the run folder started (or checked, to resume), the seeds set and
    TensorFlow's ops made deterministic (so that a resumed run equals an uninterrupted one on a GPU too).
    Returns (training faces, config, run)."""
    import facekit

    faces = as_faces(faces)
    config = config_for(config, faces, precision=resolve_precision(config.precision))
    training, _ = split(faces, config)
    run = RunFolder(run_dir)
    run.start(dataclasses.asdict(config), resume=resume)
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
    return [f"{key}: run has {saved.get(key)!r}, now {wanted.get(key)!r}" for key in sorted(wanted.keys() | saved.keys())
            if key != "steps" and saved.get(key) != wanted.get(key)]


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
    seed and the step, so that a resumed run sees what an uninterrupted one would). Restores the latest
    checkpoint when resuming (and drops log rows written after it), logs each step's values and training
    seconds, and every config.snapshot_every steps (and at the last) saves the grid `render_control()` draws
    (`grid_columns` images a row; default square) and a checkpoint; every config.milestone_every steps it also
    keeps a milestone checkpoint. render_control=None (a model that draws no images) saves checkpoints alone.
    A NaN or infinite value stops the run (TrainingDiverged). Ends with progress.gif (when there are snapshots)
    and losses.png (losses, then measures).
    """
    from tqdm.auto import tqdm

    start_step = restore_latest(manager) if resume else 0
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
        run.append_log({"step": step + 1, **values, "seconds": round(seconds, 4)})
        bar.set_postfix({name: f"{value:.3f}" for name, value in values.items()})
        if (step + 1) % config.snapshot_every == 0 or step + 1 == config.steps:
            if render_control is not None:
                progress.save_grid(render_control(), run.sample_path(step + 1), columns=grid_columns)
            manager.save(checkpoint_number=step + 1)
        if (step + 1) % config.milestone_every == 0:
            run.save_milestone(manager, step + 1)
    run.finish(loss_columns=loss_columns, measure_columns=measure_columns)
    return run


def restore_latest(manager) -> int:
    """Restore the newest checkpoint of a tf.train.CheckpointManager in place; returns its step (0 if none)."""
    if manager.latest_checkpoint is None:
        return 0
    manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return int(manager.latest_checkpoint.rsplit("-", 1)[1])


def check_finite(step: int, losses: dict, manager=None) -> None:
    """Raise TrainingDiverged if any loss is NaN or infinite, naming the last good checkpoint."""
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if bad:
        last = manager.latest_checkpoint if manager is not None else None
        kept = f"last good checkpoint kept: {last}" if last else "no checkpoint was saved yet"
        details = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise TrainingDiverged(f"step {step}: training diverged ({details}); {kept}")


def _format(value) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))
