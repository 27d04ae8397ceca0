"""Sketch -> face and x4 super-resolution measured on people the models never saw: pix2pix against its L1-only
U-Net (and on a sketch style it never trained on), the L1 super-resolution network and its GAN versions against
bicubic. Issue 17's tables.

Every run trains on ../shared/celeba at 64x64 (the configs' crop) with the same tenth of the people held out (the
configs' heldout and seed), at its config's defaults otherwise: pix2pix (lambda 100, and 10: a stronger adversarial
share) and the L1-only U-Net 4,500 steps, the L1 super-resolution network 12,000 (each at most about 20 minutes on
2 cores). The super-resolution GANs start from the L1
network (init_from) and train GAN_STEPS more at Ledig's GAN rate, 1e-4: one with feature matching (the
discriminator's features) as content loss, one with the attribute classifier's; a control trains as many steps
from it at that rate on L1 alone, so that the table compares losses and not extra steps. The attribute classifier
(`attributes`, trained first on the same split) also measures whether outputs keep the true face's attributes.

Measured on --count held-out faces chosen by the seed (at most half the held-out faces; the other photos of the
held-out people give the real rows):
    sketch -> face: L1 (mean absolute error, 0-255 levels), SSIM and PSNR on the luminance, the same-person share
        (dlib's embeddings under 0.6 apart, among pairs where it finds both faces), the attribute classifier's
        agreement between output and true photo (hair colour: the most probable of black, blond, brown, gray;
        eyeglasses, smiling, male), SWD against the true photos (averaged over levels, and its finest level). For
        pix2pix on its own sketches (jittered XDoG), on Canny edges (never trained on), the L1-only U-Net and
        pix2pix with lambda 10.
    super-resolution 16 -> 64: PSNR and SSIM on the luminance (4-pixel border cropped) and on RGB, SWD, the
        same-person share, attribute agreement, for bicubic, the L1 network, the control and both GANs.
    Real rows: another photo of the same person (the same-person share a model can be held to) and a photo of
    someone else (chance; its SWD is the floor).

    .venv/bin/python benchmarks/image_to_image_table.py [--out runs/image_to_image] [--count 750]

Writes into --out: a run folder per run, sketch_to_face.md/.csv, superres.md/.csv, summary.md (each run's steps
and training seconds, the settings) and the README pictures docs/pix2pix_heldout.png and
docs/superres_heldout.png (input | outputs | truth for held-out people). Restartable: finished runs are reused, a
run stopped part-way continues from its last checkpoint.
"""

import argparse
import csv
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from gan_family_table import say  # noqa: E402
from readme_figures import headed, save_png  # noqa: E402

from facekit import attributes, data, faces as face_measures, metrics, pairs, registry, sketches  # noqa: E402
from facekit.files import write_text_atomically  # noqa: E402
from facekit.models import image_to_image  # noqa: E402
from facekit.training import RunFolder, split, train_or_resume  # noqa: E402

GAN_STEPS = 3_000  # the super-resolution GANs' (and their control's) steps from the L1 network
GAN_LEARNING_RATE = 1e-4  # Ledig et al.'s for the GAN version
SNAPSHOTS = 20  # snapshots (GIF frames, checkpoints) a run
# folder: (model, settings beyond the shared ones); in training order (the GANs start from superres-l1, and the
# classifier's content loss reads the attribute classifier)
RUNS = {
    "attributes": ("attributes", {}),
    "pix2pix": ("pix2pix", {}),
    "unet-l1": ("pix2pix", {"adversarial_weight": 0.0}),
    "pix2pix-lambda10": ("pix2pix", {"l1_weight": 10.0}),
    "superres-l1": ("superres", {}),
    "superres-l1-more": ("superres", {"init_from": "superres-l1", "learning_rate": GAN_LEARNING_RATE,
                                      "steps": GAN_STEPS}),
    "srgan-features": ("superres", {"init_from": "superres-l1", "learning_rate": GAN_LEARNING_RATE,
                                    "steps": GAN_STEPS, "adversarial_weight": 1e-3}),
    "srgan-classifier": ("superres", {"init_from": "superres-l1", "learning_rate": GAN_LEARNING_RATE,
                                      "steps": GAN_STEPS, "adversarial_weight": 1e-3, "content": "classifier",
                                      "classifier_run": "attributes"}),
}
RUN_PATHS = ("init_from", "classifier_run")  # settings naming another run of the table
SKETCH_ROWS = {"pix2pix": ("pix2pix", None), "pix2pix on Canny edges": ("pix2pix", "canny"),
               "L1-only U-Net": ("unet-l1", None),
               "pix2pix, lambda 10": ("pix2pix-lambda10", None)}  # row: (run, sketch style; None: the run's own)
