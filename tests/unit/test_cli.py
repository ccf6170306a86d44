"""ray_gan.cli: the commands, their flags and their exit codes."""

import argparse

import pytest
from pydantic_core import PydanticUndefined

from ray_gan import storage
from ray_gan.cli import build_parser, main
from ray_gan.evaluate.features import INCEPTION_WEIGHTS_ENV


def test_every_documented_subcommand_exists():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"demo-data", "prepare", "train", "generate", "batch", "serve", "demo"} <= set(sub)


def test_train_flags_parse_into_the_nested_config():
    from ray_gan.cli import _config
    from ray_gan.config import TrainConfig

    a = build_parser().parse_args(["train", "ds", "--out", "m", "--workers", "3", "--arch", "vanilla", "--steps", "9",
                                   "--gpus-per-worker", "0.5", "--resume", "--no-amp", "--time-budget", "60",
                                   "--lr-g", "0.001", "--g-channels", "8"])
    cfg = _config(TrainConfig, a)
    assert (cfg.scaling.workers, cfg.arch, cfg.run.steps, cfg.scaling.gpus_per_worker, cfg.run.resume) == \
        (3, "vanilla", 9, 0.5, True)
    assert (cfg.optim.amp, cfg.run.time_budget_s, cfg.optim.lr_g, cfg.model.g_channels) == (False, 60.0, 0.001, 8)


# (subcommand, its config, the arguments it cannot do without, and those values by field)
CONFIGURED = [
    ("prepare", "PrepareConfig", ["raw", "ds"], {"src": "raw", "dst": "ds"}),
    ("train", "TrainConfig", ["ds", "--out", "m"], {"dataset": "ds", "out": "m"}),
    ("finetune", "FinetuneConfig", ["base", "--data", "ds", "--out", "m"], {"base": "base", "data": "ds", "out": "m"}),
    ("serve", "ServeConfig", ["m"], {"model": "m"}),
    ("evaluate", "EvalConfig", ["m", "--data", "ds"], {"model": "m", "data": "ds"}),
    ("demo-data", "DemoDataConfig", ["raw"], {"dst": "raw"}),
    ("demo", "DemoConfig", [], {}),
    ("generate", "GenerateConfig", ["m", "--out", "o"], {"model": "m", "out": "o"}),
    ("interpolate", "InterpolateConfig", ["m", "a:1", "b:2", "--out", "o"],
     {"model": "m", "start": "a:1", "end": "b:2", "out": "o"}),
    ("directions", "DirectionsConfig", ["m"], {"model": "m"}),
    ("project", "ProjectConfig", ["m", "img.png", "--out", "o"], {"model": "m", "image": "img.png", "out": "o"}),
    ("blend", "BlendConfig", ["a", "b", "--out", "o"], {"a": "a", "b": "b", "out": "o"}),
    ("export", "ExportConfig", ["m"], {"model": "m"}),
    ("verify", "VerifyConfig", ["out"], {"output": "out"}),
]


def test_every_subcommand_but_batch_takes_its_flags_from_a_config():
    # batch reads its whole spec (BatchJobSpec) from the one file it is given
    sub = build_parser()._subparsers._group_actions[0].choices
    assert set(sub) - {"batch"} == {command for command, *_ in CONFIGURED}


@pytest.mark.parametrize("command, model, argv, required", CONFIGURED)
def test_every_flag_default_is_the_config_default(command, model, argv, required):
    import ray_gan.config as config
    from ray_gan.cli import _config
    from ray_gan.config import leaves

    cls = getattr(config, model)
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    flags = {a.dest: a for a in sub._actions}
    # every field is on the command line (train leaves fine-tuning's two to `finetune`)
    missing = {leaf.name for leaf in leaves(cls)} - set(flags) - ({"init_from", "freeze_d"} if command == "train" else set())
    assert not missing, f"{command}: no flag for {sorted(missing)}"
    # with only the required arguments, the command builds exactly the model's defaults
    built = _config(cls, parser.parse_args([command, *argv]))
    assert built.model_dump() == cls.from_flat(**required).model_dump()
    # and no flag states a default of its own: its help shows the field's
    for leaf in leaves(cls):
        action = flags.get(leaf.name)
        if action is None or not action.option_strings:
            continue
        assert action.default is argparse.SUPPRESS, f"{command} {action.option_strings[0]} restates a default"
        if leaf.field.default not in (None, PydanticUndefined):
            assert f"(default: {leaf.field.default})" in action.help, action.option_strings[0]


def test_a_yaml_config_is_read_and_flags_override_it(tmp_path):
    from ray_gan.cli import _config
    from ray_gan.config import TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("dataset: ds\nout: m\narch: dcgan\nrun: {steps: 7, seed: 3}\noptim: {loss: hinge}\n")
    cfg = _config(TrainConfig, build_parser().parse_args(["train", "ds", "--out", "m2", "--config", str(path),
                                                           "--steps", "9"]))
    assert (cfg.arch, cfg.run.steps, cfg.run.seed, cfg.optim.loss, cfg.out) == ("dcgan", 9, 3, "hinge", "m2")
    path.write_text("dataset: ds\nout: m\nrun: {stpes: 7}\n")
    assert main(["train", "ds", "--out", "m", "--config", str(path)]) == 2  # a typo is an error, not ignored


