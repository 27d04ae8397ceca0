"""Settings that two lessons (or a lesson and a benchmark) must share, read from the notebooks themselves."""

import ast
import importlib.util
import json
from pathlib import Path

from facekit.profiles import Profile

ROOT = Path(__file__).resolve().parents[1]


def assignment(notebook: str, name: str) -> str:
    """The source of the one top-level assignment to `name` in the notebook's code cells, normalised by ast."""
    found = []
    for cell in json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]:
        if cell["cell_type"] == "code":
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == name for target in node.targets):
                    found.append(ast.dump(node.value))
    assert len(found) == 1, f"{notebook}: {len(found)} assignments of {name}"
    return found[0]


def test_lesson_08_trains_lesson_07s_classifier_with_lesson_07s_settings():
    # otherwise each lesson would replace the other's classifier in runs/07_conditional/attributes
    for name in ("classifier_config", "RESOLUTION"):
        assert assignment("07_conditional.ipynb", name) == assignment("08_latent_space.ipynb", name), name


def test_the_acgan_benchmark_reads_lesson_07s_settings_for_each_profile():
    spec = importlib.util.spec_from_file_location("acgan_fake_auxiliary", ROOT / "benchmarks" / "acgan_fake_auxiliary.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    for profile, latent_dim, steps in (("smoke", 32, 400), ("laptop", 62, 2000), ("full", 62, 30_000)):
        settings = benchmark.lesson_settings(Profile(profile))
        config = settings["lesson_config"]("acgan")
        assert (settings["LATENT_DIM"], config.latent_dim, config.steps) == (latent_dim, latent_dim, steps)
        assert config.profile == profile and settings["classifier_config"].profile == profile
