import pytest

from ray_gan.cli import build_parser, main


def test_every_documented_subcommand_exists():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"demo-data", "prepare", "train", "generate", "batch", "serve", "demo"} <= set(sub)


def test_train_flags_parse():
    a = build_parser().parse_args(["train", "ds", "--out", "m", "--workers", "3", "--arch", "vanilla", "--steps", "9",
                                   "--gpus-per-worker", "0.5", "--resume"])
    assert (a.workers, a.arch, a.steps, a.gpus_per_worker, a.resume) == (3, "vanilla", 9, 0.5, True)
    # the default architecture is the library's (stylegan since it won docs/benchmarks.md's quality rows)
    from ray_gan.config import TrainConfig

    default = build_parser().parse_args(["train", "ds", "--out", "m"]).arch
    assert default == TrainConfig(dataset="ds", out="m").arch == "stylegan"


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
