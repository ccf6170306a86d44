"""Pipeline benchmark: each Ray stage beside a plain single-process baseline doing the
same work, measured in the same run on the same machine.

    python -m bench.pipeline [--src ../shared/datasets/emoji-styles-64.zip] [--steps 300]

Stages and their baselines:

* prepare — ``ray-gan prepare`` (Ray Data) vs a Python loop over the same files calling
  the same ``process_image`` (no Ray, one process).
* train — steady-state images/s of ``ray-gan train`` with 2 Ray Train workers (from the
  last checkpoint's ``images_per_s``) vs the same model and loss stepped in one process
  with all cores (torch threads = cores), same global batch.
* batch — ``ray-gan batch`` (Ray Data actor pool, 2 replicas) vs one process rendering,
  encoding and writing the same images with the same renderer.

Prints a Markdown table for ``docs/benchmarks.md``. Timings include Ray start-up where
the stage pays it (a user does), and say so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from bench.common import machine, markdown_table, timed


def baseline_prepare(src: str, resolution: int) -> tuple[float, int]:
    from ray_gan.config import PrepareConfig
    from ray_gan.data.validate import SkipImage, process_image
    from ray_gan.data.sources import SourceReader, list_source

    cfg = PrepareConfig(src=src, dst="unused", resolution=resolution)
    t0 = time.perf_counter()
    reader = SourceReader(src)
    n = 0
    for item in list_source(src):
        try:
            process_image(reader.read(item.key), resolution, cfg.max_pixels, cfg.max_file_bytes)
            n += 1
        except SkipImage:
            pass
    reader.close()
    return time.perf_counter() - t0, n


def baseline_train_rate(dataset: str, batch: int, steps: int, g_channels: int, d_channels: int) -> float:
    """Single process, all cores: the same model, loss and optimiser as the Ray loop."""
    from ray_gan.config import TrainConfig
    from ray_gan.data.dataset import read_dataset_info, read_shards
    from ray_gan.images import from_uint8
    from ray_gan.models import build_discriminator, build_generator

    info = read_dataset_info(dataset)
    first = read_shards(info.shard_uris("train")[:1], by_style=False)  # the first shard, in its order
    X = from_uint8(first.images)
    Y = torch.from_numpy(first.styles).long()
    cfg = TrainConfig.from_flat(dataset=dataset, out="x", arch="dcgan", g_channels=g_channels, d_channels=d_channels)
    mcfg = cfg.new_model_config(len(info.styles), info.resolution)
    torch.set_num_threads(os.cpu_count() or 1)
    G, D = build_generator(mcfg), build_discriminator(mcfg)
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))

    def step() -> None:
        i = torch.randint(0, len(X), (batch,))
        x, y = X[i], Y[i]
        with torch.no_grad():
            xf = G(torch.randn(batch, mcfg.z_dim), y)
        logits = D(torch.cat([x, xf]), torch.cat([y, y]))
        dl = F.softplus(-logits[:batch]).mean() + F.softplus(logits[batch:]).mean()
        od.zero_grad()
        dl.backward()
        od.step()
        D.requires_grad_(False)
        gl = F.softplus(-D(G(torch.randn(batch, mcfg.z_dim), y), y)).mean()
        og.zero_grad()
        gl.backward()
        og.step()
        D.requires_grad_(True)

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def baseline_batch(model: str, styles: list[str], per_style: int, out: str) -> float:
    from ray_gan import storage
    from ray_gan.generate.render import Renderer
    from ray_gan.images import encode

    t0 = time.perf_counter()
    r = Renderer(model, device="cpu")
    for s in styles:
        idx = r.info.styles.index(s)
        for start in range(0, per_style, 64):
            seeds = list(range(start, min(per_style, start + 64)))
            for seed, img in zip(seeds, r.render([idx] * len(seeds), seeds, 1.0)):
                storage.write_bytes(storage.join(out, s, f"{s}-{seed:08d}.png"), encode(img))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", help="image source (default: the built-in demo data, 4×300 images)")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--per-style", type=int, default=500, help="batch variants per style")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    from ray_gan import storage
    from ray_gan.batch.job import run_batch
    from ray_gan.config import BatchJobSpec, PrepareConfig, TrainConfig
    from ray_gan.data.demo import write_demo_data
    from ray_gan.data.prepare import prepare
    from ray_gan.runtime import init_ray
    from ray_gan.train.trainer import train

    work = a.workdir or tempfile.mkdtemp(prefix="ray-gan-bench-")
    src = a.src
    if not src:
        src = os.path.join(work, "raw")
        write_demo_data(lambda k, d: storage.write_bytes(storage.join(src, k), d), per_style=300)
    rows = []

    _, t_ray = timed(init_ray)

    base_s, n_img = baseline_prepare(src, a.resolution)
    doc, ray_s = timed(prepare, PrepareConfig(src=src, dst=os.path.join(work, "ds"), resolution=a.resolution),
                       log=lambda m: None)
    rows.append(("prepare", f"{n_img} files", f"{n_img / base_s:.0f} img/s", f"{n_img / ray_s:.0f} img/s",
                 base_s / ray_s, "Ray Data, local Ray already up"))

    ds = os.path.join(work, "ds")
    gch = dch = 32
    base_rate = baseline_train_rate(ds, 64, min(a.steps, 100), gch, dch)
    model = os.path.join(work, "model")
    train(TrainConfig.from_flat(dataset=ds, out=model, arch="dcgan", workers=2, steps=a.steps, batch_size=32,
                                checkpoint_every=a.steps, log_every=a.steps, g_channels=gch, d_channels=dch),
          log=lambda m: None)
    ray_rate = storage.read_json(os.path.join(model, "model.json"))["history"][-1]["images_per_s"]
    rows.append(("train (dcgan 32px, ch 32)", f"global batch 64, {a.steps} steps", f"{base_rate:.0f} img/s",
                 f"{ray_rate:.0f} img/s", ray_rate / base_rate, "2 Ray Train workers vs 1 process, all cores"))

    styles = doc["styles"]
    n = a.per_style * len(styles)
    base_b = baseline_batch(model, styles, a.per_style, os.path.join(work, "base-batch"))
    spec = BatchJobSpec(job_id="bench", model=model, styles=styles, variants_per_style=a.per_style,
                        output=os.path.join(work, "batch"), chunk_size=64, replicas=2)
    _, ray_b = timed(run_batch, spec, log=lambda m: None)
    rows.append(("batch (png, local disk)", f"{n} images", f"{n / base_b:.0f} img/s", f"{n / ray_b:.0f} img/s",
                 base_b / ray_b, "Ray Data actor pool of 2 vs 1 process"))

    import ray

    print(f"\nMachine: {machine()}; torch {torch.__version__}, ray {ray.__version__}, "
          f"Python {sys.version.split()[0]}; local Ray start-up {t_ray:.1f} s (not in the rows).")
    print(f"Source: {a.src or 'built-in demo data (4 styles × 300)'}\n")
    print(markdown_table(["stage", "work", "baseline (1 process)", "ray_gan", "ratio (ray_gan / baseline)", "notes"],
                         ([*r[:4], f"{r[4]:.2f}×", r[5]] for r in rows)))
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
