"""The one list of models: `python -m facekit train MODEL`, `sample`, `evaluate` and `compare` read it.

MODELS names each model, its module and its one-line summary, in teaching order, so that the command line can list
them without importing TensorFlow. The face models live in `facekit/models/`, one module each; the attribute
classifier, the kit's measuring stick, stays `facekit.attributes`. Each model module defines
`MODEL = ModelSpec(...)`: its name, its config class (every setting and default, which the command line turns into
options and run.json records), how to train it and how to sample a run of it; a module is imported only when its
model is used. Run folders record the model's name, not its module.
"""

import dataclasses
import importlib
from typing import Callable

MODELS = {  # name: (module, summary), in teaching order
    "pca": ("facekit.models.pca", "eigenfaces by randomized PCA; a 'step' is the number of components"),
    "vae": ("facekit.models.vae", "convolutional VAE trained on the negative ELBO"),
    "dcgan": ("facekit.models.dcgan", "DCGAN: the non-saturating loss, one discriminator update per step"),
    "lsgan": ("facekit.models.lsgan", "LSGAN: DCGAN's networks with the least-squares loss"),
    "wgan-gp": ("facekit.models.wgan_gp", "WGAN-GP: a Wasserstein critic with a gradient penalty, 5 critic steps "
                                          "per step"),
    "hinge": ("facekit.models.hinge", "SNGAN: the hinge loss with a spectrally normalised discriminator"),
    "began": ("facekit.models.began", "BEGAN: an autoencoder discriminator balanced by k_t"),
    "cgan": ("facekit.models.cgan", "cGAN: attributes by concatenation in G and by projection in an SN "
                                    "discriminator (hinge loss)"),
    "acgan": ("facekit.models.acgan", "ACGAN: attributes by concatenation in G and an auxiliary classifier head "
                                      "in D"),
    "infogan": ("facekit.models.infogan", "InfoGAN: categorical and continuous codes G must make recoverable by "
                                          "a Q head"),
    "progan": ("facekit.models.progan", "Progressive GAN: networks grown from 4x4 by fading in a block at each "
                                        "doubling (WGAN-GP with drift)"),
    "pix2pix": ("facekit.models.pix2pix", "pix2pix: sketch -> face by a U-Net with a PatchGAN on (sketch, face) "
                                          "pairs, adversarial + 100 * L1"),
    "superres": ("facekit.models.superres", "x4 super-resolution: a residual network trained with L1, or as SRGAN "
                                            "(adversarial + content loss)"),
    "attributes": ("facekit.attributes", "attribute classifier: a small CNN for CelebA's 40 attributes"),
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A trainable model (its summary is in MODELS). train(faces, run_dir, config, resume=False, show_progress=True) -> RunFolder;
    sample(run_dir, count, seed=0, step=None) -> uint8 [count, R, R, 3] (step: a saved checkpoint, default the
    latest), or None for a model that draws no faces (the attribute classifier); load(run_dir): the trained
    model."""

    name: str
    config: type
    train: Callable
    sample: Callable | None
    load: Callable | None = None


def models() -> dict[str, ModelSpec]:
    """Every model, by name, in teaching order (imports every model module, and so TensorFlow)."""
    return {name: model(name) for name in MODELS}


def model(name: str) -> ModelSpec:
    """The model called `name`, importing its module only; a ValueError names the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return importlib.import_module(MODELS[name][0]).MODEL


def summary(name: str) -> str:
    """The one-line summary of the model called `name`, without importing it."""
    return MODELS[name][1]


def model_of_run(run_dir) -> tuple[ModelSpec, object]:
    """The model of a run folder and its saved config, from run.json."""
    from facekit.training import RunFolder

    run = RunFolder(run_dir)
    if not run.config_path.exists():
        raise FileNotFoundError(f"{run.config_path}: not a run folder (no run.json)")
    saved = run.read_config()
    if saved.get("model") not in MODELS:
        raise ValueError(f"{run.config_path}: unknown model {saved.get('model')!r}; known: {', '.join(MODELS)}")
    spec = model(saved["model"])
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
