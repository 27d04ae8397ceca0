"""The run folder every trainer writes: config, log.csv, samples/, checkpoints/, progress.gif, losses.png."""

import csv
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from facekit import progress
from facekit.files import write_text_atomically

RUNS_DIR = Path(os.environ.get("FACEKIT_RUNS", Path(__file__).resolve().parents[1] / "runs"))
GIF_MAX_FRAMES = 40
SAMPLE_PATTERN = re.compile(r"step_(\d+)\.png$")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class RunFolder:
    """One training run on disk.

    run.json        what was trained and how (written once, checked on resume)
    log.csv         one row per step: step, the losses, seconds (training time so far)
    samples/        step_000100.png: the control-noise grid at each snapshot
    checkpoints/    TensorFlow checkpoints of models and optimizer state (no pickle)
    progress.gif    the samples as a step-labelled animation
    losses.png      the loss curves
    """

    def __init__(self, path):
        self.path = Path(path)
        self.config_path = self.path / "run.json"
        self.log_path = self.path / "log.csv"
        self.samples_dir = self.path / "samples"
        self.checkpoints_dir = self.path / "checkpoints"
        self.gif_path = self.path / "progress.gif"
        self.losses_path = self.path / "losses.png"

    def start(self, config: dict, resume: bool) -> None:
        """Create the folder for a new run, or check that `config` matches the run being resumed."""
        if resume:
            if not self.config_path.exists():
                raise FileNotFoundError(f"--resume: {self.config_path} does not exist; nothing to resume")
            saved = self.read_config()
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

    def finish(self, loss_columns=None) -> None:
        """Write progress.gif and losses.png from what the run saved."""
        self.write_gif()
        rows = self.read_log()
        progress.plot_losses(self.log_path, self.losses_path, columns=loss_columns,
                             smoothing=max(1, len(rows) // 50))

    def checkpoint_manager(self, max_to_keep: int = 3, **trackables):
        """A tf.train.CheckpointManager over checkpoints/ for the given models, optimizers and variables."""
        import tensorflow as tf

        checkpoint = tf.train.Checkpoint(**trackables)
        return tf.train.CheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=max_to_keep)


def run_steps(run: "RunFolder", manager, images, config, train_step, render_control, loss_columns, resume: bool,
              show_progress: bool = True, description: str = "train") -> "RunFolder":
    """The loop every trainer shares, around its own `train_step(step, real_images) -> {loss name: value}`.

    Restores the latest checkpoint when resuming (and drops log rows written after it), feeds
    data.batches(images, config.batch_size, config.seed) from that step, logs each step's losses and training
    seconds, and every config.snapshot_every steps (and at the last) saves the grid `render_control()` draws and a
    checkpoint. A NaN or infinite loss stops the run (TrainingDiverged). Ends with progress.gif and losses.png.
    """
    from tqdm.auto import tqdm

    from facekit import data

    start_step = restore_latest(manager) if resume else 0
    rows = run.truncate_log(start_step) if resume else []
    seconds = rows[-1]["seconds"] if rows else 0.0
    if start_step == 0:
        progress.save_grid(render_control(), run.sample_path(0))
    batches = iter(data.batches(images, config.batch_size, config.seed, start_step=start_step))
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, disable=not show_progress,
               desc=description, unit="step")
    for step in bar:
        started = time.perf_counter()
        losses = train_step(step, next(batches))
        seconds += time.perf_counter() - started
        check_finite(step + 1, losses, manager)
        run.append_log({"step": step + 1, **losses, "seconds": round(seconds, 4)})
        bar.set_postfix({name: f"{value:.3f}" for name, value in losses.items()})
        if (step + 1) % config.snapshot_every == 0 or step + 1 == config.steps:
            progress.save_grid(render_control(), run.sample_path(step + 1))
            manager.save(checkpoint_number=step + 1)
    run.finish(loss_columns=loss_columns)
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
