"""No user action loses work (issue 15): each fault a hostile but realistic user can cause, planted in a small
synthetic run or data set, and what the kit does about it."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekit import cli, data, evaluate, progress, registry
from facekit.cli import main
from facekit.training import RunFolder

IMAGES = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
TINY = dict(resolution=32, latent_dim=4, filters=2, batch_size=4, snapshot_every=2, milestone_every=4, grid_size=4,
            precision="float32")


def train(run_dir, steps: int, resume: bool = False, images=IMAGES, **settings):
    spec = registry.model("dcgan")
    return spec.train(images, run_dir, spec.config(steps=steps, **{**TINY, **settings}), resume=resume,
                      show_progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dcgan run of 6 steps: rolling checkpoints 2, 4, 6 and the milestone 4."""
    return train(tmp_path_factory.mktemp("trained") / "run", 6).path


@pytest.fixture
def run(trained, tmp_path) -> RunFolder:
    """A copy of the trained run, to damage."""
    return RunFolder(shutil.copytree(trained, tmp_path / "run"))


def snapshot(run: RunFolder) -> dict:
    """The bytes of log.csv and of every sample grid."""
    return {"log": run.log_path.read_text(), **{path.name: path.read_bytes() for _, path in run.sample_frames()}}


def log_lines(run: RunFolder, count: int) -> list[str]:
    return run.log_path.read_text().splitlines()[:count + 1]


