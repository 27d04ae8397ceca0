"""The command line instructors and scripts use:
`python -m facekit {synth,prepare,train,gif,sample,translate,evaluate,compare,attributes}`.

`train MODEL` has one sub-command per model of facekit.registry, and one option per setting of its config class
(with the class's default), so the command line never restates a default.
"""

import argparse
import dataclasses
import sys
import types
from pathlib import Path

EXPECTED_ERRORS = (ValueError, OSError, RuntimeError)


def main(argv=None) -> int:
    """Run one command; on bad input print a one-line reason and return a non-zero status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        arguments = build_parser(argv).parse_args(argv)
    except KeyboardInterrupt:  # during start-up (the imports)
        print("facekit: interrupted", file=sys.stderr)
        return 130
    try:
        arguments.handler(arguments)
    except EXPECTED_ERRORS as error:
        print(f"facekit {arguments.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        resumable = arguments.command == "train" and (arguments.run / "run.json").exists()
        print(f"facekit {arguments.command}: interrupted" + ("; rerun with --resume to continue" if resumable else ""),
              file=sys.stderr)
        return 130
    return 0


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser of every command. With `argv`, only the command it names gets the options that need heavy
    imports (`train MODEL`: the model's module, with TensorFlow; `evaluate`, `compare`: the metrics), so that
    `--help` and `prepare` start at once; without `argv`, every command and model gets all of its options."""
    parser = argparse.ArgumentParser(prog="python -m facekit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write the built-in synthetic face set in CelebA's official layout")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--count", type=int, required=True, help="number of images")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=run_synth)

    prepare = commands.add_parser("prepare", help="crop, resize and cache a CelebA source (folder or zip)")
    prepare.add_argument("source", type=Path, help="CelebA folder (official or Kaggle layout) or img_align_celeba.zip")
    from facekit.training import TrainingConfig

    _add_config_arguments(prepare, TrainingConfig, names=("resolution", "crop", "limit"))
    prepare.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
    prepare.set_defaults(handler=run_prepare)

    train = commands.add_parser("train", help="train a model into a run folder")
    models = train.add_subparsers(dest="model", required=True)
    from facekit import registry

    for name in registry.MODELS:
        model = models.add_parser(name, help=registry.summary(name), description=registry.summary(name))
        if not _wanted(argv, "train", name):
            continue
        spec = registry.model(name)
        model.add_argument("--data", dest="source", type=Path, default=None,
                           help="CelebA folder or zip (default: $FACEKIT_CELEBA, data/celeba, else the synthetic set)")
        model.add_argument("--run", type=Path, required=True, help="run folder (log.csv, samples/, checkpoints/, GIF)")
        model.add_argument("--resume", action="store_true", help="continue the run in --run from its last checkpoint")
        _add_config_arguments(model, spec.config)
        model.set_defaults(handler=run_train, spec=spec)

    gif = commands.add_parser("gif", help="rebuild a run's progress GIF from its saved snapshots")
    gif.add_argument("run_dir", type=Path)
    gif.add_argument("--out", type=Path, help="where to write it (default RUN_DIR/progress.gif)")
    gif.set_defaults(handler=run_gif)

    sample = commands.add_parser("sample", help="write N generated faces of a run as PNG files")
    sample.add_argument("run_dir", type=Path)
    sample.add_argument("--count", type=int, required=True)
    sample.add_argument("--out", type=Path, required=True, help="folder for the PNG files (000000.png, ...)")
    sample.add_argument("--overwrite", action="store_true", help="replace the images already in --out")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--step", type=int, default=None,
                        help="a saved checkpoint's step (a milestone, or one of the last 3; default: the latest)")
    sample.set_defaults(handler=run_sample)

    translate = commands.add_parser("translate", help="apply an image-to-image run (pix2pix, superres) to a folder "
                                                      "of sketches or small faces, one PNG per image")
    translate.add_argument("run_dir", type=Path)
    translate.add_argument("inputs", type=Path, help="folder of images (any size: resized to the model's input, "
                                                     "with a warning)")
    translate.add_argument("--out", type=Path, required=True, help="folder for the outputs: STEM.png per input")
    translate.add_argument("--seed", type=int, default=0, help="seed of pix2pix's dropout noise")
    translate.add_argument("--step", type=int, default=None,
                           help="a saved checkpoint's step (a milestone, or one of the last 3; default: the latest)")
    translate.set_defaults(handler=run_translate)

    measure = commands.add_parser("evaluate", help="measure generated faces against real ones (evaluation.csv/json)")
    measure.add_argument("target", type=Path, help="run folder (sampled at its latest checkpoint) or folder of images")
    if _wanted(argv, "evaluate"):
        _add_evaluation_arguments(measure)
    measure.set_defaults(handler=run_evaluate)

    compare = commands.add_parser("compare", help="evaluate several runs and print one table (Markdown and CSV)")
    compare.add_argument("runs", type=Path, nargs="+", help="run folders")
    if _wanted(argv, "compare"):
        _add_evaluation_arguments(compare)
    compare.add_argument("--out", type=Path, default=Path("comparison.md"),
                         help="where to write the Markdown table (the CSV goes beside it)")
    compare.set_defaults(handler=run_compare)

    scored = commands.add_parser("attributes", help="the rate of each CelebA attribute an attribute classifier "
                                                    "predicts on images (and its accuracy where labels exist)")
    scored.add_argument("run_dir", type=Path, help="run folder of `train attributes`")
    scored.add_argument("images", type=Path, help="a CelebA source (folder or zip; its labels give the accuracy), "
                                                  "a generative model's run folder, or a folder of images")
    scored.add_argument("--count", type=int, default=None,
                        help="faces to draw from a run (default 1000), or to use of a folder or source (default all)")
    scored.add_argument("--seed", type=int, default=0)
    scored.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    scored.set_defaults(handler=run_attributes)
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


