"""A trained image-to-image run applied to a folder of images: `python -m facekit translate RUN_DIR INPUTS --out DIR`.

Every file in INPUTS (hidden files aside; subfolders are not entered) is read as an image and made what the model
reads: one channel for a sketch model (pix2pix: a gray image, or a colour file whose three channels agree to within
GRAY_TOLERANCE levels, as a gray drawing saved as JPEG does), three for a face model (superres: a gray image is
repeated into RGB); transparent pixels count as white paper. An image of another size is resized to the model's
input size by tf.image.resize (bicubic, antialiased), with one warning line naming the file and both sizes. One PNG
per input, named by its stem, is written into DIR atomically, a chunk of inputs at a time. A file that cannot be read
or converted gets one line naming it and the problem and is skipped; the others are written, and the result lists
what failed.
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
from PIL import Image

GRAY_TOLERANCE = 8  # the most a colour file's channels may differ (in levels of 255) to be read as a gray sketch
CHUNK = 64  # inputs read, translated and written at a time


@dataclasses.dataclass
class Translation:
    """What a translate_folder call did: the PNG files written, and one line per input that failed."""

    written: list
    failures: list


def translate_folder(run_dir, inputs, out_dir, seed: int = 0, step: int | None = None) -> Translation:
    """Translate every image of the folder `inputs` with the run in run_dir (at its latest checkpoint, or at
    `step`; pix2pix's dropout drawn from `seed`) into out_dir/STEM.png. Warnings and failures are printed to
    stderr as they happen, one line each; a ValueError (or FileNotFoundError) for a folder with nothing to
    translate or a run that translates no images, before anything is written."""
    from facekit import evaluate, registry
    from facekit.models.image_to_image import ImageToImageGAN

    inputs, out_dir = Path(inputs), Path(out_dir)
    if not inputs.is_dir():
        raise FileNotFoundError(f"{inputs}: no such folder of images")
    if out_dir.resolve() == inputs.resolve():
        raise ValueError(f"--out {out_dir}: the input folder itself; the outputs would replace the inputs")
    paths = sorted(path for path in inputs.iterdir() if path.is_file() and not path.name.startswith("."))
    if not paths:
        raise ValueError(f"{inputs}: an empty folder; nothing to translate")
    spec, _ = registry.model_of_run(run_dir)
    model = spec.load(run_dir, step=step)
    if not isinstance(model, ImageToImageGAN):
        raise ValueError(f"{run_dir} is a {spec.name} run, which translates no images; give the run of an "
                         f"image-to-image model")
    failures, written, stems = [], [], {}
    for start in range(0, len(paths), CHUNK):
        chosen, images = [], []
        for path in paths[start : start + CHUNK]:
            try:
                if path.stem in stems:
                    raise ValueError(f"its output {path.stem}.png is {stems[path.stem]}'s; rename one of them")
                image, warning = read_input(path, model.condition_shape)
            except ValueError as error:
                failures.append(f"{path}: {error}")
                print(f"skipped {failures[-1]}", file=sys.stderr)
                continue
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            stems[path.stem] = path.name
            chosen.append(path)
            images.append(image)
        if not images:
            continue
        for path, face in zip(chosen, model.translate(np.stack(images), seed=seed, first=start)):
            written.append(evaluate.save_picture(face, out_dir / f"{path.stem}.png"))
    return Translation(written, failures)


def read_input(path, shape) -> tuple[np.ndarray, str | None]:
    """(uint8 [r, r, C] for shape (r, r, C), a warning or None): the image file at `path` with the model's
    channels and size (see the module's docstring); a ValueError saying why when it is no image or a colour image
    for a model of gray sketches."""
    size, channels = shape[0], shape[-1]
    try:
        with Image.open(path) as image:
            image.load()
            pixels = _on_white(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"not an image ({_first_line(error)})") from None
    if channels == 1:
        spread = _channel_spread(pixels)
        if spread > GRAY_TOLERANCE:
            raise ValueError(f"a colour image (its channels differ by up to {spread} levels); the model translates "
                             f"one-channel sketches")
        pixels = np.rint(pixels.mean(axis=-1, keepdims=True)).astype(np.uint8)
    height, width = pixels.shape[:2]
    if (height, width) == (size, size):
        return pixels, None
    from facekit import data, pairs

    warning = f"{path}: {width}x{height} resized to {size}x{size}, the model's input size"
    resized = pairs.resize_bicubic(data.to_float(pixels[np.newaxis]), size)  # antialiased when it shrinks
    return data.to_uint8(np.asarray(resized))[0], warning


def _on_white(image: Image.Image) -> np.ndarray:
    """uint8 [H, W, 3]: an image of any mode as RGB, transparent pixels composited over white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def _channel_spread(pixels) -> int:
    """The largest difference between two channels of one pixel of uint8 [H, W, 3]."""
    pixels = pixels.astype(np.int16)
    return int((pixels.max(axis=-1) - pixels.min(axis=-1)).max(initial=0))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
