"""The latent-space edit table of issue 8 on real faces: attribute directions in the latent space of a DCGAN trained
on CelebA, found from classifier-scored samples, and what moving along them does, measured by the attribute
classifier and by dlib's face embeddings.

The generator is the run runs/table/dcgan-3600 (benchmarks/gan_family_table.py --dcgan-steps 3600): the kit's
DCGAN, 64x64, 64 filters, batch 64, mixed bfloat16, 3,600 steps (about 50 minutes of training on this project's
2-core AMD EPYC) on the 15,931 faces of ../shared/celeba (crop face160) less a tenth of the people (held out, seed
0), sampled by its moving average (EMA). The judge is the attribute classifier runs/attributes
(benchmarks/attribute_classifier.py: 2,000 steps of 64 on the same faces and the same held-out split).

N latents are drawn from N(0, I) (seeded) and their faces scored by the classifier. The directions of Eyeglasses,
Smiling, Male and Young (the mean difference of the latents judged with and without, and the unit normal of a
logistic-regression boundary, as InterFaceGAN) are fitted on the first half of the latents, and every edit is
measured on the other half, which the directions never saw. "Judged with" is a probability above 0.5, except that
a side holding less than a tenth of the fitting half is widened to the tenth the classifier rates likeliest to be
on it (as InterFaceGAN ranks samples by score): this generator draws glasses on too few faces for a threshold.
Each edit moves those latents by a fixed amount along its unit direction (--amount latent units; aging is against
the Young direction), and for Eyeglasses and Young also along the direction with Male projected out
(InterFaceGAN's conditional edit, the entanglement fix). Per edit:
the target flip rate (of the faces on the other side of 0.5 before), the target's mean change, the other
attributes' mean absolute change, the largest other change, the change of Male and Young, and the same-person rate
(face embeddings closer than 0.6, over the pairs in which dlib finds a face before and after) with the pair count.
A random direction moved by the same amount is the baseline. Also: the cosines between the directions, the 0.6
rule checked on real faces (pairs of one person and of different people), and Radford et al.'s arithmetic (man
with glasses - man without + woman without, means of groups of 3 and of 1, repeated on random groups).

    .venv/bin/python benchmarks/latent_edits_table.py [--run runs/table/dcgan-3600] [--classifier runs/attributes]

Writes into --out (runs/latent_edits): table.md and table.csv, edits.png (edit grids) and arithmetic.png, and
prints the table. Restartable: the face embeddings of each edit, the slow part, are kept in --out/cache/ under a
key of every setting, so a stopped run continues where it stopped and a finished one only rewrites the table.
"""

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from facekit import attributes, data, faces, latent, progress, registry  # noqa: E402
from facekit.files import write_atomically, write_text_atomically  # noqa: E402
from facekit.training import RunFolder  # noqa: E402

EDITED = ("Eyeglasses", "Smiling", "Male", "Young")
KINDS = ("mean difference", "linear")
CSV_COLUMNS = ("edit", "direction", "target", "amount", "flip_candidates", "target_flip_rate", "target_mean_change",
               "other_mean_abs_change", "largest_other", "largest_other_change", "male_change", "young_change",
               "same_person_rate", "detected_pairs")
