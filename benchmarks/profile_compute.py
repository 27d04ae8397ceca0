"""Each lesson's training work in the laptop and full profiles, counted from the models' layers (facekit.compute),
and what it takes: on a T4-class GPU at an assumed sustained rate (the full profile's budget: about 1.5 hours a
lesson), and on this CPU at a rate measured here (a DCGAN step at 64x64, timed).

The settings below are the lessons' (each row names the lesson's variables it copies): the profile's models, widths,
batches and steps. Runs a lesson reuses from an earlier lesson (04, 08 and 09 reuse 02's and 03's when the settings
match) are counted where they are trained first.

    .venv/bin/python benchmarks/profile_compute.py [--profiles laptop full] [--cpu-rate G]
"""

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import facekit  # noqa: E402,F401  (quiets TensorFlow's start-up notices)
import numpy as np  # noqa: E402

from facekit import attributes, compute, data, registry  # noqa: E402
from facekit.models import progan, vae  # noqa: E402


def image_to_image_runs(resolution, pix2pix_filters, pix2pix_steps, sr_filters, sr_blocks, sr_steps, sr_gan_steps):
    """Lesson 11's runs (RESOLUTION, PIX2PIX_FILTERS, PIX2PIX_STEPS, SR_FILTERS, SR_BLOCKS, SR_STEPS, SR_GAN_STEPS;
    BATCH_SIZE 16): pix2pix and its L1-only U-Net, the L1 super-resolution network, its GAN version and control."""
    pix2pix = dict(resolution=resolution, generator_filters=pix2pix_filters, filters=pix2pix_filters, batch_size=16)
    superres = dict(resolution=resolution, generator_filters=sr_filters, residual_blocks=sr_blocks, filters=sr_filters,
                    batch_size=16)
    return [("pix2pix", "pix2pix", pix2pix, pix2pix_steps),
            ("L1-only U-Net", "pix2pix", {**pix2pix, "adversarial_weight": 0.0}, pix2pix_steps),
            ("super-resolution, L1", "superres", superres, sr_steps),
            ("super-resolution, GAN", "superres", {**superres, "adversarial_weight": 1e-3}, sr_gan_steps),
            ("super-resolution, L1 control", "superres", superres, sr_gan_steps)]


