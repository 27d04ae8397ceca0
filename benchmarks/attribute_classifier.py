"""The kit's attribute classifier on real faces, against the issue's targets: trained on CelebA at 64x64 (crop
face160, 10% of the people held out, seed 0: the same held-out people as the GAN runs of runs/table), then
scored on those held-out people, attribute by attribute, beside the majority-class baseline.

    .venv/bin/python benchmarks/attribute_classifier.py [--data ../shared/celeba] [--out runs/attributes]

Writes into --out the run folder's files (run.json, log.csv, checkpoints/, losses.png) and report.md / report.csv:
accuracy, balanced accuracy and majority baseline per attribute and their mean, whether each target is met
(mean accuracy >= 87%, Male >= 93%, Smiling >= 88%, Eyeglasses >= 95%), and the training steps and seconds.
Restartable: a finished run is reused, a stopped one resumes from its last checkpoint, one trained with other
settings is replaced. Other settings: any `train attributes` option, e.g. --steps 3000 --filters 48.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facekit import attributes, cli, data, registry, training  # noqa: E402
from facekit.files import write_text_atomically  # noqa: E402

TARGETS = (("mean", 0.87), ("Male", 0.93), ("Smiling", 0.88), ("Eyeglasses", 0.95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba", help="CelebA folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "attributes")
    cli._add_config_arguments(parser, attributes.AttributeConfig)
    arguments = parser.parse_args()
    spec = registry.model("attributes")
    config = registry.config_from_arguments(spec, vars(arguments))

    faces = data.prepare(arguments.data, resolution=config.resolution, crop=config.crop, limit=config.limit)
    started = time.perf_counter()
    run = training.train_or_resume(spec, faces, arguments.out, config, show_progress=True)
    print(f"training and checkpoints: {time.perf_counter() - started:.0f} s this session")

    classifier = attributes.load(run.path)
    heldout = attributes.heldout_faces(run.path, faces)
    started = time.perf_counter()
    probabilities = classifier.probabilities(np.asarray(heldout.images))
    scoring_seconds = time.perf_counter() - started
    rows = attributes.report(probabilities, classifier.names, attributes.labels_of(heldout))
    attributes.write_report_csv(rows, run.path / "report.csv")
    log = run.read_log()
    text = markdown(rows, len(faces) - len(heldout), len(heldout), log, run.read_config(), scoring_seconds)
    write_text_atomically(run.path / "report.md", text)
    print(text)
    print(f"wrote {run.path / 'report.md'} and {run.path / 'report.csv'}")


def markdown(rows, training_count: int, heldout_count: int, log, config: dict, scoring_seconds: float) -> str:
    """report.md: the targets, then the per-attribute table (percent) with its mean row."""
    mean = attributes.mean_row(rows)
    by_name = {row["attribute"]: row for row in rows} | {"mean": mean}
    lines = ["# Attribute classifier on held-out CelebA people", "",
             f"Trained on {training_count} faces of {config['source']} ({config['resolution']}x{config['resolution']}, "
             f"crop {config['crop']}, seed {config['seed']}), tested on {heldout_count} faces of the "
             f"{config['heldout']:.0%} of the people held out (never trained on). {log[-1]['step']} steps of "
             f"{config['batch_size']} ({log[-1]['step'] * config['batch_size'] / training_count:.1f} epochs), "
             f"{log[-1]['seconds']:.0f} s of training ({config['precision']}, filters {config['filters']}, "
             f"learning rate {config['learning_rate']} halving every {config['learning_rate_half_life']} steps, "
             f"weight decay {config['weight_decay']}, dropout {config['dropout']}); scoring the held-out faces "
             f"took {scoring_seconds:.1f} s.", "",
             "| target | needed | measured | met |", "|---|---:|---:|---|"]
    for name, needed in TARGETS:
        measured = by_name[name]["accuracy"]
        label = "mean accuracy of the 40 attributes" if name == "mean" else f"{name} accuracy"
        lines.append(f"| {label} | {needed:.0%} | {measured:.1%} | {'yes' if measured >= needed else 'NO'} |")
    lines += ["", "| attribute | predicted rate | accuracy | balanced accuracy | majority baseline |",
              "|---|---:|---:|---:|---:|"]
    for row in [*rows, mean]:
        lines.append(f"| {row['attribute']} | " + " | ".join(f"{row[column]:.1%}" for column in
                                                            attributes.REPORT_COLUMNS[1:]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
