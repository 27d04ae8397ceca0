"""CelebA faces for the lessons: read, crop, resize and cache once, then feed shuffled batches through tf.data.

A source is a CelebA folder in the official layout (`img_align_celeba/*.jpg`, `list_attr_celeba.txt`,
`list_eval_partition.txt`, `identity_CelebA.txt`), in Kaggle's layout (`img_align_celeba/img_align_celeba/*.jpg`,
`list_attr_celeba.csv`, `list_eval_partition.csv`), the official `img_align_celeba.zip` (read in place, never
unzipped) or a folder holding it. Label files are looked for beside the images and in `Anno/` and `Eval/`; each
one is optional, but when present it must describe every image.

Crops are square boxes (left, top, right, bottom) on the 178x218 aligned frame, the ones the classic recipes use:

- "square178": the centred 178x178 square (rows 20-198). StarGAN (CenterCrop(178)); the PyTorch DCGAN tutorial's
  Resize(64) + CenterCrop(64) keeps the same square.
- "face160" (default): the centred 160x160 square (9, 29, 169, 189). BEGAN-pytorch and
  pytorch-generative-model-collections (CenterCrop(160) then resize to 64): face, hair and a little background.
- "face128": 128x128 centred on (89, 121), i.e. (25, 57, 153, 185). Progressive GAN's `dataset_tool.py
  create_celeba` (cx=89, cy=121): the face alone.

A frame of another size gets the same box relative to its size (centre scaled per axis, side scaled by the smaller
factor). Images are decoded at reduced scale where that still leaves at least `resolution` pixels across the crop
(Pillow's JPEG `draft`), then resized with Lanczos. Grayscale, CMYK, palette and RGBA (alpha dropped) images, and
PNGs, are converted to RGB and used; empty, truncated, corrupt and non-image files are skipped, each with the file
and the reason in `Faces.skipped` (or a CelebAError at the first problem with strict=True).
"""

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import re
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from facekit.files import folder_lock, remove_abandoned_temporaries, write_atomically, write_text_atomically

DATA_DIR = Path(os.environ.get("FACEKIT_DATA") or Path(__file__).resolve().parents[1] / "data")
DEFAULT_SYNTHETIC_COUNT = 5000
FRAME = (178, 218)  # width, height of CelebA's aligned images
CROPS = {"square178": (0, 20, 178, 198), "face160": (9, 29, 169, 189), "face128": (25, 57, 153, 185)}
DEFAULT_CROP = "face160"
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_ATTRIBUTE_FILES = ("list_attr_celeba.txt", "list_attr_celeba.csv")
_PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
_IDENTITY_FILES = ("identity_CelebA.txt",)
_CHUNK = 64  # images per task sent to a worker process
_MAX_IMAGE_BYTES = 64 * 2**20  # larger files are not face images (CelebA's are about 10 KB): skipped unread
_CACHE_FORMAT = 1


class CelebAError(ValueError):
    """A CelebA source that cannot be read as asked; the message names the file and the problem."""


class IdentitySplitWarning(UserWarning):
    """Faces.split_by_identity found no identity file and split by partition or by image instead (the message says
    which, and what it gave)."""


