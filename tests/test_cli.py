"""Command line: synth -> prepare -> train dcgan -> gif, and a one-line reason with a non-zero status on bad input."""

import pytest

from facekit import data
from facekit.cli import main
from facekit.training import RunFolder


def test_synth_prepare_train_and_gif(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    faces_dir = tmp_path / "faces"
    assert main(["synth", str(faces_dir), "--count", "40", "--seed", "3"]) == 0
    assert (faces_dir / "img_align_celeba" / "000040.jpg").is_file()
    assert main(["prepare", str(faces_dir), "--resolution", "64", "--crop", "face128"]) == 0
    assert "prepared 40 images (64x64, crop face128)" in capsys.readouterr().out
    (faces_dir / "img_align_celeba" / "000007.jpg").write_bytes(b"not a jpeg")
    assert main(["prepare", str(faces_dir), "--resolution", "64"]) == 0
    printed = capsys.readouterr().out
    assert "prepared 39 images" in printed and "skipped 1" in printed and "000007.jpg" in printed
    assert main(["prepare", str(faces_dir), "--strict"]) == 1
    assert "000007.jpg" in capsys.readouterr().err

    run_dir = tmp_path / "run"
    arguments = ["train", "dcgan", "--data", str(faces_dir), "--resolution", "64", "--steps", "2",
                 "--batch-size", "8", "--filters", "4", "--latent-dim", "8", "--snapshot-every", "1", "--run",
                 str(run_dir)]
    assert main(arguments) == 0
    run = RunFolder(run_dir)
    assert [step for step, _ in run.sample_frames()] == [0, 1, 2]
    assert [row["step"] for row in run.read_log()] == [1, 2]
    assert run.gif_path.is_file() and run.losses_path.is_file()
    assert run.read_config()["crop"] == data.DEFAULT_CROP  # recorded, so evaluate compares like with like
    assert main(arguments) == 1  # the folder already holds a run
    assert "--resume" in capsys.readouterr().err
    assert main([*arguments[:7], "3", *arguments[8:], "--resume"]) == 0
    assert [row["step"] for row in run.read_log()] == [1, 2, 3]

    gif = tmp_path / "class.gif"
    assert main(["gif", str(run_dir), "--out", str(gif)]) == 0
    assert gif.read_bytes() == run.gif_path.read_bytes()


@pytest.mark.parametrize("arguments, reason", [
    (["prepare", "/no/such/folder"], "no such file or folder"),
    (["train", "dcgan", "--steps", "0", "--run", "unused"], "steps must be at least 1"),
    (["gif", "/no/such/run"], "no step_*.png snapshots"),
    (["synth", "unused", "--count", "0"], "--count must be at least 1"),
])
def test_bad_input_gives_one_line_and_status_1(arguments, reason, capsys):
    assert main(arguments) == 1
    error = capsys.readouterr().err.strip()
    assert reason in error and len(error.splitlines()) == 1


def test_train_any_model_then_sample_and_compare(tmp_path, monkeypatch, capsys):
    import csv

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    faces_dir = tmp_path / "faces"
    assert main(["synth", str(faces_dir), "--count", "48", "--seed", "1"]) == 0
    tiny = ["--data", str(faces_dir), "--resolution", "32", "--steps", "2", "--batch-size", "4", "--filters", "4",
            "--latent-dim", "8", "--snapshot-every", "1", "--heldout", "0.25"]
    for model in ("wgan-gp", "began"):
        assert main(["train", model, *tiny, "--run", str(tmp_path / model)]) == 0
        saved = RunFolder(tmp_path / model).read_config()
        assert saved["model"] == model and saved["heldout"] == 0.25 and saved["source"] == str(faces_dir.resolve())
    assert RunFolder(tmp_path / "wgan-gp").read_config()["n_critic"] == 5  # the model's own default

    out = tmp_path / "samples"
    assert main(["sample", str(tmp_path / "began"), "--count", "5", "--out", str(out), "--seed", "2"]) == 0
    assert sorted(path.name for path in out.iterdir()) == [f"{index:06d}.png" for index in range(5)]
    assert "wrote 5 faces (32x32)" in capsys.readouterr().out

    table = tmp_path / "table.md"
    runs = [str(tmp_path / "wgan-gp"), str(tmp_path / "began")]
    assert main(["compare", *runs, "--count", "6", "--metrics", "swd", "ms_ssim", "--out", str(table)]) == 0
    lines = table.read_text().splitlines()
    assert lines[0] == "| set | SWD | MS-SSIM |" and [line.split(" | ")[0] for line in lines[2:]] == [
        "| wgan-gp", "| began", "| real"]
    with open(table.with_suffix(".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["set"] for row in rows] == ["wgan-gp", "began", "real"] and float(rows[0]["swd_avg"]) > 0
    assert table.read_text().strip() in capsys.readouterr().out


def test_a_lessons_run_continues_from_the_command_line(tmp_path, monkeypatch):
    from facekit.models import dcgan

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    faces_dir = tmp_path / "faces"
    assert main(["synth", str(faces_dir), "--count", "16"]) == 0
    faces = data.prepare(faces_dir, resolution=32)
    settings = dict(resolution=32, latent_dim=4, filters=2, batch_size=4, snapshot_every=1, grid_size=4)
    dcgan.MODEL.train(faces, tmp_path / "lesson", dcgan.DCGANConfig(steps=1, profile="smoke", **settings),
                      show_progress=False)
    options = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
    assert main(["train", "dcgan", "--data", str(faces_dir), "--run", str(tmp_path / "lesson"), "--steps", "2",
                 *options, "--resume"]) == 0
    run = RunFolder(tmp_path / "lesson")
    assert [row["step"] for row in run.read_log()] == [1, 2] and run.read_config()["profile"] == "smoke"



def _imports_tensorflow(argv) -> bool:
    """Whether building the parser for argv, in a fresh interpreter, imports TensorFlow."""
    import subprocess
    import sys

    script = f"import sys; from facekit import cli; cli.build_parser({argv!r}); print('tensorflow' in sys.modules)"
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return printed.strip() == "True"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["prepare", "faces", "--resolution", "32"],
                                  ["sample", "run", "--count", "2", "--out", "x"]])
def test_commands_that_need_no_model_import_no_tensorflow(argv):
    """`--help`, `prepare` and the parsing of `sample` never pay TensorFlow's import (seconds)."""
    assert not _imports_tensorflow(argv)


def test_train_imports_only_the_model_it_names():
    assert _imports_tensorflow(["train", "dcgan", "--run", "r"])


def test_a_command_line_run_makes_tensorflow_deterministic(tmp_path):
    """`train` (as every trainer, through training.start_run) turns on op determinism, so that a resumed run equals
    an uninterrupted one on a GPU as well; a fresh interpreter starts without it."""
    import subprocess
    import sys

    script = ("import sys; from facekit import cli; from tensorflow.python.framework import config as tf_config; "
              "before = tf_config.is_op_determinism_enabled(); "
              f"status = cli.main(['synth', {str(tmp_path / 'faces')!r}, '--count', '16']) or cli.main(['train', "
              f"'vae', '--data', {str(tmp_path / 'faces')!r}, '--resolution', '32', '--steps', '1', '--batch-size', "
              f"'4', '--filters', '4', '--run', {str(tmp_path / 'run')!r}]); "
              "print(status, before, tf_config.is_op_determinism_enabled())")
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "FACEKIT_DATA": str(tmp_path / "data")}).stdout
    assert printed.strip().splitlines()[-1] == "0 False True"
