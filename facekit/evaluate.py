"""The evaluation table: generated faces (a run's latest checkpoint, or a folder of images) against real ones.

    python -m facekit evaluate runs/dcgan --real ../shared/celeba --count 1000

One row of numbers per image set, written as evaluation.csv and evaluation.json (and nearest-neighbour grids)
into the run folder, or next to an image folder:

    swd_*          sliced Wasserstein distance x 1e3 per pyramid level and averaged (lower: closer to real)
    no_face        images where dlib finds no face
    memorised      images whose face is nearer a training face than 99% of the real faces of unseen people are
                   (faces.memorisation; training_faces: how many training faces were searched). Only for runs that
                   held people out: unseen real people score about 1%, a model that copies training faces far more
    face_fd        Fréchet distance between the dlib face embeddings of detected faces (and face_kid: KID there, its
                   kernel scaled to the embeddings' norm: metrics.FACE_KID_SCALE)
    ms_ssim        mean MS-SSIM of random pairs of the set (higher: less diverse); ms_ssim_real: the same for real
    pixel_nn       mean distance (RMS per pixel value, 0..255) from each image to its nearest training image
    face_nn        mean face-embedding distance from each detected face to its nearest training face
    fid, kid       InceptionV3 Fréchet and kernel distances (only with --metrics inception: downloads weights)
"""

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from facekit import data, faces, metrics
from facekit.files import write_atomically

METRIC_GROUPS = ("swd", "faces", "ms_ssim", "neighbours", "inception")
DEFAULT_METRICS = ("swd", "faces", "ms_ssim", "neighbours")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RESULT_NAME = "evaluation"
GRID_QUERIES = 8
GRID_NEIGHBOURS = 5
TRAINING_FACES_PER_IMAGE = 10  # training faces searched for memorised copies: 10 per image compared, or all


@dataclasses.dataclass
class Evaluation:
    """One image set's row of numbers, and its nearest-neighbour pictures (uint8 [H, W, 3]: query | nearest 5)."""

    metrics: dict
    grids: dict


def evaluate(generated, real, metric_groups=DEFAULT_METRICS, seed: int = 0, real_embeddings=None,
             workers: int | None = None, training=None, training_embeddings=None) -> Evaluation:
    """Evaluate generated images against real images, both uint8 [N, R, R, 3].

    Uses min(len(generated), len(real)) images of each (SWD needs equal sets). `training`: the faces the model
    trained on (all of them, or `memorised` misses copies of the others), which `memorised` and the nearest
    neighbours look for; `real` are then faces of people it never saw, whose distances to their nearest training
    faces set the bar for `memorised`. Default: the real images themselves, when they are training faces (then no
    `memorised`). real_embeddings / training_embeddings: their faces.face_embeddings, if already computed.
    """
    unknown = sorted(set(metric_groups) - set(METRIC_GROUPS))
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRIC_GROUPS)}")
    generated, real = data.to_uint8(generated), data.to_uint8(real)
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"generated images are {generated.shape[1:]} but real ones {real.shape[1:]}: "
                         f"prepare the real set at the generated resolution")
    if real_embeddings is not None and len(real_embeddings) != len(real):
        raise ValueError(f"real_embeddings has {len(real_embeddings)} rows for {len(real)} real images")
    count = min(len(generated), len(real))
    generated, real = generated[:count], real[:count]
    real_embeddings = None if real_embeddings is None else real_embeddings[:count]
    unseen = training is not None  # real faces of people the model never saw: memorisation can be measured
    if training is None:
        training, training_embeddings = real, real_embeddings
    training = data.to_uint8(training)
    row, grids = {"images": count}, {}
    if "swd" in metric_groups:
        row.update(metrics.sliced_wasserstein_distance(generated, real, seed=seed))
    if "faces" in metric_groups:
        row.update(_face_metrics(generated, real, real_embeddings, training, training_embeddings, unseen, workers,
                                 grids))
    if "ms_ssim" in metric_groups:
        pairs = min(1000, count)
        row["ms_ssim"] = metrics.mean_pairwise_ms_ssim(generated, pairs, seed=seed)
        row["ms_ssim_real"] = metrics.mean_pairwise_ms_ssim(real, pairs, seed=seed)
    if "neighbours" in metric_groups:
        indices, distances = metrics.nearest_neighbours(generated, training, k=GRID_NEIGHBOURS)
        row["pixel_nn"] = float(np.mean(distances[:, 0]) / np.sqrt(generated[0].size))
        grids["neighbours_pixel"] = metrics.neighbour_grid(generated[:GRID_QUERIES], training,
                                                           indices[:GRID_QUERIES])
    if "inception" in metric_groups:
        network = metrics.inception_network()
        features_generated = metrics.inception_features(generated, network=network)
        features_real = metrics.inception_features(real, network=network)
        row["fid"] = metrics.frechet_distance(features_generated, features_real)
        row["kid"] = metrics.kernel_inception_distance(features_generated, features_real, seed=seed)[0]
    return Evaluation(row, grids)