@dataclasses.dataclass
class Faces:
    """Prepared faces. images: uint8 [N, H, W, 3] (read-only memmap when cached); labels aligned with images."""

    images: np.ndarray
    filenames: list
    attribute_names: tuple = ()
    attributes: np.ndarray | None = None  # int8 [N, A] of +1 / -1
    partitions: np.ndarray | None = None  # int [N]: 0 train, 1 valid, 2 test
    identities: np.ndarray | None = None  # int [N]
    skipped: list = dataclasses.field(default_factory=list)  # (filename, reason) of every file left out
    source: Path | None = None
    crop: str = DEFAULT_CROP
    signature: str = ""  # the cache key's digest of prepared faces (source files, labels, crop, size, limit)

    def __len__(self) -> int:
        return len(self.filenames)

    def attribute(self, name: str) -> np.ndarray:
        """bool [N]: whether each face has the attribute `name` (e.g. "Eyeglasses")."""
        if self.attributes is None:
            raise CelebAError(f"{self.source}: no attribute file (list_attr_celeba.txt or .csv)")
        if name not in self.attribute_names:
            raise CelebAError(f"unknown attribute {name!r}; known: {', '.join(self.attribute_names)}")
        return self.attributes[:, self.attribute_names.index(name)] > 0

    def select(self, **conditions: bool) -> "Faces":
        """The faces matching every condition, e.g. select(Eyeglasses=True, Male=False)."""
        keep = np.ones(len(self), bool)
        for name, wanted in conditions.items():
            keep &= self.attribute(name) == bool(wanted)
        return self._subset(np.flatnonzero(keep))

    def partition(self, name: str) -> "Faces":
        """The faces of CelebA's official "train", "valid" or "test" partition."""
        if name not in PARTITIONS:
            raise CelebAError(f"unknown partition {name!r}; expected one of {', '.join(PARTITIONS)}")
        if self.partitions is None:
            raise CelebAError(f"{self.source}: no partition file (list_eval_partition.txt or .csv)")
        return self._subset(np.flatnonzero(self.partitions == PARTITIONS[name]))

    def split_by_identity(self, fractions=(0.5, 0.5), seed: int = 0) -> list:
        """Split into len(fractions) sets of about those fractions of the images, no identity in two sets.

        Identities are shuffled by `seed` and dealt in order; fractions summing to less than 1 leave the rest out.
        Without an identity file (Kaggle's CelebA has none) it falls back, with one IdentitySplitWarning saying how:

        - to the partition file: CelebA's train / valid / test partitions share no person, so each partition goes
          whole to one set or to none. Of all such assignments it takes the one leaving the fewest images short of
          the fractions; a set given more than its fraction keeps a random sample (by `seed`) of its partitions'
          images. A set can come out smaller than asked: on CelebA (80 / 10 / 10 %) halves become 50 % and 20 %.
        - when there is no partition file, or the images lie in fewer partitions than there are sets, to a split
          by image (shuffled by `seed`, exact fractions), in which one person's photos can fall in two sets.
        """
        fractions = np.asarray(fractions, float)
        if fractions.size == 0 or (fractions <= 0).any() or fractions.sum() > 1 + 1e-9:
            raise ValueError(f"fractions={tuple(fractions)}: expected positive fractions summing to at most 1")
        if self.identities is not None:
            return self._split_people(self.identities, fractions, seed)
        split = None
        if self.partitions is not None:
            split = self._split_partitions(fractions, seed)
        if split is not None:
            achieved = " / ".join(f"{len(part) / len(self):.1%}" for part in split)
            asked = " / ".join(f"{fraction:.0%}" for fraction in fractions)
            warnings.warn(f"{self.source}: no identity file (identity_CelebA.txt), so the split follows the partition "
                          f"file (CelebA's partitions share no person): {achieved} of the images for {asked} asked",
                          IdentitySplitWarning, stacklevel=2)
            return split
        reason = "no partition file either" if self.partitions is None else \
            f"its {len(self)} images lie in fewer partitions than the {fractions.size} sets asked"
        warnings.warn(f"{self.source}: no identity file (identity_CelebA.txt) and {reason}: split by image "
                      f"(seed {seed}), so one person's photos can fall in two sets", IdentitySplitWarning, stacklevel=2)
        order = np.random.default_rng(seed).permutation(len(self))
        ends = np.rint(np.cumsum(fractions) * len(self)).astype(int)
        return [self._subset(np.sort(order[start:end])) for start, end in zip(np.r_[0, ends[:-1]], ends)]

    def _split_people(self, people_of_images, fractions, seed) -> list:
        """Deal whole people (shuffled by seed) into sets of about `fractions` of the images."""
        people, person_of_image, counts = np.unique(people_of_images, return_inverse=True, return_counts=True)
        order = np.random.default_rng(seed).permutation(len(people))
        middles = (np.cumsum(counts[order]) - counts[order] / 2) / len(self)
        split_of_person = np.empty(len(people), int)
        split_of_person[order] = np.searchsorted(np.cumsum(fractions), middles, side="right")
        split_of_image = split_of_person[person_of_image]
        return [self._subset(np.flatnonzero(split_of_image == split)) for split in range(len(fractions))]

    def _split_partitions(self, fractions, seed):
        """Whole partitions to sets (see split_by_identity), or None when some set would get no partition."""
        names, counts = np.unique(self.partitions, return_counts=True)
        targets = np.rint(fractions * len(self)).astype(int)
        best, best_score = None, None
        for assignment in itertools.product(list(range(len(fractions))) + [-1], repeat=len(names)):
            available = np.array([counts[np.equal(assignment, split)].sum() for split in range(len(fractions))])
            if (available == 0).any():
                continue
            score = (np.maximum(targets - available, 0).sum(), available.sum())  # images short, then images drawn on
            if best_score is None or score < best_score:
                best, best_score = assignment, score
        if best is None:
            return None
        rng = np.random.default_rng(seed)
        split = []
        for index, target in enumerate(targets):
            pool = np.flatnonzero(np.isin(self.partitions, names[np.equal(best, index)]))
            chosen = pool if len(pool) <= target else np.sort(rng.choice(pool, max(target, 1), replace=False))
            split.append(self._subset(chosen))
        return split

    def _subset(self, indices) -> "Faces":
        def pick(values):
            return None if values is None else values[indices]

        images = IndexedImages.of(self.images, indices) if _is_file_backed(self.images) else self.images[indices]
        return dataclasses.replace(self, images=images, filenames=[self.filenames[i] for i in indices],
                                   attributes=pick(self.attributes), partitions=pick(self.partitions),
                                   identities=pick(self.identities))


