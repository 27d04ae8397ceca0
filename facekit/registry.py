"""The one list of models: `python -m facekit train MODEL`, `sample`, `evaluate` and `compare` read it.

Each model module defines `MODEL = ModelSpec(...)`: its name, its config class (every setting and default, which
the command line turns into options and run.json records), how to train it and how to sample a run of it.
"""

import dataclasses
import importlib
from typing import Callable

MODEL_MODULES = ("facekit.pca", "facekit.vae", "facekit.dcgan", "facekit.lsgan", "facekit.wgan_gp",
                 "facekit.hinge", "facekit.began", "facekit.cgan", "facekit.acgan", "facekit.infogan",
                 "facekit.attributes")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A trainable model. train(faces, run_dir, config, resume=False, show_progress=True) -> RunFolder;
    sample(run_dir, count, seed=0, step=None) -> uint8 [count, R, R, 3] (step: a saved checkpoint, default the
    latest), or None for a model that draws no faces (the attribute classifier); load(run_dir): the trained
    model."""

    name: str
    summary: str
    config: type
    train: Callable
    sample: Callable | None
    load: Callable | None = None


def models() -> dict[str, ModelSpec]:
    """Every model, by name, in teaching order."""
    specs = [importlib.import_module(module).MODEL for module in MODEL_MODULES]
    return {spec.name: spec for spec in specs}


def model(name: str) -> ModelSpec:
    """The model called `name`; a ValueError names the known ones."""
    known = models()
    if name not in known:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(known)}")
    return known[name]


def model_of_run(run_dir) -> tuple[ModelSpec, object]:
    """The model of a run folder and its saved config, from run.json."""
    from facekit.training import RunFolder

    run = RunFolder(run_dir)
    if not run.config_path.exists():
        raise FileNotFoundError(f"{run.config_path}: not a run folder (no run.json)")
    saved = run.read_config()
    spec = models().get(saved.get("model"))
    if spec is None:
        raise ValueError(f"{run.config_path}: unknown model {saved.get('model')!r}; known: {', '.join(models())}")
    fields = {field.name for field in dataclasses.fields(spec.config)}
    unknown = sorted(set(saved) - fields)
    if unknown:
        raise ValueError(f"{run.config_path}: settings {', '.join(unknown)} are not {spec.name} settings")
    return spec, spec.config(**saved)


def sampler(run_dir) -> Callable:
    """The `sample` of a run folder's model; a ValueError when the model draws no faces."""
    spec, _ = model_of_run(run_dir)
    if spec.sample is None:
        raise ValueError(f"{run_dir} is an attribute classifier: it draws no faces")
    return spec.sample


def config_from_arguments(spec: ModelSpec, values: dict):
    """spec.config from command-line values: the user's settings (fields with help text) that are not None."""
    settable = {field.name for field in dataclasses.fields(spec.config) if "help" in field.metadata}
    return spec.config(**{name: value for name, value in values.items() if name in settable and value is not None})
