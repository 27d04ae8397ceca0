"""The registry: every model has a config whose settings become command-line options once, with one default."""

import dataclasses

import pytest

from facekit import cli, registry
from facekit.training import RunFolder


def test_every_model_is_registered_under_its_configs_name():
    models = registry.models()
    assert list(models) == ["pca", "vae", "dcgan", "lsgan", "wgan-gp", "hinge", "began", "cgan", "acgan",
                            "infogan", "progan", "pix2pix", "superres", "attributes"]
    for name, spec in models.items():
        assert spec.config().model == name
    with pytest.raises(ValueError, match="unknown model 'gan9000'; known: pca, vae, dcgan"):
        registry.model("gan9000")


@pytest.mark.parametrize("name", ["vae", "dcgan", "wgan-gp", "began", "cgan", "acgan", "infogan", "progan", "pix2pix",
                                  "superres", "pca", "attributes"])
def test_command_line_options_are_the_config_fields_with_their_defaults(name):
    spec = registry.model(name)
    parser = cli.build_parser()
    arguments = parser.parse_args(["train", name, "--run", "unused"])
    config = registry.config_from_arguments(spec, vars(arguments))
    assert config == spec.config()  # nothing given: every default is the config class's own
    settable = [field for field in dataclasses.fields(spec.config) if "help" in field.metadata]
    options = [f"--{field.name.replace('_', '-')}" for field in settable]
    help_text = parser._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0].choices[name]
    assert all(option in help_text.format_help() for option in options)
    changed = parser.parse_args(["train", name, "--run", "unused", "--seed", "7", "--heldout", "0.2"])
    assert registry.config_from_arguments(spec, vars(changed)) == spec.config(seed=7, heldout=0.2)


def test_attributes_are_a_list_option_checked_against_celebas_names(capsys):
    parser = cli.build_parser()
    arguments = parser.parse_args(["train", "acgan", "--run", "unused", "--attributes", "Male", "Eyeglasses"])
    config = registry.config_from_arguments(registry.model("acgan"), vars(arguments))
    assert config.attributes == ("Male", "Eyeglasses")
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "cgan", "--run", "unused", "--attributes", "Glasses"])
    assert "invalid choice: 'Glasses'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="distinct CelebA attribute names"):
        registry.model("cgan").config(attributes=["Male", "Male"])


def test_a_run_with_list_settings_resumes(tmp_path):
    config = registry.model("cgan").config(attributes=("Male", "Smiling"))
    run = RunFolder(tmp_path)
    run.start(dataclasses.asdict(config), resume=False)  # run.json holds the tuple as a list
    run.start(dataclasses.asdict(config), resume=True)
    with pytest.raises(ValueError, match="attributes: run has"):
        run.start(dataclasses.asdict(dataclasses.replace(config, attributes=("Male",))), resume=True)


def test_the_wgan_gp_defaults_are_the_papers_and_differ_from_dcgans():
    wgan = registry.model("wgan-gp").config()
    assert (wgan.learning_rate, wgan.beta_1, wgan.beta_2, wgan.n_critic, wgan.gradient_penalty_weight) == (
        1e-4, 0.0, 0.9, 5, 10.0)
    assert registry.model("dcgan").config().n_critic == 1


def test_a_run_folder_names_its_model_and_refuses_foreign_settings(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start(dataclasses.asdict(registry.model("lsgan").config()), resume=False)
    spec, config = registry.model_of_run(run.path)
    assert spec.name == "lsgan" and config == registry.model("lsgan").config()
    run.write_config({**run.read_config(), "gamma": 0.5})
    with pytest.raises(ValueError, match="settings gamma are not lsgan settings"):
        registry.model_of_run(run.path)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        registry.model_of_run(tmp_path / "nothing")
