"""Faces in images the way the face_recognition library finds them, with dlib directly.

HOG frontal face detector with one upsampling step, dlib's 5-point landmarks and its 128-d face-embedding ResNet
(model files from the face-recognition-models package), and the published detection table: out of N generated
images, how many have no detectable face, and how many detected faces are within 0.6 of a training face.

That second count does not measure memorisation: at 64x64 most real people the model never saw are within 0.6 of
somebody, the more so the more training faces are searched. `memorisation` compares each sample's distance to its
nearest training face with the same distance for real people the model never saw: a sample nearer a training face
than all but MEMORISED_QUANTILE of those unseen people is counted as memorised.
"""

import concurrent.futures
import dataclasses
import functools
import importlib.util
import multiprocessing
import os
from pathlib import Path

import numpy as np

from facekit import data, metrics

UPSAMPLE = 1  # face_recognition's default number_of_times_to_upsample
DETECTION_SIZE = 64  # smaller images are enlarged to this before detection: the HOG detector finds nothing at 32x32
MATCH_TOLERANCE = 0.6  # face_recognition's default tolerance for "same person"
EMBEDDING_SIZE = 128
MEMORISED_QUANTILE = 0.01  # memorised: nearer a training face than 99 in 100 unseen real people are
MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}


class FaceModelsMissing(RuntimeError):
    """dlib or the face-recognition-models files are not installed."""


@dataclasses.dataclass(frozen=True)
class DetectionReport:
    """The published table's row for one image set."""

    images: int  # images examined
    no_face: int  # images in which no face was detected
    identified: int  # images whose face is within the tolerance of some training face
    tolerance: float = MATCH_TOLERANCE

    @property
    def detected(self) -> int:
        return self.images - self.no_face

    def per_thousand(self) -> dict[str, float]:
        """The two counts scaled to "out of 1,000" as the published table gives them."""
        scale = 1000 / max(self.images, 1)
        return {"no_face_per_1000": self.no_face * scale, "identified_per_1000": self.identified * scale}


def detect_faces(images, upsample: int = UPSAMPLE) -> list[np.ndarray]:
    """Face boxes in each image of uint8 [N, H, W, 3]: one int [F, 4] array (left, top, right, bottom) per image."""
    detector = _load_models()["detector"]
    boxes = []
    for image in data.to_uint8(images):
        found = detector(np.ascontiguousarray(image), upsample)
        corners = [[box.left(), box.top(), box.right(), box.bottom()] for box in found]
        boxes.append(np.array(corners, int).reshape(-1, 4))
    return boxes


def enlarged(images, size: int = DETECTION_SIZE) -> np.ndarray:
    """uint8 images [N, R, R, 3] enlarged to size x size (Lanczos) when smaller, unchanged otherwise."""
    from PIL import Image

    images = data.to_uint8(images)
    if images.shape[1] >= size:
        return images
    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS)) for image in images])


def face_embeddings(images, workers: int | None = None, upsample: int = UPSAMPLE, show_progress: bool = False,
                    chunk_size: int = 50) -> np.ndarray:
    """128-d dlib embedding of the largest detected face of each image: float32 [N, 128], NaN rows where none is found.

    images: uint8 [N, H, W, 3] (or float in [-1, 1]), enlarged to DETECTION_SIZE first when smaller (at 32x32 the
    detector finds no face; enlarged, it finds most). About 80 ms per face on one CPU core; `workers` forked
    processes share the work (default: the available cores, at most 4; 1, or a system without fork, runs in this
    process). Same images, same numbers.
    """
    images = data.to_uint8(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"face_embeddings: expected images [N, H, W, 3], got shape {images.shape}")
    images = enlarged(images)
    chunks = [images[start : start + chunk_size] for start in range(0, len(images), chunk_size)]
    workers = min(workers or _available_cores(), 4, max(len(chunks), 1))
    _load_models()  # fail here with the clear message; forked workers inherit the loaded models
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        results = map(_embed_chunk_with_upsample, [(chunk, upsample) for chunk in chunks])
        return _concatenate(_with_progress(results, len(chunks), show_progress))
    # fork, not spawn: workers run only dlib, and spawn would need a __main__ guard in every student's script
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        results = pool.map(_embed_chunk_with_upsample, [(chunk, upsample) for chunk in chunks])
        return _concatenate(_with_progress(results, len(chunks), show_progress))


def has_face(embeddings) -> np.ndarray:
    """bool [N]: which rows of face_embeddings(...) hold a face (the others are NaN)."""
    return ~np.isnan(np.asarray(embeddings)).any(axis=1)


def identify(embeddings, training_embeddings, tolerance: float = MATCH_TOLERANCE):
    """Match faces against training faces: (identified bool [N], nearest training row int [N], distance float [N]).

    embeddings [N, 128] and training_embeddings [M, 128] may hold NaN rows (no face): those never match and get
    index -1 and distance inf. A face is identified when its nearest training face is closer than `tolerance`.
    """
    embeddings, training_embeddings = np.asarray(embeddings), np.asarray(training_embeddings)
    nearest = np.full(len(embeddings), -1)
    distance = np.full(len(embeddings), np.inf, np.float32)
    queries, references = has_face(embeddings), np.flatnonzero(has_face(training_embeddings))
    if queries.any() and len(references):
        index, found_distance = metrics.nearest_neighbours(embeddings[queries], training_embeddings[references], k=1)
        nearest[queries], distance[queries] = references[index[:, 0]], found_distance[:, 0]
    return distance < tolerance, nearest, distance


