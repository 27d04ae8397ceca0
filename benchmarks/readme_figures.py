"""The README's pictures, from the run folders that lesson_profiles.py leaves after executing every lesson in one
profile: the PCA -> VAE -> GAN arc, and one picture per GAN lesson (03, 05, 06, 07's cGAN and InfoGAN, 08).

Each picture is labelled rows of faces shown at 64 pixels (smaller faces enlarged, nearest neighbour): samples of
lesson 01's eigenfaces, and tiles of the runs' last snapshot grids (samples/step_*.png; the tile layout is read
from the grid's size, the run's resolution in run.json and image_grid's 2-pixel padding). Lesson 08's picture adds
the edits of glasses.gif and aging.gif. Each is written atomically as a 256-colour PNG and must stay under 100 KB
(the run stops, naming the file, when one does not). A picture whose runs are missing is skipped, with one line
naming them and the lessons that make them. Ends with the Markdown that embeds the pictures.

    .venv/bin/python benchmarks/lesson_profiles.py --profile laptop --measure
    .venv/bin/python benchmarks/readme_figures.py [--runs runs/lesson_profiles/laptop-runs] [--out docs]
"""

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw

from facekit import progress
from facekit.data import to_uint8
from facekit.files import write_atomically
from facekit.models import pca
from facekit.training import RunFolder

ROOT = Path(__file__).resolve().parents[1]
TILE = 64  # pixels a face is shown at
ROW = 8  # faces in a labelled row
CONTROL_ROWS = 3  # rows of fixed noise kept from a conditional grid
PADDING = 2  # image_grid's, so the snapshot grids'
MAX_KB = 100
COMMANDS = ("`.venv/bin/python benchmarks/readme_figures.py` after "
            "`.venv/bin/python benchmarks/lesson_profiles.py --profile laptop --measure`")
