"""The GAN engine: which variables each update changes, n_critic, the generator's moving average, noise as a pure
function of (seed, step), and for every model on it: resume == uninterrupted, same seed same GIF, the divergence
stop, sampling from the moving average."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from facekit import data, gan, registry, synthetic
from facekit.models import conditional
from facekit.training import RunFolder, StepConfig, TrainingDiverged

GAN_MODELS = ("dcgan", "lsgan", "wgan-gp", "hinge", "began", "cgan", "acgan", "infogan")
TINY = dict(resolution=32, latent_dim=8, filters=4, batch_size=4, snapshot_every=3, grid_size=4, precision="float32")


@pytest.fixture(scope="module")
def images():
    """Faces with CelebA's 40 attribute labels (random), which the conditional models read and the rest ignore."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    attributes = np.where(rng.random((40, len(synthetic.ATTRIBUTES))) < 0.3, 1, -1).astype(np.int8)
    return data.Faces(pixels, [f"{index}.jpg" for index in range(40)], synthetic.ATTRIBUTES, attributes)


def build(name: str, **settings) -> gan.GAN:
    spec = registry.model(name)
    tf.keras.utils.set_random_seed(0)
    return _module(name).build(spec.config(**{**TINY, "steps": 10, **settings}))


def real_batch(model: gan.GAN, batch_size: int = 4, seed: int = 0) -> dict:
    """A real batch for one step: images, and 0/1 labels for a conditional model."""
    count = batch_size * model.n_critic
    batch = {"images": tf.random.stateless_uniform((count, 32, 32, 3), [seed, 1], -1, 1)}
    if isinstance(model, conditional.ConditionalGAN):
        labels = tf.random.stateless_uniform((count, len(model.attributes)), [seed, 2]) < 0.5
        batch["labels"] = tf.cast(labels, tf.float32)
    return batch


def snapshot(network) -> dict:
    return {variable.path: variable.numpy().copy() for variable in network.variables}


def changed(before: dict, network) -> set:
    return {variable.path for variable in network.variables if not np.array_equal(before[variable.path],
                                                                                   variable.numpy())}


@pytest.mark.parametrize("name", GAN_MODELS)
def test_a_discriminator_update_changes_the_discriminator_only(name):
    model = build(name)
    real = {key: values[:4] for key, values in real_batch(model).items()}  # one sub-batch
    fake = model.fakes(tf.constant(0, tf.int64), 0, real, training=True)
    before = {network: snapshot(getattr(model, network)) for network in ("generator", "discriminator", "generator_ema")}
    model.discriminator_update(real, fake, tf.constant(0, tf.int64), 0)
    assert changed(before["discriminator"], model.discriminator) == trained_by_one_update(name, model)
    assert changed(before["generator"], model.generator) == set()
    assert changed(before["generator_ema"], model.generator_ema) == set()


@pytest.mark.parametrize("name", GAN_MODELS)
def test_a_step_makes_n_critic_discriminator_updates_and_one_generator_update(name):
    model = build(name)
    generator_before, discriminator_before = snapshot(model.generator), snapshot(model.discriminator)
    logs = model.train_on_batch(real_batch(model), return_dict=True)
    assert int(model.discriminator_optimizer.iterations) == model.n_critic
    assert int(model.generator_optimizer.iterations) == 1
    assert changed(generator_before, model.generator) == {v.path for v in model.generator.variables}
    assert changed(discriminator_before, model.discriminator) == trained_by_one_update(name, model)
    assert set(logs) == set(model.log_columns) and np.isfinite(list(logs.values())).all()
    # at step 0 the ramped half-life is 0 images, so the moving average starts as an exact copy
    for average, current in zip(model.generator_ema.variables, model.generator.variables):
        np.testing.assert_array_equal(average.numpy(), current.numpy())


