"""Profiles: smoke, laptop and full, each lesson setting picked by name; the default follows the hardware."""

import pytest

import facekit
from facekit import profiles


@pytest.mark.parametrize("name", profiles.PROFILE_NAMES)
def test_pick_returns_the_value_of_the_chosen_profile(monkeypatch, name):
    monkeypatch.setenv(profiles.PROFILE_VARIABLE, name.upper())
    assert facekit.profile().pick(smoke=1, laptop=2, full=3) == {"smoke": 1, "laptop": 2, "full": 3}[name]


def test_without_the_variable_a_machine_without_gpu_gets_laptop(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv(profiles.PROFILE_VARIABLE, raising=False)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert facekit.profile().name == "laptop"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert facekit.profile().name == "full"


def test_an_unknown_profile_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_VARIABLE, "gpu")
    with pytest.raises(ValueError, match="FACEKIT_PROFILE='gpu': expected one of smoke, laptop, full"):
        facekit.profile()


def test_every_lesson_setting_names_all_three_profiles():
    """A pick() that leaves out a profile fails only when that profile runs: find it before a student does."""
    import ast
    import json
    from pathlib import Path

    calls = 0
    for notebook in sorted(Path(__file__).resolve().parents[1].glob("notebooks/*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        getattr(node.func.value, "id", None) == "PROFILE" and node.func.attr in ("pick", "steps"):
                    named = {keyword.arg for keyword in node.keywords}
                    assert named == set(profiles.PROFILE_NAMES), f"{notebook.name}: {ast.get_source_segment(source, node)}"
                    calls += 1
    assert calls > 50


def test_every_lesson_opens_with_its_number_and_a_time_paragraph_for_each_profile():
    """The first cell: "# NN · title" numbered as the file, and a **Time.** paragraph that speaks of every profile."""
    import json
    import re
    from pathlib import Path

    notebooks = sorted(Path(__file__).resolve().parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))
    assert len(notebooks) >= 11
    for notebook in notebooks:
        first = "".join(json.loads(notebook.read_text())["cells"][0]["source"])
        assert re.match(rf"# {notebook.name[:2]} · \S", first), f"{notebook.name}: {first[:40]!r}"
        assert "**Time.**" in first, f"{notebook.name}: no **Time.** paragraph in the first cell"
        time = first[first.index("**Time.**"):].lower()
        assert all(name in time for name in profiles.PROFILE_NAMES), f"{notebook.name}: {time[:80]!r}"


def test_a_step_cap_shortens_training_and_nothing_else(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_VARIABLE, "full")
    monkeypatch.setenv(profiles.STEP_CAP_VARIABLE, "12")
    chosen = facekit.profile()
    assert chosen.steps(smoke=60, laptop=2400, full=8000) == 12 and chosen.cap(5) == 5
    assert chosen.pick(smoke=16, laptop=32, full=64) == 64
    monkeypatch.delenv(profiles.STEP_CAP_VARIABLE)
    assert facekit.profile().steps(smoke=60, laptop=2400, full=8000) == 8000
    monkeypatch.setenv(profiles.STEP_CAP_VARIABLE, "-3")
    with pytest.raises(ValueError, match="FACEKIT_STEP_CAP='-3'"):
        facekit.profile()
