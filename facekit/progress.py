"""Teaching visuals: image grids, step-labelled training GIFs, loss curves, inline display."""

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facekit.data import to_uint8  # noqa: F401  (lessons call it as progress.to_uint8 too)
from facekit.files import write_atomically

GIF_SECONDS_PER_FRAME = 0.3
GIF_LAST_FRAME_SECONDS = 2.0
DISPLAY_TILE_PIXELS = 128  # show_image enlarges smaller grid tiles to at least this


def control_noise(count: int, latent_dim: int, seed: int) -> np.ndarray:
    """The fixed latent vectors rendered at every snapshot: float32 [count, latent_dim], N(0, 1)."""
    return np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)


def image_grid(images, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile images (uint8, or float in [-1, 1]) [N, H, W, 3] into one uint8 [rows*H, columns*W, 3] picture."""
    images = to_uint8(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"image_grid: expected images [N, H, W, 3], got shape {images.shape}")
    count, height, width, _ = images.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.full((rows * (height + padding) + padding, columns * (width + padding) + padding, 3), 255, np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def grid_tiles(grid, count: int, height: int, width: int | None = None, columns: int | None = None,
               padding: int = 2) -> np.ndarray:
    """The images of an image_grid(...) picture, uint8 [count, height, width, 3], given how it was drawn (the
    count, tile size, columns and padding; a saved snapshot grid read back with imageio gives its faces)."""
    grid, width = np.asarray(grid), width or height
    columns = columns or int(np.ceil(np.sqrt(count)))
    expected = (int(np.ceil(count / columns)) * (height + padding) + padding, columns * (width + padding) + padding)
    if grid.shape[:2] != expected:
        raise ValueError(f"grid_tiles: a grid of {count} tiles {height}x{width} in {columns} columns with padding "
                         f"{padding} is {expected[0]}x{expected[1]}, got {grid.shape[0]}x{grid.shape[1]}")
    tops = padding + np.arange(count) // columns * (height + padding)
    lefts = padding + np.arange(count) % columns * (width + padding)
    return np.stack([grid[top : top + height, left : left + width, :3] for top, left in zip(tops, lefts)])


def save_grid(images, path, columns: int | None = None) -> Path:
    """Write image_grid(images) as a PNG, atomically; returns the path."""
    import imageio.v3 as iio  # here, not at the top: `prepare` imports this module and needs no imageio (35 ms)

    path = Path(path)
    write_atomically(path, lambda temporary: iio.imwrite(temporary, image_grid(images, columns), extension=".png"))
    return path


def save_gif(frames, path, labels=None, seconds_per_frame: float = GIF_SECONDS_PER_FRAME) -> Path:
    """Write an endlessly looping GIF from uint8 frames or PNG paths, each labelled (e.g. "step 400") if labels given.

    The last frame is held longer so the final result is visible. Same frames, same bytes.
    """
    import imageio.v3 as iio

    pictures = [iio.imread(frame) if isinstance(frame, (str, Path)) else to_uint8(frame) for frame in frames]
    if not pictures:
        raise ValueError(f"save_gif {path}: no frames to write")
    if labels is not None:
        pictures = [label_image(picture, label) for picture, label in zip(pictures, labels, strict=True)]
    durations = [seconds_per_frame * 1000] * (len(pictures) - 1) + [GIF_LAST_FRAME_SECONDS * 1000]
    if len(durations) == 1:  # Pillow takes a single frame's duration as a number, not a list
        durations = durations[0]
    path = Path(path)
    write_atomically(
        path,
        lambda temporary: iio.imwrite(
            temporary, np.stack(pictures), extension=".gif", duration=durations, loop=0, optimize=True
        ),
    )
    return path


def label_image(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of uint8 [H, W, 3] with a white strip on top holding `text`."""
    strip_height = 14
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + strip_height), "white")
    canvas.paste(Image.fromarray(image), (0, strip_height))
    ImageDraw.Draw(canvas).text((3, 1), text, fill="black")
    return np.asarray(canvas)


