"""``ray-gan``: a thin command line over the library calls.

Every URI argument is a local path or ``s3://bucket/prefix`` (S3 settings from the
standard ``AWS_*`` variables). With ``RAY_ADDRESS`` set the commands run on that Ray
cluster; otherwise they start a local one bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from pydantic import BaseModel, ValidationError

from ray_gan import cli_flags
from ray_gan.config import (BlendConfig, DemoConfig, DemoDataConfig, DirectionsConfig, EvalConfig, ExportConfig,
                            FinetuneConfig, GenerateConfig, InterpolateConfig, PrepareConfig, ProjectConfig,
                            ServeConfig, TrainConfig, VerifyConfig, comma_list)


def cmd_demo_data(a: argparse.Namespace) -> None:
    from ray_gan import storage
    from ray_gan.data.demo import write_demo_data

    cfg = _config(DemoDataConfig, a)
    counts = write_demo_data(lambda key, data: storage.write_bytes(storage.join(cfg.dst, key), data),
                             per_style=cfg.per_style, size=cfg.size, seed=cfg.seed)
    print(f"demo-data: {sum(counts.values())} images in {len(counts)} styles "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())}) → {cfg.dst}")


def _config(model: type[BaseModel], a: argparse.Namespace):
    """``model`` from the command line, laid over the YAML file of ``--config`` if given."""
    base = None
    if getattr(a, "config", None):
        import yaml

        from ray_gan import storage

        base = yaml.safe_load(storage.read_bytes(a.config)) or {}
        if not isinstance(base, dict):
            raise ValueError(f"{a.config}: expected a mapping of {model.__name__} fields")
    return model.model_validate(cli_flags.values(model, a, base))


def cmd_prepare(a: argparse.Namespace) -> None:
    from ray_gan.data.prepare import prepare

    prepare(_config(PrepareConfig, a))


def cmd_train(a: argparse.Namespace) -> None:
    from ray_gan.train.trainer import train

    train(_config(TrainConfig, a))


def _mix(cfg: GenerateConfig):
    from ray_gan.config import MixSpec

    if not cfg.mix_layers:
        return None
    return MixSpec(layers=cfg.mix_layers, style=cfg.mix_style, seed=cfg.mix_seed)


def cmd_generate(a: argparse.Namespace) -> None:
    from ray_gan.generate.local import generate_images

    cfg = _config(GenerateConfig, a)
    res = generate_images(cfg.model, cfg.styles, cfg.n, cfg.seed, cfg.truncation, cfg.out, cfg.format, cfg.device,
                          mix=_mix(cfg), edits=cfg.edits)
    print(f"generate: {len(res.images)} images under {cfg.out}; grid {res.grid}")


def cmd_interpolate(a: argparse.Namespace) -> None:
    from ray_gan.generate.interpolate import Endpoint, interpolate, write_interpolation
    from ray_gan.generate.render import Renderer

    cfg = _config(InterpolateConfig, a)
    frames = interpolate(Renderer(cfg.model, cfg.device), Endpoint.parse(cfg.start), Endpoint.parse(cfg.end),
                         cfg.steps, cfg.truncation)
    uris = write_interpolation(frames, cfg.out, cfg.frame_ms)
    print(f"interpolate: {len(frames)} frames → {uris['strip']}, {uris['gif']}, {uris['webp']}")


def cmd_directions(a: argparse.Namespace) -> None:
    from ray_gan.checkpoint import load_generator
    from ray_gan.generate.directions import compute_directions, rename_directions, save_directions

    cfg = _config(DirectionsConfig, a)
    G, info = load_generator(cfg.model)
    if cfg.rename:
        names = rename_directions(info, dict(item.split("=", 1) for item in comma_list(cfg.rename)))
        print(f"directions: renamed → {names}")
        return
    d, mean = compute_directions(G, len(info.styles), cfg.components, cfg.samples, cfg.seed)
    uri = save_directions(info, d, mean, cfg.samples)
    ev = ", ".join(f"{n} {r:.1%}" for n, r in zip(d.names, d.explained_variance_ratio))
    print(f"directions: {len(d.names)} PCA directions in W ({ev}) → {uri}\n"
          f"apply with: ray-gan generate {cfg.model} --edit {d.names[0]}=2 --out DIR")


def cmd_project(a: argparse.Namespace) -> None:
    from ray_gan import storage
    from ray_gan.generate.project import load_target, project, write_projection
    from ray_gan.generate.render import Renderer

    cfg = _config(ProjectConfig, a)
    r = Renderer(cfg.model, cfg.device)
    target = load_target(storage.read_bytes(cfg.image), r.info.config.resolution)
    p = project(r, target, style=cfg.style, steps=cfg.steps, restarts=cfg.restarts, seed=cfg.seed,
                refine_steps=cfg.refine_steps)
    uris = write_projection(p, target, cfg.out)
    print(f"project: style {p.style}, PSNR {p.psnr_db:.1f} dB; every style → {uris['styles']}")


def cmd_finetune(a: argparse.Namespace) -> None:
    from ray_gan.train.trainer import finetune

    finetune(_config(FinetuneConfig, a))


def cmd_blend(a: argparse.Namespace) -> None:
    from ray_gan.style_weights.blend import blend_models

    cfg = _config(BlendConfig, a)
    info = blend_models(cfg.a, cfg.b, cfg.out, cfg.alpha, cfg.layers, cfg.styles_from)
    print(f"blend: {info.uri} (alpha {cfg.alpha}, layers {info.raw['blend']['layers']}, styles {info.styles}; "
          f"discriminator: {info.raw['blend']['discriminator']})")


def cmd_export(a: argparse.Namespace) -> None:
    from ray_gan.export import export_onnx

    cfg = _config(ExportConfig, a)
    uris = export_onnx(cfg.model, cfg.out)
    print(f"export: {uris['onnx']} ({uris['json']})")


def cmd_batch(a: argparse.Namespace) -> None:
    from ray_gan.batch.job import load_spec, run_batch

    if a.max_chunks is not None and a.max_chunks < 1:
        raise SystemExit("ray-gan batch: --max-chunks must be at least 1")
    spec = load_spec(a.spec)
    if a.compact and a.max_chunks is not None:
        raise SystemExit("ray-gan batch: --compact merges a complete job's manifest; it cannot go with --max-chunks")
    result = run_batch(spec, max_chunks=a.max_chunks)
    if a.compact:
        from ray_gan.manifest import compact_manifest

        written, removed = compact_manifest(result.output)
        print(f"batch {spec.job_id}: manifest compacted: {removed} parts merged into {written} range files "
              f"under {result.manifest}", flush=True)


def cmd_verify(a: argparse.Namespace) -> None:
    from ray_gan.batch.verify import verify_output

    cfg = _config(VerifyConfig, a)
    report = verify_output(cfg.output, cfg.workers, cfg.max_problems)
    print(report.summary(), flush=True)
    if not report.ok:
        raise VerifyFailed(report.summary().splitlines()[0])


class VerifyFailed(RuntimeError):
    """``ray-gan verify`` found problems (listed above): exit 1."""


def cmd_serve(a: argparse.Namespace) -> None:
    from ray_gan.serve.app import run_server

    cfg = _config(ServeConfig, a)
    models = ", ".join(f"{m.name}={m.uri}" + (f"@{m.step}" if m.step is not None else "") for m in cfg.models)
    print(f"serve: http://{cfg.host}:{cfg.port}/v1/variants (models {models}); Ctrl-C to stop", flush=True)
    run_server(cfg)


def cmd_demo(a: argparse.Namespace) -> None:
    from ray_gan.demo import run_demo

    cfg = _config(DemoConfig, a)
    run_demo(cfg.dir, train_seconds=cfg.train_seconds)


def cmd_evaluate(a: argparse.Namespace) -> None:
    from ray_gan.evaluate import run_evaluation

    r = run_evaluation(_config(EvalConfig, a))
    print(r.summary_table())
    print(f"evaluate: report {r.files['report_json']}\n          html   {r.files['report_html']}")


# (command, function, its settings, their positional fields, help), in the order --help lists them
COMMANDS = [
    ("demo-data", cmd_demo_data, DemoDataConfig, ("dst",), "write the built-in procedural multi-style image set"),
    ("prepare", cmd_prepare, PrepareConfig, ("src", "dst"), "raw images (folder, .zip, s3://) → sharded Parquet dataset"),
    ("train", cmd_train, TrainConfig, ("dataset",), "train a GAN on a prepared dataset with Ray Train"),
    ("generate", cmd_generate, GenerateConfig, ("model",), "render a few images and a grid (one process, no Ray)"),
    ("interpolate", cmd_interpolate, InterpolateConfig, ("model", "start", "end"),
     "strip PNG + GIF/WebP between two STYLE:SEED points"),
    ("directions", cmd_directions, DirectionsConfig, ("model",),
     "find edit directions in W by PCA (GANSpace) and store them with the model"),
    ("project", cmd_project, ProjectConfig, ("model", "image"),
     "invert a real image into the latent space; re-render it in every style"),
    ("finetune", cmd_finetune, FinetuneConfig, ("base",), "adapt a trained model to a new style's dataset (Ray Train)"),
    ("blend", cmd_blend, BlendConfig, ("a", "b"), "interpolate or swap layers between two compatible generators"),
    ("export", cmd_export, ExportConfig, ("model",), "export the generator (ONNX)"),
    ("batch", cmd_batch, None, (), "run a batch job (YAML spec) on Ray Data"),
    ("verify", cmd_verify, VerifyConfig, ("output",), "check a batch output against its manifest (objects, sha256, "
     "duplicates, count)"),
    ("serve", cmd_serve, ServeConfig, ("model",), "serve the HTTP API with Ray Serve"),
    ("demo", cmd_demo, DemoConfig, (), "demo-data → prepare → train → batch, all local"),
    ("evaluate", cmd_evaluate, EvalConfig, ("model",),
     "FID/KID, precision/recall, style accuracy, memorisation audit vs a split"),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ray-gan", description=__doc__.split("\n\n")[0])
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show Ray's own logs on the terminal (default: in a log file, named at the end; always "
                        "verbose under RAY_ADDRESS, e.g. in a Ray job, whose output is its log)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, func, config, positional, text in COMMANDS:
        s = sub.add_parser(name, help=text)
        if config is None:  # batch: its whole spec is the file it is given
            s.add_argument("spec", help="JOB.yaml (local path or URI): a BatchJobSpec")
            s.add_argument("--max-chunks", type=int, default=None, metavar="N",
                           help="stop after N chunks (a preview or a partial run; running the job again "
                                "completes it)")
            s.add_argument("--compact", action="store_true",
                           help="once the job is complete, merge its manifest parts into one Parquet file per "
                                "style and range of 1024 chunks")
        else:
            cli_flags.add_flags(s, config, positional, skip=("init_from", "freeze_d") if name == "train" else ())
        s.set_defaults(func=func)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import yaml

    from ray_gan import console
    from ray_gan.batch.job import BatchError
    from ray_gan.storage import StorageError
    from ray_gan.train.trainer import TrainError

    args = build_parser().parse_args(argv)
    # A command sent to a cluster (RAY_ADDRESS: a Ray job, a KubeRay RayJob) keeps everything
    # in its output, which is where `ray job logs` and the dashboard look; a log file in the
    # job's pod would be lost with it.
    logs = console.configure(verbose=args.verbose or bool(os.environ.get("RAY_ADDRESS")))
    try:
        args.func(args)
    except ValidationError as exc:
        print(f"ray-gan {args.command}: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except VerifyFailed:
        return 1
    except (StorageError, TrainError, BatchError, ValueError, FileNotFoundError, yaml.YAMLError) as exc:
        print(f"ray-gan {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ray-gan {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        logs.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
