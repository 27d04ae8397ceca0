"""ACGAN with and without the auxiliary classifier trained on fakes, at lesson 07's budget, side by side.

Lesson 07 trains ACGAN with facekit's default w = 0 (the auxiliary classifier C learns from real faces only) and
says that the paper's w = 1 (`--fake-auxiliary-weight 1`: C also learns from the fakes) is the other choice. The
bias Shu, Bui and Ermon (2017) describe comes from the generator's own auxiliary term, which both settings keep,
so w = 0 does not remove it; this script measures what w changes. It trains, with lesson 07's settings for the
profile (read from notebooks/07_conditional.ipynb, so that they cannot drift apart) and its data source:

- lesson 07's attribute classifier, into RUNS/07_conditional/attributes (reused when lesson 07 trained it);
- lesson 07's cgan and acgan (w = 0), into RUNS/07_conditional/cgan and /acgan (reused likewise);
- the same acgan with w = 1, into RUNS/07_conditional/acgan_fake_auxiliary;

and prints, for each model, the figures lesson 07 uses: per conditioning attribute the agreement of the
classifier's reading with the order and its chance (the orders shuffled), the balanced agreement (the mean of the
agreement on faces asked to show the attribute and on those asked not to; 0.5 for a generator that ignores its
orders) beside the classifier's accuracy and balanced accuracy on real held-out faces (the reference); the means of
the ten; C's cross-entropy on real faces and on fakes over the last tenth of training; and the diversity the bias
costs, mean pairwise MS-SSIM (higher: more alike) over 1,000 pairs of samples, over all orders and within the
commonest order, beside real held-out faces (all, and those with that label vector).

    FACEKIT_PROFILE=laptop .venv/bin/python benchmarks/acgan_fake_auxiliary.py

RUNS is facekit.training.RUNS_DIR ($FACEKIT_RUNS, else runs/). Restartable: finished runs are reused, a stopped one
continues from its checkpoint.
"""

import ast
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import facekit  # noqa: E402
from facekit import attributes, data, metrics, registry, training  # noqa: E402
from facekit.models import conditional  # noqa: E402

LESSON = ROOT / "notebooks" / "07_conditional.ipynb"
SETTINGS = ("SEED", "RESOLUTION", "classifier_config", "HELDOUT", "FILTERS", "BATCH_SIZE", "LATENT_DIM", "STEPS",
            "SNAPSHOTS", "lesson_config", "COUNT")
PAIRS = 1000


def main() -> None:
    profile = facekit.profile()
    lesson = lesson_settings(profile)
    facekit.seed_everything(lesson["SEED"])
    runs = training.RUNS_DIR / "07_conditional"
    faces = data.prepare(data.default_source(), resolution=lesson["RESOLUTION"])
    print(f"profile {profile.name}: {len(faces)} faces from {faces.source}; lesson 07's settings: "
          + ", ".join(f"{name} {lesson[name]}" for name in SETTINGS if name.isupper()))
    started = time.time()
    training.train_or_resume(attributes.MODEL, faces, runs / "attributes", lesson["classifier_config"])
    classifier = attributes.load(runs / "attributes")
    heldout = attributes.heldout_faces(runs / "attributes", faces)
    real = {row["attribute"]: row for row in attributes.report(classifier.probabilities(heldout.images),
                                                               classifier.names, heldout.attributes)}
    settings = {"cgan": ("cgan", {}), "acgan (w = 0)": ("acgan", {}),
                "acgan (w = 1)": ("acgan_fake_auxiliary", {"fake_auxiliary_weight": 1.0})}
    measured = {}
    for label, (folder, changes) in settings.items():
        name = label.split()[0]
        config = dataclasses.replace(lesson["lesson_config"](name), **changes)
        run = training.train_or_resume(registry.model(name), faces, runs / folder, config)
        measured[label] = measure(run, classifier, lesson["COUNT"], lesson["SEED"])
    print(f"trained and measured in {time.time() - started:.0f} s of wall clock\n")
    print(agreement_table(measured, real))
    print()
    print(other_figures(measured, heldout, lesson["SEED"]))


def lesson_settings(profile) -> dict:
    """The values of SETTINGS that lesson 07's code cells assign, for `profile`: those statements of the notebook,
    run in order with PROFILE = profile."""
    namespace = {"PROFILE": profile, "attributes": attributes, "registry": registry}
    for cell in json.loads(LESSON.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.parse("".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))).body:
            names = ([target.id for target in node.targets if isinstance(target, ast.Name)]
                     if isinstance(node, ast.Assign) else [node.name] if isinstance(node, ast.FunctionDef) else [])
            if any(name in SETTINGS for name in names):
                exec(compile(ast.Module([node], []), str(LESSON), "exec"), namespace)
    missing = [name for name in SETTINGS if name not in namespace]
    if missing:
        sys.exit(f"{LESSON}: no assignment of {', '.join(missing)} found; this script reads the lesson's settings")
    return {name: namespace[name] for name in SETTINGS}


