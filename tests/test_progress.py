"""Progress visuals: grids, labelled looping GIFs, loss plots."""

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from facekit import progress


def test_image_grid_tiles_in_order_and_reads_floats_as_minus_one_to_one():
    images = np.zeros((5, 4, 4, 3), np.float32)
    images[1] = 1.0  # white
    images[4] = -1.0  # black
    grid = progress.image_grid(images, columns=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3) and grid.dtype == np.uint8
    assert (grid[1:5, 6:10] == 255).all()  # second tile
    assert (grid[6:10, 6:10] == 0).all()  # fifth tile: row 2, column 2
    assert (grid[1:5, 1:5] == 128).all()  # 0.0 maps to mid-grey
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        progress.image_grid(np.zeros((4, 4, 3)))


def test_grid_tiles_gives_back_the_images_of_a_saved_grid(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 6, 5, 3), dtype=np.uint8)  # tiles 6 high, 5 wide
    for columns, padding in ((None, 2), (4, 1), (7, 0)):
        path = tmp_path / f"grid-{columns}-{padding}.png"
        iio.imwrite(path, progress.image_grid(images, columns=columns, padding=padding))
        tiles = progress.grid_tiles(iio.imread(path), count=7, height=6, width=5, columns=columns, padding=padding)
        np.testing.assert_array_equal(tiles, images)
    with pytest.raises(ValueError, match="grid of 7 tiles 6x6"):  # a wrong tile size is refused, not misread
        progress.grid_tiles(progress.image_grid(images), count=7, height=6)


def test_control_noise_is_fixed_by_seed():
    first = progress.control_noise(36, 100, seed=7)
    assert first.shape == (36, 100) and first.dtype == np.float32
    np.testing.assert_array_equal(first, progress.control_noise(36, 100, seed=7))
    assert not np.array_equal(first, progress.control_noise(36, 100, seed=8))


def test_gif_loops_holds_the_last_frame_and_is_reproducible(tmp_path):
    frames = [np.full((16, 16, 3), value, np.uint8) for value in (0, 100, 200)]
    path = progress.save_gif(frames, tmp_path / "a.gif", labels=["step 0", "step 10", "step 20"])
    again = progress.save_gif(frames, tmp_path / "b.gif", labels=["step 0", "step 10", "step 20"])
    assert path.read_bytes() == again.read_bytes()
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.info["loop"] == 0
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations[-1] > durations[0]
    decoded = iio.imread(path, index=None)
    assert decoded.shape[1:3] == (16 + 14, 16)  # the label strip sits above each frame
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_a_gif_of_one_frame_is_written_and_held(tmp_path):
    """A run stopped before its first snapshot has only the step-0 grid: still a GIF, the frame held."""
    path = progress.save_gif([np.full((16, 16, 3), 50, np.uint8)], tmp_path / "one.gif", labels=["step 0"])
    with Image.open(path) as gif:
        assert gif.n_frames == 1 and gif.info["duration"] == progress.GIF_LAST_FRAME_SECONDS * 1000


def test_plot_losses_writes_a_png(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,d_loss,g_loss,seconds\n1,0.7,0.7,0.1\n2,0.6,0.9,0.2\n3,0.5,1.1,0.3\n")
    path = progress.plot_losses(log, tmp_path / "losses.png")
    assert iio.imread(path).shape[2] in (3, 4)


def test_plot_losses_marks_where_a_growing_models_resolution_changes(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    marks = []
    axvline = Axes.axvline
    monkeypatch.setattr(Axes, "axvline", lambda axes, x, **style: marks.append(x) or axvline(axes, x, **style))
    log = tmp_path / "log.csv"
    rows = [(1, 4, 1.0), (2, 4, 1.0), (3, 8, 0.0), (4, 8, 0.5), (5, 8, 1.0), (6, 16, 0.0)]
    log.write_text("step,d_loss,g_loss,d_real,resolution,fade,seconds\n"
                   + "".join(f"{step},0.5,0.6,0.1,{size},{fade},0.1\n" for step, size, fade in rows))
    progress.plot_losses(log, tmp_path / "losses.png", measures=["d_real"])
    assert marks == [3, 6, 3, 6]  # in both panels, where 8x8 and 16x16 start
    marks.clear()
    progress.plot_losses(log, tmp_path / "again.png", columns=["d_loss"])
    assert marks == [3, 6]


def displayed_pictures(monkeypatch):
    """What show_image hands IPython's display: a list that fills with the displayed objects."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    return shown


def test_show_image_enlarges_small_tiles_with_nearest_neighbours_and_prints_the_title(monkeypatch, capsys, tmp_path):
    shown = displayed_pictures(monkeypatch)
    images = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    progress.show_image(images, columns=3, title="rows: two seeds; columns: three steps")
    picture = iio.imread(shown[-1].data)
    grid = progress.image_grid(images, columns=3)
    assert picture.shape == (2 * grid.shape[0], 2 * grid.shape[1], 3)  # 64-pixel tiles shown at 128
    np.testing.assert_array_equal(picture[::2, ::2], grid)  # every pixel repeated, none blended
    np.testing.assert_array_equal(picture[1::2, 1::2], grid)
    assert capsys.readouterr().out == "rows: two seeds; columns: three steps\n"

    progress.show_image(np.zeros((2, 128, 128, 3), np.uint8))  # large enough already; no title, nothing printed
    assert iio.imread(shown[-1].data).shape == progress.image_grid(np.zeros((2, 128, 128, 3), np.uint8)).shape
    progress.show_image(images[:1], scale=3)
    assert iio.imread(shown[-1].data).shape == (3 * 68, 3 * 68, 3)
    assert capsys.readouterr().out == ""
    assert [progress.display_scale(pixels) for pixels in (16, 32, 64, 100, 128, 256)] == [4, 4, 2, 1, 1, 1]

    gif = progress.save_gif([images[0], images[1]], tmp_path / "a.gif")
    progress.show_image(gif)
    assert shown[-1].width is None  # a file at its own size...
    progress.show_image(gif, scale=2, title="the GIF")
    assert shown[-1].width == 2 * 64 and capsys.readouterr().out == "the GIF\n"  # ...unless asked