def run_train(arguments) -> None:
    from facekit import data, registry
    from facekit.training import RunFolder

    values = {name: value for name, value in vars(arguments).items() if value is not None}
    config = registry.config_from_arguments(arguments.spec, values)
    if arguments.resume and (arguments.run / "run.json").exists():  # e.g. a lesson's run: keep its profile
        config = dataclasses.replace(config, profile=RunFolder(arguments.run).read_config().get("profile", ""))
    faces = data.prepare(arguments.source, resolution=config.resolution, crop=config.crop, limit=config.limit)
    run = arguments.spec.train(faces, arguments.run, config, resume=arguments.resume)
    _print_run(run)


def run_gif(arguments) -> None:
    from facekit.training import RunFolder

    print(f"wrote {RunFolder(arguments.run_dir).write_gif(arguments.out)}")


def run_sample(arguments) -> None:
    from facekit import evaluate

    if arguments.count < 1:
        raise ValueError(f"--count must be at least 1, got {arguments.count}")
    evaluate.check_output_folder(arguments.out, arguments.overwrite)  # before drawing: a refusal costs nothing
    images = evaluate.sample_run(arguments.run_dir, arguments.count, seed=arguments.seed, step=arguments.step)
    evaluate.write_image_folder(images, arguments.out, overwrite=arguments.overwrite)
    print(f"wrote {len(images)} faces ({images.shape[2]}x{images.shape[1]}) to {arguments.out}")


def run_translate(arguments) -> None:
    from facekit import translate

    result = translate.translate_folder(arguments.run_dir, arguments.inputs, arguments.out, seed=arguments.seed,
                                        step=arguments.step)
    total = len(result.written) + len(result.failures)
    print(f"wrote {len(result.written)} of {total} images to {arguments.out}")
    if result.failures:
        raise ValueError(f"{len(result.failures)} of {total} inputs were skipped (each named above)")


def run_evaluate(arguments) -> None:
    from facekit import evaluate

    _check_count(arguments.count)
    result, csv_path = evaluate.evaluate_target(arguments.target, arguments.real, count=arguments.count,
                                                metric_groups=arguments.metrics, seed=arguments.seed,
                                                crop=arguments.crop)
    print(evaluate.format_table({arguments.target.name or str(arguments.target): result["metrics"]}))
    print(f"wrote {csv_path} and {csv_path.with_suffix('.json').name}")


