"""Walks and edits in a generator's latent space: interpolation, attribute directions, arithmetic, and their effects.

Why slerp for Gaussian latents. A latent z ~ N(0, I_D) has a norm close to sqrt(D) (the chi distribution with D
degrees of freedom has mean about sqrt(D - 1/2) and standard deviation about 0.71 whatever D is), so the generator
was trained on a thin shell. Two independent samples are nearly orthogonal, and the midpoint of the straight line
between them, (a + b) / 2 ~ N(0, I_D / 2), has a norm close to sqrt(D / 2): for D = 512, 16.0 instead of 22.6,
more than 9 standard deviations of the norm inside the shell, where the generator has never seen a latent. Linear
interpolation (lerp) therefore shows washed-out, averaged faces in the middle of a strip. Spherical interpolation
(slerp, Shoemake 1985; White 2016, "Sampling Generative Networks") follows the great circle instead, keeping the
norm of unit vectors exactly and that of two Gaussian samples close to sqrt(D) all the way.

Attribute directions follow Radford et al. 2016 (vector arithmetic on the means of a few exemplars per group) and
Shen et al. 2020, InterFaceGAN (the unit normal of a linear boundary separating latents with and without an
attribute, and the projection that removes a correlated attribute's direction). Editing moves latents along a unit
direction; amounts are distances in latent space, which for N(0, I) latents are standard deviations of the latent
distribution along that direction (every unit projection of N(0, I) is N(0, 1)), InterFaceGAN's usual range being
-3 to 3.
"""

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from facekit import data, faces
from facekit.files import write_atomically

STRIP_SECONDS_PER_FRAME = 0.1
STRIP_END_SECONDS = 1.0  # each end of a there-and-back strip GIF is held this long
PARALLEL_SINE = 1e-6  # slerp falls back to lerp when the sine of the angle between its ends is below this


def lerp(a, b, steps: int) -> np.ndarray:
    """Linear interpolation from a to b (float [D] each): float32 [steps, D], first row a and last row b exactly."""
    a, b, fractions = _ends(a, b, steps)
    return ((1 - fractions) * a + fractions * b).astype(np.float32)


def slerp(a, b, steps: int) -> np.ndarray:
    """Spherical interpolation from a to b (float [D] each) along their great circle: float32 [steps, D], ends exact.

    sin((1 - t) angle) / sin(angle) * a + sin(t angle) / sin(angle) * b; for (anti)parallel or zero vectors, whose
    great circle is undefined, this is lerp.
    """
    a, b, fractions = _ends(a, b, steps)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    angle = np.arccos(np.clip(a @ b / norms, -1, 1)) if norms > 0 else 0.0
    if np.sin(angle) < PARALLEL_SINE:
        return lerp(a, b, steps)
    return ((np.sin((1 - fractions) * angle) * a + np.sin(fractions * angle) * b) / np.sin(angle)).astype(np.float32)


def interpolation_strip(generate, a, b, steps: int, method: str = "slerp") -> np.ndarray:
    """The faces along the path from latent a to latent b (float [D] each): uint8 [steps, H, W, 3].

    generate: latents float32 [N, D] -> images float [N, H, W, 3] in [-1, 1], e.g. a GAN model's `generate` or a
    VAE's `sample`. method: "slerp" or "lerp".
    """
    paths = {"slerp": slerp, "lerp": lerp}
    if method not in paths:
        raise ValueError(f"interpolation_strip: method must be 'slerp' or 'lerp', got {method!r}")
    return data.to_uint8(generate(paths[method](a, b, steps)))


def save_strip_gif(frames, path, seconds_per_frame: float = STRIP_SECONDS_PER_FRAME,
                   end_seconds: float = STRIP_END_SECONDS) -> Path:
    """Write a looping there-and-back GIF of a strip uint8 [steps, H, W, 3], both ends held; same frames, same bytes."""
    frames = data.to_uint8(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"save_strip_gif {path}: expected at least 2 frames [steps, H, W, 3], got {frames.shape}")
    there_and_back = np.concatenate([frames, frames[-2:0:-1]])  # a ... b ... (back to just after a, then loop)
    durations = np.full(len(there_and_back), seconds_per_frame * 1000)
    durations[[0, len(frames) - 1]] = end_seconds * 1000
    path = Path(path)
    return write_atomically(path, lambda temporary: iio.imwrite(
        temporary, there_and_back, extension=".gif", duration=durations.tolist(), loop=0, optimize=True))