def test_required_fields_may_come_from_the_file_and_a_missing_one_is_named(tmp_path, capsys):
    from ray_gan.cli import _config
    from ray_gan.config import ServeConfig, TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("dataset: s3://b/ds\nout: s3://b/m\nscaling: {workers: 3}\n")
    cfg = _config(TrainConfig, build_parser().parse_args(["train", "--config", str(path)]))
    assert (cfg.dataset, cfg.out, cfg.scaling.workers) == ("s3://b/ds", "s3://b/m", 3)
    serve = tmp_path / "serve.yaml"
    serve.write_text("model: s3://b/m\nreplicas: {num_replicas: 2}\nbatching: {max_batch_size: 8}\n")
    assert _config(ServeConfig, build_parser().parse_args(["serve", "--config", str(serve), "--port", "9000"])) == \
        ServeConfig.from_flat(model="s3://b/m", num_replicas=2, max_batch_size=8, port=9000)
    models = _config(ServeConfig, build_parser().parse_args(
        ["serve", "--models", "emoji=s3://b/e@500", "--models", "cjk=s3://b/c", "--default-model", "cjk"]))
    assert [(m.name, m.uri, m.step) for m in models.models] == [("emoji", "s3://b/e", 500), ("cjk", "s3://b/c", None)]
    assert models.default == "cjk"
    path.write_text("dataset: s3://b/ds\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "out\n  Field required" in err and "dataset\n" not in err


def test_missing_model_is_a_clean_error(tmp_path, capsys):
    rc = main(["generate", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "no trained model" in capsys.readouterr().err


def test_invalid_batch_spec_is_reported(tmp_path, capsys):
    spec = tmp_path / "job.yaml"
    spec.write_text("job_id: j\nmodel: m\noutput: o\nvariants_per_style: -3\n")
    assert main(["batch", str(spec)]) == 2
    assert "variants_per_style" in capsys.readouterr().err


def test_demo_data_command(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d"), "--per-style", "3", "--size", "16"]) == 0
    assert "12 images in 4 styles" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-command"])


@pytest.mark.usefixtures("one_torch_thread")
def test_cli_evaluate(tiny_model, tiny_dataset, capsys, monkeypatch):
    from ray_gan.cli import _config, build_parser, main
    from ray_gan.config import EvalConfig

    a = build_parser().parse_args(["evaluate", "m", "--data", "d", "--n-per-style", "7", "--extractor", "random-cnn",
                                   "--truncation", "0.5", "--device", "cpu"])
    cfg = _config(EvalConfig, a)
    assert (cfg.model, cfg.data, cfg.n_per_style, cfg.extractor, cfg.truncation) == ("m", "d", 7, "random-cnn", 0.5)
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    assert main(["evaluate", tiny_model, "--data", tiny_dataset, "--extractor", "inception", "--device", "cpu"]) == 1
    assert "--inception-weights" in capsys.readouterr().err
    # (20 classifier steps instead of 300 keep the unit test fast)
    assert main(["evaluate", tiny_model, "--data", tiny_dataset, "--n-per-style", "4", "--device", "cpu",
                 "--classifier-steps", "20", "--detector-steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "FID" in out and "near-copies" in out
    assert storage.join(tiny_model, "eval", "val-00000001", "report.json") in out


def test_text_flags_and_yaml_values_give_the_same_settings(tmp_path):
    from ray_gan.cli import _config
    from ray_gan.config import FinetuneConfig, GenerateConfig

    a = build_parser().parse_args(["generate", "m", "--out", "o", "--styles", "flat,stripes", "--truncation",
                                   "flat=0.5,stripes=0.8", "--edit", "pc0=2", "--edit", "pc1=-1"])
    path = tmp_path / "gen.yaml"
    path.write_text("model: m\nout: o\nstyles: [flat, stripes]\ntruncation: {flat: 0.5, stripes: 0.8}\n"
                    "edits: {pc0: 2, pc1: -1}\n")
    from_file = _config(GenerateConfig, build_parser().parse_args(["generate", "--config", str(path)]))
    assert _config(GenerateConfig, a) == from_file
    assert from_file.truncation == {"flat": 0.5, "stripes": 0.8} and from_file.edits == {"pc0": 2.0, "pc1": -1.0}
    for bad in (["--truncation", "3"], ["--truncation", "flat"], ["--edit", "pc0"], ["--edit", "pc0=inf"]):
        assert main(["generate", "m", "--out", "o", *bad]) == 2, bad
    # finetune: a training run from the base, with its own defaults for a small new style
    ft = _config(FinetuneConfig, build_parser().parse_args(["finetune", "base", "--data", "d", "--out", "o",
                                                            "--freeze-d", "1"])).train_config()
    assert (ft.init_from, ft.freeze_d, ft.run.steps, ft.run.checkpoint_every, ft.optim.augment) == \
        ("base", 1, 1000, 250, "diffaugment")
