"""``ray-gan``: a thin command line over the library calls.

Every URI argument is a local path or ``s3://bucket/prefix`` (S3 settings from the
standard ``AWS_*`` variables). With ``RAY_ADDRESS`` set the commands run on that Ray
cluster; otherwise they start a local one bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pydantic import BaseModel, ValidationError

from ray_gan import cli_flags
from ray_gan.config import EvalConfig, FinetuneConfig, PrepareConfig, ServeConfig, TrainConfig


def _styles(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def cmd_demo_data(a: argparse.Namespace) -> None:
    from ray_gan import storage
    from ray_gan.data.demo import write_demo_data

    counts = write_demo_data(lambda key, data: storage.write_bytes(storage.join(a.dst, key), data),
                             per_style=a.per_style, size=a.size, seed=a.seed)
    print(f"demo-data: {sum(counts.values())} images in {len(counts)} styles "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())}) → {a.dst}")


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


def _truncation(value: str) -> float | dict[str, float]:
    """``0.7`` or ``flat=0.5,outline=0.8`` (per style; others 1.0)."""
    if "=" not in value:
        return float(value)
    out = {}
    for item in _styles(value):
        name, _, v = item.partition("=")
        out[name.strip()] = float(v)
    return out


def _edits(values: list[str] | None) -> dict[str, float]:
    out = {}
    for item in values or []:
        name, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"--edit expects NAME=STRENGTH, got {item!r}")
        out[name.strip()] = float(v)
    return out


def _mix(a: argparse.Namespace):
    from ray_gan.config import MixSpec

    if not a.mix_layers:
        return None
    return MixSpec(layers=a.mix_layers, style=a.mix_style, seed=a.mix_seed)


def cmd_generate(a: argparse.Namespace) -> None:
    from ray_gan.generate.local import generate_images

    res = generate_images(a.model, _styles(a.styles) if a.styles else None, a.n, a.seed, _truncation(a.truncation),
                          a.out, a.format, a.device, mix=_mix(a), edits=_edits(a.edit))
    print(f"generate: {len(res.images)} images under {a.out}; grid {res.grid}")


def cmd_interpolate(a: argparse.Namespace) -> None:
    from ray_gan.generate.interpolate import Endpoint, interpolate, write_interpolation
    from ray_gan.generate.render import Renderer

    frames = interpolate(Renderer(a.model, a.device), Endpoint.parse(a.start), Endpoint.parse(a.end), a.steps,
                         a.truncation)
    uris = write_interpolation(frames, a.out, a.frame_ms)
    print(f"interpolate: {len(frames)} frames → {uris['strip']}, {uris['gif']}, {uris['webp']}")


def cmd_directions(a: argparse.Namespace) -> None:
    from ray_gan.checkpoint import load_generator
    from ray_gan.generate.directions import compute_directions, rename_directions, save_directions

    G, info = load_generator(a.model)
    if a.rename:
        names = rename_directions(info, dict(item.split("=", 1) for item in _styles(a.rename)))
        print(f"directions: renamed → {names}")
        return
    d, mean = compute_directions(G, len(info.styles), a.components, a.samples, a.seed)
    uri = save_directions(info, d, mean, a.samples)
    ev = ", ".join(f"{n} {r:.1%}" for n, r in zip(d.names, d.explained_variance_ratio))
    print(f"directions: {len(d.names)} PCA directions in W ({ev}) → {uri}\n"
          f"apply with: ray-gan generate {a.model} --edit {d.names[0]}=2 --out DIR")


def cmd_project(a: argparse.Namespace) -> None:
    from ray_gan import storage
    from ray_gan.generate.project import load_target, project, write_projection
    from ray_gan.generate.render import Renderer

    r = Renderer(a.model, a.device)
    target = load_target(storage.read_bytes(a.image), r.info.config.resolution)
    p = project(r, target, style=a.style, steps=a.steps, restarts=a.restarts, seed=a.seed,
                refine_steps=a.refine_steps)
    uris = write_projection(p, target, a.out)
    print(f"project: style {p.style}, PSNR {p.psnr_db:.1f} dB; every style → {uris['styles']}")


def cmd_finetune(a: argparse.Namespace) -> None:
    from ray_gan.train.trainer import finetune

    finetune(_config(FinetuneConfig, a))


def cmd_blend(a: argparse.Namespace) -> None:
    from ray_gan.style_weights.blend import blend_models

    info = blend_models(a.a, a.b, a.out, a.alpha, _styles(a.layers) if a.layers else None, a.styles_from)
    print(f"blend: {info.uri} (alpha {a.alpha}, layers {info.raw['blend']['layers']}, styles {info.styles}; "
          f"discriminator: {info.raw['blend']['discriminator']})")


def cmd_export(a: argparse.Namespace) -> None:
    from ray_gan.export import export_onnx

    uris = export_onnx(a.model, a.out)
    print(f"export: {uris['onnx']} ({uris['json']})")


def cmd_batch(a: argparse.Namespace) -> None:
    from ray_gan.batch.job import load_spec, run_batch

    run_batch(load_spec(a.spec))


def cmd_serve(a: argparse.Namespace) -> None:
    from ray_gan.serve.app import run_server

    cfg = _config(ServeConfig, a)
    print(f"serve: http://{cfg.host}:{cfg.port}/v1/variants (model {cfg.model}); Ctrl-C to stop", flush=True)
    run_server(cfg)


def cmd_demo(a: argparse.Namespace) -> None:
    from ray_gan.demo import run_demo

    run_demo(a.dir, train_seconds=a.train_seconds)


def cmd_evaluate(a: argparse.Namespace) -> None:
    from ray_gan.evaluate import run_evaluation

    r = run_evaluation(_config(EvalConfig, a))
    print(r.summary_table())
    print(f"evaluate: report {r.files['report_json']}\n          html   {r.files['report_html']}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ray-gan", description=__doc__.split("\n\n")[0])
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show Ray's own logs on the terminal (default: in a log file, named at the end)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo-data", help="write the built-in procedural multi-style image set")
    s.add_argument("dst", help="output folder or s3:// prefix")
    s.add_argument("--per-style", type=int, default=300)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo_data)

    s = sub.add_parser("prepare", help="raw images (folder, .zip, s3://) → sharded Parquet dataset")
    cli_flags.add_flags(s, PrepareConfig, positional=("src", "dst"))
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train a GAN on a prepared dataset with Ray Train")
    cli_flags.add_flags(s, TrainConfig, positional=("dataset",), skip=("init_from", "freeze_d"))
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("generate", help="render a few images and a grid (one process, no Ray)")
    s.add_argument("model")
    s.add_argument("--styles", help="comma-separated style names (default: all)")
    s.add_argument("--n", type=int, default=8, help="images per style")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--truncation", default="1.0", help="0..2, or per style: flat=0.5,outline=0.8")
    s.add_argument("--mix-layers", dest="mix_layers", help="style mixing (stylegan): coarse, fine, all or A:B")
    s.add_argument("--mix-seed", dest="mix_seed", type=int, help="seed for the mixed layers (default seed+offset)")
    s.add_argument("--mix-style", dest="mix_style", help="style for the mixed layers (default the image's)")
    s.add_argument("--edit", action="append", metavar="NAME=STRENGTH", help="edit direction (repeatable)")
    s.add_argument("--format", choices=["png", "webp", "jpeg"], default="png")
    s.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("interpolate", help="strip PNG + GIF/WebP between two STYLE:SEED points")
    s.add_argument("model")
    s.add_argument("start", help="STYLE:SEED")
    s.add_argument("end", help="STYLE:SEED")
    s.add_argument("--steps", type=int, default=8)
    s.add_argument("--truncation", type=float, default=1.0)
    s.add_argument("--frame-ms", dest="frame_ms", type=int, default=120)
    s.add_argument("--device", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_interpolate)

    s = sub.add_parser("directions", help="find edit directions in W by PCA (GANSpace) and store them with the model")
    s.add_argument("model")
    s.add_argument("--components", type=int, default=8)
    s.add_argument("--samples", type=int, default=20000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rename", help="rename stored directions: pc0=thickness,pc1=slant")
    s.set_defaults(func=cmd_directions)

    s = sub.add_parser("project", help="invert a real image into the latent space; re-render it in every style")
    s.add_argument("model")
    s.add_argument("image", help="image file (local path or s3://)")
    s.add_argument("--style", help="the image's style (default: inferred: the best-fitting style)")
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--restarts", type=int, default=8)
    s.add_argument("--refine-steps", type=int, default=100,
                   help="stylegan: then refine the fit in W for this many steps (0 = z only)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_project)

    s = sub.add_parser("finetune", help="adapt a trained model to a new style's dataset (Ray Train)")
    cli_flags.add_flags(s, FinetuneConfig, positional=("base",))
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("blend", help="interpolate or swap layers between two compatible generators")
    s.add_argument("a")
    s.add_argument("b")
    s.add_argument("--alpha", type=float, default=0.5, help="0 = A, 1 = B (in the selected layers)")
    s.add_argument("--layers", help="comma-separated: mapping, 4, 8, ..., coarse, fine, all (default all)")
    s.add_argument("--styles-from", dest="styles_from", choices=["a", "b"], default="a")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_blend)

    s = sub.add_parser("export", help="export the generator (ONNX)")
    s.add_argument("model")
    s.add_argument("--format", choices=["onnx"], default="onnx")
    s.add_argument("--out", help="default MODEL/export/onnx")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("batch", help="run a batch job (YAML spec) on Ray Data")
    s.add_argument("spec", help="JOB.yaml (local path or URI)")
    s.set_defaults(func=cmd_batch)

    s = sub.add_parser("serve", help="serve the HTTP API with Ray Serve")
    cli_flags.add_flags(s, ServeConfig, positional=("model",))
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("demo", help="demo-data → prepare → train → batch, all local")
    s.add_argument("--dir", default="ray-gan-demo", help="working folder (default ./ray-gan-demo)")
    s.add_argument("--train-seconds", dest="train_seconds", type=float, default=180.0)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("evaluate", help="FID/KID, precision/recall, style accuracy, memorisation audit vs a split")
    cli_flags.add_flags(s, EvalConfig, positional=("model",))
    s.set_defaults(func=cmd_evaluate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import yaml

    from ray_gan.batch.job import BatchError
    from ray_gan.storage import StorageError
    from ray_gan import console
    from ray_gan.train.trainer import TrainError

    args = build_parser().parse_args(argv)
    logs = console.configure(verbose=args.verbose)
    try:
        args.func(args)
    except ValidationError as exc:
        print(f"ray-gan {args.command}: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
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