def same_person_share(outputs, truth, tolerance: float = MATCH_TOLERANCE) -> tuple[float, int]:
    """(share, pairs): among the pairs (outputs[i], truth[i]) in which dlib finds a face in both, the share whose
    embeddings are closer than `tolerance` (same person), NaN when there is no such pair; and how many pairs those are.

    outputs, truth: images uint8 [N, H, W, 3] (or float in [-1, 1]), embedded with face_embeddings, or their
    face_embeddings [N, 128] (NaN rows: no face). Two photos of one real person at the same resolution give the
    share that a model's outputs can be held to.
    """
    outputs, truth = _embedded(outputs, "outputs"), _embedded(truth, "truth")
    if outputs.shape != truth.shape:
        raise ValueError(f"same_person_share: outputs and truth hold {len(outputs)} and {len(truth)} faces; expected "
                         f"one of each per pair")
    pairs = has_face(outputs) & has_face(truth)
    if not pairs.any():
        return np.nan, 0
    distances = np.linalg.norm(outputs[pairs] - truth[pairs], axis=1)
    return float((distances < tolerance).mean()), int(pairs.sum())


def detection_report(embeddings, training_embeddings, tolerance: float = MATCH_TOLERANCE) -> DetectionReport:
    """The published table's counts for one set, from face_embeddings(...) of it and of the training images."""
    identified, _, _ = identify(embeddings, training_embeddings, tolerance)
    return DetectionReport(images=len(embeddings), no_face=int((~has_face(embeddings)).sum()),
                           identified=int(identified.sum()), tolerance=tolerance)


@dataclasses.dataclass(frozen=True)
class MemorisationReport:
    """How many images have a face nearer a training face than nearly every unseen real person's face is."""

    images: int  # images examined
    memorised: int  # images whose face's nearest training face is nearer than `threshold`
    threshold: float  # the MEMORISED_QUANTILE quantile of the unseen real faces' nearest-training distances
    training_faces: int  # training faces searched
    unseen_faces: int  # unseen real faces the threshold was measured on


def memorisation(embeddings, training_embeddings, unseen_embeddings,
                 quantile: float = MEMORISED_QUANTILE) -> MemorisationReport:
    """Count images (face_embeddings rows [N, 128]) whose face is nearer a training face than all but `quantile`
    of the unseen real faces ([U, 128], people the model never saw) are; NaN rows (no face) never count.

    Unseen real faces count as memorised at about the rate `quantile`; a model that copies training faces scores
    far above it. Search every face the model trained on: a copy of a face left out of training_embeddings is missed.
    """
    _, _, unseen_distance = identify(unseen_embeddings, training_embeddings)
    unseen_distance = unseen_distance[np.isfinite(unseen_distance)]
    if not len(unseen_distance):
        raise ValueError("memorisation: no face found among the unseen real faces (or none among the training faces)")
    threshold = float(np.quantile(unseen_distance, quantile))
    _, _, distance = identify(embeddings, training_embeddings)
    return MemorisationReport(images=len(embeddings), memorised=int((distance < threshold).sum()),
                              threshold=threshold, training_faces=int(has_face(training_embeddings).sum()),
                              unseen_faces=len(unseen_distance))


def model_paths() -> dict[str, Path]:
    """Paths of dlib's landmark and embedding model files inside the installed face-recognition-models package."""
    # find_spec, not import: the package's __init__ imports pkg_resources, which current setuptools no longer has.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing("the face-recognition-models package is not installed; it holds dlib's face models: "
                                "pip install face-recognition-models")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    paths = {name: folder / filename for name, filename in MODEL_FILES.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FaceModelsMissing(f"dlib model files missing: {', '.join(missing)}; reinstall face-recognition-models")
    return paths


@functools.cache
def _load_models() -> dict:
    """dlib's detector, landmark and embedding models, loaded once per process (forked workers inherit them)."""
    try:
        import dlib
    except ImportError as error:
        raise FaceModelsMissing(f"dlib is not installed ({error}): pip install dlib-bin") from error
    paths = model_paths()
    return {"detector": dlib.get_frontal_face_detector(),
            "landmarks": dlib.shape_predictor(str(paths["landmarks"])),
            "embedding": dlib.face_recognition_model_v1(str(paths["embedding"]))}


def _embed_chunk_with_upsample(arguments) -> np.ndarray:
    images, upsample = arguments
    models = _load_models()
    embeddings = np.full((len(images), EMBEDDING_SIZE), np.nan, np.float32)
    for index, image in enumerate(images):
        image = np.ascontiguousarray(image)
        found = models["detector"](image, upsample)
        if len(found):
            largest = max(found, key=lambda box: box.area())
            landmarks = models["landmarks"](image, largest)
            embeddings[index] = np.asarray(models["embedding"].compute_face_descriptor(image, landmarks), np.float32)
    return embeddings


def _embedded(images_or_embeddings, name: str) -> np.ndarray:
    """float64 [N, 128] embeddings: given as such, or computed from images [N, H, W, 3]."""
    values = np.asarray(images_or_embeddings)
    if values.ndim == 4:
        return face_embeddings(values).astype(np.float64)
    if values.ndim == 2 and values.shape[1] == EMBEDDING_SIZE:
        return values.astype(np.float64)
    raise ValueError(f"same_person_share: {name} should be images [N, H, W, 3] or face embeddings [N, "
                     f"{EMBEDDING_SIZE}], got shape {list(values.shape)}")


def _concatenate(results) -> np.ndarray:
    results = list(results)
    return np.concatenate(results) if results else np.zeros((0, EMBEDDING_SIZE), np.float32)


def _with_progress(results, total: int, show: bool):
    if not show:
        return results
    from tqdm.auto import tqdm

    return tqdm(results, total=total, desc="faces", unit="chunk")


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
