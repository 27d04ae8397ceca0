"""Progressive GAN: the networks' shapes and fade-in blends against hand computations, the schedule as a pure function
of the step, which variables each update trains, the loss against its formula, the batches of each phase, resume
mid-fade and at a phase boundary equal to the uninterrupted run, and the command line end to end.

(The layers it is built of, pixel norm, minibatch stddev, equalised learning rate and the fade-in blend, are tested
against hand computations in test_layers.py.)"""

import numpy as np
import pytest
import tensorflow as tf

from facekit import data, gan, registry
from facekit.cli import build_parser, main
from facekit.models import progan
from facekit.training import RunFolder

# 16x16 runs: 4x4 for 2 steps, 8x8 fading in over steps 2-3 (fade 0, 0.5) and stable over 4-5, 16x16 fading in over
# 6-7, stable from 8 on
TINY = dict(resolution=16, latent_dim=8, filters=8, filter_base=64, batch_sizes=(4, 4, 4), fade_images=8,
            stabilise_images=8, grid_size=4, snapshot_every=3, precision="float32")


def build(**settings) -> progan.ProGAN:
    tf.keras.utils.set_random_seed(0)
    return progan.build(progan.ProGANConfig(**{**TINY, "steps": 12, **settings}))


def uniform(shape, seed: int = 0):
    return tf.random.stateless_uniform(shape, [seed, 1], -1, 1)


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(0)
    return data.Faces(rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8), [f"{index}.jpg" for index in range(12)])


def test_the_networks_have_each_resolutions_shapes_and_widths():
    model = build(filters=8, filter_base=64)  # 8 channels up to 8x8, 4 at 16x16
    noise = uniform((2, 8))
    for resolution in (4, 8, 16):
        assert model.generator(noise, resolution=resolution, fade=0.5).shape == (2, resolution, resolution, 3)
        assert model.discriminator(uniform((4, resolution, resolution, 3)), fade=0.5).shape == (4, 1)
    assert [block.output_shape for block in model.generator.blocks] == [(None, 4, 4, 8), (None, 8, 8, 8),
                                                                        (None, 16, 16, 4)]
    assert [block.output_shape for block in model.discriminator.blocks] == [(None, 1), (None, 4, 4, 8),
                                                                            (None, 8, 8, 8)]
    assert progan.channels(16, 512, 16384) == 512 and progan.channels(128, 512, 16384) == 128  # the paper's widths
    with pytest.raises(ValueError, match="grown to 16x16 runs at 4, 8, 16 pixels, not 32"):
        model.discriminator(uniform((4, 32, 32, 3)))


def test_under_mixed_precision_only_the_generators_blocks_compute_in_bfloat16():
    model = build(precision="mixed_bfloat16")
    assert {layer.compute_dtype for layer in model.generator.blocks[1].layers} == {"bfloat16"}
    assert {layer.compute_dtype for layer in model.generator.to_rgb} == {"float32"}
    critic_layers = [layer for network in model.discriminator.blocks + model.discriminator.from_rgb
                     for layer in network.layers]
    assert {layer.compute_dtype for layer in critic_layers} == {"float32"}
    assert model.generator(uniform((2, 8)), resolution=8, fade=0.5).dtype == tf.float32
    logs = model.train_on_batch({"images": uniform((4, 4, 4, 3))}, return_dict=True)
    assert np.isfinite(list(logs.values())).all()


def test_the_generator_fades_its_new_block_in_over_the_upsampled_old_output():
    generator = build().generator
    noise = uniform((3, 8))
    features_4 = generator.blocks[0](noise)
    old = np.repeat(np.repeat(generator.to_rgb[0](features_4), 2, axis=1), 2, axis=2)  # toRGB at 4x4, enlarged
    new = np.asarray(generator.to_rgb[1](generator.blocks[1](features_4)))
    for fade in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(generator(noise, resolution=8, fade=fade), (1 - fade) * old + fade * new,
                                   rtol=1e-5, atol=1e-6)
    # at fade 0 the 8x8 generator draws exactly the 4x4 one's faces, each pixel doubled: growing changes nothing yet
    np.testing.assert_allclose(generator(noise, resolution=8, fade=0.0),
                               np.repeat(np.repeat(generator(noise, resolution=4), 2, axis=1), 2, axis=2), atol=1e-6)


