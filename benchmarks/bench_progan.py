"""Seconds per training step of Progressive GAN at each resolution it grows through, beside the engine's DCGAN step
at 64x64, on the processor named in the output.

Both models as their configs build them by default (ProGANConfig to --resolution, DCGANConfig), in the precision
"auto" resolves to. Contenders, timed in one run, alternating round by round (the best round of each is reported,
after 2 warm-up steps each round, as bench_gan_family.py times):
    progan RxR   ProGAN's train_on_batch with its step set to the middle of R's fade-in (4x4: of its phase), on
                 random images average-pooled to R as in training; a stabilising step at R runs the same graph
    dcgan 64x64  bench_gan_family.py's engine step
Each contender's step is checked to change every variable it trains before it is timed. Ends with what the default
schedule takes at these times to grow and stabilise once. --batch-sizes times each resolution at several batch sizes
(one model each) and --filters, --filter-base, --latent-dim size the networks, e.g. lesson 10's laptop profile:

    .venv/bin/python benchmarks/bench_progan.py [--resolution 64] [--steps 5] [--rounds 3]
    .venv/bin/python benchmarks/bench_progan.py --resolution 32 --filters 32 --filter-base 512 --latent-dim 64 --batch-sizes 16 64
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_gan_family import IMAGES, RESOLUTION, best_seconds, cpu_flags, cpu_model, engine_step  # noqa: E402
from facekit import data  # noqa: E402
from facekit.models import dcgan, progan  # noqa: E402
from facekit.training import resolve_precision  # noqa: E402


def main() -> None:
    default = progan.ProGANConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, choices=progan.RESOLUTIONS, default=default.resolution,
                        help="ProGAN's final resolution: it is timed at 4x4 and every doubling up to it")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the contenders; best is reported")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[default.batch_size],
                        help="images a step at every resolution; several: one model each, timed side by side")
    parser.add_argument("--filters", type=int, default=default.filters)
    parser.add_argument("--filter-base", type=int, default=default.filter_base)
    parser.add_argument("--latent-dim", type=int, default=default.latent_dim)
    arguments = parser.parse_args()
    sizing = dict(resolution=arguments.resolution, filters=arguments.filters, filter_base=arguments.filter_base,
                  latent_dim=arguments.latent_dim, precision=resolve_precision(default.precision))
    load_before = os.getloadavg()[0]

    configs = {batch_size: progan.ProGANConfig(**sizing, batch_sizes=(batch_size,) * len(default.batch_sizes))
               for batch_size in arguments.batch_sizes}
    config = configs[arguments.batch_sizes[0]]
    faces = np.random.default_rng(0).integers(0, 256, (IMAGES, config.resolution, config.resolution, 3), np.uint8)
    contenders, schedules = {}, {}
    for batch_size, batch_config in configs.items():
        model = progan.build(batch_config)
        schedules[batch_size] = model.schedule
        for size in sorted({phase.resolution for phase in model.schedule.phases}):  # 4, 8, ..., the final size
            contenders[progan_name(size, batch_size, arguments.batch_sizes)] = progan_step(model, batch_config, faces,
                                                                                            size)
    dcgan_batch_size = dcgan.DCGANConfig().batch_size
    dcgan_faces = np.random.default_rng(0).integers(0, 256, (IMAGES, RESOLUTION, RESOLUTION, 3), np.uint8)
    contenders[f"dcgan {RESOLUTION}x{RESOLUTION}"] = engine_step("dcgan", dcgan_faces, dcgan_batch_size,
                                                                 config.precision)

    best = best_seconds(contenders, arguments.rounds, arguments.steps)

    reference = best[f"dcgan {RESOLUTION}x{RESOLUTION}"]
    print(f"Progressive GAN by resolution beside DCGAN at {RESOLUTION}x{RESOLUTION}: best of {arguments.rounds} "
          f"rounds of {arguments.steps} steps (after 2 warm-up steps each round), {os.cpu_count()} cores, load "
          f"average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end")
    print(f"CPU: {cpu_model()}; {cpu_flags()}")
    print(f"precision: auto -> {config.precision}; progan: filters {config.filters}, filter_base "
          f"{config.filter_base}, latent_dim {config.latent_dim}; dcgan: batch {dcgan_batch_size}")
    print()
    print("| contender | real images / step | seconds / step | images / s | DCGAN's step time / this |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in best.items():
        images = contenders[name][1]
        print(f"| {name} | {images} | {seconds:.3f} | {images / seconds:.1f} | {reference / seconds:.2f}x |")
    print()
    for batch_size, schedule in schedules.items():
        steps = schedule.growing_steps
        seconds = schedule_seconds(schedule, steps, {
            phase.resolution: best[progan_name(phase.resolution, batch_size, arguments.batch_sizes)]
            for phase in schedule.phases})
        print(f"ProGAN's default schedule at batch {batch_size}, grown to {config.resolution}x{config.resolution} "
              f"and stabilised there once ({steps:,} steps of {config.fade_images:,}-image phases), at these times: "
              f"{seconds / 60:.1f} minutes of steps")


def progan_name(resolution: int, batch_size: int, batch_sizes) -> str:
    return f"progan {resolution}x{resolution}" + (f", batch {batch_size}" if len(batch_sizes) > 1 else "")


def progan_step(model, config, faces, resolution: int):
    """(a function running one ProGAN step at `resolution`, real images per step), checked to train every variable
    of that resolution in both networks."""
    phase = next(phase for phase in model.schedule.phases
                 if phase.resolution == resolution and (phase.fading or resolution == progan.FIRST_RESOLUTION))
    step_number = phase.start + phase.steps // 2
    factor = config.resolution // resolution
    batches = iter(data.batch_dicts(faces, phase.batch_size, config.seed).map(
        lambda batch: {"images": progan.downsample(batch["images"], factor)}))

    def step():
        model.step.assign(step_number)
        logs = model.train_on_batch(next(batches), return_dict=True)
        return {column: float(logs[column]) for column in model.log_columns}

    variables = model.generator.variables_at(resolution) + model.discriminator.variables_at(resolution)
    before = [variable.numpy().copy() for variable in variables]
    step()
    frozen = [variable.path for variable, old in zip(variables, before) if np.array_equal(old, variable.numpy())]
    if frozen:
        raise SystemExit(f"progan {resolution}x{resolution}: a step left {', '.join(frozen)} unchanged")
    return step, phase.batch_size


def schedule_seconds(schedule, steps: int, step_seconds: dict) -> float:
    """Seconds the schedule's first `steps` steps take at `step_seconds` (resolution: seconds a step)."""
    return sum(step_seconds[phase.resolution] * max(0, min(steps, phase.start + (phase.steps or steps)) - phase.start)
               for phase in schedule.phases)


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    tf.get_logger().setLevel("ERROR")
    main()
