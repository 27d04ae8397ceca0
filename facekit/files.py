"""Atomic file writing: readers see the old file or the whole new one, never half of it; a lock for a folder's
writers."""

import contextlib
import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process's umask (the permission bits new files and folders leave out)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path, write) -> Path:
    """Call write(temporary_path) for a file beside `path`, then rename it into place; returns the path.

    The temporary file keeps `path`'s suffix (so np.save / np.savez add nothing) and gets the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(descriptor)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~umask())  # mkstemp makes it private; the result should not be
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path, text: str) -> Path:
    """Write a text file atomically."""
    return write_atomically(path, lambda temporary: Path(temporary).write_text(text))


def remove_abandoned_temporaries(path) -> None:
    """Delete the temporary files that write_atomically(path, ...) calls killed before their rename left behind.

    Call it only while no other process writes `path` (under folder_lock).
    """
    path = Path(path)
    for abandoned in path.parent.glob(f".{path.name}.*"):
        abandoned.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder):
    """Hold an exclusive lock on `folder` while the block runs (a lock on the folder itself, so that nothing is left
    in it); without fcntl (Windows) there is no lock, and two writers should not run at once."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