class IndexedImages:
    """Some rows of a memory-mapped image cache, read only when used: a subset of the cache (a split, a partition,
    a selection) costs its indices, not a copy of its images (2.2 GB for CelebA's training set at 64x64).

    Indexing (`images[i]`, `images[a:b]`, `images[index_array]`) reads just those rows; NumPy functions and any
    other ndarray attribute (`astype`, `min`, ...) read the selected rows into memory first.
    """

    def __init__(self, base: np.ndarray, indices):
        self.base = base
        self.indices = np.asarray(indices, np.int64)

    @classmethod
    def of(cls, images, indices) -> "IndexedImages":
        """The rows `indices` of `images` (a memory map, or IndexedImages: the indices compose)."""
        if isinstance(images, IndexedImages):
            return cls(images.base, images.indices[np.asarray(indices, np.int64)])
        return cls(images, indices)

    @property
    def shape(self) -> tuple:
        return (len(self.indices), *self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        chosen = self.indices[key]
        if np.ndim(chosen) == 0:
            return self.base[int(chosen)]
        order = np.argsort(chosen, kind="stable")  # read the file in order, then put the rows back as asked
        rows = self.base[chosen[order]]
        rows[order] = rows.copy()
        return rows

    def __array__(self, dtype=None, copy=None):
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("base", "indices"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)


def default_source() -> Path:
    """$FACEKIT_CELEBA if set, else DATA_DIR/celeba if present, else the synthetic set (written on first use)."""
    if os.environ.get("FACEKIT_CELEBA"):
        return Path(os.environ["FACEKIT_CELEBA"])
    if (DATA_DIR / "celeba").exists():
        return DATA_DIR / "celeba"
    from facekit import synthetic

    return synthetic.write_synthetic_celeba(DATA_DIR / "synthetic", DEFAULT_SYNTHETIC_COUNT, seed=0)


def prepare(source=None, resolution: int = 64, crop: str = DEFAULT_CROP, strict: bool = False, limit=None,
            progress: bool = True, workers=None, cache_dir=None) -> Faces:
    """Crop, resize and cache the faces of `source` (default: `default_source()`); images uint8 [N, R, R, 3].

    limit: use only the first `limit` image files in name order. The result is cached under `cache_dir`
    (default DATA_DIR/cache) as a memory-mapped .npy plus a JSON sidecar, keyed by the source path, its file
    list (names, sizes, times), the label files, crop, resolution and limit; a second call loads it at once.
    workers: processes decoding in parallel (default: the available cores, at most 4).
    """
    if crop not in CROPS:
        raise CelebAError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")
    if resolution < 1:
        raise ValueError(f"resolution={resolution}: expected a size in pixels such as 64 or 128")
    source = Path(source if source is not None else default_source()).expanduser().resolve()
    listing = _list_images(source)
    entries = listing.entries[:limit] if limit is not None else listing.entries
    label_files = [_find_label_file(listing.label_dirs, names) for names in (_ATTRIBUTE_FILES, _PARTITION_FILES,
                                                                             _IDENTITY_FILES)]
    key = {"format": _CACHE_FORMAT, "source": str(source), "images": listing.signature(entries),
           "labels": [_file_stamp(path) for path in label_files], "crop": [crop, CROPS[crop]],
           "resolution": resolution, "limit": limit}
    key = json.loads(json.dumps(key))  # as the JSON sidecar will hold it (tuples become lists)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    stem = Path(cache_dir or DATA_DIR / "cache") / f"{source.stem}-{resolution}px-{crop}-{digest}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(stem.parent):  # one process builds in a cache at a time; the others wait, then load what it built
        cached = _load_cache(stem, key) or _build_cache(stem, key, listing, entries, label_files, crop, resolution,
                                                        strict, progress, workers)
    _check_strict(cached.skipped, strict)
    if cached.skipped and progress:
        print(f"{source}: {skipped_summary(cached.skipped)}", file=sys.stderr)
    return dataclasses.replace(cached, source=source, crop=crop, signature=digest)


def skipped_summary(skipped) -> str:
    """One line: how many images were left out, and why ("skipped 3 images: 2 corrupt image, 1 no row in ...")."""
    reasons = collections.Counter(re.sub(r" \(.*\)$| line \d+", "", reason) for _, reason in skipped)
    return f"skipped {len(skipped)} images: " + ", ".join(f"{count} {reason}" for reason, count in reasons.items())


def to_float(images) -> np.ndarray:
    """uint8 [..., 3] in 0..255 -> float32 in [-1, 1], the range the models work in (floats pass through)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        return images.astype(np.float32)
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1)


def to_uint8(images) -> np.ndarray:
    """float in [-1, 1] (clipped) -> uint8 in 0..255, rounded (uint8 passes through)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint((images.astype(np.float32) + 1) * 127.5), 0, 255).astype(np.uint8)