GAN_LOSSES = ("dcgan", "lsgan", "wgan-gp", "hinge")
GAMMAS = ("0.3", "0.5", "0.7")
PROGRESSIVE = {"growing": "growing", "not growing": "not_growing"}  # lesson 10's runs: name -> folder
EDITS = {"glasses.gif": "moved 0, 1, ..., 5 along the Eyeglasses direction",  # lesson 08: np.linspace(0, 5, 11)
         "aging.gif": "moved 0, -1, ..., -5 along Young"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "lesson_profiles" / "laptop-runs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    arguments = parser.parse_args()
    lines = []
    for name, build, needs in figures():
        missing = [folder for folder in needs if not (arguments.runs / folder).exists()]
        if missing:
            lessons = sorted({f"notebooks/{folder.split('/')[0]}.ipynb" for folder in missing})
            print(f"{name}: skipped, {', '.join(str(arguments.runs / folder) for folder in missing)} missing "
                  f"(made by {', '.join(lessons)})")
            continue
        picture, alt = build(arguments.runs)
        path = arguments.out / name
        kilobytes = save_png(picture, path)
        print(f"{shown_path(path)}: {kilobytes:.0f} KB, from {', '.join(needs)}")
        lines.append(f"![{alt}]({shown_path(path)})")
    snippet = "\n\n".join(lines + [f"Made by {COMMANDS}."]) + "\n"
    print(f"\n{snippet}")


def figures() -> list:
    """(file name, build(runs) -> (uint8 picture [H, W, 3], alt text), run folders it needs) of every picture."""
    return [
        ("laptop_arc.png", arc, ["01_pca/eigenfaces.npz", "02_vae", "03_dcgan"]),
        ("laptop_03_dcgan.png", dcgan, ["03_dcgan"]),
        ("laptop_05_gan_losses.png", gan_losses, [f"05_gan_losses/{model}" for model in GAN_LOSSES]),
        ("laptop_06_began.png", began, [f"06_began/gamma_{gamma}" for gamma in GAMMAS]),
        ("laptop_07_conditional.png", conditional, ["07_conditional/cgan"]),
        ("laptop_07_infogan.png", infogan, ["07_conditional/infogan"]),
        ("laptop_08_latent_space.png", latent_space, ["08_latent_space/dcgan"]),
        ("laptop_10_progressive.png", progressive, [f"10_progressive/{folder}" for folder in PROGRESSIVE.values()]),
    ]


def arc(runs: Path) -> tuple:
    eigenfaces = pca.load(runs / "01_pca" / "eigenfaces.npz")
    (vae, vae_step), (gan, gan_step) = last_grid(runs / "02_vae"), last_grid(runs / "03_dcgan")
    k = len(eigenfaces.components)
    picture = stack([row(to_uint8(eigenfaces.sample(ROW, seed=0)), f"lesson 01: PCA, {k} eigenfaces"),
                     row(vae[:ROW], f"lesson 02: VAE, {vae_step} steps"),
                     row(gan[:ROW], f"lesson 03: DCGAN, {gan_step} steps")])
    return picture, (f"{ROW} faces each sampled from lesson 01's eigenfaces ({k} components), lesson 02's VAE after "
                     f"{vae_step} steps and lesson 03's DCGAN after {gan_step} steps, laptop profile")


def dcgan(runs: Path) -> tuple:
    tiles, step = last_grid(runs / "03_dcgan")
    picture = row(tiles[: 2 * ROW], f"lesson 03: DCGAN, {step} steps, fixed noise")
    return picture, f"{2 * ROW} faces of lesson 03's DCGAN after {step} steps (its fixed noise), laptop profile"


def gan_losses(runs: Path) -> tuple:
    grids = {model: last_grid(runs / "05_gan_losses" / model) for model in GAN_LOSSES}
    picture = stack([row(tiles[:ROW], f"{model}, {step} steps") for model, (tiles, step) in grids.items()])
    return picture, (f"the GAN family of lesson 05 at the laptop profile: {ROW} faces each from "
                     + ", ".join(f"{model} ({step} steps)" for model, (_, step) in grids.items()))


def began(runs: Path) -> tuple:
    grids = {gamma: last_grid(runs / "06_began" / f"gamma_{gamma}") for gamma in GAMMAS}
    picture = stack([row(tiles[:ROW], f"BEGAN gamma {gamma}, {step} steps") for gamma, (tiles, step) in grids.items()])
    return picture, (f"lesson 06's BEGAN at gamma {', '.join(GAMMAS)}: {ROW} faces each after "
                     f"{grids[GAMMAS[0]][1]} steps, laptop profile")


def conditional(runs: Path) -> tuple:
    from facekit.models.conditional import control_labels  # imports Keras: only when this picture is made

    run_dir = runs / "07_conditional" / "cgan"
    (tiles, step), columns = last_grid(run_dir), len(RunFolder(run_dir).read_config()["attributes"]) + 1
    with np.load(run_dir / "labels.npz", allow_pickle=False) as saved:
        _, names = control_labels(saved["vectors"], saved["frequencies"], tuple(saved["attributes"]))
    picture = headed(tiles[: CONTROL_ROWS * columns], names, f"lesson 07: cGAN, {step} steps; rows: fixed noise, "
                                                              f"columns: orders (the commonest labels, one switched)")
    return picture, (f"lesson 07's cGAN after {step} steps, laptop profile: rows of fixed noise, columns of orders "
                     f"(the commonest labels, then one attribute switched: {', '.join(names[1:])})")


def infogan(runs: Path) -> tuple:
    run_dir = runs / "07_conditional" / "infogan"
    (tiles, step), categories = last_grid(run_dir), RunFolder(run_dir).read_config()["categories"]
    names = [f"code {value}" for value in range(categories)]
    picture = headed(tiles[: CONTROL_ROWS * categories], names,
                     f"lesson 07: InfoGAN, {step} steps; rows: fixed noise, columns: the categorical code")
    return picture, (f"lesson 07's InfoGAN after {step} steps, laptop profile: rows of fixed noise, columns of the "
                     f"categorical code's {categories} values")


def latent_space(runs: Path) -> tuple:
    run_dir = runs / "08_latent_space"
    tiles, step = last_grid(run_dir / "dcgan")
    columns = int(np.ceil(np.sqrt(len(tiles))))
    rows = [progress.label_image(progress.image_grid(enlarged(tiles), columns), f"lesson 08: DCGAN, {step} steps")]
    edits = [name for name in EDITS if (run_dir / name).exists()]
    for name in edits:  # there and back: the first half of the frames is the edit, the last of it the frame held
        frames = iio.imread(run_dir / name, index=None)[..., :3]
        rows.append(row(frames[: len(frames) // 2 + 1 : 2], f"{name}: {EDITS[name]}", columns))
    alt = f"{len(tiles)} faces of lesson 08's DCGAN after {step} steps, laptop profile"
    return stack(rows), alt + "".join(f"; below, {name}'s face {EDITS[name]}" for name in edits)


def progressive(runs: Path) -> tuple:
    grids = {name: last_grid(runs / "10_progressive" / folder) for name, folder in PROGRESSIVE.items()}
    picture = stack([row(tiles[:ROW], f"lesson 10: ProGAN {name}, {step} steps") for name, (tiles, step) in
                     grids.items()])
    return picture, (f"lesson 10's Progressive GAN, laptop profile: {ROW} faces each from the run that grew from 4x4 "
                     f"to 32x32 and the same networks trained at 32x32 throughout, {grids['growing'][1]} steps each")


def last_grid(run_dir: Path) -> tuple:
    """(tiles uint8 [N, R, R, 3], step) of a run's last snapshot grid: every tile of its rows and columns."""
    run = RunFolder(run_dir)
    frames = run.sample_frames()
    if not frames:
        raise SystemExit(f"{run.samples_dir}: no step_*.png snapshot grid")
    step, path = frames[-1]
    grid, resolution = iio.imread(path), run.read_config()["resolution"]
    rows, columns = ((size - PADDING) // (resolution + PADDING) for size in grid.shape[:2])
    return progress.grid_tiles(grid, rows * columns, resolution, columns=columns), step


def enlarged(tiles) -> np.ndarray:
    """uint8 [N, R, R, 3] -> [N, TILE, TILE, 3]: nearest neighbour up (32 -> 64 repeats pixels), Lanczos down."""
    method = Image.Resampling.NEAREST if tiles.shape[1] < TILE else Image.Resampling.LANCZOS
    return np.stack([np.asarray(Image.fromarray(tile).resize((TILE, TILE), method)) for tile in tiles])


def row(tiles, label: str, columns: int = ROW) -> np.ndarray:
    """Faces uint8 [N, R, R, 3] enlarged to TILE, `columns` a row, under a strip holding `label`."""
    return progress.label_image(progress.image_grid(enlarged(tiles), columns), label)


def headed(tiles, names: list, label: str) -> np.ndarray:
    """A grid of len(names) columns with each column's name above it (on two staggered lines, so that a name may
    be two columns wide), under a strip holding `label`."""
    grid = progress.image_grid(enlarged(tiles), len(names))
    header = Image.new("RGB", (grid.shape[1], 26), "white")
    draw = ImageDraw.Draw(header)
    for index, name in enumerate(names):  # the last names end at the right edge rather than past it
        left = min(PADDING + index * (TILE + PADDING), header.width - PADDING - draw.textlength(name))
        draw.text((left, 1 + 12 * (index % 2)), name, fill="black")
    return progress.label_image(np.concatenate([np.asarray(header), grid]), label)


def stack(pictures: list) -> np.ndarray:
    """Pictures uint8 [H_i, W_i, 3] one under another, padded with white on the right to the widest."""
    width = max(picture.shape[1] for picture in pictures)
    return np.concatenate([np.pad(picture, ((0, 0), (0, width - picture.shape[1]), (0, 0)), constant_values=255)
                           for picture in pictures])


def save_png(picture, path: Path) -> float:
    """Write uint8 [H, W, 3] as a 256-colour PNG (a median-cut palette refined by one k-means pass), atomically;
    its size in KB (SystemExit when over MAX_KB)."""
    palette = Image.fromarray(picture).quantize(256, kmeans=1)
    write_atomically(path, lambda temporary: palette.save(temporary, format="png", optimize=True))
    kilobytes = path.stat().st_size / 1024
    if kilobytes > MAX_KB:
        raise SystemExit(f"{path}: {kilobytes:.0f} KB, over the {MAX_KB} KB a README picture may take")
    return kilobytes


def shown_path(path: Path) -> str:
    """The path relative to the repository when inside it (as the README links it), else as it is."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    main()
