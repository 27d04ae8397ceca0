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
    import re
    from pathlib import Path

    for notebook in sorted(Path(__file__).resolve().parents[1].glob("notebooks/*.ipynb")):
        for call in re.findall(r"PROFILE\.pick\(((?:[^()]|\([^()]*\))*)\)", notebook.read_text()):
            named = set(re.findall(r"\b(smoke|laptop|full)=", call))
            assert named == set(profiles.PROFILE_NAMES), f"{notebook.name}: PROFILE.pick({call}) names {named}"
