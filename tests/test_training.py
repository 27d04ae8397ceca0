"""Run folder: log round trip, truncation on resume, GIF rebuild, divergence check."""

import math

import numpy as np
import pytest

from facekit import progress
from facekit.training import RunFolder, TrainingDiverged, check_finite


def test_log_round_trip_and_truncation(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start({"model": "test", "steps": 4}, resume=False)
    for step in range(1, 5):
        run.append_log({"step": step, "loss": 1.0 / step, "seconds": 0.5 * step})
    assert [row["step"] for row in run.read_log()] == [1, 2, 3, 4]
    assert run.read_log()[2]["loss"] == pytest.approx(1 / 3)
    kept = run.truncate_log(2)
    assert [row["step"] for row in kept] == [1, 2]
    assert run.read_log() == kept
    run.append_log({"step": 3, "loss": 0.25, "seconds": 1.5})
    assert [row["step"] for row in run.read_log()] == [1, 2, 3]


def test_start_refuses_to_overwrite_and_checks_settings_on_resume(tmp_path):
    run = RunFolder(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run.start({"model": "test"}, resume=True)
    run.start({"model": "test", "seed": 1, "steps": 10}, resume=False)
    with pytest.raises(FileExistsError, match="--resume"):
        RunFolder(tmp_path / "run").start({"model": "test"}, resume=False)
    with pytest.raises(ValueError, match="seed: run has 1, asked 2"):
        run.start({"model": "test", "seed": 2, "steps": 10}, resume=True)
    run.start({"model": "test", "seed": 1, "steps": 20}, resume=True)  # more steps is what resuming is for
    assert run.read_config()["steps"] == 20


def test_gif_is_rebuilt_from_saved_snapshots_in_step_order(tmp_path):
    run = RunFolder(tmp_path / "run")
    for step, value in ((100, 200), (0, 0), (50, 100)):
        progress.save_grid(np.full((1, 8, 8, 3), value, np.uint8), run.sample_path(step))
    assert [step for step, _ in run.sample_frames()] == [0, 50, 100]
    first = run.write_gif()
    second = run.write_gif(tmp_path / "again.gif")
    assert first.read_bytes() == second.read_bytes()
    with pytest.raises(FileNotFoundError, match="no step_"):
        RunFolder(tmp_path / "empty").write_gif()


def test_check_finite_names_the_bad_loss():
    check_finite(3, {"d_loss": 0.5, "g_loss": 2.0})
    with pytest.raises(TrainingDiverged, match=r"step 7: training diverged \(g_loss=inf\); no checkpoint"):
        check_finite(7, {"d_loss": 0.5, "g_loss": math.inf})


def test_long_runs_are_thinned_to_evenly_spaced_frames(tmp_path):
    run = RunFolder(tmp_path / "run")
    for step in range(0, 101, 10):
        progress.save_grid(np.full((1, 4, 4, 3), step, np.uint8), run.sample_path(step))
    from PIL import Image

    with Image.open(run.write_gif(max_frames=4)) as gif:
        assert gif.n_frames == 4


def test_precision_is_explicit_or_resolved():
    from facekit.training import resolve_precision

    assert resolve_precision("float32") == "float32"
    assert resolve_precision("auto") in ("float32", "mixed_bfloat16")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("float16")


def test_a_checkpoint_is_found_by_step_among_the_rolling_ones_and_the_milestones(tmp_path):
    import tensorflow as tf

    run = RunFolder(tmp_path / "run")
    manager = run.checkpoint_manager(value=tf.Variable(0.0))
    for step in (10, 20, 30, 40):
        manager.checkpoint.value.assign(step)
        manager.save(checkpoint_number=step)
        if step == 10:
            run.save_milestone(manager, step)
    assert run.checkpoint().endswith("ckpt-40")
    assert [step for step, _ in run.milestones()] == [10]
    restored = tf.train.Checkpoint(value=tf.Variable(0.0))
    restored.restore(run.checkpoint(10)).assert_consumed()
    assert float(restored.value.numpy()) == 10.0  # the rolling ckpt-10 is gone; the milestone kept it
    assert run.checkpoint(20).endswith("ckpt-20")
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 15; saved: 10, 20, 30, 40"):
        run.checkpoint(15)
    with pytest.raises(FileNotFoundError, match="no checkpoint to load"):
        RunFolder(tmp_path / "empty").checkpoint()


def test_train_or_resume_reuses_continues_or_replaces_a_run(tmp_path, capsys):
    from facekit import registry
    from facekit.training import differences, train_or_resume

    spec = registry.model("dcgan")
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    tiny = dict(resolution=32, latent_dim=4, filters=2, batch_size=4, snapshot_every=2, grid_size=4,
                precision="float32")
    run = train_or_resume(spec, images, tmp_path / "run", spec.config(steps=2, **tiny))
    assert "training" in capsys.readouterr().out and len(run.read_log()) == 2
    assert differences(run.path, spec.config(steps=4, **tiny), images) == []
    train_or_resume(spec, images, run.path, spec.config(steps=4, **tiny))
    assert "continuing from its last checkpoint (2 of 4 steps logged)" in capsys.readouterr().out
    assert [row["step"] for row in run.read_log()] == [1, 2, 3, 4]
    train_or_resume(spec, images, run.path, spec.config(steps=4, **tiny))
    assert "finished run reused" in capsys.readouterr().out and len(run.read_log()) == 4
    train_or_resume(spec, images, run.path, spec.config(steps=2, **{**tiny, "seed": 1}))
    assert "replaced, it was trained with other settings (seed: run has 0, now 1)" in capsys.readouterr().out
    assert [row["step"] for row in run.read_log()] == [1, 2]
