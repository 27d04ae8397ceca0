"""The set-up the README promises: `make lab` finds JupyterLab, and pyproject.toml declares what requirements.txt pins."""

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pinned() -> dict:
    """requirements.txt as {normalised package name: exact version}."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"requirements.txt: {line!r} is not an exact pin"
            pins[normalised(requirement.name)] = specifier.version
    return pins


def declared() -> dict:
    """pyproject.toml's dependencies and optional extras as {normalised package name: Requirement}."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [line for extra in project["optional-dependencies"].values() for line in extra]
    return {normalised(Requirement(line).name): Requirement(line) for line in lines}


def installed_modules() -> dict:
    """{top-level module: [distribution names]} from the installed distributions' file lists (top_level.txt,
    which packages_distributions() reads, is missing or wrong in some wheels, e.g. dlib-bin's)."""
    modules = {}
    for distribution in importlib.metadata.distributions():
        for file in distribution.files or []:
            if len(file.parts) > 1 and file.parts[1] == "__init__.py" or len(file.parts) == 1 and file.suffix == ".py":
                modules.setdefault(file.parts[0].removesuffix(".py"), []).append(distribution.metadata["Name"])
    return modules


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_jupyter_lab_runs_from_the_environment():
    """`make lab` runs $(BIN)/jupyter lab: the environment's bin folder must hold a working JupyterLab."""
    jupyter = Path(sys.executable).parent / "jupyter"
    assert jupyter.is_file(), f"{jupyter} not found: JupyterLab is not installed in this environment"
    finished = subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", finished.stdout.strip()), finished.stdout
    assert finished.stdout.strip() == pinned()["jupyterlab"]


def test_pyproject_declares_the_pinned_packages_as_ranges_the_pins_satisfy():
    pins, ranges = pinned(), declared()
    assert sorted(ranges) == sorted(pins)
    for name, requirement in ranges.items():
        assert not any(specifier.operator in ("==", "===") for specifier in requirement.specifier), \
            f"pyproject.toml pins {requirement}; it should give a range"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"


def test_every_package_facekit_imports_is_a_dependency():
    """`pip install` of the repository must bring every package the library imports (IPython aside: only
    progress.show_image uses it, inside a notebook, which has it)."""
    modules = set()
    for path in (ROOT / "facekit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"facekit", "IPython"}
    distributions = installed_modules()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {normalised(Requirement(line).name) for line in project["dependencies"]}
    for module in sorted(modules):
        names = {normalised(name) for name in distributions.get(module, [module])}
        assert names & required, f"facekit imports {module} (from {sorted(names)}), not in pyproject's dependencies"
    test_tools = {normalised(Requirement(line).name) for line in project["optional-dependencies"]["test"]}
    assert {"pytest", "nbval"} <= test_tools and not test_tools & required
    assert project["requires-python"] == ">=3.11"
