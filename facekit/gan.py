"""The GAN engine: one `keras.Model` for the whole GAN family, trained with `train_on_batch` by the shared loop.

A model on the engine brings its two networks, its config and a loss pair from `facekit.losses`; the engine's
`train_step` does, for the batch of step s (n_critic sub-batches of real images):

    for each sub-batch k:
        fake = G(z)                    z ~ N(0, I), a pure function of (seed, s, k)
        D loss = discriminator loss of D(real) and D(fake)  [+ lambda * gradient penalty]
        one optimizer update of D's variables only
    G loss = generator loss of D(fake) on the last sub-batch's fakes (drawn once, used by both updates, as the
             PyTorch DCGAN tutorial does), through the freshly updated D
    one optimizer update of G's variables only
    G_ema <- beta * G_ema + (1 - beta) * G   (every variable, batch-norm statistics included)

Each update names its variables explicitly and has its own optimizer, so nothing toggles `trainable` (the Keras 3
trap of lesson 03 cannot happen). The moving average of the generator (Karras et al.'s EMA, with StyleGAN2-ADA's
half-life in images and its early ramp) draws the snapshots, the GIF and every sample; it costs no training.

A model with its own objective (BEGAN, the conditional models, InfoGAN) subclasses `GAN` and overrides
`discriminator_loss`, `generator_loss` and `after_step`, and a model whose generator takes more than noise
overrides `fake_inputs` (what G is given at a training step), `sampling_inputs` and `control_inputs`. A model
whose networks change during the run (Progressive GAN's, which grow) also overrides which variables each update
trains (`discriminator_variables`, `generator_variables`), how the steps are counted (`steps_done`) and the
batches it reads (`training_batches`). An image-to-image model (pix2pix, super-resolution) reads its generator's
input image from the batch, can train its generator alone (`trains_discriminator` False: no discriminator update,
no d_loss column, `loss_columns`), and draws its snapshot grid as input | output | truth (`control_images`).
Real and fake sub-batches travel as dicts: real = {"images", and "labels" or "condition" when the stream carries
them}, fake = {"images": G(inputs), and the inputs: "noise", "labels", "codes", "condition"}. Everything else
(steps, noise, batches, resume, logs, snapshots, checkpoints, divergence stop, GIF, sampling) is shared and never
copied.
"""

import contextlib
import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from facekit import data, losses, progress
from facekit.training import RunFolder, StepConfig, as_faces, run_steps, setting, split, start_run

LOSS_COLUMNS = ("d_loss", "g_loss")
MEASURE_COLUMNS = ("d_real", "d_fake")
GENERATED_PIXELS = 250 * 64 * 64  # pixels `generate` draws at a time (250 images at 64x64): memory, not count
PENALTY_SEED_OFFSET = 1000  # the gradient penalty's alphas at sub-step k are drawn from (seed, step, 1000 + k)


@dataclasses.dataclass
class GANConfig(StepConfig):
    """Settings of every model on the engine; each model's config subclasses it and names its `model`."""

    batch_size: int = setting(StepConfig.batch_size, "images per discriminator update (a step reads n_critic times "
                                                     "as many)")
    latent_dim: int = setting(100, "length of the generator's noise vector")
    filters: int = setting(64, "width: channels of the discriminator's first layer")
    learning_rate: float = setting(2e-4, "Adam learning rate of both networks")
    beta_1: float = setting(0.5, "Adam beta_1 of both networks")
    beta_2: float = setting(0.999, "Adam beta_2 of both networks")
    n_critic: int = setting(1, "discriminator updates per generator update (each on its own real sub-batch)")
    ema_half_life: int = setting(10_000, "half-life of the generator's moving average, in images (0: no average)")
    ema_rampup: float = setting(0.05, "early on the half-life is at most this fraction of the images seen (0: off)")

    def positive_fields(self) -> tuple:
        return super().positive_fields() + ("latent_dim", "filters", "n_critic")

    def __post_init__(self):
        super().__post_init__()
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.ema_half_life < 0 or self.ema_rampup < 0:
            raise ValueError(f"ema_half_life and ema_rampup must be at least 0, got {self.ema_half_life} "
                             f"and {self.ema_rampup}")


