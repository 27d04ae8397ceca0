"""The two-dimensional toy on which the GAN is first taught (lessons 03 and 05): a ring of 8 Gaussians, small
MLPs for the generator and the critic, the two standard measures of a 2-D GAN's samples, and their pictures.

The ring is Metz et al.'s (2017, "Unrolled Generative Adversarial Networks"): 8 equally likely Gaussians whose
means are evenly spaced on a circle of radius 2, here of standard deviation 0.05 (theirs is 0.02; at 0.05 the
small networks below reach the modes within seconds, and the modes stay far apart: neighbours are 1.53 away).

The measures follow Srivastava et al. (2017, "VEEGAN") and Lin et al. (2018, "PacGAN"): a sample is of *high
quality* when it lies within three standard deviations of its nearest mode, and a mode is *covered* when at least
a fifth of its fair share of the samples (count / 8) lands there with high quality (PacGAN's 20 of the 100 a
perfect generator would put there). Without the distance limit the same count gives the modes *reached*: how
evenly the samples spread around the ring, however imprecisely.
"""

import keras
import numpy as np

from facekit import layers

MODES = 8
RADIUS = 2.0
STD = 0.05
QUALITY_STDS = 3.0  # a high-quality sample lies within this many standard deviations of a mode
COVERED_SHARE = 0.2  # a covered mode holds at least this fraction of its fair share of the samples
EXTENT = 3.0  # pictures show the square [-EXTENT, EXTENT]^2


def ring_means() -> np.ndarray:
    """The 8 means, float32 [8, 2]: (RADIUS cos(2 pi k / 8), RADIUS sin(2 pi k / 8)) for k = 0..7."""
    angles = 2 * np.pi * np.arange(MODES) / MODES
    return (RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def sample_ring(count: int, seed) -> np.ndarray:
    """`count` points of the ring, float32 [count, 2], a pure function of `seed` (an int or a tuple such as
    (seed, step)): a mode drawn uniformly, then its mean plus Gaussian noise of standard deviation STD."""
    generator = np.random.default_rng(seed)
    modes = generator.integers(0, MODES, size=count)
    return (ring_means()[modes] + STD * generator.standard_normal((count, 2))).astype(np.float32)


def ring_density(points) -> np.ndarray:
    """The ring's probability density p_data at each point, float64 [N] from points float [N, 2]."""
    squared = np.sum((np.asarray(points, np.float64)[:, None, :] - ring_means()[None]) ** 2, axis=-1)  # [N, 8]
    return np.mean(np.exp(-squared / (2 * STD ** 2)), axis=1) / (2 * np.pi * STD ** 2)


def mode_counts(samples, within: float | None = QUALITY_STDS) -> np.ndarray:
    """How many of the samples lie within `within` standard deviations of each mode, their nearest, int64 [8],
    from samples float [N, 2]; within=None counts every sample at its nearest mode, however far."""
    distances = np.linalg.norm(np.asarray(samples, np.float64)[:, None, :] - ring_means()[None], axis=-1)
    nearest = np.argmin(distances, axis=1)
    if within is not None:
        nearest = nearest[distances[np.arange(len(nearest)), nearest] <= within * STD]
    return np.bincount(nearest, minlength=MODES)


def modes_covered(samples, within: float | None = QUALITY_STDS) -> int:
    """The number of modes (0 to 8) holding at least COVERED_SHARE * N / 8 of the N samples within `within`
    standard deviations (the standard measure: 3); within=None gives the modes *reached*, precise or not."""
    return int(np.sum(mode_counts(samples, within) >= COVERED_SHARE * len(samples) / MODES))


def high_quality_share(samples) -> float:
    """The share (0 to 1) of the samples within QUALITY_STDS standard deviations of their nearest mode."""
    return float(mode_counts(samples).sum() / len(samples))


def build_generator(noise_dim: int, width: int = 64, depth: int = 2) -> keras.Sequential:
    """MLP from noise [B, noise_dim] to points [B, 2]: `depth` Dense(width) + ReLU layers, then a linear Dense(2)."""
    hidden = [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
    return keras.Sequential([keras.Input((noise_dim,)), *hidden, keras.layers.Dense(2)], name="toy_generator")


def build_critic(width: int = 64, depth: int = 2, spectral: bool = False) -> keras.Sequential:
    """MLP from points [B, 2] to one unbounded score [B, 1] (a logit for the cross-entropy losses): `depth`
    Dense(width) + leaky ReLU (0.2) layers, then Dense(1); with `spectral`, facekit.layers.SpectralDense
    throughout, so that the whole critic is 1-Lipschitz."""
    dense = layers.SpectralDense if spectral else keras.layers.Dense
    hidden = [layer for _ in range(depth) for layer in (dense(width), keras.layers.LeakyReLU(0.2))]
    return keras.Sequential([keras.Input((2,)), *hidden, dense(1)], name="toy_critic")


def grid_points(resolution: int = 120) -> np.ndarray:
    """The centres of a resolution x resolution grid over [-EXTENT, EXTENT]^2, row by row from the top, float32
    [resolution^2, 2]: the points at which `show_field` expects its values."""
    ticks = np.linspace(-EXTENT, EXTENT, resolution, dtype=np.float32)
    x, y = np.meshgrid(ticks, ticks[::-1])
    return np.stack([x.ravel(), y.ravel()], axis=1)


def show_field(axes, values, title: str = "", vmin: float = 0.0, vmax: float = 1.0, colorbar: bool = True):
    """Draw values at `grid_points(resolution)` (float [resolution^2]) as a colour map on matplotlib `axes`,
    with the ring's means marked; returns the image."""
    resolution = int(round(np.sqrt(len(values))))
    image = axes.imshow(np.reshape(values, (resolution, resolution)), extent=(-EXTENT, EXTENT, -EXTENT, EXTENT),
                        vmin=vmin, vmax=vmax, cmap="RdBu_r")
    means = ring_means()
    axes.scatter(means[:, 0], means[:, 1], marker="x", color="black", s=20)
    axes.set(title=title, aspect="equal")
    if colorbar:
        axes.figure.colorbar(image, ax=axes, shrink=0.8)
    return image


def show_samples(axes, samples, title: str = "", color: str = "tab:blue"):
    """Scatter samples float [N, 2] on matplotlib `axes` over [-EXTENT, EXTENT]^2, with the ring's means marked
    and the two measures in the title."""
    samples = np.asarray(samples)
    means = ring_means()
    axes.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.3, color=color)
    axes.scatter(means[:, 0], means[:, 1], marker="x", color="black", s=20)
    measures = f"{modes_covered(samples)}/{MODES} modes, {high_quality_share(samples):.0%} high quality"
    axes.set(title=f"{title}\n{measures}" if title else measures, xlim=(-EXTENT, EXTENT), ylim=(-EXTENT, EXTENT),
             aspect="equal")