def batches(images, batch_size: int, seed: int, start_step: int = 0):
    """Infinite tf.data.Dataset of float32 [B, H, W, 3] batches in [-1, 1] from uint8 images [N, H, W, 3].

    The images are read as one endless stream of epochs, each a fresh permutation drawn from (seed, epoch), so
    every image appears once per epoch and the batch at step s is a pure function of (seed, s): starting at
    `start_step` gives exactly the batches an uninterrupted run sees from that step on.
    """
    return batch_dicts(images, batch_size, seed, start_step).map(lambda batch: batch["images"])


def _is_file_backed(images) -> bool:
    """Whether `images` live in a memory-mapped file (so that a subset should not copy them)."""
    return isinstance(images, (IndexedImages, np.memmap))


def batch_dicts(images, batch_size: int, seed: int, start_step: int = 0, labels=None, images_before: int = 0):
    """`batches` as dicts: {"images": float32 [B, H, W, 3]}, plus {"labels": float32 [B, ...]} when `labels`
    (an array [N, ...] aligned with the images: attribute vectors [N, L], or pix2pix's sketches [N, H, W, 1]) is
    given, so that each row rides along with its image.

    images_before: images of the stream of epochs shown before this stream's step 0, so that a trainer whose batch
    size changes (Progressive GAN's) continues, at each new size, the one stream where the last size stopped:
    step s reads the stream's images images_before + s * B to images_before + (s + 1) * B - 1.
    """
    import tensorflow as tf

    count = len(images)
    if count < 1 or batch_size < 1 or seed < 0 or start_step < 0 or images_before < 0:
        raise ValueError(f"batches: need images and batch_size >= 1, seed >= 0, start_step >= 0, images_before >= 0 "
                         f"(got {count} images, batch_size={batch_size}, seed={seed}, start_step={start_step}, "
                         f"images_before={images_before})")
    if labels is not None and len(labels) != count:
        raise ValueError(f"batches: {len(labels)} label rows for {count} images")

    @functools.lru_cache(maxsize=4)
    def permutation(epoch):
        return np.random.default_rng([seed, epoch]).permutation(count)

    def indices(step):
        positions = images_before + int(step) * batch_size + np.arange(batch_size)
        epochs, offsets = np.divmod(positions, count)
        return np.concatenate([permutation(epoch)[offsets[epochs == epoch]] for epoch in np.unique(epochs)])

    def rows(step):
        chosen = indices(step)
        pixels = np.asarray(images[chosen])
        return pixels if labels is None else (pixels, np.take(labels, chosen, axis=0).astype(np.float32))

    def batch(step):
        if labels is None:
            pixels = tf.numpy_function(rows, [step], tf.uint8, stateful=False)
        else:
            pixels, values = tf.numpy_function(rows, [step], (tf.uint8, tf.float32), stateful=False)
        result = {"images": tf.cast(tf.ensure_shape(pixels, (batch_size, *images.shape[1:])), tf.float32) / 127.5 - 1}
        if labels is not None:
            result["labels"] = tf.ensure_shape(values, (batch_size, *np.shape(labels)[1:]))
        return result

    steps = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
    return steps.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class _Listing:
    entries: list  # (filename, path in the folder or member in the zip), sorted by filename
    label_dirs: list
    zip_path: Path | None = None
    problems: list = dataclasses.field(default_factory=list)

    def signature(self, entries) -> str:
        """Digest of names, sizes and times of the files (zip: the archive's size and time, and the names)."""
        digest = hashlib.sha256()
        if self.zip_path:
            digest.update(json.dumps(_file_stamp(self.zip_path)).encode())
            digest.update("\n".join(member for _, member in entries).encode())
        else:
            for _, path in entries:
                stat = os.stat(path)
                digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def _list_images(source: Path) -> _Listing:
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise CelebAError(f"{source}: not a folder or a zip archive")
        return _list_zip(source, [source.parent, source.parent.parent])
    if not source.is_dir():
        raise CelebAError(f"{source}: no such file or folder")
    for folder in (source / "img_align_celeba" / "img_align_celeba", source / "img_align_celeba", source):
        is_regular = _image_names(folder) if folder.is_dir() else {}
        if is_regular:
            label_dirs = [source, source.parent] if folder == source else [source]  # images given directly
            return _listing_of_folder(folder, is_regular, label_dirs)
    for archive in (source / "img_align_celeba.zip", source / "Img" / "img_align_celeba.zip"):
        if archive.is_file():
            return _list_zip(archive, [source])
    raise CelebAError(f"{source}: no CelebA images (expected img_align_celeba/*.jpg, "
                      f"img_align_celeba/img_align_celeba/*.jpg or img_align_celeba.zip)")


