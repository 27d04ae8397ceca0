"""The three ways every lesson runs: `smoke` (tiny, what CI executes), `laptop` (a student's CPU: about 20 minutes
a lesson, ending in the result it promises) and `full` (one GPU, the long lesson)."""

import dataclasses
import os

PROFILE_VARIABLE = "FACEKIT_PROFILE"
STEP_CAP_VARIABLE = "FACEKIT_STEP_CAP"  # set: every lesson trains at most this many steps (a profile's quick check)
PROFILE_NAMES = ("smoke", "laptop", "full")


@dataclasses.dataclass(frozen=True)
class Profile:
    """The chosen profile; `pick(smoke=..., laptop=..., full=...)` returns the value for it. With a step cap
    (FACEKIT_STEP_CAP), `steps` and `cap` shorten every training run and leave every other setting as it is, so
    that a profile's shapes, memory and code paths can be run for a few steps (the full profile on a CPU)."""

    name: str
    step_cap: int | None = None

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def pick(self, *, smoke, laptop, full):
        """The value given for this profile (every lesson setting names all three, so none is guessed)."""
        return {"smoke": smoke, "laptop": laptop, "full": full}[self.name]

    def steps(self, *, smoke: int, laptop: int, full: int) -> int:
        """The number of training steps for this profile, at most the step cap."""
        return self.cap(self.pick(smoke=smoke, laptop=laptop, full=full))

    def cap(self, steps: int) -> int:
        """`steps`, or the step cap when there is a smaller one."""
        return steps if self.step_cap is None else min(steps, self.step_cap)


def profile() -> Profile:
    """Read FACEKIT_PROFILE (smoke, laptop or full; when unset, full if TensorFlow sees a GPU, else laptop) and
    FACEKIT_STEP_CAP (a positive number of steps, or unset)."""
    name = os.environ.get(PROFILE_VARIABLE, "").strip().lower()
    if not name:
        import tensorflow as tf

        name = "full" if tf.config.list_physical_devices("GPU") else "laptop"
    if name not in PROFILE_NAMES:
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: expected one of {', '.join(PROFILE_NAMES)}")
    cap = os.environ.get(STEP_CAP_VARIABLE, "").strip()
    if cap and not (cap.isdigit() and int(cap) > 0):
        raise ValueError(f"{STEP_CAP_VARIABLE}={cap!r}: expected a positive number of steps")
    return Profile(name, int(cap) if cap else None)