class GAN(keras.Model):
    """Generator + discriminator trained by `train_on_batch({"images": [n_critic * B, R, R, 3]})` (plus
    "labels" [n_critic * B, L] for a conditional model).

    generator: noise float32 [B, latent_dim] (or a dict of named inputs, one of them "noise") -> images
    [B, R, R, 3] in [-1, 1]; discriminator: images -> outputs [B, 1] (logits or critic values) read by
    `loss_pair`. Returns the step's d_loss, g_loss, d_real and d_fake (means of D(x) and D(G(z)), as
    probabilities when the pair's outputs are logits), and model measures.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, loss_pair: losses.LossPair,
                 n_critic: int = 1, gradient_penalty_weight: float = 0.0, seed: int = 0,
                 ema_half_life: int = 10_000, ema_rampup: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.loss_pair = loss_pair
        self.n_critic = n_critic
        self.gradient_penalty_weight = gradient_penalty_weight
        self.seed = seed
        self.latent_dim = _latent_dim(generator)
        self.ema_half_life = ema_half_life
        self.ema_rampup = ema_rampup
        self.generator_ema = None
        if ema_half_life:
            self.generator_ema = keras.models.clone_model(generator)
            self.generator_ema.set_weights(generator.get_weights())
            self.generator_ema.trainable = False

    @property
    def log_columns(self) -> tuple:
        """The names `train_on_batch` returns, in log.csv's order: losses, then measures."""
        return self.loss_columns + self.measure_columns

    @property
    def loss_columns(self) -> tuple:
        """The losses, plotted in losses.png's upper panel: d_loss (when the discriminator trains) and g_loss."""
        return LOSS_COLUMNS if self.trains_discriminator else ("g_loss",)

    @property
    def trains_discriminator(self) -> bool:
        """Whether a step updates the discriminator (n_critic times); a generator trained alone says False."""
        return True

    @property
    def measure_columns(self) -> tuple:
        """The model's own measures, plotted in losses.png's lower panel."""
        penalty = ("gradient_penalty", "gradient_norm") if self.gradient_penalty_weight else ()
        return MEASURE_COLUMNS + penalty

    def compile(self, discriminator_optimizer, generator_optimizer, **kwargs):
        """Give each network its own optimizer, built now so that checkpoints restore into them."""
        super().compile(**kwargs)
        self.discriminator_optimizer = discriminator_optimizer
        self.generator_optimizer = generator_optimizer
        discriminator_optimizer.build(self.discriminator.trainable_variables)
        generator_optimizer.build(self.generator.trainable_variables)

    def call(self, inputs, training=False):
        """Images float32 [B, R, R, 3] from the generator's inputs (noise [B, latent_dim], or a dict of them),
        drawn by the sampling generator."""
        return keras.ops.cast(self.sampling_generator(self._generator_input(inputs), training=training), "float32")

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator that draws snapshots and samples: the moving average when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def generate(self, inputs, batch_size: int | None = None) -> np.ndarray:
        """Images float32 [N, R, R, 3] in [-1, 1] from noise float [N, latent_dim] (or a dict of the generator's
        inputs, each [N, ...]: floats as float32, integers such as seeds kept), in batches of `batch_size` (default:
        GENERATED_PIXELS // R^2 images, 250 at 64x64 and 62 at 128x128, so that memory does not grow with R)."""
        inputs = {name: _as_array(value) for name, value in _as_inputs(inputs).items()}
        count = len(next(iter(inputs.values())))
        batch_size = batch_size or max(1, GENERATED_PIXELS // _output_size(self.generator) ** 2)
        return np.concatenate([
            np.asarray(self({name: value[start : start + batch_size] for name, value in inputs.items()}))
            for start in range(0, count, batch_size)])

    def sampling_inputs(self, count: int, seed: int = 0) -> dict:
        """The generator's inputs for `count` samples, a pure function of `seed`: noise from default_rng(seed)."""
        rng = np.random.default_rng(seed)
        return {"noise": rng.standard_normal((count, self.latent_dim)).astype(np.float32)}

    def control_inputs(self, grid_size: int) -> tuple[dict, int | None]:
        """(inputs, columns) of the fixed snapshot grid: `grid_size` noise vectors from the run's seed, square."""
        return {"noise": progress.control_noise(grid_size, self.latent_dim, self.seed)}, None

    def attach(self, run: RunFolder, faces=None, heldout=None) -> None:
        """Keep or read what the model needs beside its checkpoint (with `faces`, the training faces, and
        `heldout`, the held-out people's or None: at the start of training; without: when loaded to sample).
        Nothing for a model on noise alone."""

    def control_images(self, inputs: dict) -> np.ndarray:
        """The snapshot grid's images float32 [N, R, R, 3] for the control inputs: what the generator draws."""
        return self.generate(inputs)

    def training_labels(self, faces):
        """float32 [N, L] labels that ride with the training images in the batch stream; None: images alone."""
        return None

    def make_train_function(self, force=False):
        """Keras's training function, called with Grappler's remapper off and the process's setting restored after.

        The remapper fails on a graph that differentiates through Conv2D + BiasAdd + LeakyRelu and logs an error
        line at every run. Without it, a DCGAN-64 step takes the same time (0.305 s against 0.310 s and 0.309
        against 0.298, alternating, on this project's 2-core AMD EPYC); switched off around each step instead of
        for the whole process, too (1.448 and 1.442 s against 1.460 and 1.437 s, 64 filters and batch 64,
        alternating on the same CPU under other work). Other functions in the process keep TensorFlow's setting.
        """
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force)
        function = self.train_function

        def without_remapper(*args, **kwargs):
            with _remapper_off():
                return function(*args, **kwargs)

        self.train_function = without_remapper
        return self.train_function

    def train_step(self, batch):
        """One step: n_critic discriminator updates, one generator update, the moving average; returns the logs."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        split = {name: tf.split(values, self.n_critic) for name, values in batch.items()}
        real_batches = [{name: parts[index] for name, parts in split.items()} for index in range(self.n_critic)]
        step = self.steps_done()
        for sub_step, real in enumerate(real_batches[:-1] if self.trains_discriminator else []):
            self.discriminator_update(real, self.fakes(step, sub_step, real, training=True), step, sub_step)
        real = real_batches[-1]
        logs = {}
        with tf.GradientTape() as generator_tape:
            fake = self.fakes(step, self.n_critic - 1, real, training=True)
            if self.trains_discriminator:
                with generator_tape.stop_recording():
                    logs = self.discriminator_update(real, fake, step, self.n_critic - 1)
            generator_loss, generator_logs = self.generator_loss(real, fake)
        variables = self.generator_variables(real)
        self.generator_optimizer.apply_gradients(zip(generator_tape.gradient(generator_loss, variables), variables))
        logs = {**logs, **generator_logs}
        logs.update(self.after_step(logs))
        if self.generator_ema is not None:
            batch_size = tf.shape(real["images"])[0]
            self.update_moving_average(step * tf.cast(batch_size, tf.int64), batch_size)
        return {name: logs[name] for name in self.loss_columns + self.measure_columns}

    def steps_done(self):
        """Steps trained so far, int64 []: the generator optimizer's updates (one a step)."""
        return tf.cast(self.generator_optimizer.iterations, tf.int64)

    def generator_variables(self, real: dict) -> list:
        """The variables a generator update trains, for the real sub-batch `real`: all of G's trainable ones."""
        return self.generator.trainable_variables

    def discriminator_variables(self, real: dict) -> list:
        """The variables a discriminator update trains, for the real sub-batch `real`: all of D's trainable ones."""
        return self.discriminator.trainable_variables

    def training_batches(self, faces, config: GANConfig, start_step: int):
        """The training batches from `start_step` on, each a pure function of (seed, step): dicts of
        n_critic * batch_size images (and of their labels, for a model that reads them; see `training_labels`)."""
        return data.batch_dicts(faces.images, config.batch_size * self.n_critic, config.seed, start_step,
                                labels=self.training_labels(faces))

    def fakes(self, step, sub_step: int, real: dict, training: bool = False) -> dict:
        """The fake sub-batch at (step, sub_step): {"images": G(inputs), **inputs}, inputs from `fake_inputs`."""
        inputs = self.fake_inputs(step, sub_step, real)
        return {"images": self.generator(self._generator_input(inputs), training=training), **inputs}

    def fake_inputs(self, step, sub_step: int, real: dict) -> dict:
        """What the generator is given at (step, sub_step) for the real sub-batch `real`: {"noise": ...} here."""
        return {"noise": self.noise(step, sub_step, tf.shape(real["images"])[0])}

    def noise(self, step, sub_step: int, batch_size):
        """The generator's input at (step, sub_step): float32 [B, latent_dim], a pure function of (seed, step, k)."""
        return tf.random.stateless_normal((batch_size, self.latent_dim), seed=self._seed(step, sub_step))

    def discriminator_update(self, real: dict, fake: dict, step, sub_step: int) -> dict:
        """One optimizer update of the discriminator's variables only; returns its logs."""
        with tf.GradientTape() as tape:
            loss, logs = self.discriminator_loss(real, fake, step, sub_step)
        variables = self.discriminator_variables(real)
        self.discriminator_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return logs

    def discriminator_loss(self, real: dict, fake: dict, step, sub_step: int):
        """The pair's discriminator loss on one call over real and fake together [+ lambda * penalty]."""
        real_images = real["images"]
        fake_images = tf.cast(fake["images"], real_images.dtype)
        real_outputs, fake_outputs = tf.split(self.discriminate(together(real, fake), training=True), 2)
        loss = self.loss_pair.discriminator(real_outputs, fake_outputs)
        logs = {"d_real": self.readout(real_outputs), "d_fake": self.readout(fake_outputs)}
        if self.gradient_penalty_weight:
            penalty, norms = losses.gradient_penalty(self.discriminator, real_images, fake_images,
                                                     self._seed(step, PENALTY_SEED_OFFSET + sub_step))
            loss += self.gradient_penalty_weight * penalty
            logs.update(gradient_penalty=penalty, gradient_norm=tf.reduce_mean(norms))
        return loss, {"d_loss": loss, **logs}

    def generator_loss(self, real: dict, fake: dict):
        """The pair's generator loss on D(G(z)); returns (loss, logs)."""
        loss = self.loss_pair.generator(self.discriminate(fake, training=True))
        return loss, {"g_loss": loss}

    def discriminate(self, batch: dict, training: bool = False):
        """The discriminator's outputs for a (real, fake, or both) sub-batch: D(images) here; a conditional
        discriminator also reads the batch's labels."""
        return self.discriminator(batch["images"], training=training)

    def after_step(self, logs: dict) -> dict:
        """A model's own state update after each step (BEGAN's k_t); returns logs to add. None here."""
        return {}

    def update_moving_average(self, images_seen, batch_size) -> None:
        """G_ema <- beta G_ema + (1 - beta) G with beta = 0.5 ** (batch / half-life), the half-life in images
        ramped as StyleGAN2-ADA does: at most ema_rampup * images_seen (so the average starts as a copy)."""
        half_life = tf.cast(self.ema_half_life, tf.float32)
        if self.ema_rampup:
            half_life = tf.minimum(half_life, tf.cast(images_seen, tf.float32) * self.ema_rampup)
        beta = tf.pow(0.5, tf.cast(batch_size, tf.float32) / tf.maximum(half_life, 1e-8))
        for average, current in zip(self.generator_ema.variables, self.generator.variables):
            average.assign(beta * average + (1.0 - beta) * tf.cast(current, average.dtype))

    def checkpoint_items(self) -> dict:
        """What a checkpoint holds: both networks, the moving average, both optimizers, the model's own state."""
        items = {"generator": self.generator, "discriminator": self.discriminator,
                 "discriminator_optimizer": self.discriminator_optimizer,
                 "generator_optimizer": self.generator_optimizer}
        if self.generator_ema is not None:
            items["generator_ema"] = self.generator_ema
        return items

    def _seed(self, step, index: int):
        """A stateless-random seed that is a pure function of (seed, step, index)."""
        return tf.random.experimental.stateless_fold_in(tf.stack([tf.constant(self.seed, tf.int64), step]), index)

    def _generator_input(self, inputs):
        """What the generator is called with: the noise alone, or the dict of named inputs it was built with."""
        inputs = _as_inputs(inputs)
        return inputs if len(self.generator.inputs) > 1 else inputs["noise"]

    def readout(self, outputs):
        """D(x) or D(G(z)) as logged: the mean probability for a logit pair, the mean raw value otherwise."""
        outputs = tf.cast(outputs, tf.float32)
        return tf.reduce_mean(tf.sigmoid(outputs) if self.loss_pair.probability else outputs)