def _image_names(folder: Path) -> dict:
    """{name: whether it is a regular file} for the image files of a folder (no stat call for regular files)."""
    with os.scandir(folder) as found:
        return {entry.name: entry.is_file(follow_symlinks=False) for entry in found
                if entry.name.lower().endswith(IMAGE_SUFFIXES)}


def _listing_of_folder(folder: Path, is_regular: dict, label_dirs) -> _Listing:
    """The image files of a folder in name order; one that cannot be opened (a dangling symlink, a symlink loop) is
    a problem. Only the names that are not regular files are looked up (the CelebA sample's 15,931 list in 9 ms).
    """
    listing = _Listing([], label_dirs)
    folder = os.path.join(folder, "")  # ends in the separator: the names are joined by concatenation (3x faster)
    for name in sorted(is_regular):
        path = folder + name
        try:
            if not is_regular[name]:
                os.stat(path)
        except OSError as error:
            kind = "symlink" if os.path.islink(path) else "file"
            listing.problems.append((name, f"unreadable {kind} ({error.strerror})"))
        else:
            listing.entries.append((name, path))
    return listing


def _list_zip(archive: Path, label_dirs) -> _Listing:
    listing = _Listing([], label_dirs, archive)
    with zipfile.ZipFile(archive) as opened:
        for member in opened.namelist():
            path = PurePosixPath(member.replace("\\", "/"))
            if not member.lower().endswith(IMAGE_SUFFIXES) or path.parts[:1] == ("__MACOSX",):
                continue
            if path.is_absolute() or ".." in path.parts or re.match(r"[A-Za-z]:", member):
                listing.problems.append((member, f"zip entry {member!r} points outside the archive's folder"))
            else:
                listing.entries.append((path.name, member))
    listing.entries.sort()
    return listing


