"""Watch a GAN collapse (or not): one process trains ray_gan's ``GANStep`` on a prepared
dataset and, every ``--every`` steps, prints

* the spread of G's output over z for one style (per-pixel std across 64 fixed latents,
  noise fixed) beside the spread of w and of the first layer's modulation styles over
  the same latents — a generator that renders the same image for every latent has a
  small image spread whatever its latent spread;
* D's mean logit on 256 distinct real images and on the same number arranged as groups
  of four identical images (the minibatch-stddev group size) — equal numbers mean D
  cannot see a lack of variety, so it does not push G to cover the data's modes.

    python -m bench.collapse_probe DATASET [--arch stylegan] [--steps 500] [--every 50]
                                      [--train '{"lr_d": 0.001}'] [--model '{"mapping_layers": 2}']

DATASET is a ``ray-gan prepare`` output (local or s3://). The models are what ``ray-gan
train`` builds for it (stylegan: a packing D, default 2); ``--train`` / ``--model`` are
JSON overrides of TrainConfig / ModelConfig (``--model '{"pack": 1}'``: the unpacked D
the docs' "Why hanzi collapses" numbers were taken with). Batch 64, one process, CPU
(2 threads).
"""

from __future__ import annotations

import argparse
import copy
import json


def main() -> None:
    import torch

    from ray_gan.config import ModelConfig, TrainConfig
    from ray_gan.data.dataset import read_dataset_info
    from ray_gan.data.dataset import read_split
    from ray_gan.images import from_uint8
    from ray_gan.models import build_discriminator, build_generator
    from ray_gan.models.stylegan import same_style_packs
    from ray_gan.train.step import GANStep

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--arch", default="stylegan", choices=["stylegan", "dcgan"])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--train", default="{}", help="TrainConfig overrides (JSON)")
    ap.add_argument("--model", default="{}", help="ModelConfig overrides (JSON)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ds = read_dataset_info(args.dataset)
    train = read_split(ds, "train")
    X = from_uint8(train.images)
    Y = torch.from_numpy(train.styles).long()
    cfg = TrainConfig.from_flat(dataset=args.dataset, out="unused", arch=args.arch, batch_size=args.batch,
                                **json.loads(args.train))
    mcfg = cfg.new_model_config(len(ds.styles), ds.resolution)  # what `ray-gan train` builds
    mcfg = ModelConfig.model_validate({**mcfg.model_dump(), **json.loads(args.model)})
    torch.manual_seed(args.seed)
    G, D = build_generator(mcfg), build_discriminator(mcfg)
    step = GANStep(G, D, copy.deepcopy(G).eval().requires_grad_(False), mcfg, cfg, torch.device("cpu"))

    z = torch.randn(64, mcfg.z_dim)
    y = torch.zeros(64, dtype=torch.long)
    xr, yr = X[:256], Y[:256]
    xr_same, yr_same = xr[::4].repeat_interleave(4, 0), yr[::4].repeat_interleave(4, 0)
    pack = getattr(D, "pack", 1)  # D judges runs of `pack` images of one style
    keep = same_style_packs(yr, pack)
    xr, yr = xr[keep], yr[keep]
    keep = same_style_packs(yr_same, pack)
    xr_same, yr_same = xr_same[keep], yr_same[keep]

    @torch.no_grad()
    def probe(i: int, losses: list[float] | None) -> None:
        G.eval(), D.eval()
        line = f"step {i:5d}"
        if hasattr(G, "mapping"):
            w = G.mapping(z, y)
            s = G.conv4.conv.affine(w)
            img = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise="const")
            line += f" | spread over z: w {float(w.std(0).mean()):.3f} styles {float(s.std(0).mean()):.3f}"
        else:
            img = G(z, y)
            line += " | spread over z:"
        line += f" image {float(img.std(0).mean()):.3f}"
        line += f" | D distinct reals {float(D(xr, yr).mean()):.2f} identical groups {float(D(xr_same, yr_same).mean()):.2f}"
        if losses is not None:
            line += " | d/g loss " + " ".join(f"{v:.3f}" for v in losses[:2])
        print(line, flush=True)
        G.train(), D.train()

    print(f"data: real per-pixel std over images {float(X[:512].std(0).mean()):.3f}", flush=True)
    G.train(), D.train()
    losses = None
    for i in range(args.steps):
        if i % args.every == 0:
            probe(i, losses)
        idx = torch.randint(0, len(X), (args.batch,))
        losses = step.step(X[idx], Y[idx], i).tolist()
    probe(args.steps, losses)


if __name__ == "__main__":
    main()