SR_ROWS = {"L1 network": "superres-l1", "L1 network, continued (control)": "superres-l1-more",
           "GAN, feature matching": "srgan-features", "GAN, classifier features": "srgan-classifier"}
HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
AGREEMENT = {"hair colour": HAIR, "eyeglasses": "Eyeglasses", "smiling": "Smiling", "male": "Male"}
PICTURE_FACES = 6  # held-out people in each README picture
COLUMNS = {  # column: (heading, format)
    "L1": ("L1 (0-255)", "{:.1f}"), "psnr_y": ("PSNR Y (dB)", "{:.2f}"), "ssim_y": ("SSIM Y", "{:.3f}"),
    "psnr_rgb": ("PSNR RGB", "{:.2f}"), "ssim_rgb": ("SSIM RGB", "{:.3f}"), "SWD": ("SWD", "{:.1f}"),
    "SWD finest": ("SWD, finest level", "{:.1f}"),
    "same person": ("same person (pairs)", "{:.0%}"), "hair colour": ("hair colour", "{:.0%}"),
    "eyeglasses": ("glasses", "{:.0%}"), "smiling": ("smiling", "{:.0%}"), "male": ("male", "{:.0%}"),
    "attributes": ("attributes, mean", "{:.0%}")}


def main() -> None:
    default = registry.model("pix2pix").config()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba", help="CelebA folder")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "image_to_image")
    parser.add_argument("--count", type=int, default=750, help="held-out faces measured (at most half of them)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (for a quick try)")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiply every run's steps by this (for a quick try)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the README pictures go")
    arguments = parser.parse_args()
    if not arguments.data.exists():
        raise SystemExit(f"{arguments.data}: no CelebA folder there; pass --data with the real faces")
    arguments.out.mkdir(parents=True, exist_ok=True)
    say(f"loading {arguments.data} ({default.resolution}x{default.resolution}, crop {default.crop})")
    faces = data.prepare(arguments.data, resolution=default.resolution, crop=default.crop, limit=arguments.limit,
                         progress=False)
    say(f"{len(faces)} faces")
    runs = {name: train(name, faces, arguments) for name in RUNS}
    heldout = measured_faces(faces, default, arguments.count)
    say(f"measuring on {len(heldout['truth'])} held-out faces")
    classifier = attributes.load(runs["attributes"].path)
    sketch_table = measure_sketches(runs, heldout, classifier)
    sr_table = measure_superres(runs, heldout, classifier)
    real = real_rows(heldout, classifier)  # below both tables
    sketch_table, sr_table = sketch_table | real, sr_table | real
    texts = [write_table(sketch_table, arguments.out / "sketch_to_face.md"),
             write_table(sr_table, arguments.out / "superres.md"), summarize(runs, arguments, len(heldout["truth"]))]
    write_text_atomically(arguments.out / "summary.md", texts[-1] + "\n")
    texts += write_pictures(heldout, arguments.docs)
    print("\n\n".join(texts))