# lesson: [(what, model, settings, steps)] per profile; settings as the lesson passes them
LESSONS = {
    "laptop": {
        "02_vae": [("VAE (FILTERS, BATCH_SIZE, STEPS)", "vae", dict(resolution=64, filters=32, batch_size=64), 3000)],
        "03_dcgan": [("DCGAN, the lesson's loop", "dcgan", dict(resolution=32, filters=32, batch_size=64), 7000)],
        "04_compare_baselines": [("DCGAN at 64x64 (lesson 03 trains at 32x32 here)", "dcgan",
                                  dict(resolution=64, filters=32, batch_size=64), 2400)],
        "05_gan_losses": [(name, name, dict(resolution=32, filters=32, batch_size=64), 128_000 // 64 // n_critic)
                          for name, n_critic in (("dcgan", 1), ("lsgan", 1), ("wgan-gp", 5), ("hinge", 1))],
        "06_began": [(f"BEGAN gamma {gamma}", "began", dict(resolution=32, filters=16, embedding_dim=32,
                                                            batch_size=16), 3000) for gamma in (0.3, 0.5, 0.7)],
        "07_conditional": [("attribute classifier", "attributes", dict(resolution=32), 1500)] +
                          [(name, name, dict(resolution=32, filters=32, batch_size=64, latent_dim=62), 2000)
                           for name in ("cgan", "acgan", "infogan")],
        "08_latent_space": [("DCGAN", "dcgan", dict(resolution=32, filters=32, batch_size=64), 6000)],
        "09_evaluation": [("VAE", "vae", dict(resolution=64, filters=32, batch_size=64), 1200),
                          ("DCGAN", "dcgan", dict(resolution=64, filters=32, batch_size=64), 1600)],
        "10_progressive": [(f"ProGAN to 32x32, {kind}", "progan", dict(resolution=32, filters=32, filter_base=512,
                                                                        fade_images=12_800, stabilise_images=12_800,
                                                                        grow=grow), 5600)
                           for kind, grow in (("growing", True), ("not growing", False))],
        "11_image_to_image": image_to_image_runs(resolution=64, pix2pix_filters=32, pix2pix_steps=1_500, sr_filters=32,
                                                 sr_blocks=8, sr_steps=2_000, sr_gan_steps=1_000),
    },
    "full": {
        "02_vae": [("VAE", "vae", dict(resolution=64, filters=64, batch_size=128), 10_000)],
        "03_dcgan": [("DCGAN, the lesson's loop", "dcgan", dict(resolution=64, filters=64, batch_size=128), 8000)],
        "05_gan_losses": [(name, name, dict(resolution=64, filters=64, batch_size=64), 960_000 // 64 // n_critic)
                          for name, n_critic in (("dcgan", 1), ("lsgan", 1), ("wgan-gp", 5), ("hinge", 1))],
        "06_began": [(f"BEGAN gamma {gamma}", "began", dict(resolution=64, filters=64, embedding_dim=64,
                                                            batch_size=16), 10_000) for gamma in (0.3, 0.5, 0.7)],
        "07_conditional": [("attribute classifier", "attributes", dict(resolution=64), 3000)] +
                          [(name, name, dict(resolution=64, filters=64, batch_size=64, latent_dim=62), 30_000)
                           for name in ("cgan", "acgan", "infogan")],
        "08_latent_space": [("DCGAN", "dcgan", dict(resolution=64, filters=64, batch_size=128), 8000)],
        "09_evaluation": [("VAE", "vae", dict(resolution=64, filters=64, batch_size=128), 4000),
                          ("DCGAN", "dcgan", dict(resolution=64, filters=64, batch_size=128), 8000)],
        "10_progressive": [(f"ProGAN to 128x128, {kind}", "progan", dict(resolution=128, filters=128,
                                                                          filter_base=4096, latent_dim=128,
                                                                          fade_images=30_000, stabilise_images=30_000,
                                                                          grow=grow), 20_625)
                           for kind, grow in (("growing", True), ("not growing", False))],
        "11_image_to_image": image_to_image_runs(resolution=128, pix2pix_filters=64, pix2pix_steps=15_000,
                                                 sr_filters=64, sr_blocks=16, sr_steps=20_000, sr_gan_steps=10_000),
    },
}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", choices=tuple(LESSONS), default=list(LESSONS))
    parser.add_argument("--cpu-rate", type=float, default=None,
                        help="this CPU's sustained G multiply-adds a second (default: measured now)")
    arguments = parser.parse_args()
    cpu_rate = arguments.cpu_rate * 1e9 if arguments.cpu_rate else measured_cpu_rate()
    print(f"assumed T4-class GPU: {compute.T4_MULTIPLY_ADDS_PER_SECOND / 1e12:g} T multiply-adds a second; "
          f"this CPU: {cpu_rate / 1e9:.0f} G a second")
    for profile in arguments.profiles:
        print(f"\n{profile} profile\n| lesson | training | G multiply-adds a step (mean) | steps | T multiply-adds | "
              "T4 minutes | this CPU's minutes |\n|---|---|---:|---:|---:|---:|---:|")
        for lesson, runs in LESSONS[profile].items():
            total = 0
            for what, name, settings, steps in runs:
                work = training_multiply_adds(name, settings, steps)
                total += work
                print(f"| {lesson} | {what} | {work / steps / 1e9:.1f} | {steps:,} | {work / 1e12:.1f} | "
                      f"{work / compute.T4_MULTIPLY_ADDS_PER_SECOND / 60:.1f} | {work / cpu_rate / 60:.1f} |")
            print(f"| **{lesson}** | **all** | | | **{total / 1e12:.1f}** | "
                  f"**{total / compute.T4_MULTIPLY_ADDS_PER_SECOND / 60:.0f}** | **{total / cpu_rate / 60:.0f}** |")


def t4_minutes(profile: str = "full") -> dict[str, float]:
    """Each lesson's counted training work in `profile`, in minutes on a T4-class GPU at the assumed rate."""
    return {lesson: sum(training_multiply_adds(name, settings, steps) for _, name, settings, steps in runs)
            / compute.T4_MULTIPLY_ADDS_PER_SECOND / 60 for lesson, runs in LESSONS[profile].items()}


def training_multiply_adds(name: str, settings: dict, steps: int) -> int:
    """The multiply-adds of `steps` training steps of registry model `name` with `settings`."""
    if name == "progan":
        return progan_multiply_adds(settings, steps)
    return step_multiply_adds(name, settings) * steps


def progan_multiply_adds(settings: dict, steps: int) -> int:
    """`steps` steps of a ProGAN run: at each phase of its schedule, the phase's steps times the step of its
    resolution (counted from the traced networks, both fade paths included, as every step above 4x4 runs them)."""
    config = registry.model("progan").config(precision="float32", steps=steps, **settings)
    model = progan.build(config)
    total = 0
    for phase in progan.Schedule.of(config).phases:
        phase_steps = min(steps, phase.start + (phase.steps or steps)) - phase.start
        if phase_steps <= 0:
            break
        batch = np.zeros((config.group_size, phase.resolution, phase.resolution, 3), np.float32)
        noise = np.zeros((config.group_size, config.latent_dim), np.float32)
        g = compute.traced_multiply_adds(lambda z: model.generator(z, resolution=phase.resolution), noise)
        d = compute.traced_multiply_adds(model.discriminator, batch)
        total += phase_steps * compute.gan_step_work(g, d, phase.batch_size, config.n_critic, gradient_penalty=True)
    return total


def step_multiply_adds(name: str, settings: dict) -> int:
    """The multiply-adds of one training step of registry model `name` with `settings`."""
    if name == "attributes":
        config = attributes.AttributeConfig(**settings)
        classifier = attributes.build_classifier(config.resolution, config.filters)
        return compute.supervised_step_multiply_adds(classifier, config.batch_size)
    config = registry.model(name).config(precision="float32", **settings)
    if name == "vae":
        model = vae.build_vae(config)
        return compute.supervised_step_multiply_adds(model.encoder, config.batch_size) + \
            compute.supervised_step_multiply_adds(model.decoder, config.batch_size)
    model = importlib.import_module(registry.MODELS[name][0]).build(config)
    if not getattr(model, "trains_discriminator", True):  # an L1-only network: the generator trained alone
        return compute.supervised_step_multiply_adds(model.generator, config.batch_size)
    # (super-resolution's content loss also runs D on the true faces in the generator update: not counted, +5%)
    return compute.gan_step_multiply_adds(model.generator, model.discriminator, config.batch_size, config.n_critic,
                                          gradient_penalty=bool(getattr(model, "gradient_penalty_weight", 0)))


def measured_cpu_rate(rounds: int = 3, steps: int = 5) -> float:
    """Multiply-adds a second of the engine's DCGAN step (64x64, 64 filters, batch 64, the precision `auto`
    picks) on this machine: the best of `rounds` timings of `steps` steps."""
    from facekit.training import resolve_precision

    config = registry.model("dcgan").config(resolution=64, filters=64, batch_size=64,
                                            precision=resolve_precision("auto"))
    model = importlib.import_module("facekit.models.dcgan").build(config)
    images = np.random.default_rng(0).integers(0, 256, (256, 64, 64, 3), dtype=np.uint8)
    batches = iter(data.batch_dicts(images, config.batch_size, 0))
    model.train_on_batch(next(batches))
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(steps):
            float(model.train_on_batch(next(batches), return_dict=True)["d_loss"])
        best = min(best, (time.perf_counter() - started) / steps)
    per_step = compute.gan_step_multiply_adds(model.generator, model.discriminator, config.batch_size)
    print(f"DCGAN 64x64, 64 filters, batch 64, {config.precision}: {best:.3f} s a step, "
          f"{per_step / 1e9:.1f} G multiply-adds")
    return per_step / best


if __name__ == "__main__":
    main()
