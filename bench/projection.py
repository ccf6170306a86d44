"""Projection quality: ``ray-gan project`` on real validation images of a prepared
dataset, with and without the W refinement (stylegan), at the CLI's defaults.

    python -m bench.projection MODEL DATASET --n 10

For ``--n`` validation images (drawn with a fixed seed from the first val shard) it
projects each image twice — z only (``refine_steps=0``) and z then W (the default) —
and prints, per image, the true style, the inferred style and both PSNRs, then the
means, the share of images whose style was inferred right and the seconds per image.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np


def main() -> None:
    import pyarrow.parquet as pq
    import torch
    from PIL import Image

    from ray_gan import storage
    from ray_gan.data.dataset import read_dataset_info
    from ray_gan.generate.project import project
    from ray_gan.generate.render import Renderer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("dataset", help="a prepared dataset (ray-gan prepare) with a val split")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    renderer = Renderer(a.model, "cpu")
    info = read_dataset_info(a.dataset)
    val = info.shard_uris("val")
    if not val:
        raise SystemExit(f"{a.dataset} has no val shards")
    with storage.open_input_file(val[0]) as f:
        rows = pq.read_table(f, columns=["image", "style_name"]).to_pylist()
    picked = np.random.default_rng(a.seed).choice(len(rows), min(a.n, len(rows)), replace=False)
    psnr = {"z": [], "z+W": []}
    seconds = {"z": 0.0, "z+W": 0.0}
    right = 0
    print("true style | inferred | PSNR z | PSNR z+W")
    for i in picked:
        target = np.asarray(Image.open(io.BytesIO(rows[i]["image"])).convert("RGB"))
        results = {}
        for name, refine in (("z", 0), ("z+W", 100)):
            t = time.perf_counter()
            results[name] = project(renderer, target, refine_steps=refine, seed=a.seed)
            seconds[name] += time.perf_counter() - t
            psnr[name].append(results[name].psnr_db)
        right += results["z"].style == rows[i]["style_name"]
        print(f"{rows[i]['style_name']} | {results['z'].style} | {results['z'].psnr_db:.2f} | "
              f"{results['z+W'].psnr_db:.2f}", flush=True)
    n = len(picked)
    print(f"\n{n} val images: style inferred right {right}/{n}; mean PSNR z {np.mean(psnr['z']):.2f} dB, "
          f"z+W {np.mean(psnr['z+W']):.2f} dB; seconds per image z {seconds['z'] / n:.1f}, "
          f"z+W {seconds['z+W'] / n:.1f}")


if __name__ == "__main__":
    main()