def _find_label_file(label_dirs, names):
    for folder in label_dirs:
        for subfolder in ("", "Anno", "Eval"):
            for name in names:
                if (folder / subfolder / name).is_file():
                    return folder / subfolder / name
    return None


def _file_stamp(path):
    if path is None:
        return None
    stat = os.stat(path)
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _read_labels(label_files, filenames, problems) -> dict:
    """Attributes, partitions, identities for `filenames`; a missing or bad row adds (filename, reason)."""
    labels = {"filenames": filenames, "attribute_names": ()}
    wanted = set(filenames)
    for name, path, value_set, dtype in zip(("attributes", "partitions", "identities"), label_files,
                                            ({1, -1}, {0, 1, 2}, None), (np.int8, np.int8, np.int64)):
        labels[name] = None
        if path is None:
            continue
        header = name == "attributes" or path.suffix == ".csv"
        columns, rows, errors = _parse_table(path, wanted, header, value_set, width=None if header else 1)
        if name == "attributes":
            labels["attribute_names"] = columns
        aligned = _align(rows, errors, path, filenames, problems, dtype, len(columns) if name == "attributes" else 1)
        labels[name] = aligned if name == "attributes" else aligned[:, 0]
    return labels


def _parse_table(path: Path, wanted, header: bool, value_set, width=None):
    """(column names, {filename: values}, {filename: reason}) for the `wanted` rows of a .txt or .csv label file."""
    lines = path.read_text(errors="replace").splitlines()
    csv = path.suffix == ".csv"
    first_row, columns = 0, ()
    if header:
        header_index = 0 if csv else 1  # the official .txt starts with a count line, then the names
        if len(lines) <= header_index:
            raise CelebAError(f"{path.name}: no header line of column names")
        columns = tuple(part.strip() for part in lines[header_index].split("," if csv else None))[1 if csv else 0:]
        width, first_row = len(columns), header_index + 1
    rows, errors, widths = {}, {}, collections.Counter()
    for number, line in enumerate(lines[first_row:], start=first_row + 1):
        head = line.split("," if csv else None, 1)  # the file name alone first: most rows may be unwanted
        if not head or head[0].strip() not in wanted:
            continue
        fields = [field.strip() for field in line.split(",")] if csv else line.split()
        filename, values = fields[0], fields[1:]
        widths[len(values)] += 1
        if len(values) != width:
            errors[filename] = f"{path.name} line {number}: expected {width} values, found {len(values)}"
            continue
        try:
            numbers = [int(value) for value in values]
        except ValueError:
            numbers = None
        if numbers is None or (value_set and not set(numbers) <= value_set):
            allowed = ", ".join(map(str, sorted(value_set))) if value_set else "integers"
            errors[filename] = f"{path.name} line {number}: expected values in {allowed}, found {' '.join(values)}"
            continue
        rows[filename] = numbers
    common, count = widths.most_common(1)[0] if widths else (width, 0)
    if common != width and count > sum(widths.values()) / 2:
        names = f"the header names {width} columns" if header else f"expected {width} value"
        raise CelebAError(f"{path}: {names} but {count} of {sum(widths.values())} rows have {common} values")
    return columns, rows, errors


def _align(rows, errors, path, filenames, problems, dtype, width) -> np.ndarray:
    aligned = np.zeros((len(filenames), width), dtype)
    for i, filename in enumerate(filenames):
        if filename in rows:
            aligned[i] = rows[filename]
        else:
            problems.append((filename, errors.get(filename, f"no row in {path.name}")))
    return aligned