def compile_gan(model: GAN, config: GANConfig, learning_rate=None, discriminator_learning_rate=None,
                epsilon: float = 1e-7) -> GAN:
    """Compile `model` with one Adam per network at the config's betas and rate, or at `learning_rate` (a rate or a
    schedule of the optimizer's updates) and the discriminator's at `discriminator_learning_rate` (default: the
    same); `epsilon` is Adam's (Keras's default 1e-7)."""
    rate = learning_rate if learning_rate is not None else config.learning_rate
    discriminator_rate = discriminator_learning_rate if discriminator_learning_rate is not None else rate

    def adam(rate_or_schedule):
        return keras.optimizers.Adam(rate_or_schedule, beta_1=config.beta_1, beta_2=config.beta_2, epsilon=epsilon)

    model.compile(discriminator_optimizer=adam(discriminator_rate), generator_optimizer=adam(rate), jit_compile=False)
    return model


def train(faces, run_dir, config: GANConfig, build, resume: bool = False, show_progress: bool = True) -> RunFolder:
    """Train `build(config)` (a compiled GAN) on faces (data.Faces or uint8 [N, R, R, 3]) into run_dir.

    Resumable: resumed == uninterrupted, since batches, noise and penalties are pure functions of (seed, step).
    """
    _, heldout = split(as_faces(faces), config)
    faces, config, run = start_run(faces, run_dir, config, resume)
    model = build(config)
    model.attach(run, faces, heldout)
    control, columns = model.control_inputs(config.grid_size)

    def step(_, batch):
        logs = model.train_on_batch(batch, return_dict=True)
        return {name: float(logs[name]) for name in model.log_columns}

    def batches(start_step):
        return model.training_batches(faces, config, start_step)

    manager = run.checkpoint_manager(**model.checkpoint_items())
    return run_steps(run, manager, batches, config, step, lambda: model.control_images(control),
                     list(model.loss_columns), resume, show_progress, config.model,
                     measure_columns=model.measure_columns, grid_columns=columns)


