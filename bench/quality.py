"""Quality at equal wall-clock budget: the plain reference conditional DCGAN
(bench/references/reference_cdcgan.py), our ``dcgan`` and our ``stylegan``, each trained
for the same number of seconds on this machine, then scored by ``ray-gan evaluate`` on
the validation split (every metric of the report).

    python -m bench.quality --budget 240 --datasets demo,emoji,hanzi [--device cuda]
    python -m bench.quality --budget 240 --reevaluate   # same models, current evaluation code
    python -m bench.quality --budget 600 --datasets hanzi --runs 3   # three independent runs per row
    python -m bench.quality --budget 600 --models stylegan --set pack=4 --tag pack4 --runs 3   # rows "stylegan-pack4"
    python -m bench.quality --budget 600 --models stylegan --set embed_dim=128 --tag e128   # any train field (model overrides too)

Datasets (prepared once at 32 px, cached under --work): ``demo`` (the built-in
procedural set), ``emoji`` and ``hanzi`` (``../shared/datasets/*.zip``, not needed by the
demo or the tests). Our models train through Ray Train with the CLI's defaults (2
workers × batch 16; rows from before the default changed on 2026-12-06 ran at 32); the
budget is ``--time-budget`` (the training loop's clock; the Ray start-up before it is not
counted). The reference trains in one process (2 threads,
batch 64) for the same seconds. Prints a Markdown table and writes the reports' key
numbers to WORK/quality-results.json.

A time budget buys a different number of steps on every run, so two runs of one row
differ even with the same seed; at 600 s the style accuracy of one run spreads by about
±0.15. ``--runs N`` trains each row N times (run r with seed ``--seed`` + r, in its own
model directory; rows already in the results file are kept) and adds a table of the
mean and range over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.common import (FORMATS, add_row, evaluate, load_rows, machine, markdown_table, metric_cells, prepared,
                          save_rows, timed, trained_row)

MODEL_PREFIX = "model."  # --set model.FIELD=VALUE: a ModelConfig field of a new model


def train_ours(arch: str, data: str, out: Path, budget: float, seed: int, device: str = "cpu",
               overrides: dict | None = None) -> dict:
    from ray_gan.train import trainer

    if not (out / "model.json").exists():
        trainer.train(ours_config(arch, data, out, budget, seed, device, overrides))
    return {**trained_row(out), "renderer": None}


def ours_config(arch: str, data: str, out: Path | str, budget: float, seed: int, device: str = "cpu",
                overrides: dict | None = None):
    """The ``TrainConfig`` a row of ours trains with. CPU: the CLI's defaults (2 workers ×
    16) but for ``overrides``. CUDA: one worker on one GPU, batch 64 (the reference's batch)."""
    from ray_gan.config import TrainConfig

    overrides = {k.removeprefix(MODEL_PREFIX): v for k, v in (overrides or {}).items()}
    on_gpu = {"workers": 1, "gpus_per_worker": 1.0, "batch_size": 64} if device == "cuda" else {}
    fields = {"time_budget_s": budget, "checkpoint_every": 10**8, "log_every": 200, "seed": seed, **on_gpu,
              **overrides}
    return TrainConfig.from_flat(dataset=data, out=str(out), arch=arch, **fields)


def ours_settings(arch: str, budget: float, device: str = "cpu", overrides: dict | None = None) -> dict:
    """What a row of ours means under this code, before any data is read: the train config
    (every field, unset ones as None) and the architecture's preset that fills the unset
    ones. A changed default (a preset value or a config field's default) changes them, so a
    rows file can tell a row made under an older default from one made under the current
    one. They do not cover the code that turns them into a run (model-config defaults
    outside the preset, the pack-fit rule, the R1 formula): a row's ``code`` records that."""
    from dataclasses import asdict

    from ray_gan.config import ARCH_PRESETS

    cfg = ours_config(arch, "-", "-", budget, 0, device, overrides).model_dump(mode="json")
    del cfg["dataset"], cfg["out"], cfg["run"]["seed"]  # the row's own keys, or where it ran
    return {"train": cfg, "preset": asdict(ARCH_PRESETS[arch])}


def train_reference(data: str, out: Path, budget: float, seed: int, device: str = "cpu") -> dict:
    from bench.references import reference_cdcgan as ref

    from ray_gan.data.dataset import read_dataset_info, style_mapping
    from ray_gan.evaluate.realdata import real_images

    ds = read_dataset_info(data)
    train = real_images(ds, "train", style_mapping(ds.styles, ds.styles), 32, 3)
    G, stats = ref.train(train.images, train.styles, len(ds.styles), budget, seed=seed, device=device)
    ref.save(G, ds.styles, stats.steps, out)  # so the row can be re-evaluated (--reevaluate)
    return {"steps": stats.steps, "images_per_s": stats.images_per_s,
            "renderer": ref.ReferenceRenderer(G, ds.styles, str(out), stats.steps, device), "uri": str(out)}


def model_dir(work: Path, dataset: str, model: str, budget: float, device: str, run: int = 0) -> Path:
    """Where a row's model lives: WORK/models/<dataset>-<model>-<budget>s[-cuda][-run<r>] (run 0: no suffix)."""
    return work / "models" / (f"{dataset}-{model}-{int(budget)}s{'-cuda' if device == 'cuda' else ''}"
                              f"{f'-run{run}' if run else ''}")


def row_key(row: dict) -> tuple:
    return row["dataset"], row["model"], row["budget"], row.get("device", "cpu"), row.get("run", 0)


def reevaluate(row: dict, data: str, work: Path, n_per_style: int) -> dict | None:
    """Score an already-trained row again with the current evaluation code (same seeds);
    None when its weights were not kept (reference rows from before they were saved)."""
    from bench.references import reference_cdcgan as ref

    out = model_dir(work, *row_key(row))
    if row["model"] == "reference":
        if not (out / ref.WEIGHTS).exists():
            return None
        G, styles, steps = ref.load(out)
        entry = {"renderer": ref.ReferenceRenderer(G, styles, str(out), steps), "uri": str(out)}
    else:
        entry = {"renderer": None, "uri": str(out)}
    return {**row, **evaluate(entry, data, n_per_style)}


COLUMNS = ["steps", "images_per_s", "fid", "kid", "precision", "recall", "density", "coverage", "intra_fid",
           "diversity_ratio", "style_accuracy", "near_copy_share"]


def table(rows: list[dict]) -> str:
    return markdown_table(["dataset", "model"] + COLUMNS,
                          ([r["dataset"], r["model"] + (f" (run {r['run']})" if r.get("run") else "")]
                           + metric_cells(r, COLUMNS) for r in rows))


SUMMARY = ["style_accuracy", "intra_fid", "fid", "coverage", "diversity_ratio", "near_copy_share"]


def runs_table(rows: list[dict]) -> str:
    """One line per (dataset, model): the number of runs and, per metric, the mean over
    them and their range."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    lines = []
    for (dataset, model), group in groups.items():
        cells = [dataset, model, str(len(group))]
        for c in SUMMARY:
            vals = [r[c] for r in group if r.get(c) is not None]
            if not vals:
                cells.append("–")
                continue
            fmt = FORMATS[c]
            mean = fmt.format(sum(vals) / len(vals))
            cells.append(mean if len(vals) == 1 else f"{mean} ({fmt.format(min(vals))}–{fmt.format(max(vals))})")
        lines.append(cells)
    return markdown_table(["dataset", "model", "runs"] + SUMMARY, lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=240.0, help="training seconds per model")
    ap.add_argument("--datasets", default="demo,emoji,hanzi")
    ap.add_argument("--models", default="reference,dcgan,stylegan")
    ap.add_argument("--n-per-style", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1, help="independent training runs per row (seeds --seed + r)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a train field (any flag of ray-gan train, by its field name) for our models' rows instead "
                         "of its default (repeatable; VALUE as JSON, e.g. pack=4, noise_inputs=false, embed_dim=128; "
                         "'model.' before a name is accepted); needs --tag")
    ap.add_argument("--tag", help="with --set: our rows are named <model>-<tag> (and get their own model dirs)")
    ap.add_argument("--reevaluate", action="store_true",
                    help="score the already-trained rows of --budget/--datasets/--models again (current evaluation "
                         "code, same seeds) instead of training")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: every model on one GPU (ours: 1 Ray Train worker × batch 64)")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ray_gan_quality"))
    a = ap.parse_args()
    overrides = parse_overrides(ap, a.overrides, a.tag)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "quality-results.json"
    rows = load_rows(results_path)
    done = {row_key(r) for r in rows}
    for name in a.datasets.split(","):
        data = prepared(name, work)
        for arch in a.models.split(","):
            model = f"{arch}-{a.tag}" if a.tag and arch != "reference" else arch
            if a.reevaluate:
                for i, r in enumerate(rows):
                    if row_key(r)[:4] == (name, model, a.budget, a.device):
                        new = reevaluate(r, data, work, a.n_per_style)
                        print(f"{name}/{model}: " + ("weights not kept; row unchanged" if new is None
                                                     else json.dumps(new)), flush=True)
                        if new is not None:
                            rows[i] = new
                            save_rows(results_path, rows)
                continue
            for run in range(a.runs):
                if (name, model, a.budget, a.device, run) in done:
                    continue
                out = model_dir(work, name, model, a.budget, a.device, run)
                if arch == "reference":
                    entry, train_s = timed(train_reference, data, out, a.budget, a.seed + run, a.device)
                else:
                    entry, train_s = timed(train_ours, arch, data, out, a.budget, a.seed + run, a.device, overrides)
                scores = evaluate(entry, data, a.n_per_style)
                row = {"dataset": name, "model": model, "budget": a.budget, "device": a.device, "run": run,
                       "seed": a.seed + run, "steps": entry["steps"], "images_per_s": entry["images_per_s"],
                       "wall_s": round(train_s, 1), **scores}
                add_row(results_path, rows, row)

    print(f"\nMachine: {machine()}; budget {a.budget:.0f} s "
          f"per model; features: {rows[0]['extractor'] if rows else '?'}\n")
    shown = [r for r in rows if r["budget"] == a.budget and r.get("device", "cpu") == a.device]
    print(table(shown))
    if any(r.get("run", 0) for r in shown):
        print("\nOver independent runs (mean, and min–max):\n")
        print(runs_table(shown))


def parse_overrides(ap: argparse.ArgumentParser, pairs: list[str], tag: str | None) -> dict:
    """``--set KEY=VALUE`` pairs as train fields (each checked); they need a ``--tag``."""
    overrides = dict(_override(kv) for kv in pairs)
    if bool(overrides) != bool(tag):
        ap.error("--set and --tag go together")
    return overrides


def _override(kv: str) -> tuple[str, object]:
    from ray_gan.config import TrainConfig, leaves

    key, sep, value = kv.partition("=")
    if not sep or key.removeprefix(MODEL_PREFIX) not in {leaf.name for leaf in leaves(TrainConfig)}:
        raise SystemExit(f"--set {kv!r}: expected KEY=VALUE with KEY a TrainConfig field (a flag of ray-gan train, "
                         f"e.g. lr_g, pack, embed_dim; {MODEL_PREFIX}FIELD is accepted for a model field)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    main()
