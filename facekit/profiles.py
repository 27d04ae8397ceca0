"""The two ways every lesson runs: `smoke` (CPU, tiny, what CI executes) and `full` (a GPU, the real lesson)."""

import dataclasses
import os

PROFILE_VARIABLE = "FACEKIT_PROFILE"
PROFILE_NAMES = ("smoke", "full")


@dataclasses.dataclass(frozen=True)
class Profile:
    """The chosen profile; `pick(smoke=..., full=...)` returns the value for it."""

    name: str

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def pick(self, *, smoke, full):
        """Return `smoke` under the smoke profile and `full` under the full one."""
        return smoke if self.is_smoke else full


def profile() -> Profile:
    """Read FACEKIT_PROFILE (smoke or full); when unset, full if TensorFlow sees a GPU, else smoke."""
    name = os.environ.get(PROFILE_VARIABLE, "").strip().lower()
    if not name:
        import tensorflow as tf

        name = "full" if tf.config.list_physical_devices("GPU") else "smoke"
    if name not in PROFILE_NAMES:
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: expected one of {', '.join(PROFILE_NAMES)}")
    return Profile(name)