def evaluate_target(target, real_source=None, count: int = 1000, metric_groups=DEFAULT_METRICS, seed: int = 0,
                    crop=None, workers: int | None = None, training_count: int | None = None) -> tuple[dict, Path]:
    """Evaluate a run folder (sampled from its latest checkpoint) or an image folder against a CelebA source.

    real_source: default the run's recorded source, else facekit.data's default source. crop: of the real
    images; default the run's recorded crop, else facekit.data's default crop. A run that kept people out of
    training (its `heldout` setting) is compared with those held-out people, and `memorised` and the
    neighbours look among the faces it trained on: a random `training_count` of them (default
    TRAINING_FACES_PER_IMAGE * count; all of them when there are no more; a copy of a face not searched is missed).

    Writes evaluation.csv, evaluation.json and the neighbours_*.png grids into the run folder, or next to an
    image folder with the folder's name in front (FOLDER_evaluation.csv). Returns (the result dict, the CSV path).
    """
    target = Path(target)
    generated = generated_images(target, count, seed)
    is_run = (target / "run.json").exists()
    sets = real_sets(target if is_run else None, real_source, generated.shape[1], min(count, len(generated)), seed,
                     crop, training_count)
    out_dir, prefix = (target, "") if is_run else (target.parent, f"{target.name}_")
    evaluation = _evaluate_against(generated, sets, metric_groups, seed, workers)
    result = {"target": str(target), "real": str(sets.source), "seed": seed, "metrics": evaluation.metrics}
    csv_path = out_dir / f"{prefix}{RESULT_NAME}.csv"
    write_result(result, out_dir / f"{prefix}{RESULT_NAME}.json", csv_path)
    for name, picture in evaluation.grids.items():
        save_picture(picture, out_dir / f"{prefix}{name}.png")
    return result, csv_path


@dataclasses.dataclass
class RealSets:
    """The real faces a set is measured against: `real` (the distribution, uint8 [N, R, R, 3]) and `training`
    (the faces the model saw, for `memorised` and neighbours; None when `real` are training faces), and
    `spare`: other real faces of the same people as `real`, none of them in `real`, to measure a real set the
    same way (the real-vs-real floor)."""

    real: np.ndarray
    training: np.ndarray | None
    spare: np.ndarray
    source: Path


def real_sets(run_dir, real_source, resolution: int, count: int, seed: int = 0, crop=None,
              training_count: int | None = None, equal: bool = False) -> RealSets:
    """The real faces to compare a run (or, run_dir None, an image folder) with: cut, limited and split by
    identity as it was trained, so that its held-out people are the ones it never saw. `real` and `spare` are
    disjoint: `count` images and up to `count` of the others; with `equal`, as many as each (half of the faces
    each when there are fewer than 2 * count). `training`: a random `training_count` of the faces the run
    trained on (default TRAINING_FACES_PER_IMAGE * count), or all of them when there are no more."""
    from facekit.training import RunFolder

    config = RunFolder(run_dir).read_config() if run_dir is not None else {}
    crop = crop or config.get("crop") or data.DEFAULT_CROP
    real_source = real_source or config.get("source") or None
    faces = data.prepare(real_source, resolution=resolution, crop=crop, limit=config.get("limit"))
    heldout_fraction = config.get("heldout", 0.0)
    if heldout_fraction:
        training, heldout = faces.split_by_identity((1 - heldout_fraction, heldout_fraction),
                                                    seed=config.get("seed", 0))
        real, spare = _two_samples(heldout.images, count, seed, equal)
        training_count = TRAINING_FACES_PER_IMAGE * count if training_count is None else training_count
        training_images = training.images if training_count >= len(training) else sample_images(training.images,
                                                                                               training_count, seed)
        return RealSets(real, np.asarray(training_images), spare, faces.source)
    real, spare = _two_samples(faces.images, count, seed, equal)
    return RealSets(real, None, spare, faces.source)