def plot_losses(log_csv, path, columns=None, smoothing: int = 1, measures=()) -> Path:
    """Plot loss columns of a run's log.csv against step (moving average over `smoothing` steps) into a PNG;
    `measures` (e.g. d_real, d_fake, k_t) go in a second panel below, on their own scale. When the log has a
    `resolution` column (a growing model's), a dotted line in every panel marks each step where it changes,
    labelled with the new resolution."""
    from matplotlib.figure import Figure  # no pyplot: leaves a notebook's own inline plotting alone

    with open(log_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"plot_losses: {log_csv} has no rows")
    columns = columns or [name for name in rows[0] if name.endswith("loss")]
    panels = [(columns, "loss")] + ([(list(measures), "measure")] if measures else [])
    steps = np.array([int(row["step"]) for row in rows])
    changes = _resolution_changes(rows)
    figure = Figure(figsize=(6, 3.5 * len(panels)), dpi=100)
    for axes, (names, label) in zip(np.atleast_1d(figure.subplots(len(panels), 1, sharex=True)), panels):
        for column in names:
            values = np.array([float(row[column]) for row in rows])
            if smoothing > 1 and len(values) >= smoothing:
                values = np.convolve(values, np.ones(smoothing) / smoothing, mode="valid")
                axes.plot(steps[smoothing - 1 :], values, label=column)
            else:
                axes.plot(steps, values, label=column)
        for step, resolution in changes:
            axes.axvline(step, color="grey", linestyle=":", linewidth=1)
            axes.annotate(f"{resolution}x{resolution}", (step, 1), xycoords=("data", "axes fraction"),
                          xytext=(2, -10), textcoords="offset points", fontsize=7, color="grey")
        axes.set_ylabel(label)
        axes.legend()
        axes.grid(alpha=0.3)
    axes.set_xlabel("step")
    figure.tight_layout()
    path = Path(path)
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))
    return path


def show_image(path_or_images, columns: int | None = None, title: str | None = None, scale: int | None = None):
    """Display a PNG/GIF file, or a batch of images (uint8, or float in [-1, 1]) as a grid, inline in a notebook.

    title: one line printed above the picture saying what it shows, e.g. "rows: k = 10, 50, 200; columns: faces".
    scale: whole enlargement factor. A grid is enlarged with nearest neighbours, by default until each tile is at
    least DISPLAY_TILE_PIXELS across (64-pixel faces show at 128); a file is shown at its own size unless `scale`
    is given (then the browser enlarges it).
    """
    from IPython.display import Image as IPythonImage
    from IPython.display import display

    if title:
        print(title)
    if isinstance(path_or_images, (str, Path)):
        if not scale or scale == 1:
            return display(IPythonImage(filename=str(path_or_images)))
        with Image.open(path_or_images) as opened:
            width = opened.width
        return display(IPythonImage(filename=str(path_or_images), width=width * int(scale)))
    images = to_uint8(path_or_images)
    grid = image_grid(images, columns)
    scale = int(scale) if scale else display_scale(images.shape[1])
    buffer = io.BytesIO()
    Image.fromarray(_enlarge(grid, scale)).save(buffer, format="png")
    return display(IPythonImage(data=buffer.getvalue(), format="png"))


def display_scale(tile_pixels: int) -> int:
    """The nearest-neighbour enlargement show_image gives tiles of this many pixels: 2 for 64, 1 from 128 up."""
    return int(np.clip(DISPLAY_TILE_PIXELS // max(tile_pixels, 1), 1, 4))


def _resolution_changes(rows) -> list[tuple[int, int]]:
    """(step, new resolution) at every row of a log whose `resolution` differs from the row before's."""
    if "resolution" not in rows[0]:
        return []
    resolutions = [int(float(row["resolution"])) for row in rows]
    return [(int(row["step"]), resolution) for row, resolution, before in zip(rows[1:], resolutions[1:], resolutions)
            if resolution != before]


def _enlarge(picture: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [H, W, C] -> [H*scale, W*scale, C], each pixel repeated (nearest neighbour, no blur)."""
    return picture if scale == 1 else picture.repeat(scale, axis=0).repeat(scale, axis=1)
