"""facekit: the helper package behind the face-generation lessons (data, models, progress GIFs, metrics)."""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the lessons

from facekit.profiles import Profile, profile  # noqa: E402

__all__ = ["Profile", "profile", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow's ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# TensorFlow 2.21 writes its start-up notices ("oneDNN custom operations are on", "Could not find cuda drivers",
# "failed call to cuInit") to file descriptor 2 from C++ while it is imported and while it first looks for
# devices, before its logging reads TF_CPP_MIN_LOG_LEVEL (tensorflow/tensorflow#100442), so every command and
# script that used TensorFlow printed them. The first `import tensorflow` after `import facekit` therefore runs
# with descriptor 2 captured, together with TensorFlow's first device listing (where CUDA starts up), and writes
# back everything except those log lines below the TF_CPP_MIN_LOG_LEVEL level (and CUDA's start-up errors on a
# machine without CUDA). Anything else written meanwhile, such as a Python warning, is passed on unchanged.
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_LOG_LINE = re.compile(rb"(?:([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] |\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) \S+:\d+\] )")
_CUDA_START_UP_ERROR = re.compile(rb"failed call to cuInit|Unable to register cu\w+ factory")


def _log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _is_start_up_notice(line: bytes, level: int) -> bool:
    """Whether one line TensorFlow wrote while starting is a log line that TF_CPP_MIN_LOG_LEVEL=level filters."""
    if line.startswith(_ABSL_NOTICE):
        return True
    match = _LOG_LINE.match(line)
    if match is None:
        return False
    severity = "IWEF".index((match.group(1) or match.group(2)).decode())
    return severity < level or (severity == 2 and level == 2 and _CUDA_START_UP_ERROR.search(line) is not None)


@contextlib.contextmanager
def _start_up_notices_filtered(level: int):
    """Capture file descriptor 2 meanwhile; then write back all but TensorFlow's start-up notices."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not _is_start_up_notice(line, level)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietTensorFlowLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run inside _start_up_notices_filtered."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _start_up_notices_filtered(_log_level()):
            self._loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA starts up (and logs) at the first device listing


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` the usual way, once, and hands it _QuietTensorFlowLoader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietTensorFlowLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules and _log_level() >= 1 and \
        not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())
