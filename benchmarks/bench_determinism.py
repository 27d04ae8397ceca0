"""What TensorFlow's op determinism costs: seconds per engine training step with and without it, side by side.

Every run of the kit (the command line, `train`, the lessons) calls `facekit.seed_everything`, which turns on
`tf.config.experimental.enable_op_determinism()` so that a resumed run equals an uninterrupted one on a GPU too.
The switch is for the whole process, so each round times each setting in a fresh interpreter, alternating; the
best round of each is reported, after warm-up, with the processor named.

    .venv/bin/python benchmarks/bench_determinism.py [--models dcgan wgan-gp] [--resolution 64] [--rounds 3]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import facekit  # noqa: E402,F401  (quiets TensorFlow's start-up notices)
from bench_gan_family import cpu_flags, cpu_model  # noqa: E402

TIMED = """
import json, sys, time
import keras, numpy as np, tensorflow as tf
from facekit import data, registry
from facekit.training import resolve_precision
name, resolution, filters, batch_size, steps, deterministic = sys.argv[1:7]
keras.utils.set_random_seed(0)
if deterministic == "1":
    tf.config.experimental.enable_op_determinism()
spec = registry.model(name)
config = spec.config(resolution=int(resolution), filters=int(filters), batch_size=int(batch_size),
                     precision=resolve_precision("auto"))
model = __import__(registry.MODELS[name][0], fromlist=["build"]).build(config)
images = np.random.default_rng(0).integers(0, 256, (512, int(resolution), int(resolution), 3), dtype=np.uint8)
batches = iter(data.batch_dicts(images, config.batch_size * config.n_critic, 0, 0))
for _ in range(2):
    model.train_on_batch(next(batches), return_dict=True)
started = time.perf_counter()
for _ in range(int(steps)):
    float(model.train_on_batch(next(batches), return_dict=True)["d_loss"])
print(json.dumps((time.perf_counter() - started) / int(steps)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["dcgan", "wgan-gp"])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    print(f"{cpu_model()} ({cpu_flags()}); {arguments.resolution}x{arguments.resolution}, {arguments.filters} filters, "
          f"batch {arguments.batch_size}")
    root = Path(__file__).resolve().parents[1]
    for name in arguments.models:
        best = {"off": float("inf"), "on": float("inf")}
        for round_number in range(1, arguments.rounds + 1):
            for setting in best:
                words = [name, arguments.resolution, arguments.filters, arguments.batch_size, arguments.steps,
                         int(setting == "on")]
                printed = subprocess.run([sys.executable, "-c", TIMED, *map(str, words)], cwd=root, check=True,
                                         capture_output=True, text=True).stdout
                seconds = json.loads(printed.strip().splitlines()[-1])
                best[setting] = min(best[setting], seconds)
                print(f"  round {round_number}  {name:8s} determinism {setting:3s} {seconds:.3f} s/step", flush=True)
        print(f"{name}: best {best['off']:.3f} s/step without, {best['on']:.3f} with: "
              f"{best['on'] / best['off']:.2f}x the time")


if __name__ == "__main__":
    main()