def test_the_discriminator_fades_its_new_block_in_over_the_downsampled_image():
    discriminator = build().discriminator
    images = uniform((4, 8, 8, 3))
    pooled = images.numpy().reshape(4, 4, 2, 4, 2, 3).mean(axis=(2, 4))  # 2x2 averages, by hand
    old = np.asarray(discriminator.from_rgb[0](pooled))
    new = np.asarray(discriminator.blocks[1](discriminator.from_rgb[1](images)))
    for fade in (0.0, 0.5, 1.0):
        expected = discriminator.blocks[0]((1 - fade) * old + fade * new)
        np.testing.assert_allclose(discriminator(images, fade=fade), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(discriminator(images, fade=0.0), discriminator(pooled), rtol=1e-5, atol=1e-6)


def test_real_images_are_blended_with_their_down_and_up_sampled_copy():
    images = uniform((2, 8, 8, 3)).numpy()
    coarse = images.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4)).repeat(2, axis=1).repeat(2, axis=2)
    for fade in (0.0, 0.25, 1.0):
        np.testing.assert_allclose(progan.fade_real_images(images, fade), (1 - fade) * coarse + fade * images,
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(progan.fade_real_images(images[:, :4, :4], 0.0), images[:, :4, :4])  # 4x4: as is


def test_the_schedule_fades_over_exactly_the_fade_phases_images_then_stabilises():
    schedule = progan.Schedule(16, batch_sizes=(4, 4, 2), fade_images=10, stabilise_images=8)
    resolutions = [schedule.resolution_at(step) for step in range(17)]
    assert resolutions == [4, 4] + [8] * 5 + [16] * 10  # 8x8: ceil(10 / 4) fade steps and 2 stable steps
    fades = [schedule.fade(step) for step in range(17)]
    # 8x8 fades in over its 10 images at 4 a step: 0, 0.4, 0.8 (12 images shown when the last step ends);
    # 16x16 over its 10 images at 2 a step: 0, 0.2, ..., 0.8; then 1 to the end
    np.testing.assert_allclose(fades, [1, 1, 0, 0.4, 0.8, 1, 1, 0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1])
    assert [schedule.images_before(step) for step in (0, 2, 5, 7, 8, 12)] == [0, 8, 20, 28, 30, 38]
    assert [(phase.resolution, phase.fading, phase.start, phase.steps) for phase in schedule.phases] == [
        (4, False, 0, 2), (8, True, 2, 3), (8, False, 5, 2), (16, True, 7, 5), (16, False, 12, None)]
    assert schedule.growing_steps == 16  # to 16x16 and 8 images stable there
    default = progan.ProGANConfig()
    assert default.steps == progan.Schedule.of(default).growing_steps  # the default run grows to 64x64 and stabilises


def test_without_growing_the_same_networks_train_at_the_final_resolution_from_the_first_step(faces):
    schedule = progan.Schedule(16, batch_sizes=(4, 4, 2), fade_images=10, stabilise_images=8, grow=False)
    assert [(phase.resolution, phase.fading, phase.start, phase.steps) for phase in schedule.phases] == [
        (16, False, 0, None)]
    assert [(schedule.resolution_at(step), schedule.fade(step)) for step in range(6)] == [(16, 1.0)] * 6
    assert [schedule.images_before(step) for step in range(6)] == [0, 2, 4, 6, 8, 10]  # at 16x16's batch size
    growing, flat = build(), build(grow=False)
    assert [(variable.path.split("/")[0], variable.shape) for variable in growing.variables] == [
        (variable.path.split("/")[0], variable.shape) for variable in flat.variables]  # the same networks
    config = progan.ProGANConfig(**{**TINY, "steps": 12, "grow": False})
    first = next(flat.training_batches(faces, config, 0))["images"]
    np.testing.assert_allclose(first, data.to_float(faces.images[np.random.default_rng([0, 0]).permutation(12)[:4]]),
                               rtol=1e-6)  # the faces' first batch, at 16x16: nothing pooled
    grown = next(growing.training_batches(faces, progan.ProGANConfig(**{**TINY, "steps": 12}), 0))["images"]
    np.testing.assert_allclose(grown, progan.downsample(first, 4), rtol=1e-5, atol=1e-6)  # the same faces, pooled
    logs = [flat.train_on_batch({"images": uniform((4, 16, 16, 3), step)}, return_dict=True) for step in range(3)]
    assert [(row["resolution"], row["fade"]) for row in logs] == [(16, 1.0)] * 3
    assert progan.ProGANConfig().grow  # growing is the default
    assert progan.Schedule.of(config).phases == [progan.Phase(16, False, 0, None, 4, 0, 8)]  # the config's setting
    words = ["train", "progan", "--run", "flat", "--no-grow"]
    arguments = build_parser(words).parse_args(words)
    assert arguments.grow is False  # the command line's --no-grow


def test_each_step_trains_at_the_schedules_resolution_and_fade_on_faded_real_images():
    model = build()
    model.run_eagerly = True
    seen = []
    update = model.discriminator_update

    def recording_update(real, fake, step, sub_step):
        seen.append((int(step), real["images"].numpy(), float(model.fade.numpy())))
        return update(real, fake, step, sub_step)

    model.discriminator_update = recording_update
    logs = []
    for step in range(8):
        resolution = model.schedule.resolution_at(step)
        logs.append(model.train_on_batch({"images": uniform((4, resolution, resolution, 3), step)}, return_dict=True))
    assert [(row["resolution"], row["fade"]) for row in logs] == [(4, 1), (4, 1), (8, 0), (8, 0.5), (8, 1), (8, 1),
                                                                  (16, 0), (16, 0.5)]
    assert int(model.step.numpy()) == 8 and int(model.images_seen.numpy()) == 7 * 4
    for step, real, fade in seen:
        assert fade == logs[step]["fade"]
        batch = uniform((4, real.shape[1], real.shape[1], 3), step).numpy()
        np.testing.assert_allclose(real, progan.fade_real_images(batch, fade), rtol=1e-6, atol=1e-6)
    assert not np.allclose(seen[3][1], uniform((4, 8, 8, 3), 3).numpy())  # mid-fade the reals are blended
    with pytest.raises(ValueError, match="step 8 trains at 16x16 but the batch holds 8x8 images"):
        model.train_on_batch({"images": uniform((4, 8, 8, 3))})


def test_the_optimizers_restart_at_every_phase_unless_told_not_to():
    for reset, expected in ((True, [1, 2, 1, 2, 1, 2]), (False, [1, 2, 3, 4, 5, 6])):
        model = build(reset_optimizers=reset)
        counts = []
        for step in range(6):
            resolution = model.schedule.resolution_at(step)
            model.train_on_batch({"images": uniform((4, resolution, resolution, 3), step)})
            counts.append(int(model.generator_optimizer.iterations.numpy()))
            assert int(model.discriminator_optimizer.iterations.numpy()) == counts[-1]
        assert counts == expected
        assert float(model.generator_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)


def snapshot(network) -> dict:
    return {variable.path: variable.numpy().copy() for variable in network.variables}


def changed(before: dict, network) -> set:
    return {variable.path for variable in network.variables
            if not np.array_equal(before[variable.path], variable.numpy())}


def paths(network, prefixes) -> set:
    return {variable.path for variable in network.variables if variable.path.split("/")[0] in prefixes}


def test_a_step_mid_fade_trains_only_the_active_blocks_each_update_its_own_network():
    model = build()
    for step in range(3):  # to step 3: 8x8 at fade 0.5
        resolution = model.schedule.resolution_at(step)
        model.train_on_batch({"images": uniform((4, resolution, resolution, 3), step)})
    model.fade.assign(model.schedule.fade(3))
    real = {"images": progan.fade_real_images(uniform((4, 8, 8, 3), 3), model.fade)}
    step = tf.constant(3, tf.int64)
    fake = model.fakes(step, 0, real, training=True)
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator", "generator_ema")}
    model.discriminator_update(real, fake, step, 0)
    # the critic: its 4x4 and 8x8 blocks, fromRGB at 8x8 and (fading out) at 4x4; not the 16x16 block
    assert changed(before["discriminator"], model.discriminator) == paths(
        model.discriminator, {"block_4x4", "block_8x8", "from_rgb_4x4", "from_rgb_8x8"})
    assert changed(before["generator"], model.generator) == set()
    assert changed(before["generator_ema"], model.generator_ema) == set()
    before = {name: snapshot(getattr(model, name)) for name in ("generator", "discriminator")}
    model.train_on_batch({"images": uniform((4, 8, 8, 3), 3)})
    assert changed(before["generator"], model.generator) == paths(
        model.generator, {"block_4x4", "block_8x8", "to_rgb_4x4", "to_rgb_8x8"})
    assert changed(before["discriminator"], model.discriminator) == paths(
        model.discriminator, {"block_4x4", "block_8x8", "from_rgb_4x4", "from_rgb_8x8"})


def test_the_critics_loss_is_wgan_gp_plus_the_drift_term():
    model = build(drift_weight=0.5)  # large enough for the term to show at float32 tolerance (the paper's 0.001)
    assert progan.ProGANConfig().drift_weight == 0.001 and progan.ProGANConfig().gradient_penalty_weight == 10
    model.fade.assign(1.0)
    step = tf.constant(5, tf.int64)
    real = {"images": uniform((4, 4, 4, 3), 7)}
    fake = model.fakes(step, 0, real)
    loss, logs = model.discriminator_loss(real, fake, step, 0)
    real_values = model.discriminator(real["images"]).numpy()[:, 0]
    fake_values = model.discriminator(fake["images"]).numpy()[:, 0]
    alpha = tf.random.stateless_uniform((4, 1, 1, 1), seed=model._seed(step, gan.PENALTY_SEED_OFFSET))
    mixed = real["images"] + alpha * (fake["images"] - real["images"])
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        values = model.discriminator(mixed)
    norms = np.sqrt(np.sum(tape.gradient(values, mixed).numpy() ** 2, axis=(1, 2, 3)) + 1e-10)
    penalty = np.mean((norms - 1) ** 2)
    drift = np.mean(real_values**2)
    expected = fake_values.mean() - real_values.mean() + 10 * penalty + 0.5 * drift
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(logs["drift"]) == pytest.approx(drift, rel=1e-5)
    assert float(logs["gradient_penalty"]) == pytest.approx(penalty, rel=1e-5)
    assert 0.5 * drift > 1e-3 * abs(expected)  # the drift term weighs in the checked value


def test_each_phase_reads_the_faces_average_pooled_through_one_stream_of_epochs(faces):
    config = progan.ProGANConfig(**{**TINY, "batch_sizes": (4, 2, 4), "steps": 12})
    model = progan.build(config)
    batches = model.training_batches(faces, config, 0)
    images = data.to_float(faces.images)
    shown = np.concatenate([np.random.default_rng([0, epoch]).permutation(12) for epoch in range(3)])  # epochs
    position = 0
    for step in range(10):
        phase = model.schedule.phase(step)
        factor = 16 // phase.resolution
        chosen = images[shown[position : position + phase.batch_size]]
        expected = chosen.reshape(-1, phase.resolution, factor, phase.resolution, factor, 3).mean(axis=(2, 4))
        np.testing.assert_allclose(next(batches)["images"], expected, rtol=1e-5, atol=1e-6)
        position += phase.batch_size
    resumed = model.training_batches(faces, config, 3)  # mid-fade: the same batches from step 3 on
    for step, batch in zip(range(3, 10), resumed):
        expected = next(iter(model.training_batches(faces, config, step)))["images"]
        np.testing.assert_array_equal(batch["images"], expected)


def test_a_run_resumed_mid_fade_and_at_a_phase_boundary_equals_the_uninterrupted_one(tmp_path, faces):
    spec = registry.model("progan")
    whole = spec.train(faces, tmp_path / "whole", spec.config(steps=12, **TINY), show_progress=False)
    spec.train(faces, tmp_path / "split", spec.config(steps=3, **TINY), show_progress=False)  # ends at 8x8, fade 0.5
    spec.train(faces, tmp_path / "split", spec.config(steps=6, **TINY), resume=True, show_progress=False)
    split = spec.train(faces, tmp_path / "split", spec.config(steps=12, **TINY), resume=True,  # from 16x16's first
                       show_progress=False)
    whole_log, split_log = whole.read_log(), split.read_log()
    assert [row["step"] for row in split_log] == list(range(1, 13))
    assert [(row["resolution"], row["fade"]) for row in whole_log] == [
        (4, 1), (4, 1), (8, 0), (8, 0.5), (8, 1), (8, 1), (16, 0), (16, 0.5), (16, 1), (16, 1), (16, 1), (16, 1)]
    for column in spec.load(whole.path).log_columns:
        np.testing.assert_array_equal([row[column] for row in whole_log], [row[column] for row in split_log])
    first, second = spec.load(whole.path), spec.load(split.path)
    assert int(first.step.numpy()) == int(second.step.numpy()) == 12
    for a, b in zip(first.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert whole.gif_path.read_bytes() == split.gif_path.read_bytes()
    np.testing.assert_array_equal(spec.sample(whole.path, 3, seed=5), spec.sample(split.path, 3, seed=5))


def test_a_checkpoint_holds_every_blocks_weights_from_the_first_step(tmp_path, faces):
    spec = registry.model("progan")
    run = spec.train(faces, tmp_path / "run", spec.config(steps=1, **TINY), show_progress=False)  # 4x4 only
    tf.keras.utils.set_random_seed(1)
    first = spec.load(run.path)
    tf.keras.utils.set_random_seed(2)  # other initial weights: any weight not restored would differ
    second = spec.load(run.path)
    names = {variable.path.split("/")[0] for variable in first.generator.variables + first.discriminator.variables}
    assert {"block_16x16", "to_rgb_16x16", "from_rgb_16x16"} <= names
    for a, b in zip(first.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert len(first.variables) == 2 * len(first.generator.variables) + len(first.discriminator.variables)  # + EMA
    assert int(first.step.numpy()) == int(second.step.numpy()) == 1


def test_snapshots_at_a_lower_resolution_are_shown_enlarged_to_the_final_size(tmp_path, faces):
    spec = registry.model("progan")
    run = spec.train(faces, tmp_path / "run", spec.config(steps=3, **TINY), show_progress=False)
    early = spec.load(run.path, step=3)  # 8x8, fading in
    images = early.generate(early.control_inputs(4)[0]["noise"])
    assert images.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(images, images[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2))
    assert not np.array_equal(images, images[:, ::4, ::4].repeat(4, axis=1).repeat(4, axis=2))
    # the pictures come from the moving average, at the step's fade
    expected = early.generator_ema(early.control_inputs(4)[0]["noise"], resolution=8, fade=early.schedule.fade(3))
    np.testing.assert_allclose(images[:, ::2, ::2], expected, rtol=1e-6)


def test_the_command_line_trains_progan_at_16x16_then_samples_at_16x16(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    faces_dir = tmp_path / "faces"
    assert main(["synth", str(faces_dir), "--count", "16", "--seed", "2"]) == 0
    run_dir = tmp_path / "run"
    assert main(["train", "progan", "--data", str(faces_dir), "--resolution", "16", "--steps", "9", "--run",
                 str(run_dir), "--batch-sizes", "4", "4", "4", "--fade-images", "8", "--stabilise-images", "8",
                 "--filters", "4", "--latent-dim", "8", "--snapshot-every", "3", "--grid-size", "4",
                 "--no-reset-optimizers"]) == 0
    run = RunFolder(run_dir)
    assert run.gif_path.is_file() and run.losses_path.is_file()
    rows = run.read_log()
    assert [(row["resolution"], row["fade"]) for row in rows] == [
        (4, 1), (4, 1), (8, 0), (8, 0.5), (8, 1), (8, 1), (16, 0), (16, 0.5), (16, 1)]
    saved = run.read_config()
    assert saved["model"] == "progan" and saved["batch_sizes"] == [4, 4, 4] and saved["reset_optimizers"] is False
    out = tmp_path / "samples"
    assert main(["sample", str(run_dir), "--count", "3", "--out", str(out)]) == 0
    assert "wrote 3 faces (16x16)" in capsys.readouterr().out


def test_bad_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="6 images at 16x16 do not split into minibatch-stddev groups of 4"):
        progan.ProGANConfig(resolution=16, batch_sizes=(4, 4, 6))
    with pytest.raises(ValueError, match="batch_sizes: expected a size of at least 1 for each of 4, 8, 16, 32, 64"):
        progan.ProGANConfig(batch_sizes=(4, 4))
    with pytest.raises(ValueError, match="resolution must be a power of 2 of at least 8, got 24"):
        progan.ProGANConfig(resolution=24)
    with pytest.raises(ValueError, match="fade_images must be at least 1"):
        progan.ProGANConfig(fade_images=0)