def load(run_dir, config_class: type, build, step: int | None = None) -> GAN:
    """The GAN of a run folder at its latest checkpoint, or at `step` (all networks, to sample or inspect)."""
    run = RunFolder(run_dir)
    config = config_class(**run.read_config())
    model = build(config)
    model.attach(run)
    items = {name: value for name, value in model.checkpoint_items().items() if "optimizer" not in name}
    try:
        run.restore(tf.train.Checkpoint(**items), step)
    except AssertionError as error:
        raise ValueError(f"{run.checkpoints_dir}: the checkpoint does not hold the networks run.json describes "
                         f"({str(error).splitlines()[0]})") from None
    return model


def sample(run_dir, count: int, seed: int = 0, step: int | None = None, config_class: type = GANConfig,
           build=None) -> np.ndarray:
    """`count` faces uint8 [count, R, R, 3] from a run's sampling generator (at its latest checkpoint, or at
    `step`), its inputs drawn by the model's `sampling_inputs` from `seed`."""
    model = load(run_dir, config_class, build, step)
    return data.to_uint8(model.generate(model.sampling_inputs(count, seed)))


def model_spec(name: str, config_class: type, build):
    """The registry entry of a model on the engine: its config, and the engine's train and sample for `build`."""
    from facekit.registry import ModelSpec

    return ModelSpec(name=name, config=config_class, train=functools.partial(train, build=build),
                     sample=functools.partial(sample, config_class=config_class, build=build),
                     load=functools.partial(load, config_class=config_class, build=build))


