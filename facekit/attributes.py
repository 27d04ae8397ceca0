"""The kit's attribute classifier: a small CNN that predicts CelebA's 40 attributes of a face, to ask what a
generator draws (how many smiling faces, how many with glasses) and to check that a conditional GAN draws what it
was asked for, without trusting that GAN's own auxiliary head.

It trains on the labelled faces of a CelebA source at 64x64 with one sigmoid output per attribute (binary
cross-entropy from logits, Adam with decoupled weight decay, a learning rate halving every
`learning_rate_half_life` steps) and left-right flips; it is tested on the people it never saw (`heldout`,
the same identity split as the GAN runs of the same seed). `report` gives per attribute the predicted rate and,
where labels exist, the accuracy and balanced accuracy beside the majority-class baseline (the accuracy of
always answering the commoner value).

    python -m facekit train attributes --data ../shared/celeba --run runs/attributes
    python -m facekit attributes runs/attributes runs/table/dcgan --csv dcgan_attributes.csv
"""

import csv
import dataclasses
import io
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facekit import data, synthetic, training
from facekit.files import write_text_atomically
from facekit.registry import ModelSpec
from facekit.training import RunFolder, StepConfig, resolve_precision, run_steps, setting, start_run

NAMES = synthetic.ATTRIBUTES  # CelebA's 40 attributes, in list_attr_celeba.txt's order
REPORT_COLUMNS = ("attribute", "predicted_rate", "accuracy", "balanced_accuracy", "majority_baseline")
LOSS_COLUMNS = ("loss",)
MEASURE_COLUMNS = ("accuracy",)
BLOCKS = 4  # conv blocks, each halving the size: 64 -> 4


@dataclasses.dataclass
class AttributeConfig(StepConfig):
    """Everything that defines an attribute classifier's run; saved as its run.json."""

    model: str = "attributes"
    heldout: float = setting(0.1, "fraction of the people kept out of training: the classifier's test set")
    batch_size: int = setting(64, "images per step")
    steps: int = setting(2000, "training steps (2,000 of 64: about 9 epochs of 14,000 faces)")
    snapshot_every: int = setting(250, "steps between checkpoints")
    filters: int = setting(32, "channels of the first block (doubled by each of the 4 blocks)")
    dropout: float = setting(0.3, "dropout rate before the output layer")
    learning_rate: float = setting(2e-3, "Adam's initial learning rate")
    learning_rate_half_life: int = setting(500, "steps over which the learning rate halves")
    weight_decay: float = setting(1e-2, "AdamW's decoupled weight decay")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("filters", "learning_rate_half_life")

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a fraction in [0, 1), got {self.dropout}")
        if self.resolution < 2**BLOCKS:
            raise ValueError(f"resolution must be at least {2**BLOCKS}, got {self.resolution}")


class AttributeClassifier:
    """A trained classifier: `names` (the 40 attributes), `resolution`, and `model` (images float32 [B, R, R, 3]
    in [-1, 1] -> logits float32 [B, 40])."""

    def __init__(self, model: keras.Model, names=NAMES, batch_size: int = 256):
        self.model = model
        self.names = tuple(names)
        self.resolution = model.input_shape[1]
        self.batch_size = batch_size

    def probabilities(self, images) -> np.ndarray:
        """uint8 images [N, H, W, 3] of any square size (resized to the classifier's) -> float32 [N, 40] in [0, 1]."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images [N, H, W, 3], got shape {images.shape}")
        outputs = [self._probabilities(images[start : start + self.batch_size])
                   for start in range(0, len(images), self.batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.names)), np.float32)

    def predict(self, images) -> np.ndarray:
        """uint8 images [N, H, W, 3] -> bool [N, 40]: each attribute's probability above 0.5."""
        return self.probabilities(images) > 0.5

    def _probabilities(self, images) -> np.ndarray:
        pixels = tf.convert_to_tensor(images)
        if pixels.shape[1:3] != (self.resolution, self.resolution):
            pixels = tf.image.resize(tf.cast(pixels, tf.float32), (self.resolution, self.resolution), antialias=True)
        pixels = tf.cast(pixels, tf.float32) / 127.5 - 1
        return tf.sigmoid(tf.cast(self.model(pixels, training=False), tf.float32)).numpy()


def build_classifier(resolution: int = 64, filters: int = 32, dropout: float = 0.3, outputs: int = len(NAMES),
                     dtype: str = "float32") -> keras.Model:
    """Images float32 [B, R, R, 3] in [-1, 1] -> one logit per attribute, float32 [B, outputs].

    Four blocks of two 3x3 convolutions with batch norm and ReLU, the channels doubling from `filters`, each block
    ending in 2x2 max pooling; then global average pooling, dropout and a dense output kept in float32 under a
    mixed `dtype` policy (for a stable loss).
    """
    images = keras.Input((resolution, resolution, 3))  # [B, R, R, 3]
    features = images
    for index in range(BLOCKS):
        channels = filters * 2**index
        for _ in range(2):  # [B, size, size, channels]
            features = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, dtype=dtype)(features)
            features = keras.layers.BatchNormalization(momentum=0.9, dtype=dtype)(features)
            features = keras.layers.ReLU(dtype=dtype)(features)
        features = keras.layers.MaxPooling2D(2, dtype=dtype)(features)  # [B, size / 2, size / 2, channels]
    features = keras.layers.GlobalAveragePooling2D(dtype=dtype)(features)  # [B, 8 * filters]
    features = keras.layers.Dropout(dropout, dtype=dtype)(features)
    logits = keras.layers.Dense(outputs, dtype="float32", name="logits")(features)  # [B, outputs]
    return keras.Model(images, logits, name="attribute_classifier")


