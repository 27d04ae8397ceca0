"""Faces to order, measured: cGAN (projection), ACGAN and InfoGAN trained on real faces at one CPU budget, then
read by the kit's attribute classifier.

Each model trains on ../shared/celeba at 64x64 (crop face160, 10% of the people held out, seed 0: the same people
the classifier is tested on), batch 64, `--filters` wide, for `--steps` steps, into --out/MODEL (restartable: a
finished run is kept, a stopped one resumed). Then, with the classifier of `--classifier` (trained by
benchmarks/attribute_classifier.py):

- agreement.md/.csv: for each conditioning attribute, how often the classifier's reading of a conditional sample
  agrees with the value asked for (label vectors drawn from the training faces' joint distribution), for cgan and
  acgan, with chance (the same samples against shuffled orders), beside the classifier's own accuracy on real
  held-out faces (a reference, not a ceiling) and the majority baseline;
- table.md/.csv: `python -m facekit compare` of the three runs (no face, memorised, SWD, MS-SSIM, real row);
- infogan_codes.md: what each InfoGAN code came to control, read by the classifier.

    .venv/bin/python benchmarks/conditional_table.py [--steps 2400] [--filters 32] [--out runs/conditional]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facekit import attributes, data, evaluate, registry  # noqa: E402
from facekit.models import conditional, infogan  # noqa: E402
from facekit.training import RunFolder  # noqa: E402

MODELS = ("cgan", "acgan", "infogan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba", help="CelebA folder")
    parser.add_argument("--classifier", type=Path, default=ROOT / "runs" / "attributes")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "conditional")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--count", type=int, default=1000, help="samples per model for the tables")
    parser.add_argument("--train-only", action="store_true", help="train the runs, skip the tables")
    arguments = parser.parse_args()
    if not arguments.data.exists():
        sys.exit(f"{arguments.data}: no CelebA here; this benchmark needs real faces")
    faces = data.prepare(arguments.data, resolution=64)
    for name in MODELS:
        train(name, faces, arguments)
    if arguments.train_only:
        return
    classifier = attributes.load(arguments.classifier)
    write_agreement(faces, classifier, arguments)
    write_codes(classifier, arguments)
    rows = evaluate.compare([arguments.out / name for name in MODELS], arguments.data, count=arguments.count)
    table = evaluate.markdown_table(rows)
    evaluate.write_comparison(rows, table, arguments.out / "table.md")
    print(table)


def train(name: str, faces, arguments) -> None:
    """Train (or resume, or keep) --out/name to --steps; prints the steps and training seconds it has."""
    spec = registry.model(name)
    run = RunFolder(arguments.out / name)
    config = spec.config(resolution=64, filters=arguments.filters, steps=arguments.steps, heldout=0.1, seed=0,
                         snapshot_every=100)
    done = len(run.read_log())
    if done < arguments.steps:
        started = time.time()
        spec.train(faces, run.path, config, resume=run.config_path.exists())
        print(f"{name}: trained to step {arguments.steps} in {time.time() - started:.0f} s of wall clock")
    log = run.read_log()
    print(f"{name}: {log[-1]['step']} steps, {log[-1]['seconds']:.0f} s of training")


def write_agreement(faces, classifier, arguments) -> None:
    """agreement.md/.csv: per attribute, the classifier's agreement with the request for cgan and acgan, beside
    its accuracy on real held-out faces."""
    heldout = attributes.heldout_faces(arguments.classifier, faces)
    real = {row["attribute"]: row for row in attributes.report(classifier.probabilities(heldout.images),
                                                               classifier.names, heldout.attributes > 0)}
    columns = {}
    for name in ("cgan", "acgan"):
        model = registry.model(name).load(arguments.out / name)
        columns[name] = {row["attribute"]: row for row in conditional.agreement(model, classifier,
                                                                               arguments.count, seed=0)}
    lines = ["| attribute | asked for (rate) | classifier on real held-out faces | majority baseline | "
             + " | ".join(f"{name} agreement (chance)" for name in columns) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(columns)]
    csv = ["attribute,requested_rate,classifier_accuracy,majority_baseline,"
           + ",".join(f"{name}_agreement,{name}_chance" for name in columns)]
    for attribute in columns["cgan"]:
        cells = [columns[name][attribute] for name in columns]
        requested = columns["cgan"][attribute]["requested_rate"]
        lines.append(f"| {attribute} | {requested:.3f} | {real[attribute]['accuracy']:.3f} | "
                     f"{real[attribute]['majority_baseline']:.3f} | "
                     + " | ".join(f"{cell['agreement']:.3f} ({cell['chance']:.3f})" for cell in cells) + " |")
        csv.append(f"{attribute},{requested:.4f},{real[attribute]['accuracy']:.4f},"
                   f"{real[attribute]['majority_baseline']:.4f},"
                   + ",".join(f"{cell['agreement']:.4f},{cell['chance']:.4f}" for cell in cells))
    means = [[sum(columns[name][a][key] for a in columns[name]) / len(columns[name]) for key in ("agreement", "chance")]
             for name in columns]
    lines.append("| **mean** | | | | " + " | ".join(f"**{agree:.3f}** ({chance:.3f})" for agree, chance in means)
                 + " |")
    (arguments.out / "agreement.md").write_text("\n".join(lines) + "\n")
    (arguments.out / "agreement.csv").write_text("\n".join(csv) + "\n")
    print("\n".join(lines))


def write_codes(classifier, arguments) -> None:
    """infogan_codes.md: for each code, the attributes whose predicted rate it moves most."""
    model = registry.model("infogan").load(arguments.out / "infogan")
    effects = infogan.code_effects(model, classifier, count=arguments.count // 5, seed=0)
    text = infogan.format_code_effects(effects)
    (arguments.out / "infogan_codes.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