def train(name: str, faces, arguments) -> RunFolder:
    """Train (or reuse, or continue) run `name` of RUNS into --out/name."""
    import keras

    model, settings = RUNS[name]
    spec = registry.model(model)
    settings = {key: str(arguments.out / value) if key in RUN_PATHS else value for key, value in settings.items()}
    steps = max(1, round(settings.pop("steps", spec.config().steps) * arguments.steps_scale))
    config = spec.config(limit=arguments.limit, steps=steps, snapshot_every=max(1, steps // SNAPSHOTS), **settings)
    keras.backend.clear_session()
    say(f"{name}: {model}, {steps} steps")
    return train_or_resume(spec, faces, arguments.out / name, config)


def measured_faces(faces, config, count: int) -> dict:
    """The held-out faces measured, chosen by the seed: {"truth": uint8 [N, R, R, 3]; "same person": another photo
    of each one's person, "has same person": bool [N] (False where there is none: its row is zeros); "someone else":
    a held-out photo of another person, none of them among the truth}."""
    _, heldout = split(faces, config)
    count = min(count, len(heldout) // 2)
    rng = np.random.default_rng(config.seed)
    chosen = np.sort(rng.choice(len(heldout), count, replace=False))
    identities, indices = heldout.identities, np.arange(len(heldout))
    same = [rng.choice(others) if len(others := np.flatnonzero((identities == identities[index]) & (indices != index)))
            else -1 for index in chosen]
    rest = rng.permutation(np.setdiff1d(indices, chosen))
    strangers = []
    for index in chosen:  # the next unused photo of the rest whose person differs
        position = next(i for i, other in enumerate(rest) if identities[other] != identities[index])
        strangers.append(rest[position])
        rest = np.delete(rest, position)
    images, same = np.asarray(heldout.images), np.array(same)
    return {"truth": images[chosen], "same person": np.where(same[:, None, None, None] >= 0, images[same], 0),
            "has same person": same >= 0, "someone else": images[np.array(strangers)]}


def measure_sketches(runs: dict, heldout: dict, classifier) -> dict:
    """{row: measures} for SKETCH_ROWS; keeps each row's inputs and outputs in heldout."""
    truth = heldout["truth"]
    models = {name: registry.model("pix2pix").load(runs[name].path) for name, _ in SKETCH_ROWS.values()}
    table = {}
    for row, (name, style) in SKETCH_ROWS.items():
        model = models[name]
        inputs = model.conditions(truth) if style is None else sketches.draw(truth, style)
        heldout[row] = model.translate(inputs)
        heldout[f"{row} input"] = inputs
        say(f"measuring {row}")
        table[row] = measures(heldout[row], truth, classifier, heldout)
    return table


def measure_superres(runs: dict, heldout: dict, classifier) -> dict:
    """{row: measures} for bicubic and SR_ROWS; keeps each row's outputs in heldout."""
    truth = heldout["truth"]
    models = {row: registry.model("superres").load(runs[name].path) for row, name in SR_ROWS.items()}
    small = models["L1 network"].conditions(truth)
    heldout["small"] = small
    heldout["bicubic"] = data.to_uint8(np.asarray(pairs.resize_bicubic(data.to_float(small), truth.shape[1])))
    table = {"bicubic": measures(heldout["bicubic"], truth, classifier, heldout)}
    for row, model in models.items():
        heldout[row] = model.translate(small)
        say(f"measuring {row}")
        table[row] = measures(heldout[row], truth, classifier, heldout)
    return table


def real_rows(heldout: dict, classifier) -> dict:
    """The measures of another photo of the same person (where there is one) and of someone else's photo, against
    the truth (whose embeddings and probabilities `measures` has kept in heldout)."""
    has = heldout["has same person"]
    subset = {key: heldout[key][has] for key in ("truth", "truth embeddings", "truth probabilities")}
    same = measures(heldout["same person"][has], subset["truth"], classifier, subset)
    same["SWD"] = same["SWD finest"] = np.nan  # over a subset, not comparable; the floor is someone else's
    return {f"another photo of the same person ({has.sum()})": same,
            "a photo of someone else": measures(heldout["someone else"], heldout["truth"], classifier, heldout)}


def measures(outputs, truth, classifier, cache: dict) -> dict:
    """L1 (0-255 levels), PSNR and SSIM (luminance and RGB), SWD, the same-person share (and its pairs), and the
    attribute agreement of outputs uint8 [N, R, R, 3] with truth; truth's embeddings and attribute probabilities
    are computed once and kept in `cache` (under "truth embeddings", "truth probabilities")."""
    if "truth embeddings" not in cache:
        cache["truth embeddings"] = face_measures.face_embeddings(truth)
        cache["truth probabilities"] = classifier.probabilities(truth)
    share, found = face_measures.same_person_share(face_measures.face_embeddings(outputs), cache["truth embeddings"])
    return {"L1": float(np.mean(np.abs(outputs.astype(np.float64) - truth))), **metrics.psnr_ssim(outputs, truth),
            **swd_columns(metrics.sliced_wasserstein_distance(outputs, truth)), "same person": share,
            "pairs": found, **agreement(classifier.probabilities(outputs), cache["truth probabilities"],
                                        classifier.names)}


def swd_columns(swd: dict) -> dict:
    """{"SWD": the average over levels, "SWD finest": the finest level's (texture, where blur shows)}."""
    finest = max((key for key in swd if key != "swd_avg"), key=lambda key: int(key[4:]))
    return {"SWD": swd["swd_avg"], "SWD finest": swd[finest]}


def agreement(probabilities, truth_probabilities, names) -> dict:
    """{"hair colour", "eyeglasses", "smiling", "male": the share of images whose predicted attribute (the most
    probable hair colour; present at p > 0.5 for the others) matches the true photo's, "attributes": their mean}."""
    columns = {name: index for index, name in enumerate(names)}
    shares = {}
    for label, attribute in AGREEMENT.items():
        if isinstance(attribute, tuple):
            hair = [columns[name] for name in attribute]
            same = probabilities[:, hair].argmax(1) == truth_probabilities[:, hair].argmax(1)
        else:
            same = (probabilities[:, columns[attribute]] > 0.5) == (truth_probabilities[:, columns[attribute]] > 0.5)
        shares[label] = float(same.mean())
    return shares | {"attributes": float(np.mean(list(shares.values())))}


def write_table(table: dict, markdown: Path) -> str:
    """markdown (and .csv beside it, every number unformatted): one row per set; returns the Markdown."""
    lines = ["| set | " + " | ".join(heading for heading, _ in COLUMNS.values()) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, values in table.items():
        cells = ["–" if np.isnan(values[column]) else form.format(values[column])
                 for column, (_, form) in COLUMNS.items()]
        cells[list(COLUMNS).index("same person")] += f" ({values['pairs']})"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["set", *COLUMNS, "pairs"])
    writer.writerows([name, *(values[column] for column in COLUMNS), values["pairs"]] for name, values in table.items())
    write_text_atomically(markdown.with_suffix(".csv"), text.getvalue())
    write_text_atomically(markdown, "\n".join(lines) + "\n")
    return "\n".join(lines)


def summarize(runs: dict, arguments, count: int) -> str:
    """Markdown: the settings, and each run's steps, training seconds and seconds a step."""
    lines = [f"{count} held-out faces measured; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end; "
             f"limit {arguments.limit}, steps x {arguments.steps_scale:g}. Each run at its config's defaults beyond "
             f"the settings below.", "", "| run | model | settings | steps | training seconds | s / step |",
             "|---|---|---|---:|---:|---:|"]
    for name, run in runs.items():
        model, settings = RUNS[name]
        rows = run.read_log()
        own = ", ".join(f"{key} {value}" for key, value in settings.items() if key != "steps")
        lines.append(f"| {name} | {model} | {own} | {rows[-1]['step']} | {rows[-1]['seconds']:.0f} | "
                     f"{rows[-1]['seconds'] / rows[-1]['step']:.3f} |")
    return "\n".join(lines)


def write_pictures(heldout: dict, docs: Path) -> list:
    """docs/pix2pix_heldout.png (sketch | pix2pix | L1-only U-Net | truth | Canny edges | pix2pix on them) and
    docs/superres_heldout.png (16x16 input | bicubic | L1 | GANs | truth) for the first PICTURE_FACES held-out
    faces measured; returns a line naming each."""
    size, shown = heldout["truth"].shape[1], slice(0, PICTURE_FACES)
    sketch = {"sketch": image_to_image.enlarge(heldout["pix2pix input"][shown], size), "pix2pix": heldout["pix2pix"],
              "L1-only U-Net": heldout["L1-only U-Net"], "truth": heldout["truth"],
              "Canny edges": image_to_image.enlarge(heldout["pix2pix on Canny edges input"][shown], size),
              "pix2pix on them": heldout["pix2pix on Canny edges"]}
    superres = {"16x16 input": image_to_image.enlarge(heldout["small"][shown], size), "bicubic": heldout["bicubic"],
                **{row: heldout[row] for row in SR_ROWS if "control" not in row}, "truth": heldout["truth"]}
    lines = []
    for name, columns, label in (("pix2pix_heldout.png", sketch, "Sketch to face, people no run trained on"),
                                 ("superres_heldout.png", superres, "x4 super-resolution, people no run trained on")):
        tiles = np.stack([np.asarray(images[shown], np.uint8) for images in columns.values()], axis=1)
        picture = headed(tiles.reshape(-1, *tiles.shape[2:]), [n.replace("GAN, ", "GAN ") for n in columns], label)
        lines.append(f"{docs / name}: {save_png(picture, docs / name):.0f} KB")
    return lines

if __name__ == "__main__":
    main()
