"""The README's commands: every `python -m facekit` line parses with today's command line, every `make` target it
names exists, and the quick ones run as written."""

import re
import shlex
from pathlib import Path

import pytest

from facekit import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```\n(.*?)```", README, flags=re.S)
LINES = [line.split("#")[0].strip() for block in BLOCKS for line in block.splitlines()]
FACEKIT_COMMANDS = [line for line in LINES if line.startswith(("python -m facekit", ".venv/bin/python -m facekit"))]


def test_the_readme_shows_facekit_commands():
    assert len(FACEKIT_COMMANDS) >= 8


@pytest.mark.parametrize("command", FACEKIT_COMMANDS)
def test_each_facekit_command_parses_as_written(command):
    words = shlex.split(command)
    arguments = cli.build_parser().parse_args(words[words.index("facekit") + 1 :])
    assert callable(arguments.handler)


def test_each_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"`?make (\w+)", README))
    assert named and named <= targets, f"README names make targets that do not exist: {named - targets}"


def test_the_lesson_table_names_every_lesson_notebook():
    notebooks = {path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    listed = set(re.findall(r"^\| `(\d\d_\w+\.ipynb)` \|", README, flags=re.M))
    assert notebooks and listed == notebooks, f"listed but missing: {listed - notebooks}; not listed: {notebooks - listed}"


def test_the_quick_commands_run_as_written(tmp_path, monkeypatch):
    """synth, then train, gif and sample on what it wrote, with the README's own options (fewer steps)."""
    from facekit import data

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    synth = next(line for line in FACEKIT_COMMANDS if " synth " in line)
    assert cli.main(shlex.split(synth)[3:-2] + ["--count", "40"]) == 0  # the README's, with 40 faces, not 5,000
    folder = shlex.split(synth)[4]
    train = next(line for line in FACEKIT_COMMANDS if " train dcgan " in line and "--resume" not in line)
    words = shlex.split(train)[3:]
    for option, value in (("--data", folder), ("--steps", "2"), ("--batch-size", "8"), ("--filters", "4")):
        words = _with_option(words, option, value)
    assert cli.main(words) == 0
    run = words[words.index("--run") + 1]
    assert cli.main(["gif", run, "--out", "class.gif"]) == 0 and Path("class.gif").stat().st_size > 0
    assert cli.main(["sample", run, "--count", "3", "--out", "faces"]) == 0 and len(list(Path("faces").iterdir())) == 3


def _with_option(words: list, option: str, value: str) -> list:
    """The command's words with `option` set to `value` (replaced, or added)."""
    if option in words:
        index = words.index(option)
        return words[: index + 1] + [value] + words[index + 2 :]
    return words + [option, value]