GRID_AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
CALIBRATION_PEOPLE = 100  # real people, 3 photos each, to check the 0.6 rule on
SMALLEST_SIDE = 0.1  # fraction of the fitting half each side of an attribute (or arithmetic group) has at least


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "table" / "dcgan-3600", help="GAN run folder")
    parser.add_argument("--classifier", type=Path, default=ROOT / "runs" / "attributes",
                        help="attribute classifier run folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "latent_edits")
    parser.add_argument("--samples", type=int, default=500, help="latents drawn: half fit, half measure")
    parser.add_argument("--amount", type=float, default=3.0, help="latent units every edit moves")
    parser.add_argument("--trials", type=int, default=200, help="random groups for the arithmetic")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    started = time.perf_counter()
    for folder, what in ((arguments.run, "GAN run"), (arguments.classifier, "attribute classifier")):
        if not (folder / "run.json").exists():
            raise SystemExit(f"{folder}: no {what} there (no run.json)")
    classifier_log = RunFolder(arguments.classifier).read_log()
    classifier_config = RunFolder(arguments.classifier).read_config()
    if not classifier_log or classifier_log[-1]["step"] < classifier_config["steps"] or not \
            (arguments.classifier / "report.md").exists():
        done = classifier_log[-1]["step"] if classifier_log else 0
        raise SystemExit(f"{arguments.classifier}: the classifier has not finished training ({done} of "
                         f"{classifier_config['steps']} steps, or no report.md yet)")

    model = registry.model_of_run(arguments.run)[0].load(arguments.run)
    classifier = attributes.load(arguments.classifier)
    names = list(classifier.names)
    cache = Cache(arguments)
    say(f"{arguments.run}: {RunFolder(arguments.run).read_log()[-1]['step']} steps; cache {cache.folder}")

    def draw(latents):
        return data.to_uint8(model.generate(latents))

    def embeddings_of(key, images):
        digest = hashlib.sha256(images.tobytes()).hexdigest()[:12]  # other images (directions), another entry
        return cache.get(f"embeddings_{key}_{digest}", lambda: faces.face_embeddings(images))

    latents = model.sampling_inputs(arguments.samples, seed=arguments.seed)["noise"]
    probabilities = classifier.probabilities(draw(latents))
    half = arguments.samples // 2
    fitting, measuring = slice(0, half), slice(half, arguments.samples)
    has = {name: probabilities[:, names.index(name)] > 0.5 for name in EDITED}
    say("judged with each attribute, all samples: " + ", ".join(f"{name} {has[name].mean():.1%}" for name in EDITED))
    labels = {name: latent.fitting_labels(probabilities[fitting, names.index(name)], SMALLEST_SIDE)
              for name in EDITED}
    directions = {(name, kind): fit(kind, latents[fitting], labels[name]) for name in EDITED for kind in KINDS}
    for kind in KINDS:
        male = directions["Male", kind]
        directions["Eyeglasses without Male", kind] = latent.remove_direction(directions["Eyeglasses", kind], male)
        directions["Young without Male", kind] = latent.remove_direction(directions["Young", kind], male)

    before = probabilities[measuring]
    before_images = draw(latents[measuring])
    before_embeddings = embeddings_of("before", before_images)
    plan = [("random direction", "random", "Eyeglasses", True,
             np.random.default_rng(arguments.seed + 1).standard_normal(model.latent_dim))]
    for kind in KINDS:
        plan += [(f"{name} +{arguments.amount:g}", kind, name, True, directions[name, kind]) for name in EDITED]
        plan += [(f"aging (-Young) {arguments.amount:g}", kind, "Young", False, directions["Young", kind]),
                 (f"Eyeglasses without Male +{arguments.amount:g}", kind, "Eyeglasses", True,
                  directions["Eyeglasses without Male", kind]),
                 (f"Young without Male +{arguments.amount:g}", kind, "Young", True,
                  directions["Young without Male", kind]),
                 (f"aging without Male {arguments.amount:g}", kind, "Young", False,
                  directions["Young without Male", kind])]
    rows = []
    for label, kind, target, increase, direction in plan:
        amount = arguments.amount if increase else -arguments.amount
        images = draw(latent.edit(latents[measuring], direction, [amount])[:, 0])
        after_embeddings = embeddings_of(slug(f"{label} {kind}"), images)
        effects = latent.edit_effects(before, classifier.probabilities(images), names, target, before_embeddings,
                                      after_embeddings, increase=increase)
        rows.append(row_of(label, kind, target, amount, effects))
        say(f"{label} ({kind}): flipped {effects['target_flip_rate']:.1%}, same person "
            f"{effects['same_person_rate']:.1%} of {effects['detected_pairs']}")

    cosines = {f"cos({a}, {b}), {kind}": latent.cosine(directions[a, kind], directions[b, kind])
               for kind in KINDS for a, b in (("Eyeglasses", "Male"), ("Young", "Male"), ("Eyeglasses", "Young"),
                                              ("Smiling", "Male"))}
    cosines |= {f"cos(mean difference, linear), {name}": latent.cosine(directions[name, KINDS[0]],
                                                                        directions[name, KINDS[1]])
                for name in EDITED}
    calibration = calibrate(classifier_config, arguments.seed, cache)
    arithmetic = arithmetic_rates(latents[fitting], probabilities[fitting], names, draw, classifier, arguments)
    detected_before = int(faces.has_face(before_embeddings).sum())

    write_pictures(arguments.out, model, draw, latents[measuring], {name: has[name][measuring] for name in EDITED},
                   directions, arithmetic.pop("exemplars"))
    fitted_on = {name: (int(labels[name].sum()), int(has[name][fitting].sum())) for name in EDITED}
    text = markdown(rows, cosines, calibration, arithmetic, detected_before, fitted_on, arguments, classifier_config,
                    classifier_log, time.perf_counter() - started, cache.seconds_used())
    write_text_atomically(arguments.out / "table.md", text)
    write_csv(rows, arguments.out / "table.csv")
    print(text)
    say(f"wrote {arguments.out / 'table.md'}, table.csv, edits.png and arithmetic.png")


class Cache:
    """Arrays kept in out/cache/<key of every setting>/name.npy, so that a restarted run skips what is done."""

    def __init__(self, arguments):
        settings = {"run": str(RunFolder(arguments.run).checkpoint()), "classifier":
                    str(RunFolder(arguments.classifier).checkpoint()), "samples": arguments.samples,
                    "amount": arguments.amount, "seed": arguments.seed}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = arguments.out / "cache" / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        self.used = set()
        write_text_atomically(self.folder / "settings.json", json.dumps(settings, indent=2) + "\n")

    def get(self, name: str, compute):
        """The array cached as `name`, or compute() written there first (its seconds kept in seconds.json)."""
        path = self.folder / f"{name}.npy"
        if not path.exists():
            started = time.perf_counter()
            value = np.asarray(compute())
            seconds = self.seconds() | {name: round(time.perf_counter() - started, 1)}
            write_atomically(path, lambda temporary: np.save(temporary, value))
            write_text_atomically(self.folder / "seconds.json", json.dumps(seconds, indent=2, sort_keys=True) + "\n")
        self.used.add(name)
        return np.load(path)

    def seconds(self) -> dict:
        """{name: seconds it took to compute} of every array cached so far."""
        path = self.folder / "seconds.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def seconds_used(self) -> float:
        """The computing seconds of the arrays this run used, whether it computed them or found them cached."""
        return sum(seconds for name, seconds in self.seconds().items() if name in self.used)


def fit(kind: str, latents, has) -> np.ndarray:
    """The unit direction of one attribute: "mean difference" or "linear" (logistic-regression normal)."""
    if kind == "mean difference":
        return latent.mean_difference_direction(latents, has)
    return latent.linear_direction(latents, has)


def row_of(label, kind, target, amount, effects) -> dict:
    """One table row (CSV_COLUMNS) from latent.edit_effects."""
    other, change = effects["largest_other"]
    changes = effects["other_mean_changes"]
    return {"edit": label, "direction": kind, "target": target, "amount": amount,
            "flip_candidates": effects["flip_candidates"], "target_flip_rate": effects["target_flip_rate"],
            "target_mean_change": effects["target_mean_change"],
            "other_mean_abs_change": effects["other_mean_abs_change"], "largest_other": other,
            "largest_other_change": change, "male_change": changes.get("Male", np.nan),
            "young_change": changes.get("Young", np.nan), "same_person_rate": effects["same_person_rate"],
            "detected_pairs": effects["detected_pairs"]}


def calibrate(classifier_config: dict, seed: int, cache) -> dict:
    """The 0.6 rule on real faces of the classifier's source: within-0.6 rates of pairs of one person and of
    different people (3 photos each of CALIBRATION_PEOPLE people with 3 or more)."""
    real = data.prepare(classifier_config["source"], resolution=64, crop=classifier_config["crop"], progress=False)
    people, counts = np.unique(real.identities, return_counts=True)
    chosen_people = np.random.default_rng(seed).choice(people[counts >= 3], CALIBRATION_PEOPLE, replace=False)
    chosen = np.concatenate([np.flatnonzero(real.identities == person)[:3] for person in chosen_people])
    embeddings = cache.get("embeddings_calibration", lambda: faces.face_embeddings(np.asarray(real.images[chosen])))
    found = faces.has_face(embeddings)
    person = real.identities[chosen][found]
    distances = np.linalg.norm(embeddings[found][:, None] - embeddings[found][None], axis=2)
    same = (person[:, None] == person[None]) & ~np.eye(len(person), dtype=bool)
    different = person[:, None] != person[None]
    return {"faces": len(chosen), "detected": int(found.sum()),
            "same_rate": float((distances[same] < faces.MATCH_TOLERANCE).mean()), "same_pairs": int(same.sum() // 2),
            "different_rate": float((distances[different] < faces.MATCH_TOLERANCE).mean()),
            "different_pairs": int(different.sum() // 2)}


def arithmetic_rates(latents, probabilities, names, draw, classifier, arguments) -> dict:
    """Radford et al.'s man with glasses - man without + woman without on the fitting half: {"rates": the
    (Eyeglasses, Male) rates of the results (random groups of 3 and of 1) and of the groups' means, "pool_sizes",
    "exemplars": the 3 surest latents of each group}."""
    male, glasses = probabilities[:, names.index("Male")], probabilities[:, names.index("Eyeglasses")]
    sureness = (male * glasses, male * (1 - glasses), (1 - male) * (1 - glasses))  # of being in each group
    pools = [np.flatnonzero(latent.fitting_labels(score, SMALLEST_SIDE)) for score in sureness]

    def rates(points):
        verdicts = classifier.probabilities(draw(np.stack(points))) > 0.5
        return (float(verdicts[:, names.index("Eyeglasses")].mean()), float(verdicts[:, names.index("Male")].mean()))

    found = {}
    for size in (1, 3):
        rng = np.random.default_rng(arguments.seed)
        trials = [[latents[rng.choice(pool, size, replace=False)] for pool in pools] for _ in range(arguments.trials)]
        found[f"result, groups of {size}"] = rates([latent.attribute_arithmetic(*groups) for groups in trials])
        if size == 3:
            found["man with glasses, means of 3"] = rates([groups[0].mean(axis=0) for groups in trials])
            found["woman without glasses, means of 3"] = rates([groups[2].mean(axis=0) for groups in trials])
    return {"pool_sizes": [len(pool) for pool in pools], "rates": found,
            "exemplars": [latents[np.argsort(-score)[:3]] for score in sureness]}


def write_pictures(out, model, draw, latents, has, directions, exemplars) -> None:
    """edits.png: 4 measured faces along each of 5 linear edits (columns GRID_AMOUNTS; has: bool [N] per attribute
    of those latents [N, D]); arithmetic.png: the exemplars, their means and the result."""
    without_glasses = latents[~has["Eyeglasses"]][:4]
    young = latents[has["Young"]][:4]
    sections = [("Eyeglasses", without_glasses, directions["Eyeglasses", "linear"], 1),
                ("Eyeglasses without Male", without_glasses, directions["Eyeglasses without Male", "linear"], 1),
                ("Smiling", latents[:4], directions["Smiling", "linear"], 1),
                ("aging (-Young)", young, directions["Young", "linear"], -1),
                ("aging without Male", young, directions["Young without Male", "linear"], -1)]
    pictures = []
    for title, chosen, direction, sign in sections:
        amounts = sign * np.array(GRID_AMOUNTS)
        grid = latent.edit_grid(model.generate, chosen, direction, amounts)
        columns = ", ".join(f"{amount + 0:+g}" for amount in amounts)  # + 0: -0.0 prints as +0
        pictures.append(progress.label_image(progress.image_grid(grid, columns=len(amounts)),
                                             f"{title}: rows faces, columns {columns}"))
    progress.save_grid(np.concatenate(pictures)[None], out / "edits.png")
    rows = [progress.label_image(progress.image_grid(draw(np.concatenate([group, group.mean(axis=0, keepdims=True)])),
                                                     columns=5), title)
            for title, group in zip(("man with glasses (3, mean)", "man without glasses (3, mean)",
                                     "woman without glasses (3, mean)"), exemplars)]
    rows.append(progress.label_image(progress.image_grid(draw(latent.attribute_arithmetic(*exemplars)[None]),
                                                         columns=5), "= man with - man without + woman without"))
    progress.save_grid(np.concatenate(rows)[None], out / "arithmetic.png")


def markdown(rows, cosines, calibration, arithmetic, detected_before, fitted_on, arguments, classifier_config,
             classifier_log, seconds, embedding_seconds) -> str:
    """table.md: what was measured and how, the edit table, the cosines, the 0.6 rule and the arithmetic."""
    run_config = RunFolder(arguments.run).read_config()
    run_log = RunFolder(arguments.run).read_log()
    measured = arguments.samples - arguments.samples // 2
    lines = [
        "# Latent-space edits on real faces, measured", "",
        f"Generator: `{arguments.run.name}`, the kit's DCGAN ({run_config['resolution']}x{run_config['resolution']}, "
        f"{run_config['filters']} filters, batch {run_config['batch_size']}, {run_config['precision']}, generator "
        f"EMA) trained for {run_log[-1]['step']:,} steps ({run_log[-1]['seconds'] / 60:.0f} minutes of training on a "
        f"2-core AMD EPYC) on {run_config['source']} (crop {run_config['crop']}, {run_config['heldout']:.0%} of the "
        f"people held out, seed {run_config['seed']}). Judge: the attribute classifier `{arguments.classifier.name}` "
        f"({classifier_log[-1]['step']:,} steps of {classifier_config['batch_size']}, "
        f"{classifier_log[-1]['seconds'] / 60:.0f} minutes of training, same faces and held-out split). "
        f"Same person: dlib face embeddings closer than {faces.MATCH_TOLERANCE}, over the pairs in which a face is "
        f"detected before and after the edit.", "",
        f"{arguments.samples} latents from N(0, I) (seed {arguments.seed}): directions are fitted on the first "
        f"{arguments.samples // 2} and every edit is measured on the other {measured}, which the directions never saw. "
        f"Each edit moves them {arguments.amount:g} latent units along the unit direction (aging: against Young). "
        f"\"without Male\": Male's direction (of the same kind) projected out. dlib found a face in {detected_before} "
        f"of the {measured} unedited samples. This run took {seconds / 60:.1f} minutes; the face embeddings in it, "
        f"the slow part (kept in the cache for a rerun), took {embedding_seconds / 60:.1f} minutes when computed.", "",
        "Fitted on (\"with\" latents of the fitting half; judged with it by the classifier): "
        + ", ".join(f"{name} {used} ({judged})" for name, (used, judged) in fitted_on.items())
        + f". A side with fewer than {SMALLEST_SIDE:.0%} of the fitting half is widened to the {SMALLEST_SIDE:.0%} "
        "the classifier rates likeliest to be on it (InterFaceGAN ranks samples by score).", "",
        "| edit | direction | target flipped | target mean change | others' mean abs change | largest other change "
        "| Male change | Young change | same person (detected pairs) |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['edit']} | {row['direction']} | {percent(row['target_flip_rate'])} of "
                     f"{row['flip_candidates']} | {row['target_mean_change']:+.3f} | "
                     f"{row['other_mean_abs_change']:.3f} | "
                     f"{row['largest_other']} {row['largest_other_change']:+.3f} | {signed(row['male_change'])} | "
                     f"{signed(row['young_change'])} | {percent(row['same_person_rate'])} ({row['detected_pairs']}) |")
    lines += ["", "Cosines between directions (fitted on the first half):", ""]
    lines += [f"- {name}: {value:+.3f}" for name, value in cosines.items()]
    lines += ["", f"The {faces.MATCH_TOLERANCE} rule on real faces of {classifier_config['source']} (64x64, 3 photos "
              f"each of {CALIBRATION_PEOPLE} people; a face found in {calibration['detected']} of "
              f"{calibration['faces']}): within {faces.MATCH_TOLERANCE} for {percent(calibration['same_rate'])} of "
              f"{calibration['same_pairs']} pairs of one person and {percent(calibration['different_rate'])} of "
              f"{calibration['different_pairs']:,} pairs of different people.", "",
              f"Arithmetic (Radford et al.): man with glasses - man without + woman without, on the fitting half "
              f"(groups judged by the classifier, widened as above: {', '.join(map(str, arithmetic['pool_sizes']))} "
              f"latents), "
              f"{arguments.trials} random groups:", "",
              "| faces of | judged with glasses | judged male |", "|---|---:|---:|"]
    lines += [f"| {name} | {percent(glasses)} | {percent(male)} |"
              for name, (glasses, male) in arithmetic["rates"].items()]
    return "\n".join(lines) + "\n"


def write_csv(rows, path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: f"{value:.6f}" if isinstance(value, float) else value for key, value in row.items()})
    write_text_atomically(path, text.getvalue())


def percent(value) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.1f}%"


def signed(value) -> str:
    return "–" if np.isnan(value) else f"{value:+.3f}"


def slug(text: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in text).strip("_").lower()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    main()