def _check_strict(problems, strict: bool) -> None:
    if strict and problems:
        filename, reason = problems[0]
        raise CelebAError(f"{filename}: {reason}")


def _decode_to_npy(path, zip_path, entries, crop_box, resolution, problems, strict, progress, workers) -> None:
    """Decode entries into a uint8 [n, R, R, 3] .npy at `path` holding the good ones; bad ones go to `problems`."""
    from tqdm.auto import tqdm

    tasks = [(zip_path, entries[start:start + _CHUNK], crop_box, resolution)
             for start in range(0, len(entries), _CHUNK)]
    workers = workers or min(len(os.sched_getaffinity(0)), 4)
    faces = np.lib.format.open_memmap(path, "w+", np.uint8, (len(entries), resolution, resolution, 3))
    filled = 0
    pool = None
    if workers > 1 and len(tasks) > 1 and "fork" in multiprocessing.get_all_start_methods():
        # fork: workers run only Pillow and NumPy, and spawn would need a __main__ guard in students' scripts
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                                      initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        results = pool.map(_decode_chunk, tasks) if pool else map(_decode_chunk, tasks)
        with tqdm(total=len(entries), desc=f"preparing {resolution}x{resolution}", unit="image",
                  disable=not progress) as bar:
            for chunk, chunk_problems in results:
                problems.extend(chunk_problems)
                _check_strict(chunk_problems, strict)
                faces[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
                bar.update(len(chunk) + len(chunk_problems))
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if filled == 0:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in problems[:3])
        raise CelebAError(f"no image could be prepared ({len(problems)} skipped{': ' if reasons else ''}{reasons})")
    faces.flush()
    if filled < len(entries):  # some were skipped: keep only the rows filled
        filled_path = f"{path}.filled.npy"
        np.save(filled_path, faces[:filled], allow_pickle=False)
        del faces
        os.replace(filled_path, path)


def _exit_with_parent(parent: int) -> None:
    """In a worker process: exit as soon as `parent` is gone (killed), instead of living on as an orphan."""
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _decode_chunk(task):
    zip_path, entries, crop_box, resolution = task
    faces, problems = [], []
    archive = _open_zip(zip_path, os.path.getmtime(zip_path), os.getpid()) if zip_path else None
    for filename, location in entries:
        try:
            data = _read_member(archive, location) if archive else _read_file(location)
            faces.append(_decode_face(data, crop_box, resolution))
        except Exception as error:  # any failure of one file is that file's problem, reported by name
            problems.append((filename, _describe(error)))
    return np.array(faces, np.uint8).reshape(-1, resolution, resolution, 3), problems


def _read_member(archive: zipfile.ZipFile, member: str) -> bytes:
    """The bytes of a zip member, refused by its declared size and read no further than the limit (a member
    whose declared size lies is cut off there too)."""
    declared = archive.getinfo(member).file_size
    if declared > _MAX_IMAGE_BYTES:
        raise _TooLarge(declared)
    with archive.open(member) as stream:
        data = stream.read(_MAX_IMAGE_BYTES + 1)
    if len(data) > _MAX_IMAGE_BYTES:
        raise _TooLarge(len(data))
    return data