class Recorder:
    """Wraps a model's discriminator_update and generator_loss to record what each receives, in eager mode."""

    def __init__(self, model: gan.GAN):
        self.model = model
        self.updates, self.generator_calls = [], []
        update, generator_loss = model.discriminator_update, model.generator_loss

        def recording_update(real, fake, step, sub_step):
            self.updates.append({"real": {name: np.array(value) for name, value in real.items()},
                                 "fake": {name: np.array(value) for name, value in fake.items()},
                                 "step": int(step), "sub_step": int(sub_step)})
            return update(real, fake, step, sub_step)

        def recording_generator_loss(real, fake):
            self.generator_calls.append({"fake": {name: np.array(value) for name, value in fake.items()},
                                         "discriminator_updates_before": int(model.discriminator_optimizer.iterations)})
            return generator_loss(real, fake)

        model.discriminator_update, model.generator_loss = recording_update, recording_generator_loss
        model.run_eagerly = True  # train_on_batch runs train_step as Python, so the wrappers see every call


@pytest.mark.parametrize("name", GAN_MODELS)
def test_each_discriminator_update_gets_its_own_real_sub_batch_and_its_own_fakes(name):
    model = build(name, n_critic=3)
    batch = real_batch(model)
    generator_before = [variable.numpy().copy() for variable in model.generator.variables]
    recorder = Recorder(model)
    model.train_on_batch(batch, return_dict=True)
    model.train_on_batch(real_batch(model, seed=1), return_dict=True)  # step 1: other noise than step 0's
    assert [(call["step"], call["sub_step"]) for call in recorder.updates] == [(0, 0), (0, 1), (0, 2),
                                                                                (1, 0), (1, 1), (1, 2)]
    updates = recorder.updates[:3]
    for sub_step, call in enumerate(updates):
        for key, values in batch.items():  # sub-batch k of the step's batch, images and labels alike
            np.testing.assert_array_equal(call["real"][key], values.numpy()[4 * sub_step : 4 * sub_step + 4])
        expected = model.fake_inputs(tf.constant(0, tf.int64), sub_step, call["real"])  # noise of (seed, 0, k)
        assert set(expected) | {"images"} == set(call["fake"])
        for key, values in expected.items():
            np.testing.assert_array_equal(call["fake"][key], np.asarray(values))
    # the fakes are G of those inputs, by the generator as it was at the start of the step
    after = [variable.numpy().copy() for variable in model.generator.variables]
    for variable, value in zip(model.generator.variables, generator_before):
        variable.assign(value)
    for call in updates:
        inputs = {key: value for key, value in call["fake"].items() if key != "images"}
        drawn = model.generator(model._generator_input(inputs), training=True)
        np.testing.assert_allclose(call["fake"]["images"], np.asarray(drawn), atol=1e-6)
    for variable, value in zip(model.generator.variables, after):
        variable.assign(value)
    noises = [call["fake"]["noise"] for call in recorder.updates]
    assert all(not np.allclose(noises[i], noises[j]) for i in range(6) for j in range(i))  # six distinct draws
    # the generator's update: the last sub-step's fakes, through the discriminator after all n_critic updates
    assert [call["discriminator_updates_before"] for call in recorder.generator_calls] == [3, 6]
    for call, last in zip(recorder.generator_calls, (recorder.updates[2], recorder.updates[5])):
        for key, values in last["fake"].items():
            np.testing.assert_array_equal(call["fake"][key], values)


