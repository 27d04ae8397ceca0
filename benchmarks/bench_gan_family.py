"""Seconds per training step of the GAN family at 64x64, full width, beside DCGAN's classic course loop.

Contenders, timed in one run, alternating round by round (the best round of each is reported, after warm-up):
    classic loop         generator.predict + two discriminator train_on_batch + the combined model (float32),
                         as benchmarks/bench_training.py ports it to Keras 3
    lesson 03 recipe     dcgan.train_step: one discriminator train_on_batch on real and fake, one combined one
    engine MODEL         MODEL's `build(config)` (facekit.registry's module), driven as `gan.train` drives it:
                         train_on_batch on the {"images": ...} batch dicts of data.batch_dicts (uint8 -> float
                         in the input pipeline), batch_size * n_critic images per step, logs read back as floats
Each contender's step is checked to change both networks' trained weights before it is timed (all of them; for
WGAN-GP and hinge all but the critic's output bias, whose gradient is exactly 0 at the first step). A step is one
generator update (WGAN-GP's includes its 5 critic updates, so it sees 5x the real images). The issue's target:
the engine's DCGAN at least 2x the classic loop on the same machine.

    .venv/bin/python benchmarks/bench_gan_family.py [--batch-size 64] [--steps 5] [--rounds 3] [--jit]
"""

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_training import classic_loop, facekit_loop  # noqa: E402
from facekit import data, registry  # noqa: E402
from facekit.training import resolve_precision  # noqa: E402

ENGINE_MODELS = ("dcgan", "lsgan", "wgan-gp", "hinge", "began")
# Losses unchanged by adding a constant to every D output at the first step (Wasserstein: E[D(G(z))] - E[D(x)];
# hinge, while every output is inside the margin): the output layer's bias then has a gradient of exactly 0.
SHIFT_INVARIANT = ("wgan-gp", "hinge")
RESOLUTION = 64
FILTERS = 64
IMAGES = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the contenders; best is reported")
    parser.add_argument("--models", nargs="+", choices=ENGINE_MODELS, default=list(ENGINE_MODELS))
    parser.add_argument("--jit", action="store_true",
                        help="also time the engine's DCGAN compiled with XLA (jit_compile=True)")
    arguments = parser.parse_args()
    precision = resolve_precision("auto")
    images = np.random.default_rng(0).integers(0, 256, (IMAGES, RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    batch_size = arguments.batch_size

    contenders = {"classic loop (float32)": (classic_loop(images, batch_size), batch_size),
                  "lesson 03 recipe (float32)": (facekit_loop(images, batch_size, "float32"), batch_size)}
    if precision != "float32":
        contenders[f"lesson 03 recipe ({precision})"] = (facekit_loop(images, batch_size, precision), batch_size)
    contenders["engine dcgan (float32)"] = engine_step("dcgan", images, batch_size, "float32")
    if arguments.jit:
        contenders["engine dcgan (float32, XLA)"] = engine_step("dcgan", images, batch_size, "float32", jit=True)
    for name in arguments.models:
        if precision != "float32" or name != "dcgan":
            contenders[f"engine {name} ({precision})"] = engine_step(name, images, batch_size, precision)
        if arguments.jit and name == "dcgan" and precision != "float32":
            contenders[f"engine dcgan ({precision}, XLA)"] = engine_step("dcgan", images, batch_size, precision,
                                                                         jit=True)

    best = best_seconds(contenders, arguments.rounds, arguments.steps)

    classic = best["classic loop (float32)"]
    print(f"GAN family, 64x64, filters {FILTERS}, batch {batch_size}: best of {arguments.rounds} rounds of "
          f"{arguments.steps} steps (after 2 warm-up steps each round), {os.cpu_count()} cores")
    print(f"CPU: {cpu_model()}; {cpu_flags()}")
    print(f"precision: float32, and auto -> {precision}")
    print()
    print("| contender | real images / step | seconds / step | images / s | classic loop's step time / this |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in best.items():
        real_images = contenders[name][1]
        print(f"| {name} | {real_images} | {seconds:.3f} | {real_images / seconds:.1f} | {classic / seconds:.2f}x |")


def best_seconds(contenders: dict, rounds: int, steps: int) -> dict:
    """{name: the best round's seconds per step} of contenders {name: (step, ...)}, timed in alternating rounds of
    `steps` steps, each after 2 warm-up steps."""
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, (step, _) in contenders.items():
            for _ in range(2):
                step()
            started = time.perf_counter()
            for _ in range(steps):
                step()
            best[name] = min(best[name], (time.perf_counter() - started) / steps)
    return best


def engine_step(name: str, images, batch_size: int, precision: str, jit: bool = False):
    """(a function running one engine step of model `name`, real images per step), checked to train both nets."""
    spec = registry.model(name)
    config = spec.config(resolution=RESOLUTION, filters=FILTERS, batch_size=batch_size, precision=precision, seed=0)
    model = build_function(name)(config)
    if jit:
        model.jit_compile = True
        model.make_train_function(force=True)
    per_step = batch_size * config.n_critic
    batches = iter(data.batch_dicts(images, per_step, config.seed))

    def step():
        logs = model.train_on_batch(next(batches), return_dict=True)
        return {column: float(logs[column]) for column in model.log_columns}

    return _checked_engine(step, model, shift_invariant=name in SHIFT_INVARIANT), per_step


def _checked_engine(step, model, shift_invariant: bool):
    """Run one engine step now and fail unless it changed every trained weight of both networks (but the
    discriminator's output bias, for a loss that a constant shift of D's outputs leaves unchanged)."""
    allowed = {model.discriminator.layers[-1].bias.path} if shift_invariant else set()
    weights = model.generator.trainable_weights + model.discriminator.trainable_weights
    before = [weight.numpy().copy() for weight in weights]
    step()
    frozen = [weight.path for weight, old in zip(weights, before) if np.array_equal(old, weight.numpy())]
    if set(frozen) - allowed:
        raise SystemExit(f"{model.name}: a step left {', '.join(frozen)} unchanged: it is not training both networks")
    return step


def build_function(name: str):
    """The `build(config)` of the facekit module whose registry entry is `name`."""
    return importlib.import_module(registry.MODELS[name][0]).build


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags() -> str:
    flags = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return ", ".join(f"{flag}: {'yes' if flag in flags else 'no'}" for flag in ("amx_bf16", "avx512_bf16"))


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    tf.get_logger().setLevel("ERROR")
    main()