def _read_file(path) -> bytes:
    """The bytes of a file, refused by its size (one open, one fstat, one read)."""
    with open(path, "rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > _MAX_IMAGE_BYTES:
            raise _TooLarge(size)
        return stream.read(size + 1)


@functools.lru_cache(maxsize=2)
def _open_zip(path, modified, process):
    """One open archive per process (a forked worker must not share its parent's file position)."""
    return zipfile.ZipFile(path)


def _decode_face(data: bytes, crop_box, resolution: int) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 [R, R, 3]: crop_box (on the 178x218 frame) scaled to the image, Lanczos resize."""
    if not data:
        raise _EmptyFile()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        box = _box_for_frame(crop_box, width, height)
        factor = resolution / (box[2] - box[0])
        drafted = image.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor))) if factor < 1 else None
        scale = drafted[1][2] / width if drafted else 1.0  # draft's box: the original frame in decoded pixels
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        face = rgb.resize((resolution, resolution), Image.LANCZOS, box=tuple(value * scale for value in box))
    return np.asarray(face)


def _box_for_frame(crop_box, width: int, height: int) -> tuple:
    """crop_box on the 178x218 frame, moved to the same relative place on a width x height frame."""
    if (width, height) == FRAME:
        return crop_box
    left, top, right, bottom = crop_box
    side = (right - left) * min(width / FRAME[0], height / FRAME[1])
    centre_x = (left + right) / 2 * width / FRAME[0]
    centre_y = (top + bottom) / 2 * height / FRAME[1]
    left = min(max(centre_x - side / 2, 0), width - side)
    top = min(max(centre_y - side / 2, 0), height - side)
    return left, top, left + side, top + side


class _EmptyFile(Exception):
    pass


class _TooLarge(Exception):
    pass


def _describe(error: Exception) -> str:
    if isinstance(error, _EmptyFile):
        return "empty file"
    if isinstance(error, _TooLarge):
        return f"too large for a face image ({error.args[0]} bytes, more than {_MAX_IMAGE_BYTES})"
    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(error, OSError) and "truncated" in str(error):
        return f"truncated image ({error})"
    return f"corrupt image ({type(error).__name__}: {error})"


def _build_cache(stem, key, listing, entries, label_files, crop, resolution, strict, progress, workers) -> Faces:
    """Decode `entries` into the cache entry `stem` (removing the temporary files of a prepare that was killed)."""
    for suffix in (".npy", ".labels.npz", ".json"):
        remove_abandoned_temporaries(_cache_file(stem, suffix))
    problems = list(listing.problems)
    labels = _read_labels(label_files, [filename for filename, _ in entries], problems)
    _check_strict(problems, strict)
    refused = {filename for filename, _ in problems}
    entries = [entry for entry in entries if entry[0] not in refused]
    write_atomically(_cache_file(stem, ".npy"), lambda path: _decode_to_npy(
        path, listing.zip_path, entries, CROPS[crop], resolution, problems, strict, progress, workers))
    failed = {filename for filename, _ in problems}
    kept = [filename for filename, _ in entries if filename not in failed]
    row_of = {filename: row for row, filename in enumerate(labels["filenames"])}
    rows = np.array([row_of[filename] for filename in kept], int)
    _write_cache_labels(stem, key, kept, labels, rows, problems)
    return _load_cache(stem, key)


def _load_cache(stem: Path, key: dict) -> Faces | None:
    """The cached Faces for `key`, or None when there is none (or it does not match)."""
    try:
        meta = json.loads(_cache_file(stem, ".json").read_text())
        if meta["key"] != key:
            return None
        images = np.load(_cache_file(stem, ".npy"), mmap_mode="r", allow_pickle=False)
        with np.load(_cache_file(stem, ".labels.npz"), allow_pickle=False) as stored:
            labels = {name: stored[name] if name in stored else None
                      for name in ("attributes", "partitions", "identities")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, truncated or empty: rebuilt
        return None
    if len(images) != len(meta["filenames"]):
        return None
    return Faces(images, meta["filenames"], tuple(meta["attribute_names"]), labels["attributes"],
                 labels["partitions"], labels["identities"], [tuple(item) for item in meta["skipped"]])


def _write_cache_labels(stem: Path, key: dict, kept, labels, rows, problems) -> None:
    """Write the labels of the kept images (.labels.npz), then the JSON sidecar that marks the entry complete."""
    arrays = {name: labels[name][rows] for name in ("attributes", "partitions", "identities")
              if labels[name] is not None}
    meta = {"key": key, "filenames": kept, "attribute_names": list(labels["attribute_names"]),
            "skipped": [list(item) for item in problems]}
    write_atomically(_cache_file(stem, ".labels.npz"), lambda path: np.savez(path, **arrays))
    write_text_atomically(_cache_file(stem, ".json"), json.dumps(meta))


def _cache_file(stem: Path, suffix: str) -> Path:
    return stem.parent / (stem.name + suffix)