def one_line(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


# Work that is lost


def test_resume_without_the_checkpoint_index_continues_from_the_checkpoint_files(run):
    before = snapshot(run)
    (run.checkpoints_dir / "checkpoint").unlink()
    train(run.path, 8, resume=True)
    assert [row["step"] for row in run.read_log()] == list(range(1, 9))
    assert log_lines(run, 6) == before["log"].splitlines()  # the six logged steps kept, not redone
    assert all(run.sample_path(step).read_bytes() == before[run.sample_path(step).name] for step in (0, 2, 4, 6))
    assert [step for step, _ in _rolling(run)] == [4, 6, 8]


def _rolling(run: RunFolder) -> list[tuple[int, str]]:
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(run.checkpoints_dir)
    return [(int(path.rsplit("-", 1)[1]), path) for path in state.all_model_checkpoint_paths]


def test_resume_with_no_checkpoint_left_refuses_and_changes_nothing(run):
    before = snapshot(run)
    shutil.rmtree(run.checkpoints_dir)  # a run folder copied without checkpoints/
    with pytest.raises(RuntimeError, match="log.csv records 6 steps but .*checkpoints holds no checkpoint"):
        train(run.path, 8, resume=True)
    assert snapshot(run) == before and run.read_config()["steps"] == 6


def test_a_corrupt_latest_checkpoint_is_skipped_for_the_newest_that_restores(run, tmp_path, capsys):
    before = snapshot(run)
    data_file = next(run.checkpoints_dir.glob("ckpt-6.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:len(data_file.read_bytes()) // 2])
    assert main(["sample", str(run.path), "--count", "2", "--out", str(tmp_path / "faces")]) == 0
    assert "skipped ckpt-6" in capsys.readouterr().err and len(list((tmp_path / "faces").iterdir())) == 2
    train(run.path, 8, resume=True)
    assert "skipped ckpt-6" in capsys.readouterr().err
    assert [row["step"] for row in run.read_log()] == list(range(1, 9))
    assert log_lines(run, 4) == before["log"].splitlines()[:5]  # steps 5 and 6 redone from ckpt-4

    for path in run.checkpoints_dir.glob("**/ckpt-*.data-*"):
        path.write_bytes(path.read_bytes()[:10])
    for command in (["sample", str(run.path), "--count", "2", "--out", str(tmp_path / "more")],
                    ["evaluate", str(run.path), "--count", "2", "--metrics", "swd"]):
        assert main(command) == 1
        assert f"{run.checkpoints_dir}: no checkpoint restores (ckpt-8" in one_line(capsys)


def test_a_milestone_missed_by_a_crash_is_written_on_resume(run):
    """The process died after the rolling save at step 4 and during the milestone's: no milestone 4, an empty
    milestones/ckpt-4_temp/ left behind, and log rows up to step 4."""
    import tensorflow as tf

    for path in run.milestones_dir.glob("ckpt-4*"):
        path.unlink()
    (run.milestones_dir / "ckpt-4_temp").mkdir()
    for path in run.checkpoints_dir.glob("ckpt-6.*"):
        path.unlink()
    (run.checkpoints_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\n'
                                                    'all_model_checkpoint_paths: "ckpt-2"\n'
                                                    'all_model_checkpoint_paths: "ckpt-4"\n')
    run.truncate_log(4)
    train(run.path, 6, resume=True)
    assert [step for step, _ in run.milestones()] == [4]
    assert not list(run.checkpoints_dir.glob("**/*_temp"))
    milestone, rolling = tf.train.load_checkpoint(run.checkpoint(4)), tf.train.load_checkpoint(
        str(run.checkpoints_dir / "ckpt-4"))
    names = [name for name in rolling.get_variable_to_shape_map() if "generator" in name and "OPTIMIZER" not in name]
    assert names and all(np.array_equal(milestone.get_tensor(name), rolling.get_tensor(name)) for name in names)


def test_sample_into_a_folder_of_images_is_refused_unless_overwrite(run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "faces"
    out.mkdir()
    for index in range(4):
        progress.save_grid(np.zeros((1, 8, 8, 3), np.uint8), out / f"{index:06d}.png")
    with monkeypatch.context() as patch:  # refused before any sample is drawn
        patch.setattr(evaluate, "sample_run", lambda *args, **kwargs: pytest.fail("drew samples before refusing"))
        assert main(["sample", str(run.path), "--count", "2", "--out", str(out)]) == 1
    assert f"{out}: already holds 4 files" in one_line(capsys)
    assert main(["sample", str(run.path), "--count", "2", "--out", str(out), "--overwrite"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["000000.png", "000001.png"]
    assert evaluate.read_image_folder(out).shape == (2, 32, 32, 3) and evaluate.read_image_folder(out).std() > 0


# Bad input that is silent or unnamed


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faces") / "celeba"
    assert main(["synth", str(folder), "--count", "12"]) == 0
    return folder


@pytest.fixture
def source(faces_dir, tmp_path) -> Path:
    """A copy of the synthetic set, to damage."""
    return Path(shutil.copytree(faces_dir, tmp_path / "celeba"))


def test_an_attribute_header_one_name_short_is_a_file_error(source, tmp_path):
    labels = source / "list_attr_celeba.txt"
    lines = labels.read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[1:])
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.CelebAError, match=f"{labels}: the header names 39 columns but 12 of 12 rows have 40"):
        data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", progress=False)


def test_a_command_that_drops_images_says_how_many_and_why(source, tmp_path, capsys):
    (source / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")
    (source / "img_align_celeba" / "000005.jpg").write_bytes(b"")
    faces = data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", workers=1)
    assert len(faces) == 10
    said = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert said == f"{source}: skipped 2 images: 1 not an image Pillow can read, 1 empty file"
    data.prepare(source, resolution=32, cache_dir=tmp_path / "cache")  # from the cache: said again
    assert "skipped 2 images" in one_line(capsys)


def test_resume_on_other_data_is_refused_by_name(run, source, tmp_path):
    with pytest.raises(ValueError, match="data: run has '16 images', asked '12 images'"):
        train(run.path, 8, resume=True, images=IMAGES[:12])
    first = data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", progress=False)
    (source / "img_align_celeba" / "000012.jpg").unlink()
    second = data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", progress=False)
    assert first.signature and second.signature and first.signature != second.signature
    faces = dict(resolution=32, latent_dim=4, filters=2, batch_size=4, grid_size=4, precision="float32")
    spec = registry.model("dcgan")
    trained = spec.train(first, tmp_path / "on-faces", spec.config(steps=1, **faces), show_progress=False)
    assert trained.read_config()["data"] == f"12 images, cache {first.signature}"
    with pytest.raises(ValueError, match=f"data: run has '12 images, cache {first.signature}', asked '11 images"):
        spec.train(second, trained.path, spec.config(steps=2, **faces), resume=True, show_progress=False)


def test_resume_with_fewer_steps_than_trained_keeps_run_json(run, capsys):
    before = run.config_path.read_text()
    train(run.path, 4, resume=True)
    assert run.config_path.read_text() == before
    assert "already trained 6 steps, past the 4 asked; run.json keeps steps=6" in capsys.readouterr().err
    assert [row["step"] for row in run.read_log()] == list(range(1, 7))


def test_an_empty_labels_file_in_the_cache_is_rebuilt(source, tmp_path):
    first = data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", progress=False)
    (labels,) = (tmp_path / "cache").glob("*.labels.npz")
    labels.write_bytes(b"")
    again = data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(again.attributes, first.attributes) and labels.stat().st_size > 0


def test_bad_run_files_are_one_line_naming_the_file(tmp_path, capsys):
    spec = registry.model("cgan")
    run = RunFolder(tmp_path / "run")
    config = spec.config(resolution=32, latent_dim=4, filters=2, precision="float32")
    run.write_config(json.loads(json.dumps(vars(config))))
    (run.path / "labels.npz").write_bytes(b"")
    sample = ["sample", str(run.path), "--count", "2", "--out", str(tmp_path / "faces")]
    assert main(sample) == 1
    assert f"{run.path / 'labels.npz'}: unreadable (EOFError" in one_line(capsys)
    run.config_path.write_text("[1, 2]\n")
    assert main(sample) == 1
    expected = f"facekit sample: error: {run.config_path}: expected a JSON object of settings, found list"
    assert one_line(capsys) == expected
    run.config_path.write_text('{"model": "cgan", "resol')
    assert main(sample) == 1
    assert f"{run.config_path}: not valid JSON" in one_line(capsys)


def test_a_half_written_last_log_row_is_dropped_and_said(run, capsys):
    with open(run.log_path, "a") as log:
        log.write("7,0.69")
    assert [row["step"] for row in run.read_log()] == list(range(1, 7))
    assert "log.csv line 8: half-written last row dropped" in capsys.readouterr().err
    train(run.path, 7, resume=True)
    assert [row["step"] for row in run.read_log()] == list(range(1, 8))
    with open(run.log_path, "a") as log:
        log.write("8,0.5\n9,0.4,0.3,0.2,0.1,0.5,0.5,0.5,0.5\n")
    with pytest.raises(ValueError, match="log.csv line 9: not a row of numbers"):
        run.read_log()


@pytest.mark.parametrize("failing", ["grid", "checkpoint"])
def test_a_full_disk_during_a_save_names_the_run_and_how_to_continue(run, monkeypatch, failing):
    import tensorflow as tf

    def full(*_, **__):
        if failing == "grid":
            raise OSError(errno.ENOSPC, "No space left on device", str(run.sample_path(8)))
        message = f"{run.checkpoints_dir}/ckpt-8_temp: No space left on device"
        raise tf.errors.ResourceExhaustedError(None, None, message)

    monkeypatch.setattr(progress, "save_grid", full) if failing == "grid" else monkeypatch.setattr(
        tf.train.CheckpointManager, "save", full)
    with pytest.raises(OSError, match=f"{run.path}: could not save .*No space left on device.*--resume continues it"):
        train(run.path, 8, resume=True)
    monkeypatch.undo()
    train(run.path, 8, resume=True)
    assert [row["step"] for row in run.read_log()] == list(range(1, 9))


def test_ctrl_c_says_interrupted_and_offers_resume_only_where_it_exists(monkeypatch, capsys):
    def interrupt(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_prepare", interrupt)
    assert main(["prepare", "faces"]) == 130
    assert one_line(capsys) == "facekit prepare: interrupted"
    monkeypatch.setattr(cli, "build_parser", interrupt)  # during start-up: the imports
    assert main(["train", "dcgan", "--run", "r"]) == 130
    assert one_line(capsys) == "facekit: interrupted"


def test_dangling_and_looping_symlinks_are_skipped_with_the_reason(source, tmp_path):
    images = source / "img_align_celeba"
    (images / "000013.jpg").symlink_to(images / "missing.jpg")
    (images / "000014.jpg").symlink_to(images / "000015.jpg")
    (images / "000015.jpg").symlink_to(images / "000014.jpg")
    faces = data.prepare(source, resolution=32, cache_dir=tmp_path / "cache", progress=False)
    assert len(faces) == 12
    skipped = dict(faces.skipped)
    assert skipped["000013.jpg"] == "unreadable symlink (No such file or directory)"
    assert skipped["000014.jpg"] == skipped["000015.jpg"] == "unreadable symlink (Too many levels of symbolic links)"


def test_a_folder_is_listed_looking_up_only_the_names_that_are_not_regular_files(source, monkeypatch):
    images = source / "img_align_celeba"
    (images / "000013.jpg").symlink_to(images / "000001.jpg")  # a good link: listed like a file
    looked_up, real_stat = [], os.stat
    monkeypatch.setattr(os, "stat", lambda path, *args, **kwargs: looked_up.append(os.path.basename(path))
                        or real_stat(path, *args, **kwargs))
    listing = data._list_images(source)
    assert [name for name in looked_up if name.endswith(".jpg")] == ["000013.jpg"]  # 12 regular files: no stat
    assert [name for name, _ in listing.entries] == [f"{index:06d}.jpg" for index in range(1, 14)]
    assert listing.problems == []


def test_a_failed_start_writes_nothing(tmp_path, faces_dir, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    command = ["train", "dcgan", "--data", str(faces_dir), "--run", str(tmp_path / "run"), "--resolution", "32",
               "--steps", "1", "--batch-size", "4", "--filters", "2", "--latent-dim", "4", "--grid-size", "4"]
    assert main([*command, "--seed", "-1"]) == 1
    assert not (tmp_path / "run" / "run.json").exists()
    assert "seed must be at least 0, got -1" in one_line(capsys)
    spec = registry.model("cgan")
    with pytest.raises(ValueError, match="no attribute labels"):  # images alone: the labels are missing
        spec.train(IMAGES, tmp_path / "run", spec.config(steps=1, **TINY), show_progress=False)
    assert not (tmp_path / "run" / "run.json").exists()
    assert main(command) == 0  # the same command, without --resume, now starts the run


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the worker processes in Linux's /proc")
def test_a_killed_prepare_leaves_no_orphan_workers_and_its_temp_file_is_cleaned(tmp_path):
    folder = tmp_path / "faces" / "img_align_celeba"
    folder.mkdir(parents=True)
    for index in range(130):
        Image.new("RGB", (178, 218), (index, 0, 0)).save(folder / f"{index:06d}.jpg")
    cache = tmp_path / "cache"
    script = ("import time; from facekit import data; decode = data._decode_face\n"
              "def slow(*arguments):\n    time.sleep(0.2)\n    return decode(*arguments)\n"
              f"data._decode_face = slow; data.prepare({str(folder.parent)!r}, resolution=32, workers=2, "
              f"cache_dir={str(cache)!r}, progress=False)")
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(100):
            workers = _children(process.pid)
            if len(workers) == 2 and list(cache.glob(".*.npy.*")):
                break
            time.sleep(0.1)
        assert len(workers) == 2
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        process.kill()
    assert list(cache.glob(".*.npy.*"))  # what the killed prepare left
    faces = data.prepare(folder.parent, resolution=32, cache_dir=cache, workers=1, progress=False)
    assert len(faces) == 130 and not list(cache.glob(".*.npy.*"))


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_huge_zip_member_is_refused_by_its_declared_size_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_MAX_IMAGE_BYTES", 2**20, raising=False)
    archive = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as opened:
        picture = tmp_path / "face.jpg"
        Image.new("RGB", (178, 218), (200, 150, 100)).save(picture)
        opened.write(picture, "img_align_celeba/000001.jpg")
        opened.writestr("img_align_celeba/000002.jpg", bytes(32 * 2**20))
    assert archive.stat().st_size < 2**20
    tracemalloc.start()
    faces = data.prepare(archive, resolution=32, cache_dir=tmp_path / "cache", workers=1, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(faces) == 1 and peak < 8 * 2**20
    assert dict(faces.skipped)["000002.jpg"] == f"too large for a face image ({32 * 2**20} bytes, more than {2**20})"


def test_synth_makes_its_folder_with_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert main(["synth", str(tmp_path / "faces"), "--count", "2"]) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "faces").stat().st_mode & 0o777 == 0o755