def compile_classifier(config: AttributeConfig) -> keras.Model:
    """The classifier for `config`, compiled: binary cross-entropy from logits, AdamW with the halving rate,
    and the training accuracy (a logit above 0 is a yes)."""
    model = build_classifier(config.resolution, config.filters, config.dropout,
                             dtype=resolve_precision(config.precision))
    schedule = keras.optimizers.schedules.ExponentialDecay(config.learning_rate, config.learning_rate_half_life, 0.5)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)])
    model.optimizer.build(model.trainable_variables)
    return model


def flip(images, seed: int, step: int) -> tf.Tensor:
    """images float32 [B, H, W, 3] with about half of them mirrored left-right: a pure function of (seed, step)."""
    return tf.image.stateless_random_flip_left_right(images, seed=tf.constant([seed, step], tf.int64))


def labels_of(faces) -> np.ndarray:
    """The 40 attributes of data.Faces as float32 0/1 [N, 40] in NAMES' order; a ValueError names a source
    without them."""
    source = faces.source or "the images given"
    if faces.attributes is None:
        raise ValueError(f"{source}: the faces have no attribute labels (list_attr_celeba.txt or .csv); "
                         f"the attribute classifier learns from them")
    missing = [name for name in NAMES if name not in faces.attribute_names]
    if missing:
        raise ValueError(f"{source}: the attribute file lacks {', '.join(missing)}")
    columns = [faces.attribute_names.index(name) for name in NAMES]
    return (np.asarray(faces.attributes)[:, columns] > 0).astype(np.float32)


def train(faces, run_dir, config: AttributeConfig, resume: bool = False, show_progress: bool = True) -> RunFolder:
    """Train the classifier on labelled faces (data.Faces) less their held-out people into run_dir; resumable
    (resumed == uninterrupted). log.csv holds the loss and the training accuracy of each step's batch."""
    labels_of(training.as_faces(faces))  # no labels: fail before the run folder is made
    faces, config, run = start_run(faces, run_dir, config, resume)
    labels = labels_of(faces)
    model = compile_classifier(config)

    def step(index, batch):
        images = flip(batch["images"], config.seed, index)
        logs = model.train_on_batch(images, batch["labels"], return_dict=True)
        return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}

    def batches(start_step):
        return data.batch_dicts(faces.images, config.batch_size, config.seed, start_step, labels=labels)

    # the dropout masks' random state too (Keras does not checkpoint it), so that a resumed run draws the same masks
    random_states = [layer.seed_generator.state for layer in model.layers if hasattr(layer, "seed_generator")]
    manager = run.checkpoint_manager(model=model, optimizer=model.optimizer, random_states=random_states)
    return run_steps(run, manager, batches, config, step, None, list(LOSS_COLUMNS), resume, show_progress,
                     "attributes", measure_columns=MEASURE_COLUMNS)


def load(run_dir, step: int | None = None) -> AttributeClassifier:
    """The classifier of a run folder, at its latest checkpoint or at `step`."""
    config = _config_of(run_dir)
    run = RunFolder(run_dir)
    model = build_classifier(config.resolution, config.filters, config.dropout,
                             dtype=resolve_precision(config.precision))
    run.restore(tf.train.Checkpoint(model=model), step)
    return AttributeClassifier(model)


def heldout_faces(run_dir, faces):
    """The held-out people of `faces` (data.Faces prepared as the run was: same source and limit) that the
    classifier in run_dir never trained on: the same identity split as its trainer's."""
    config = _config_of(run_dir)
    _, heldout = training.split(faces, config)
    if heldout is None:
        raise ValueError(f"{run_dir}: the run kept no people out of training (heldout 0)")
    return heldout