def compare(run_dirs, real_source=None, count: int = 1000, metric_groups=DEFAULT_METRICS, seed: int = 0,
            crop=None, workers: int | None = None, training_count: int | None = None) -> dict[str, dict]:
    """One row of metrics per run folder, plus a "real" row (other faces of the same real people, none of them in
    the reference sample, measured the same way), all against the real faces of the first run's source, cut and
    split as it was trained (training_count: as in evaluate_target)."""
    rows, sets = {}, None
    for run_dir in map(Path, run_dirs):
        generated = generated_images(run_dir, count, seed)
        if sets is None:
            sets = real_sets(run_dir, real_source, generated.shape[1], min(count, len(generated)), seed, crop,
                             training_count, equal=True)  # the floor on as many images as the rows above it
        rows[run_dir.name or str(run_dir)] = _evaluate_against(generated, sets, metric_groups, seed, workers).metrics
    rows["real"] = _evaluate_against(sets.spare, sets, metric_groups, seed, workers).metrics
    return rows


def markdown_table(rows: dict[str, dict]) -> str:
    """The comparison as a Markdown table: per 1,000 images, can't detect a face (the published face-detection
    table's first column) and memorised, then SWD (x1e3, average) and MS-SSIM; a note under it says what
    "memorised" counts and how many training faces were searched."""
    columns = [("can't detect a face", lambda row: round(row["no_face"] * 1000 / row["images"])),
               ("memorised", lambda row: round(row["memorised"] * 1000 / row["images"])),
               ("SWD", lambda row: f"{row['swd_avg']:.1f}"), ("MS-SSIM", lambda row: f"{row['ms_ssim']:.3f}")]
    columns = [(name, cell) for name, cell in columns if all(_has(row, cell) for row in rows.values())]
    lines = ["| set | " + " | ".join(name for name, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    lines += [f"| {label} | " + " | ".join(str(cell(row)) for _, cell in columns) + " |" for label, row in rows.items()]
    if any(name == "memorised" for name, _ in columns):
        lines += ["", memorised_note(rows)]
    return "\n".join(lines)


def memorised_note(rows: dict[str, dict]) -> str:
    """One sentence saying what the "memorised" count of these rows is, with the training faces searched."""
    searched = sorted({row["training_faces"] for row in rows.values() if "training_faces" in row})
    return (f"memorised: per 1,000 images, faces nearer one of the {' or '.join(f'{count:,}' for count in searched)} "
            f"training faces searched than {1 - faces.MEMORISED_QUANTILE:.0%} of the real faces of unseen people "
            f"are (such real faces score about {1000 * faces.MEMORISED_QUANTILE:.0f}).")


def write_comparison(rows: dict[str, dict], table: str, markdown_path) -> Path:
    """Write the Markdown table and, beside it, a CSV with every metric of every row; returns the CSV path."""
    markdown_path = Path(markdown_path)
    csv_path = markdown_path.with_suffix(".csv")
    columns = list(dict.fromkeys(name for row in rows.values() for name in row))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["set", *columns])
    for label, row in rows.items():
        writer.writerow([label, *(_format_value(row[name]) if name in row else "" for name in columns)])
    for path, content in ((markdown_path, table + "\n"), (csv_path, text.getvalue())):
        write_atomically(path, lambda temporary, content=content: Path(temporary).write_text(content))
    return csv_path


def _evaluate_against(generated, sets: RealSets, metric_groups, seed: int, workers) -> Evaluation:
    real_embeddings = cached_face_embeddings(sets.real, workers) if "faces" in metric_groups else None
    training_embeddings = None
    if sets.training is not None and "faces" in metric_groups:
        training_embeddings = cached_face_embeddings(sets.training, workers)
    return evaluate(generated, sets.real, metric_groups, seed=seed, real_embeddings=real_embeddings,
                    workers=workers, training=sets.training, training_embeddings=training_embeddings)


def _two_samples(images, count: int, seed: int, equal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random samples (overlapping ones flatter a real-vs-real floor): `count` images and up to
    `count` of the rest; with `equal`, min(count, len(images) // 2) images each."""
    order = np.random.default_rng(seed).permutation(len(images))
    count = min(count, len(images) // 2 if equal else len(images))
    return np.asarray(images[np.sort(order[:count])]), np.asarray(images[np.sort(order[count : 2 * count])])


def _has(row: dict, cell) -> bool:
    try:
        cell(row)
    except KeyError:
        return False
    return True


def generated_images(target, count: int, seed: int = 0) -> np.ndarray:
    """uint8 [count, R, R, 3]: sampled from a run folder's latest checkpoint, or a folder's first `count` images."""
    target = Path(target)
    if (target / "run.json").exists():
        return sample_run(target, count, seed)
    if target.is_dir():
        return read_image_folder(target, count)
    raise FileNotFoundError(f"{target}: neither a run folder (no run.json) nor a folder of images")


def sample_run(run_dir, count: int, seed: int = 0, step: int | None = None) -> np.ndarray:
    """`count` images uint8 [count, R, R, 3] from the model of a run folder (run.json's "model", any model of
    facekit.registry; GANs draw from their moving-average generator), at its latest checkpoint or at `step`."""
    from facekit import registry

    return data.to_uint8(registry.sampler(run_dir)(run_dir, count, seed, step=step))


def check_output_folder(folder, overwrite: bool = False) -> list[Path]:
    """The files already in `folder`; refused when there are any, unless `overwrite` (see write_image_folder)."""
    folder = Path(folder)
    existing = sorted(folder.iterdir()) if folder.is_dir() else []
    if existing and not overwrite:
        raise FileExistsError(f"{folder}: already holds {len(existing)} files; write to an empty folder, or pass "
                              f"--overwrite (overwrite=True) to replace its images")
    return existing


def write_image_folder(images, folder, overwrite: bool = False) -> Path:
    """Write uint8 images [N, R, R, 3] as 000000.png, 000001.png, ... into `folder` (each atomically). A folder
    that holds files already is refused (an evaluation of it would mix two sets), unless `overwrite`: then its
    images are replaced by these, whole."""
    folder = Path(folder)
    existing = check_output_folder(folder, overwrite)
    written = set()
    for index, image in enumerate(data.to_uint8(images)):
        written.add(save_picture(image, folder / f"{index:06d}.png").name)
    for path in existing:
        if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in written:
            path.unlink()
    return folder


def read_image_folder(folder, count: int | None = None) -> np.ndarray:
    """The first `count` images (PNG or JPEG, sorted by name) of a folder: uint8 [N, R, R, 3], all one square size."""
    from PIL import Image

    paths = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not paths:
        raise FileNotFoundError(f"{folder}: no .png or .jpg images to evaluate")
    images = []
    for path in paths:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        height, width = array.shape[:2]
        if height != width:
            raise ValueError(f"{path}: image is {width}x{height}; expected square images")
        if images and array.shape != images[0].shape:
            raise ValueError(f"{path}: image is {width}x{height}, unlike {paths[0].name} ({len(images[0])} square)")
        images.append(array)
    return np.stack(images)


def sample_images(images, count: int, seed: int = 0) -> np.ndarray:
    """`count` distinct images chosen at random (by seed) from uint8 [N, R, R, 3], in their original order."""
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), min(count, len(images)), replace=False))
    return np.asarray(images[chosen])


def cached_face_embeddings(images, workers: int | None = None) -> np.ndarray:
    """faces.face_embeddings(images), kept in DATA_DIR/cache keyed by the images' bytes (real sets are reused)."""
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    path = Path(data.DATA_DIR) / "cache" / f"face_embeddings_{faces.DETECTION_SIZE}_{digest}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    embeddings = faces.face_embeddings(images, workers=workers, show_progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, embeddings, allow_pickle=False)
    write_atomically(path, lambda temporary: Path(temporary).write_bytes(buffer.getvalue()))
    return embeddings


def write_result(result: dict, json_path, csv_path) -> None:
    """evaluation.json (everything) and evaluation.csv (one header row, one row of the metrics), atomically."""
    row = {"target": result["target"], "real": result["real"], "seed": result["seed"], **result["metrics"]}
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerow({key: _format_value(value) for key, value in row.items()})
    for path, content in ((Path(json_path), json.dumps(result, indent=2) + "\n"), (Path(csv_path), text.getvalue())):
        write_atomically(path, lambda temporary, content=content: Path(temporary).write_text(content))


def save_picture(picture, path) -> Path:
    """Write one uint8 [H, W, 3] picture as a PNG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    write_atomically(path, lambda temporary: iio.imwrite(temporary, picture, extension=".png"))
    return path


def format_table(rows: dict[str, dict]) -> str:
    """A plain-text table: one line per labelled row of metrics, one column per metric any row has."""
    columns = list(dict.fromkeys(name for row in rows.values() for name in row))
    label_width = max([len("set")] + [len(label) for label in rows])
    cells = {label: [_format_value(row.get(name, "")) for name in columns] for label, row in rows.items()}
    widths = [max([len(name)] + [len(cells[label][index]) for label in rows]) for index, name in enumerate(columns)]
    lines = ["  ".join(["set".ljust(label_width)] + [name.rjust(width) for name, width in zip(columns, widths)])]
    for label in rows:
        lines.append("  ".join([label.ljust(label_width)] +
                               [cell.rjust(width) for cell, width in zip(cells[label], widths)]))
    return "\n".join(lines)


def detection_table(rows: dict[str, dict]) -> str:
    """The published comparison's form, its second column replaced by memorisation: per set, out of 1,000 images,
    "can't detect a face" and "memorised" (rows need no_face, memorised, training_faces and images)."""
    table = {label: {"can't detect a face": round(row["no_face"] * 1000 / row["images"]),
                     "memorised": round(row["memorised"] * 1000 / row["images"])}
             for label, row in rows.items()}
    return "out of 1,000 images\n" + format_table(table) + "\n" + memorised_note(rows)


def _face_metrics(generated, real, real_embeddings, training, training_embeddings, unseen: bool, workers,
                  grids: dict) -> dict:
    generated_embeddings = faces.face_embeddings(generated, workers=workers)
    if real_embeddings is None:
        real_embeddings = faces.face_embeddings(real, workers=workers)
    if training_embeddings is None:
        training_embeddings = real_embeddings if training is real else faces.face_embeddings(training, workers=workers)
    row = {"no_face": int((~faces.has_face(generated_embeddings)).sum())}
    if unseen and faces.has_face(real_embeddings).any() and faces.has_face(training_embeddings).any():
        report = faces.memorisation(generated_embeddings, training_embeddings, real_embeddings)
        row.update(memorised=report.memorised, training_faces=report.training_faces)
    found_generated = generated_embeddings[faces.has_face(generated_embeddings)]
    found_real = real_embeddings[faces.has_face(real_embeddings)]
    if len(found_generated) >= 2 and len(found_real) >= 2:
        row["face_fd"] = metrics.frechet_distance(found_generated, found_real)
        row["face_kid"] = metrics.kernel_inception_distance(found_generated, found_real,
                                                            scale=metrics.FACE_KID_SCALE)[0]
        _, _, distance = faces.identify(generated_embeddings, training_embeddings)
        row["face_nn"] = float(np.mean(distance[np.isfinite(distance)]))
        queries = np.flatnonzero(faces.has_face(generated_embeddings))[:GRID_QUERIES]
        training_faces = np.flatnonzero(faces.has_face(training_embeddings))
        indices, _ = metrics.nearest_neighbours(generated_embeddings[queries], training_embeddings[training_faces],
                                                k=GRID_NEIGHBOURS)
        grids["neighbours_face"] = metrics.neighbour_grid(generated[queries], training[training_faces], indices)
    return row


def _format_value(value) -> str:
    if isinstance(value, (int, np.integer)) or isinstance(value, str):
        return str(value)
    return f"{value:.4g}"
