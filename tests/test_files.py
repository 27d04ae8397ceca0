"""Atomic writes: all or nothing, no temporary files left, ordinary permissions, suffix kept for NumPy; a folder's
lock holds its writers one at a time."""

import os
import threading
import time

import numpy as np
import pytest

from facekit.files import folder_lock, remove_abandoned_temporaries, write_atomically, write_text_atomically


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomically(tmp_path / "sub" / "log.csv", "old\n")
    assert path.read_text() == "old\n"

    def half_then_fail(temporary):
        with open(temporary, "w") as handle:
            handle.write("ne")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in path.parent.iterdir()] == ["log.csv"]


def test_numpy_writers_keep_the_name_and_files_get_umask_permissions(tmp_path):
    path = write_atomically(tmp_path / "arrays.npz", lambda temporary: np.savez(temporary, x=np.arange(3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz"]
    with np.load(path, allow_pickle=False) as stored:
        assert stored["x"].tolist() == [0, 1, 2]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_abandoned_temporaries_of_one_file_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "faces.npy"
    keep = [target, tmp_path / "faces.json", tmp_path / ".faces.json.x1y2.json", tmp_path / ".other.npy.a.npy"]
    abandoned = [tmp_path / ".faces.npy.k3j_9a.npy", tmp_path / ".faces.npy.zz.npy"]
    for path in keep + abandoned:
        path.write_bytes(b"x")
    remove_abandoned_temporaries(target)
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def test_a_folder_lock_makes_a_second_holder_wait(tmp_path):
    order = []

    def second():
        with folder_lock(tmp_path):
            order.append("second")

    with folder_lock(tmp_path):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join(timeout=10)
    assert order == ["first done", "second"]
    assert list(tmp_path.iterdir()) == []
