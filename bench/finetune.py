"""Style via weights: adapting a base model to a new style from a few hundred images
(``ray-gan finetune``), against training on those images from scratch, at equal
wall-clock budget; with and without FreezeD (``--freeze-d``, Mo et al. 2020).

    python -m bench.finetune --base-budget 600 --budget 240 --freeze 0,1,2

The hanzi set (``../shared/datasets/hanzi-styles-64.zip``) is split by font: the base
model trains on every font but ``--new-style`` (all their images), then each arm trains on
``--n-train`` images of the held-out font alone and is scored by ``ray-gan evaluate`` on
``--n-val`` other images of it (FID, KID, precision/recall, diversity, and the
memorisation audit against those few training images: the risk of a small set). Arms:
``scratch`` (a new stylegan, DiffAugment on, as fine-tuning has it) and ``finetune``
(from the base's EMA generator and its discriminator) with FreezeD holding the first
N input-side layers of D, for each N in ``--freeze``. Every model trains through Ray
Train in the quality rows' shape (one worker holding both CPUs, batch 64). Prints a
Markdown table and writes WORK/finetune-results.json (rows already there are kept).
"""

from __future__ import annotations

import argparse
import random
import zipfile
from pathlib import Path

from bench.common import SOURCES, add_row, evaluate, load_rows, markdown_table, metric_cells, trained_row

SHAPE = {"workers": 1, "cpus_per_worker": 2.0, "batch_size": 64}
COLUMNS = ["steps", "images_per_s", "fid", "kid", "precision", "recall", "density", "coverage", "diversity_ratio",
           "near_copy_share"]


def split_fonts(work: Path, new_style: str, n_train: int, n_val: int, seed: int) -> tuple[str, str]:
    """Prepared datasets (32 px): the base's fonts, and ``n_train + n_val`` images of the new one."""
    from ray_gan.config import PrepareConfig
    from ray_gan.data.prepare import prepare

    base_dst, new_dst = work / "data" / f"base-without-{new_style}", work / "data" / f"{new_style}-{n_train}"
    if (base_dst / "dataset.json").exists() and (new_dst / "dataset.json").exists():
        return str(base_dst), str(new_dst)
    with zipfile.ZipFile(SOURCES["hanzi"]) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")]
        fonts = sorted({n.split("/")[0] for n in names})
        if new_style not in fonts:
            raise SystemExit(f"--new-style {new_style!r}: the hanzi fonts are {fonts}")
        new = sorted(n for n in names if n.startswith(new_style + "/"))
        random.Random(seed).shuffle(new)
        if len(new) < n_train + n_val:
            raise SystemExit(f"{new_style} has {len(new)} images, fewer than --n-train + --n-val")
        for raw, members in ((work / "raw" / "base", [n for n in names if not n.startswith(new_style + "/")]),
                             (work / "raw" / "new", new[: n_train + n_val])):
            for n in members:
                (raw / n).parent.mkdir(parents=True, exist_ok=True)
                (raw / n).write_bytes(zf.read(n))
    prepare(PrepareConfig(src=str(work / "raw" / "base"), dst=str(base_dst), resolution=32))
    prepare(PrepareConfig(src=str(work / "raw" / "new"), dst=str(new_dst), resolution=32,
                          val_fraction=n_val / (n_train + n_val), seed=seed))
    return str(base_dst), str(new_dst)


def trained(out: Path, run) -> dict:
    if not (out / "model.json").exists():
        run()
    return trained_row(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-budget", type=float, default=600, help="seconds of training for the base model")
    ap.add_argument("--budget", type=float, default=240, help="seconds of training for each arm")
    ap.add_argument("--new-style", default="zcool_xiaowei")
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--freeze", default="0,2", help="FreezeD depths of the fine-tune arms (0 = none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/ray_gan_finetune")
    a = ap.parse_args()

    from ray_gan.config import FinetuneConfig, TrainConfig
    from ray_gan.train.trainer import finetune, train

    work = Path(a.work)
    base_data, new_data = split_fonts(work, a.new_style, a.n_train, a.n_val, a.seed)
    timed = {"steps": 10**8, "checkpoint_every": 10**8, "log_every": 100, "seed": a.seed, **SHAPE}
    base_out = work / "models" / f"base-{int(a.base_budget)}s"
    base = trained(base_out, lambda: train(TrainConfig.from_flat(
        dataset=base_data, out=str(base_out), arch="stylegan", time_budget_s=a.base_budget, **timed)))
    print(f"base: {base['steps']} steps at {base['images_per_s']:.0f} img/s ({base_out})", flush=True)

    arms = {"scratch": lambda out: train(TrainConfig.from_flat(
        dataset=new_data, out=str(out), arch="stylegan", augment="diffaugment", time_budget_s=a.budget, **timed))}
    for k in (int(v) for v in a.freeze.split(",")):
        arms["finetune" + (f", FreezeD {k}" if k else "")] = (
            lambda out, k=k: finetune(FinetuneConfig.from_flat(base=str(base_out), data=new_data, out=str(out),
                                                      time_budget_s=a.budget, freeze_d=k, **timed)))

    results_file = work / "finetune-results.json"
    rows = load_rows(results_file)
    done = {(r["new_style"], r["n_train"], r["budget"], r["arm"], r.get("seed", 0)) for r in rows}
    for arm, run in arms.items():
        if (a.new_style, a.n_train, a.budget, arm, a.seed) in done:
            continue
        slug = arm.replace(", ", "-").replace(" ", "")
        out = work / "models" / f"{a.new_style}-{a.n_train}-{slug}-{int(a.budget)}s-seed{a.seed}"
        entry = trained(out, lambda out=out, run=run: run(out))
        row = {"new_style": a.new_style, "n_train": a.n_train, "budget": a.budget, "seed": a.seed, "arm": arm,
               **entry, **evaluate({**entry, "renderer": None}, new_data, a.n_val)}
        add_row(results_file, rows, row)

    print(markdown_table(["new style", "train images", "arm", "seed"] + COLUMNS,
                         ([r["new_style"], str(r["n_train"]), r["arm"], str(r["seed"])] + metric_cells(r, COLUMNS)
                          for r in rows)))


if __name__ == "__main__":
    main()