def fitting_labels(probabilities, smallest_fraction: float = 0.1) -> np.ndarray:
    """bool [N]: which latents count as "with" the attribute when fitting a direction, from a classifier's
    probabilities [N]: those above 0.5, each side widened by rank to at least `smallest_fraction` of the N (the
    likeliest join "with", the least likely "without"), as InterFaceGAN ranks samples by score, so that an
    attribute the generator rarely draws (glasses) still has enough samples on its side to fit."""
    probabilities = np.asarray(probabilities, np.float64)
    has = probabilities > 0.5
    order = np.argsort(probabilities, kind="stable")
    smallest = int(np.ceil(smallest_fraction * len(probabilities)))
    if has.sum() < smallest:
        has[order[len(order) - smallest :]] = True
    if (~has).sum() < smallest:
        has[order[:smallest]] = False
    return has


def mean_difference_direction(latents, has) -> np.ndarray:
    """Unit float32 [D]: mean of the latents [N, D] with the attribute (has: bool [N]) minus the mean of the others."""
    latents, has = _labelled(latents, has, "mean_difference_direction")
    return _unit(latents[has].mean(axis=0) - latents[~has].mean(axis=0), "mean_difference_direction")


def linear_direction(latents, has, regularization: float = 1.0) -> np.ndarray:
    """Unit float32 [D]: the normal of a logistic-regression boundary between latents [N, D] with and without the
    attribute (has: bool [N]), pointing towards "with" (InterFaceGAN's direction, which fits a linear SVM).

    The classes are weighted to count equally (rare attributes such as Eyeglasses are ~6 % of CelebA);
    regularization is scikit-learn's 1 / C. The solver (L-BFGS) is deterministic: no seed is needed.
    """
    from sklearn.linear_model import LogisticRegression

    latents, has = _labelled(latents, has, "linear_direction")
    classifier = LogisticRegression(C=1 / regularization, class_weight="balanced", max_iter=1000)
    classifier.fit(latents, has)
    return _unit(classifier.coef_[0], "linear_direction")


def remove_direction(direction, other) -> np.ndarray:
    """Unit float32 [D]: direction [D] with its components along other ([D], or [M, D] for several) projected out.

    InterFaceGAN's conditional edit: e.g. Eyeglasses without Male, so that moving along it no longer changes the
    part of gender that the Eyeglasses direction shares (their cosine).
    """
    direction = np.asarray(direction, np.float64)
    basis, _ = np.linalg.qr(np.atleast_2d(np.asarray(other, np.float64)).T)  # orthonormal columns spanning other
    return _unit(direction - basis @ (basis.T @ direction), "remove_direction (direction lies in the span of other)")