def report(probabilities, names=NAMES, labels=None) -> list[dict]:
    """One row per attribute: predicted_rate (probabilities float [N, A] above 0.5), and with labels (bool, 0/1
    or -1/+1 [N, A]) accuracy, balanced_accuracy (mean of the rates of true positives and true negatives, over
    those that exist) and majority_baseline (max(p, 1 - p) of the labels' rate p); None without labels."""
    predicted = np.asarray(probabilities) > 0.5
    if predicted.ndim != 2 or predicted.shape[1] != len(names):
        raise ValueError(f"expected probabilities [N, {len(names)}], got shape {predicted.shape}")
    truth = None if labels is None else np.asarray(labels) > 0
    if truth is not None and truth.shape != predicted.shape:
        raise ValueError(f"labels {truth.shape} and probabilities {predicted.shape} differ in shape")
    rows = []
    for index, name in enumerate(names):
        row = dict.fromkeys(REPORT_COLUMNS)
        row.update(attribute=name, predicted_rate=float(predicted[:, index].mean()) if len(predicted) else None)
        if truth is not None and len(truth):
            guess, true = predicted[:, index], truth[:, index]
            rates = [float((guess[true == value] == value).mean()) for value in (True, False) if (true == value).any()]
            positive_rate = float(true.mean())
            row.update(accuracy=float((guess == true).mean()), balanced_accuracy=float(np.mean(rates)),
                       majority_baseline=max(positive_rate, 1 - positive_rate))
        rows.append(row)
    return rows


def mean_row(rows) -> dict:
    """The "mean" row of a report: each column's mean over the attributes (None where no row has a value)."""
    means = {"attribute": "mean"}
    for column in REPORT_COLUMNS[1:]:
        values = [row[column] for row in rows if row[column] is not None]
        means[column] = float(np.mean(values)) if values else None
    return means


def format_report(rows) -> str:
    """A fixed-width table of a report in percent, one line per attribute and a final "mean" line."""
    header = f"{'attribute':<20}{'predicted':>10}{'accuracy':>10}{'balanced':>10}{'majority':>10}"
    lines = [f"{row['attribute']:<20}" + "".join(f"{_percent(row[column]):>10}" for column in REPORT_COLUMNS[1:])
             for row in [*rows, mean_row(rows)]]
    rule = "-" * len(header)
    return "\n".join([header, rule, *lines[:-1], rule, lines[-1]])


def write_report_csv(rows, path) -> Path:
    """Write a report as CSV (columns REPORT_COLUMNS, fractions, empty where unknown, a final "mean" row),
    atomically; returns the path."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for row in [*rows, mean_row(rows)]:
        writer.writerow([row["attribute"], *("" if row[column] is None else f"{row[column]:.6f}"
                                             for column in REPORT_COLUMNS[1:])])
    return write_text_atomically(path, text.getvalue())


def score(run_dir, target, count: int | None = None, seed: int = 0) -> tuple[list[dict], str]:
    """(report rows, what was scored) for the classifier of run_dir on `target`: a CelebA source (labels give
    the accuracy columns; its own training source: only its held-out people), a generative model's run folder
    (`count` samples, default 1000, drawn with seed) or a folder of images (the first `count`, default all)."""
    from facekit import evaluate

    target = Path(target)
    classifier = load(run_dir)
    labels = None
    if (target / "run.json").exists():
        images = evaluate.sample_run(target, count or 1000, seed)
        what = f"{len(images)} faces drawn by the run {target} (seed {seed})"
    elif _is_celeba_source(target):
        images, labels, what = _celeba_images(run_dir, target, count, seed)
    elif target.is_dir():
        images = evaluate.read_image_folder(target, count)
        what = f"{len(images)} images of {target}"
    else:
        raise FileNotFoundError(f"{target}: no such run folder, CelebA source or folder of images")
    return report(classifier.probabilities(images), classifier.names, labels), what


def _celeba_images(run_dir, source: Path, count, seed) -> tuple:
    """(uint8 images, 0/1 labels or None, description) of a CelebA source, prepared as the classifier was."""
    config = _config_of(run_dir)
    own = bool(config.source) and source.resolve() == Path(config.source).resolve()
    faces = data.prepare(source, resolution=config.resolution, crop=config.crop, limit=config.limit if own else None)
    what = f"{len(faces)} faces of {faces.source}"
    if own and config.heldout:
        faces = heldout_faces(run_dir, faces)
        what = (f"{len(faces)} faces of the run's held-out people (never trained on) of its own source "
                f"{faces.source}")
    images, labels = faces.images, labels_of(faces) if faces.attributes is not None else None
    if count is not None and count < len(faces):
        chosen = np.sort(np.random.default_rng(seed).choice(len(faces), count, replace=False))
        images, labels = images[chosen], None if labels is None else labels[chosen]
        what = f"{count} (seed {seed}) of the " + what
    return np.asarray(images), labels, what


def _config_of(run_dir) -> AttributeConfig:
    """The saved config of an attribute classifier's run folder (a ValueError for another model's run)."""
    from facekit import registry

    spec, config = registry.model_of_run(run_dir)
    if spec is not MODEL:
        raise ValueError(f"{run_dir} is a {spec.name} run, not an attribute classifier")
    return config


def _is_celeba_source(path: Path) -> bool:
    markers = ("img_align_celeba", "img_align_celeba.zip", "Img", "list_attr_celeba.txt", "list_attr_celeba.csv")
    return path.is_file() or any((path / marker).exists() for marker in markers)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


MODEL = ModelSpec(name="attributes", config=AttributeConfig, train=train, sample=None, load=load)