def together(real: dict, fake: dict) -> dict:
    """One batch of the real sub-batch followed by the fake one, for what both have (images, and labels where
    both carry them), so that the discriminator runs once over both; fakes are cast to the reals' dtype."""
    return {name: tf.concat([real[name], tf.cast(fake[name], real[name].dtype)], 0)
            for name in real if name in fake}


@contextlib.contextmanager
def _remapper_off():
    """Grappler's remapper off for the functions called inside; the process's own setting afterwards."""
    before = tf.config.optimizer.get_experimental_options().get("remapping")  # None: TensorFlow's default
    tf.config.optimizer.set_experimental_options({"remapping": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": before})


def _as_inputs(inputs) -> dict:
    """The generator's inputs as a dict: noise alone becomes {"noise": noise}."""
    return inputs if isinstance(inputs, dict) else {"noise": inputs}


def _output_size(generator) -> int:
    """The side in pixels of a generator's images: a functional model's output, or a growing one's `resolution`."""
    resolution = getattr(generator, "resolution", None)
    return resolution if resolution else generator.outputs[0].shape[1]


def _as_array(values) -> np.ndarray:
    """An input batch as a NumPy array: integers (seeds) as they are, anything else float32."""
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.integer) else values.astype(np.float32)


def _latent_dim(generator: keras.Model) -> int | None:
    """The length of the generator's noise vector: its `latent_dim` when it says (a subclassed model), else the
    width of its noise input (the one named "noise" when it has several); None for a generator of images alone."""
    if hasattr(generator, "latent_dim"):
        return generator.latent_dim
    named = {tensor.name.split(":")[0]: tensor for tensor in generator.inputs}
    noise = named.get("noise", generator.inputs[0])
    return noise.shape[-1] if len(noise.shape) == 2 else None