def measure(run, classifier, count: int, seed: int) -> dict:
    """Agreement rows, C's cross-entropies over the last tenth of the log, and the samples' diversity."""
    model = registry.model(run.read_config()["model"]).load(run.path)
    rows = {row["attribute"]: row for row in conditional.agreement(model, classifier, count, seed=seed)}
    log = run.read_log()
    tail = log[-max(1, len(log) // 10):]
    auxiliary = {key: float(np.mean([row[key] for row in tail])) if key in tail[0] else None
                 for key in ("auxiliary_real", "auxiliary_fake")}
    inputs = model.sampling_inputs(count, seed)
    samples = data.to_uint8(model.generate(inputs))
    commonest = model.label_vectors[np.argmax(model.label_frequencies)]
    same_order = {**inputs, "labels": np.repeat(commonest[None].astype(np.float32), count, axis=0)}
    alike = data.to_uint8(model.generate(same_order))
    return {"rows": rows, "auxiliary": auxiliary, "commonest": commonest, "steps": len(log),
            "seconds": log[-1]["seconds"], "diversity": metrics.mean_pairwise_ms_ssim(samples, PAIRS, seed),
            "diversity_one_order": metrics.mean_pairwise_ms_ssim(alike, PAIRS, seed)}


def agreement_table(measured: dict, real: dict) -> str:
    """Markdown: per attribute, the reference (classifier on real held-out faces) and each model's agreement."""
    first = next(iter(measured.values()))["rows"]
    lines = ["| attribute | asked for | reference: accuracy (balanced) on real held-out | "
             + " | ".join(f"{label}: agreement (chance), balanced (chance)" for label in measured) + " |",
             "|---|---:|---:|" + "---:|" * len(measured)]
    for attribute in first:
        cells = [cell(measured[label]["rows"][attribute]) for label in measured]
        lines.append(f"| {attribute} | {first[attribute]['requested_rate']:.2f} | "
                     f"{real[attribute]['accuracy']:.2f} ({real[attribute]['balanced_accuracy']:.2f}) | "
                     + " | ".join(cells) + " |")
    means = []
    for label in measured:
        rows = list(measured[label]["rows"].values())
        means.append(cell({key: float(np.nanmean([row[key] for row in rows])) for key in
                           ("agreement", "chance", "balanced_agreement", "balanced_chance")}))
    reference = [real[attribute] for attribute in first]
    lines.append(f"| mean of the {len(first)} | | {np.mean([row['accuracy'] for row in reference]):.2f} "
                 f"({np.nanmean([row['balanced_accuracy'] for row in reference]):.2f}) | " + " | ".join(means) + " |")
    return "\n".join(lines)


def cell(row: dict) -> str:
    return (f"{row['agreement']:.2f} ({row['chance']:.2f}), {row['balanced_agreement']:.2f} "
            f"({row['balanced_chance']:.2f})")


def other_figures(measured: dict, heldout, seed: int) -> str:
    """C's cross-entropies and the diversity of each model's samples, beside real held-out faces'."""
    commonest = next(iter(measured.values()))["commonest"]
    labels = conditional.labels_of(heldout, next(iter(measured.values()))["rows"].keys()) > 0.5
    with_commonest = heldout.images[np.all(labels == (commonest > 0.5), axis=1)]
    lines = ["| | steps (training s) | C on real faces | C on fakes (G's term) | MS-SSIM, all orders | "
             "MS-SSIM, the commonest order |", "|---|---:|---:|---:|---:|---:|"]
    for label, figures in measured.items():
        auxiliary = figures["auxiliary"]
        lines.append(f"| {label} | {figures['steps']} ({figures['seconds']:.0f}) | "
                     + " | ".join("–" if auxiliary[key] is None else f"{auxiliary[key]:.3f}"
                                  for key in ("auxiliary_real", "auxiliary_fake"))
                     + f" | {figures['diversity']:.3f} | {figures['diversity_one_order']:.3f} |")
    one_order = (f"{metrics.mean_pairwise_ms_ssim(with_commonest, PAIRS, seed):.3f} ({len(with_commonest)} faces)"
                 if len(with_commonest) >= 2 else "–")
    lines.append(f"| real held-out faces | | | | {metrics.mean_pairwise_ms_ssim(heldout.images, PAIRS, seed):.3f} | "
                 f"{one_order} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
