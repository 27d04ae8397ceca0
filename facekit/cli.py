"""The command line instructors and scripts use: `python -m facekit {synth,prepare,train,gif,evaluate} ...`."""

import argparse
import sys
from pathlib import Path

EXPECTED_ERRORS = (ValueError, OSError, RuntimeError)


def main(argv=None) -> int:
    """Run one command; on bad input print a one-line reason and return a non-zero status."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        arguments.handler(arguments)
    except EXPECTED_ERRORS as error:
        print(f"facekit {arguments.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"facekit {arguments.command}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facekit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write the built-in synthetic face set in CelebA's official layout")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--count", type=int, required=True, help="number of images")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=run_synth)

    prepare = commands.add_parser("prepare", help="crop, resize and cache a CelebA source (folder or zip)")
    prepare.add_argument("source", type=Path, help="CelebA folder (official or Kaggle layout) or img_align_celeba.zip")
    _add_data_arguments(prepare, with_source=False)
    prepare.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
    prepare.set_defaults(handler=run_prepare)

    train = commands.add_parser("train", help="train a model into a run folder")
    models = train.add_subparsers(dest="model", required=True)
    dcgan = models.add_parser("dcgan", help="DCGAN trained with train_on_batch")
    _add_data_arguments(dcgan, with_source=True)
    _add_run_arguments(dcgan)
    dcgan.add_argument("--batch-size", type=int, default=64)
    dcgan.add_argument("--latent-dim", type=int, default=100)
    dcgan.add_argument("--filters", type=int, default=64, help="channels of the first discriminator layer")
    dcgan.set_defaults(handler=run_train_dcgan)
    pca = models.add_parser("pca", help="eigenfaces by randomized PCA; a 'step' is the number of components")
    _add_data_arguments(pca, with_source=True)
    pca.add_argument("--run", type=Path, required=True, help="run folder (log.csv, samples/, checkpoints/, GIF)")
    pca.add_argument("--components", type=int, default=200)
    pca.add_argument("--power-iterations", type=int, default=3)
    pca.add_argument("--heldout", type=float, default=0.1,
                     help="fraction of the identities kept out of the fit to measure reconstruction error (0: none)")
    pca.add_argument("--seed", type=int, default=0)
    pca.set_defaults(handler=run_train_pca)
    vae = models.add_parser("vae", help="convolutional VAE trained with train_on_batch")
    _add_data_arguments(vae, with_source=True)
    _add_run_arguments(vae)
    vae.add_argument("--batch-size", type=int, default=64)
    vae.add_argument("--latent-dim", type=int, default=128)
    vae.add_argument("--filters", type=int, default=64, help="channels of the first encoder layer")
    vae.add_argument("--beta", type=float, default=1.0, help="weight of the KL term in the loss")
    vae.set_defaults(handler=run_train_vae)

    gif = commands.add_parser("gif", help="rebuild a run's progress GIF from its saved snapshots")
    gif.add_argument("run_dir", type=Path)
    gif.add_argument("--out", type=Path, help="where to write it (default RUN_DIR/progress.gif)")
    gif.set_defaults(handler=run_gif)

    from facekit import data, evaluate

    measure = commands.add_parser("evaluate", help="measure generated faces against real ones (evaluation.csv/json)")
    measure.add_argument("target", type=Path, help="run folder (sampled at its latest checkpoint) or folder of images")
    measure.add_argument("--real", type=Path, default=None,
                         help="CelebA folder or zip to compare with (default: as for training)")
    measure.add_argument("--count", type=int, default=1000, help="generated and real images to compare")
    measure.add_argument("--metrics", nargs="+", choices=evaluate.METRIC_GROUPS, default=list(evaluate.DEFAULT_METRICS),
                         help="metric groups (inception downloads InceptionV3 weights on first use)")
    measure.add_argument("--crop", choices=sorted(data.CROPS), default=None,
                         help="crop of the real images (default: as for training)")
    measure.add_argument("--seed", type=int, default=0)
    measure.set_defaults(handler=run_evaluate)
    return parser


def run_synth(arguments) -> None:
    from facekit import synthetic

    if arguments.count < 1:
        raise ValueError(f"--count must be at least 1, got {arguments.count}")
    out_dir = synthetic.write_synthetic_celeba(arguments.out_dir, arguments.count, seed=arguments.seed)
    print(f"wrote {arguments.count} synthetic faces in CelebA's official layout to {out_dir}")


def run_prepare(arguments) -> None:
    faces = _prepare(arguments)
    print(f"prepared {len(faces)} images ({arguments.resolution}x{arguments.resolution}, crop {arguments.crop}) "
          f"from {faces.source}; skipped {len(faces.skipped)}")
    for filename, reason in faces.skipped:
        print(f"  skipped {filename}: {reason}")


def run_train_dcgan(arguments) -> None:
    from facekit import dcgan

    config = dcgan.DCGANConfig(resolution=arguments.resolution, latent_dim=arguments.latent_dim,
                               filters=arguments.filters, batch_size=arguments.batch_size, steps=arguments.steps,
                               snapshot_every=arguments.snapshot_every, seed=arguments.seed, crop=arguments.crop)
    faces = _prepare(arguments)
    run = dcgan.train(faces.images, arguments.run, config, resume=arguments.resume)
    _print_run(run)


def run_train_pca(arguments) -> None:
    from facekit import pca

    config = pca.PCAConfig(resolution=arguments.resolution, components=arguments.components,
                           power_iterations=arguments.power_iterations, seed=arguments.seed, crop=arguments.crop)
    if not 0 <= arguments.heldout < 1:
        raise ValueError(f"--heldout must be a fraction in [0, 1), got {arguments.heldout}")
    faces = _prepare(arguments)
    training, heldout = faces, None
    if arguments.heldout:
        training, heldout = faces.split_by_identity((1 - arguments.heldout, arguments.heldout), seed=arguments.seed)
    run = pca.train(training.images, arguments.run, config, heldout=None if heldout is None else heldout.images)
    print(f"fitted {arguments.components} eigenfaces to {len(training)} images; reconstruction error measured on "
          f"{len(heldout) if heldout is not None else len(training)} {'held-out' if heldout is not None else 'training'}"
          f" images")
    _print_run(run)


def run_train_vae(arguments) -> None:
    from facekit import vae

    config = vae.VAEConfig(resolution=arguments.resolution, latent_dim=arguments.latent_dim, filters=arguments.filters,
                           beta=arguments.beta, batch_size=arguments.batch_size, steps=arguments.steps,
                           snapshot_every=arguments.snapshot_every, seed=arguments.seed, crop=arguments.crop)
    faces = _prepare(arguments)
    run = vae.train(faces.images, arguments.run, config, resume=arguments.resume)
    _print_run(run)


def run_gif(arguments) -> None:
    from facekit.training import RunFolder

    print(f"wrote {RunFolder(arguments.run_dir).write_gif(arguments.out)}")


def run_evaluate(arguments) -> None:
    from facekit import evaluate

    if arguments.count < 2:
        raise ValueError(f"--count must be at least 2, got {arguments.count}")
    result, csv_path = evaluate.evaluate_target(arguments.target, arguments.real, count=arguments.count,
                                                metric_groups=arguments.metrics, seed=arguments.seed,
                                                crop=arguments.crop)
    print(evaluate.format_table({arguments.target.name or str(arguments.target): result["metrics"]}))
    print(f"wrote {csv_path} and {csv_path.with_suffix('.json').name}")


def _add_data_arguments(parser, with_source: bool) -> None:
    from facekit import data

    if with_source:
        parser.add_argument("--data", dest="source", type=Path, default=None,
                            help="CelebA folder or zip (default: $FACEKIT_CELEBA, data/celeba, else the synthetic set)")
    parser.add_argument("--resolution", type=int, choices=(64, 128), default=64)
    parser.add_argument("--crop", choices=sorted(data.CROPS), default=data.DEFAULT_CROP)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")


def _add_run_arguments(parser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run folder (log.csv, samples/, checkpoints/, GIF)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--snapshot-every", type=int, default=50, help="steps between samples and checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run from its last checkpoint")


def _prepare(arguments):
    from facekit import data

    return data.prepare(arguments.source, resolution=arguments.resolution, crop=arguments.crop,
                        strict=getattr(arguments, "strict", False), limit=arguments.limit)


def _print_run(run) -> None:
    print(f"run folder {run.path}: {run.log_path.name}, {run.samples_dir.name}/, {run.checkpoints_dir.name}/, "
          f"{run.gif_path.name}, {run.losses_path.name}")