def test_the_moving_average_follows_the_ramped_half_life():
    model = build("dcgan", ema_half_life=1000, ema_rampup=0.5)
    model.train_on_batch(real_batch(model, seed=0))
    average_before = [variable.numpy().copy() for variable in model.generator_ema.variables]
    model.train_on_batch(real_batch(model, seed=1))
    # step 1: 4 images seen, half-life min(1000, 0.5 * 4) = 2 images, beta = 0.5 ** (4 / 2) = 0.25
    beta = 0.25
    for before, average, current in zip(average_before, model.generator_ema.variables, model.generator.variables):
        np.testing.assert_allclose(average.numpy(), beta * before + (1 - beta) * current.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.array_equal(model.generator_ema.variables[0].numpy(), model.generator.variables[0].numpy())
    assert model.sampling_generator is model.generator_ema
    assert build("dcgan", ema_half_life=0).generator_ema is None


def test_noise_is_a_pure_function_of_seed_step_and_sub_step():
    model = build("wgan-gp")
    first = model.noise(tf.constant(3, tf.int64), 1, 4).numpy()
    np.testing.assert_array_equal(first, model.noise(tf.constant(3, tf.int64), 1, 4).numpy())
    assert not np.allclose(first, model.noise(tf.constant(3, tf.int64), 2, 4).numpy())
    assert not np.allclose(first, model.noise(tf.constant(4, tf.int64), 1, 4).numpy())
    assert not np.allclose(first, build("wgan-gp", seed=1).noise(tf.constant(3, tf.int64), 1, 4).numpy())


@pytest.mark.parametrize("name", GAN_MODELS)
def test_resumed_run_equals_uninterrupted_run(tmp_path, images, name):
    spec = registry.model(name)
    whole = spec.train(images, tmp_path / "whole", spec.config(steps=6, **TINY), show_progress=False)
    spec.train(images, tmp_path / "split", spec.config(steps=3, **TINY), show_progress=False)
    split = spec.train(images, tmp_path / "split", spec.config(steps=6, **TINY), resume=True, show_progress=False)
    whole_log, split_log = whole.read_log(), split.read_log()
    assert [row["step"] for row in split_log] == list(range(1, 7))
    for column in spec.load(whole.path).log_columns:
        np.testing.assert_array_equal([row[column] for row in whole_log], [row[column] for row in split_log])
    assert whole.gif_path.read_bytes() == split.gif_path.read_bytes()
    first, second = spec.load(whole.path), spec.load(split.path)
    for a, b in zip(first.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(spec.sample(whole.path, 3, seed=5), spec.sample(split.path, 3, seed=5))


def test_same_seed_same_gif_and_a_rerun_refuses_to_overwrite(tmp_path, images):
    spec = registry.model("lsgan")
    config = spec.config(steps=3, **TINY)
    first = spec.train(images, tmp_path / "a", config, show_progress=False)
    second = spec.train(images, tmp_path / "b", config, show_progress=False)
    assert first.gif_path.read_bytes() == second.gif_path.read_bytes()
    assert first.losses_path.stat().st_size > 0
    with pytest.raises(FileExistsError, match="already holds a run"):
        spec.train(images, tmp_path / "a", config, show_progress=False)
    with pytest.raises(ValueError, match="latent_dim: run has 8, asked 9"):
        spec.train(images, tmp_path / "a", spec.config(steps=6, **{**TINY, "latent_dim": 9}), resume=True)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, images, monkeypatch):
    real_train_on_batch = gan.GAN.train_on_batch
    calls = []

    def train_on_batch_that_diverges(self, *arguments, **options):
        calls.append(1)
        logs = real_train_on_batch(self, *arguments, **options)
        return {**logs, "g_loss": float("inf")} if len(calls) == 5 else logs

    monkeypatch.setattr(gan.GAN, "train_on_batch", train_on_batch_that_diverges)
    spec = registry.model("dcgan")
    with pytest.raises(TrainingDiverged, match=r"step 5: training diverged \(g_loss=inf\); last good checkpoint kept: .*ckpt-3"):
        spec.train(images, tmp_path / "run", spec.config(steps=6, **TINY), show_progress=False)
    run = RunFolder(tmp_path / "run")
    assert tf.train.latest_checkpoint(run.checkpoints_dir).endswith("ckpt-3")
    assert [row["step"] for row in run.read_log()] == [1, 2, 3, 4]


def test_milestones_are_kept_beyond_the_rolling_checkpoints(tmp_path, images):
    spec = registry.model("dcgan")
    run = spec.train(images, tmp_path / "run", spec.config(steps=12, **{**TINY, "snapshot_every": 2},
                                                           milestone_every=4), show_progress=False)
    assert [step for step, _ in run.milestones()] == [4, 8, 12]
    assert len(tf.train.get_checkpoint_state(run.checkpoints_dir).all_model_checkpoint_paths) == 3
    early, latest = spec.load(run.path, step=4), spec.load(run.path)
    assert not np.array_equal(early.generator.variables[0].numpy(), latest.generator.variables[0].numpy())
    assert int(early.generator_optimizer.iterations) == 0  # only the networks are loaded to sample
    assert spec.sample(run.path, 2, step=4).shape == (2, 32, 32, 3)


def test_loading_a_run_whose_checkpoint_lacks_the_moving_average_names_the_problem(tmp_path):
    spec = registry.model("dcgan")
    run = RunFolder(tmp_path / "run")
    run.start(vars(spec.config(**TINY)), resume=False)
    model = build("dcgan", ema_half_life=0)
    tf.train.Checkpoint(generator=model.generator, discriminator=model.discriminator).save(run.checkpoints_dir / "c")
    with pytest.raises(ValueError, match="does not hold the networks run.json describes"):
        spec.load(run.path)


def test_a_training_step_runs_without_grappler_s_remapper_and_leaves_the_process_setting_alone(capfd):
    model = build("dcgan")  # Conv2D + BiasAdd + LeakyRelu under a gradient: the remapper logs "remapper failed"
    capfd.readouterr()
    model.train_on_batch(real_batch(model))
    assert "remapper failed" not in capfd.readouterr().err
    assert "remapping" not in tf.config.optimizer.get_experimental_options()


def test_the_batch_size_help_says_a_step_reads_n_critic_batches():
    field = next(field for field in dataclasses.fields(gan.GANConfig) if field.name == "batch_size")
    assert field.metadata["help"] == "images per discriminator update (a step reads n_critic times as many)"
    assert field.default == StepConfig.batch_size


def trained_by_one_update(name: str, model: gan.GAN) -> set:
    """Every discriminator variable, less those the first update cannot move: the output bias of a Wasserstein
    critic (a constant added to every value cancels in E[D(G(z))] - E[D(x)]) and of the hinge loss (while every
    output is inside the margin its gradient is (fakes - reals) / B = 0; the projection cGAN's unconditional
    output psi too), and SN's u of a one-column kernel (+-1)."""
    variables = {v.path for v in model.discriminator.variables}
    output = model.discriminator.layers[-1]
    if name == "cgan":  # the projection discriminator: psi's bias and u as the hinge model's, summed with V's term
        output = next(layer for layer in model.discriminator.layers if getattr(layer, "units", None) == 1)
    if name in ("wgan-gp", "hinge", "cgan"):
        variables.remove(output.bias.path)
    if name in ("hinge", "cgan"):
        variables.remove(output.u.path)
    return variables


def _module(name: str):
    import importlib

    return importlib.import_module(f"facekit.models.{name.replace('-', '_')}")


@pytest.mark.parametrize("resolution, batches", [(32, [1000, 200]), (64, [250, 250, 250, 250, 200])])
def test_generate_draws_as_many_pixels_at_a_time_at_any_resolution(resolution, batches, monkeypatch):
    from facekit.models import dcgan

    model = dcgan.build(registry.model("dcgan").config(resolution=resolution, latent_dim=4, filters=2,
                                                       precision="float32"))
    drawn, call = [], type(model).__call__
    monkeypatch.setattr(type(model), "__call__",
                        lambda self, inputs, *args, **kwargs: drawn.append(len(inputs["noise"])) or
                        call(self, inputs, *args, **kwargs))
    assert model.generate(np.zeros((1200, 4), np.float32)).shape == (1200, resolution, resolution, 3)
    assert drawn == batches