def run_compare(arguments) -> None:
    from facekit import evaluate

    _check_count(arguments.count)
    rows = evaluate.compare(arguments.runs, arguments.real, count=arguments.count, metric_groups=arguments.metrics,
                            seed=arguments.seed, crop=arguments.crop)
    table = evaluate.markdown_table(rows)
    print(table)
    csv_path = evaluate.write_comparison(rows, table, arguments.out)
    print(f"wrote {arguments.out} and {csv_path}")


def run_attributes(arguments) -> None:
    from facekit import attributes

    if arguments.count is not None and arguments.count < 1:
        raise ValueError(f"--count must be at least 1, got {arguments.count}")
    rows, scored = attributes.score(arguments.run_dir, arguments.images, count=arguments.count, seed=arguments.seed)
    print(f"scored {scored}")
    print(attributes.format_report(rows))
    if arguments.csv:
        print(f"wrote {attributes.write_report_csv(rows, arguments.csv)}")


def _wanted(argv, command: str, model: str | None = None) -> bool:
    """Whether argv asks for `command` (and for `train`, `model`); always true without argv."""
    if argv is None:
        return True
    words = [word for word in argv if not word.startswith("-")]
    return words[:1] == [command] and (model is None or words[1:2] == [model])


def _check_count(count: int) -> None:
    if count < 2:
        raise ValueError(f"--count must be at least 2, got {count}")


def _add_evaluation_arguments(parser) -> None:
    from facekit import data, evaluate

    parser.add_argument("--real", type=Path, default=None,
                        help="CelebA folder or zip to compare with (default: the run's own source)")
    parser.add_argument("--count", type=int, default=1000, help="generated and real images to compare")
    parser.add_argument("--metrics", nargs="+", choices=evaluate.METRIC_GROUPS, default=list(evaluate.DEFAULT_METRICS),
                        help="metric groups (inception downloads InceptionV3 weights on first use)")
    parser.add_argument("--crop", choices=sorted(data.CROPS), default=None,
                        help="crop of the real images (default: as for training)")
    parser.add_argument("--seed", type=int, default=0)


def _add_config_arguments(parser, config_class, names=None) -> None:
    """One --option per setting of a config class (or those `names`), defaulting and documented as it says."""
    for field in dataclasses.fields(config_class):
        if "help" not in field.metadata or (names is not None and field.name not in names):
            continue  # model, source and profile are filled in by the trainer, not the user
        nargs = field.metadata.get("nargs")
        option = f"--{field.name.replace('_', '-')}"
        if field.type is bool:  # --name / --no-name
            parser.add_argument(option, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default,
                                help=f"{field.metadata['help']} (default: {field.default})")
            continue
        default = " ".join(map(str, field.default)) if nargs else field.default
        item_type = type(field.default[0]) if nargs and field.default else str  # a tuple of numbers, or of names
        parser.add_argument(option, dest=field.name, type=item_type if nargs else _option_type(field), nargs=nargs,
                            default=field.default, choices=field.metadata.get("choices"),
                            metavar=("NAME" if item_type is str else "N") if nargs else None,
                            help=f"{field.metadata['help']} (default: {default})")


def _option_type(field):
    if isinstance(field.type, types.UnionType):  # e.g. int | None
        return next(kind for kind in field.type.__args__ if kind is not type(None))
    return field.type


def _prepare(arguments):
    from facekit import data

    return data.prepare(arguments.source, resolution=arguments.resolution, crop=arguments.crop,
                        strict=getattr(arguments, "strict", False), limit=arguments.limit)


def _print_run(run) -> None:
    print(f"run folder {run.path}: {run.log_path.name}, {run.samples_dir.name}/, {run.checkpoints_dir.name}/, "
          f"{run.gif_path.name}, {run.losses_path.name}")
