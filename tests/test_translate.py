"""`python -m facekit translate`: runs of pix2pix and superres trained for two steps from the command line applied to
folders of sketches and small faces (converted, resized with a warning), one PNG per input; bad input gets one line
naming the file, the rest is written, the status says something failed. Also `sample` and `evaluate` on such runs."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facekit import data, registry, sketches
from facekit.cli import main

pytestmark = pytest.mark.usefixtures("data_cache")

TRAIN = ["--resolution", "32", "--steps", "2", "--batch-size", "4", "--generator-filters", "4", "--filters", "4",
         "--snapshot-every", "2", "--grid-size", "3", "--heldout", "0.25", "--precision", "float32"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"faces": the synthetic source, "pix2pix": its run folder, "superres": its run folder}."""
    folder = tmp_path_factory.mktemp("translate")
    assert main(["synth", str(folder / "faces"), "--count", "48", "--seed", "1"]) == 0
    made = {"faces": folder / "faces"}
    for name in ("pix2pix", "superres"):
        made[name] = folder / name
        assert main(["train", name, "--data", str(folder / "faces"), *TRAIN, "--run", str(made[name])]) == 0
    return made


def faces_of(runs, count: int = 3) -> np.ndarray:
    return np.asarray(data.prepare(runs["faces"], resolution=32, progress=False).images[:count])


def save(pixels, path, mode=None):
    Image.fromarray(np.squeeze(pixels), mode).save(path)
    return path


def test_small_faces_become_faces_of_the_runs_size_named_as_their_inputs(tmp_path, runs, capsys):
    model = registry.model("superres").load(runs["superres"])
    small = model.conditions(faces_of(runs))  # uint8 [3, 8, 8, 3]
    inputs = tmp_path / "small"
    inputs.mkdir()
    save(small[0], inputs / "anna.png")
    save(small[1], inputs / "bo.png")
    save(small[2].mean(axis=-1).astype(np.uint8), inputs / "gray.png")  # one channel: repeated into RGB
    save(np.repeat(np.repeat(small[0], 2, axis=0), 2, axis=1)[:, :12], inputs / "wide.png")  # 12x16: resized
    out = tmp_path / "out"
    assert main(["translate", str(runs["superres"]), str(inputs), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert sorted(path.name for path in out.iterdir()) == ["anna.png", "bo.png", "gray.png", "wide.png"]
    written = {name: np.asarray(Image.open(out / f"{name}.png")) for name in ("anna", "bo", "gray", "wide")}
    assert all(image.shape == (32, 32, 3) for image in written.values())
    np.testing.assert_array_equal(np.stack([written["anna"], written["bo"]]), model.translate(small[:2]))
    gray = np.repeat(small[2].mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    np.testing.assert_array_equal(written["gray"], model.translate(gray[np.newaxis])[0])
    assert printed.err.strip() == f"warning: {inputs / 'wide.png'}: 12x16 resized to 8x8, the model's input size"
    assert "wrote 4 of 4 images" in printed.out


def test_sketches_are_translated_and_bad_files_are_named_skipped_and_reported(tmp_path, runs, capsys):
    model = registry.model("pix2pix").load(runs["pix2pix"])
    drawn = sketches.draw(faces_of(runs), "xdog", seed=0)  # uint8 [3, 32, 32, 1]
    inputs = tmp_path / "sketches"
    inputs.mkdir()
    save(drawn[0], inputs / "a.png")
    save(np.repeat(drawn[1], 3, axis=-1), inputs / "b.png")  # a gray drawing saved as RGB: read as one channel
    lines_only = np.concatenate([np.zeros((32, 32, 3), np.uint8), 255 - drawn[2]], axis=-1)  # black on transparent
    save(lines_only, inputs / "c.png", "RGBA")
    photo = save(faces_of(runs, 1)[0], inputs / "photo.png")  # a colour photograph: not a sketch
    (inputs / "notes.txt").write_text("not an image")
    save(drawn[0], inputs / "a.tif")  # its output would be a.png again
    (inputs / ".DS_Store").write_bytes(b"\0")  # hidden: ignored
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.png").write_bytes(b"written before")
    assert main(["translate", str(runs["pix2pix"]), str(inputs), "--out", str(out), "--seed", "3"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "b.png", "c.png", "kept.png"]
    assert (out / "kept.png").read_bytes() == b"written before"
    expected = model.translate(drawn, seed=3)  # a.png, b.png, c.png are the first three inputs: seeds (3, 0..2)
    for index, name in enumerate("abc"):
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}.png")), expected[index], err_msg=name)
    pixels = np.asarray(Image.open(photo)).astype(int)
    spread = (pixels.max(axis=-1) - pixels.min(axis=-1)).max()
    assert errors[:3] == [
        f"skipped {inputs / 'a.tif'}: its output a.png is a.png's; rename one of them",
        f"skipped {inputs / 'notes.txt'}: not an image (UnidentifiedImageError: cannot identify image file "
        f"'{inputs / 'notes.txt'}')",
        f"skipped {photo}: a colour image (its channels differ by up to {spread} levels); the model translates "
        f"one-channel sketches"]
    assert errors[3] == "facekit translate: error: 3 of 6 inputs were skipped (each named above)"


@pytest.mark.parametrize("problem, reason", [
    ("empty", "an empty folder; nothing to translate"),
    ("missing", "no such folder of images"),
    ("same", "the input folder itself; the outputs would replace the inputs"),
    ("dcgan", "is a dcgan run, which translates no images"),
])
def test_bad_arguments_give_one_line_and_status_1(tmp_path, runs, capsys, problem, reason):
    inputs = tmp_path / "inputs"
    if problem != "missing":
        inputs.mkdir()
    if problem in ("same", "dcgan"):
        save(np.full((32, 32), 255, np.uint8), inputs / "blank.png")
    run = runs["pix2pix"]
    if problem == "dcgan":
        run = tmp_path / "dcgan"
        assert main(["train", "dcgan", "--data", str(runs["faces"]), "--resolution", "32", "--steps", "1",
                     "--batch-size", "4", "--filters", "2", "--latent-dim", "4", "--grid-size", "4", "--run",
                     str(run)]) == 0
        capsys.readouterr()
    out = inputs if problem == "same" else tmp_path / "out"
    assert main(["translate", str(run), str(inputs), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert reason in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_sample_and_evaluate_read_the_runs_held_out_faces(tmp_path, runs, capsys):
    for name in ("pix2pix", "superres"):
        out = tmp_path / f"{name}-samples"
        assert main(["sample", str(runs[name]), "--count", "4", "--out", str(out), "--seed", "2"]) == 0
        assert "wrote 4 faces (32x32)" in capsys.readouterr().out
        np.testing.assert_array_equal(np.stack([np.asarray(Image.open(path)) for path in sorted(out.iterdir())]),
                                      registry.model(name).sample(runs[name], 4, seed=2))
    table = tmp_path / "table.md"
    assert main(["compare", str(runs["pix2pix"]), str(runs["superres"]), "--count", "6", "--metrics", "swd",
                 "--out", str(table)]) == 0
    assert [line.split(" | ")[0] for line in table.read_text().splitlines()[2:]] == ["| pix2pix", "| superres",
                                                                                      "| real"]


def test_parsing_translate_imports_no_tensorflow():
    script = ("import sys; from facekit import cli; cli.build_parser(['translate', 'run', 'in', '--out', 'o']); "
              "print('tensorflow' in sys.modules)")
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "False"
