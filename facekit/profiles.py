"""The three ways every lesson runs: `smoke` (tiny, what CI executes), `laptop` (a student's CPU: about 20 minutes
a lesson, ending in the result it promises) and `full` (one GPU, the long lesson)."""

import dataclasses
import os

PROFILE_VARIABLE = "FACEKIT_PROFILE"
PROFILE_NAMES = ("smoke", "laptop", "full")


@dataclasses.dataclass(frozen=True)
class Profile:
    """The chosen profile; `pick(smoke=..., laptop=..., full=...)` returns the value for it."""

    name: str

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def pick(self, *, smoke, laptop, full):
        """The value given for this profile (every lesson setting names all three, so none is guessed)."""
        return {"smoke": smoke, "laptop": laptop, "full": full}[self.name]


def profile() -> Profile:
    """Read FACEKIT_PROFILE (smoke, laptop or full); when unset, full if TensorFlow sees a GPU, else laptop."""
    name = os.environ.get(PROFILE_VARIABLE, "").strip().lower()
    if not name:
        import tensorflow as tf

        name = "full" if tf.config.list_physical_devices("GPU") else "laptop"
    if name not in PROFILE_NAMES:
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: expected one of {', '.join(PROFILE_NAMES)}")
    return Profile(name)
