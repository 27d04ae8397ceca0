"""DCGAN-64 training speed: facekit's loop versus a Keras 3 port of the classic course loop, side by side.

The classic loop (as in the widely copied Keras GAN course code) does, each iteration:
    noise -> generator.predict -> discriminator.train_on_batch(real) -> discriminator.train_on_batch(fake)
          -> gan.train_on_batch(noise)
ported to Keras 3 by setting `discriminator.trainable` before each call (the original freezes D for good there).
facekit's loop calls the generator instead of `predict`, makes one discriminator update on real and fake
together, feeds batches through tf.data, and trains in mixed bfloat16 where the CPU has native bfloat16.
Both loops train both networks; the script checks that each step changed both.

    .venv/bin/python benchmarks/bench_training.py [--batch-size 64] [--steps 8] [--rounds 3]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from facekit import data  # noqa: E402
from facekit.models import dcgan  # noqa: E402
from facekit.training import resolve_precision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the loops; best is reported")
    arguments = parser.parse_args()
    images = np.random.default_rng(0).integers(0, 256, (2048, 64, 64, 3), dtype=np.uint8)
    precision = resolve_precision("auto")
    loops = {
        "classic loop (float32)": classic_loop(images, arguments.batch_size),
        "facekit loop (float32)": facekit_loop(images, arguments.batch_size, "float32"),
        f"facekit loop ({precision})": facekit_loop(images, arguments.batch_size, precision),
    }
    best = {name: 0.0 for name in loops}
    for _ in range(arguments.rounds):
        for name, step in loops.items():
            for _ in range(2):
                step()
            started = time.perf_counter()
            for _ in range(arguments.steps):
                step()
            rate = arguments.batch_size * arguments.steps / (time.perf_counter() - started)
            best[name] = max(best[name], rate)
    classic = best["classic loop (float32)"]
    print(f"DCGAN-64 training, batch {arguments.batch_size}, best of {arguments.rounds} rounds "
          f"of {arguments.steps} steps, {os.cpu_count()} cores")
    for name, rate in best.items():
        print(f"  {name:32s} {rate:8.1f} images/s   {rate / classic:5.2f}x classic")


def classic_loop(images, batch_size):
    """The classic loop, ported to Keras 3: returns a function that runs one iteration."""
    generator = dcgan.build_generator(64, 100)
    discriminator = dcgan.build_discriminator(64)
    gan = dcgan.compile_models(generator, discriminator)
    training_images = images.astype(np.float32) / 127.5 - 1.0
    valid, fake = np.ones((batch_size, 1)), np.zeros((batch_size, 1))
    rng = np.random.default_rng(0)

    def step():
        real = training_images[rng.integers(0, len(training_images), batch_size)]
        noise = rng.normal(0, 1, (batch_size, 100)).astype(np.float32)
        generated = generator.predict(noise, verbose=0)
        discriminator.trainable = True
        discriminator.train_on_batch(real, valid)
        discriminator.train_on_batch(generated, fake)
        discriminator.trainable = False
        gan.train_on_batch(noise, valid)

    return _checked(step, generator, discriminator)


def facekit_loop(images, batch_size, precision):
    """facekit's loop (dcgan.train_step over data.batches): returns a function that runs one iteration."""
    generator = dcgan.build_generator(64, 100, dtype=precision)
    discriminator = dcgan.build_discriminator(64, dtype=precision)
    gan = dcgan.compile_models(generator, discriminator)
    batches = iter(data.batches(images, batch_size, seed=0))
    counter = iter(range(10**9))

    def step():
        dcgan.train_step(generator, discriminator, gan, next(batches),
                         dcgan.step_noise(0, next(counter), batch_size, 100))

    return _checked(step, generator, discriminator)


def _checked(step, generator, discriminator):
    """Run one step now and fail unless it changed both networks' trained weights."""
    before = [w.numpy().copy() for w in generator.trainable_weights + discriminator.trainable_weights]
    step()
    after = [w.numpy() for w in generator.trainable_weights + discriminator.trainable_weights]
    frozen = sum(np.array_equal(a, b) for a, b in zip(before, after))
    if frozen:
        raise SystemExit(f"a loop left {frozen} weight tensors unchanged: it is not training both networks")
    return step


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    tf.get_logger().setLevel("ERROR")
    main()