def cosine(a, b) -> float:
    """Cosine of the angle between two vectors float [D]: 1 same direction, 0 orthogonal, -1 opposite."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def attribute_arithmetic(start, minus, plus) -> np.ndarray:
    """mean(start) - mean(minus) + mean(plus) of three groups of latents [N_i, D] (or single [D]): float32 [D].

    Radford et al.'s "man with glasses - man without glasses + woman without glasses = woman with glasses", each
    group averaged over a few exemplars (they used 3), since single samples gave unstable results.
    """
    groups = [np.atleast_2d(np.asarray(group, np.float64)) for group in (start, minus, plus)]
    if len({group.shape[1] for group in groups}) != 1 or min(len(group) for group in groups) == 0:
        raise ValueError(f"attribute_arithmetic: expected three non-empty [N_i, D] groups with one D, got shapes "
                         f"{[group.shape for group in groups]}")
    means = [group.mean(axis=0) for group in groups]
    return (means[0] - means[1] + means[2]).astype(np.float32)


def edit(latents, direction, amounts) -> np.ndarray:
    """latents [N, D] moved along the unit direction (direction [D] is normalised) by each amount [K]: float32
    [N, K, D]; amounts are latent-space distances (for N(0, I) latents, standard deviations along the direction)."""
    latents = np.atleast_2d(np.asarray(latents, np.float32))
    unit = _unit(direction, "edit")
    amounts = np.asarray(amounts, np.float32).reshape(-1)
    return latents[:, None, :] + amounts[None, :, None] * unit


def edit_grid(generate, latents, direction, amounts) -> np.ndarray:
    """The faces of edit(latents [N, D], direction, amounts [K]) as uint8 [N*K, H, W, 3], face by face, each in
    amount order: rows are faces and columns amounts in progress.image_grid(..., columns=K)."""
    edited = edit(latents, direction, amounts)
    return data.to_uint8(generate(edited.reshape(-1, edited.shape[-1])))


def edit_effects(before_probabilities, after_probabilities, names, target, before_embeddings=None,
                 after_embeddings=None, increase: bool = True) -> dict:
    """What an edit did, from an attribute classifier's probabilities [N, A] (names: A attribute names) of the
    faces before and after, and optionally their face embeddings [N, 128] (NaN rows: no face detected).

    increase: whether the edit adds the target attribute (True) or removes it (False, e.g. aging along -Young).
    Returns a dict:
      target_flip_rate: among the faces on the "before" side of 0.5 (probability < 0.5 when increasing, >= 0.5
        when decreasing), the fraction that end on the other side; NaN when there are none (flip_candidates).
      flip_candidates: that number of faces.
      target_mean_change: mean over faces of after - before of the target's probability (signed).
      other_mean_abs_change: mean over the other attributes of the mean over faces of |after - before|.
      other_mean_changes: {name: mean over faces of after - before} for each other attribute.
      largest_other: (name, mean change) of the other attribute whose mean change is largest in absolute value:
        the attribute most entangled with the direction.
      same_person_rate: among the faces detected both before and after, the fraction whose embeddings are closer
        than faces.MATCH_TOLERANCE (0.6, face_recognition's "same person"); NaN without embeddings or pairs.
      detected_pairs: that number of faces.
    """
    before = np.asarray(before_probabilities, np.float64)
    after = np.asarray(after_probabilities, np.float64)
    names = list(names)
    if before.ndim != 2 or before.shape != after.shape or before.shape[1] != len(names):
        raise ValueError(f"edit_effects: expected before and after probabilities [N, A] with A = {len(names)} names, "
                         f"got shapes {before.shape} and {after.shape}")
    if target not in names:
        raise ValueError(f"edit_effects: target {target!r} is not among the names {names}")
    column = names.index(target)
    was_on = before[:, column] >= 0.5
    is_on = after[:, column] >= 0.5
    candidates = ~was_on if increase else was_on
    changes = after - before
    others = [index for index in range(len(names)) if index != column]
    other_mean_changes = {names[index]: float(changes[:, index].mean()) for index in others}
    largest = max(other_mean_changes, key=lambda name: abs(other_mean_changes[name])) if others else None
    same_person_rate, detected_pairs = _same_person(before_embeddings, after_embeddings, len(before))
    return {
        "target_flip_rate": float((is_on[candidates] != was_on[candidates]).mean()) if candidates.any() else np.nan,
        "flip_candidates": int(candidates.sum()),
        "target_mean_change": float(changes[:, column].mean()),
        "other_mean_abs_change": float(np.abs(changes[:, others]).mean()) if others else np.nan,
        "other_mean_changes": other_mean_changes,
        "largest_other": (largest, other_mean_changes[largest]) if others else (None, np.nan),
        "same_person_rate": same_person_rate,
        "detected_pairs": detected_pairs,
    }


def encoder_means(vae_model, images, batch_size: int = 256) -> np.ndarray:
    """The VAE encoder's mean of q(z|x) for each face of images uint8 (or float [-1, 1]) [N, R, R, 3]: float32 [N, D].

    vae_model: a facekit.models.vae.VAE (anything with an `encoder` returning (mean, log_variance)).
    """
    return np.concatenate([np.asarray(vae_model.encoder(data.to_float(images[start : start + batch_size]),
                                                        training=False)[0], np.float32)
                           for start in range(0, len(images), batch_size)])


def _ends(a, b, steps: int):
    """a and b as float64 [D] with one shape, and the fractions float64 [steps, 1] from 0 to 1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"interpolation: expected two latent vectors [D] of one size, got {a.shape} and {b.shape}")
    if steps < 2:
        raise ValueError(f"interpolation: steps must be at least 2 (both ends), got {steps}")
    return a, b, np.linspace(0, 1, steps)[:, None]


def _labelled(latents, has, caller: str):
    """latents float64 [N, D] and has bool [N], checked to hold both classes."""
    latents, has = np.asarray(latents, np.float64), np.asarray(has, bool)
    if latents.ndim != 2 or has.shape != (len(latents),):
        raise ValueError(f"{caller}: expected latents [N, D] and has [N], got {latents.shape} and {has.shape}")
    if has.all() or not has.any():
        raise ValueError(f"{caller}: needs latents both with and without the attribute, got {int(has.sum())} of "
                         f"{len(has)} with it")
    return latents, has


def _unit(vector, caller: str) -> np.ndarray:
    """vector / its norm as float32; an error for a zero vector."""
    vector = np.asarray(vector, np.float64)
    norm = np.linalg.norm(vector)
    if not norm > 1e-12:
        raise ValueError(f"{caller}: the direction has zero length")
    return (vector / norm).astype(np.float32)


def _same_person(before_embeddings, after_embeddings, count: int):
    """faces.same_person_share of the embeddings [count, 128] before and after an edit; (NaN, 0) without them."""
    if before_embeddings is None and after_embeddings is None:
        return np.nan, 0
    if before_embeddings is None or after_embeddings is None:
        raise ValueError("edit_effects: give both before_embeddings and after_embeddings, or neither")
    before, after = np.asarray(before_embeddings, np.float64), np.asarray(after_embeddings, np.float64)
    if before.shape != after.shape or before.shape != (count, faces.EMBEDDING_SIZE):
        raise ValueError(f"edit_effects: expected embeddings [{count}, 128] before and after, got shapes "
                         f"{before.shape} and {after.shape}")
    return faces.same_person_share(before, after)
