"""Helpers shared by several unit test modules, imported by name (``from helpers import
small``): pytest puts tests/ on sys.path when it loads tests/conftest.py, whose own names
cannot be imported (tests/integration/conftest.py shadows the module ``conftest``)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.config import ModelConfig, TrainConfig
from ray_gan.data.demo import iter_demo_images
from ray_gan.data.prepare import PARQUET_SCHEMA
from ray_gan.models import build_discriminator, build_generator
from ray_gan.train.step import GANStep

# seeds of the render, mixing and edit-direction tests
SEEDS = list(range(24))


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- a small stylegan and its training step ------------------------------------------------

def small(res=16, styles=3):
    """A stylegan config small enough for CPU tests."""
    return ModelConfig(arch="stylegan", resolution=res, num_styles=styles, g_channels=8, d_channels=8, z_dim=16,
                       w_dim=16, embed_dim=8, mapping_layers=2, max_channels=32)


def stepper(arch="stylegan", pack=1, **train):
    """A GANStep of a fresh :func:`small` stylegan (or a small dcgan), with train fields ``train``."""
    torch.manual_seed(0)
    if arch == "stylegan":
        mc = small().model_copy(update={"pack": pack})
    else:
        mc = ModelConfig(arch="dcgan", resolution=16, num_styles=3, g_channels=8, d_channels=8)
    G, D = build_generator(mc), build_discriminator(mc)
    cfg = TrainConfig.from_flat(dataset="d", out="o", arch=arch, **train)
    return GANStep(G, D, copy.deepcopy(G).eval(), mc, cfg, torch.device("cpu"))


# ---- a tiny prepared dataset for evaluation ------------------------------------------------

# tiny_model's styles, drawn as three of the demo styles
TINY_DATASET_STYLES = {"alpha": "flat", "beta": "outline", "gamma": "stripes"}
N_TRAIN, N_VAL, SIZE = 40, 12, 32


def write_tiny_dataset(uri: str, n_train: int = N_TRAIN, n_val: int = N_VAL, size: int = SIZE) -> str:
    """A prepared dataset in the layout ``ray-gan prepare`` writes: one shard per split."""
    names = sorted(TINY_DATASET_STYLES)
    rows: dict[str, list[dict]] = {"train": [], "val": []}
    for demo_style, filename, png in iter_demo_images(per_style=n_train + n_val, size=size, seed=3):
        name = next((k for k, v in TINY_DATASET_STYLES.items() if v == demo_style), None)
        if name is None:
            continue
        index = int(filename.split("-")[1].split(".")[0])
        split = "train" if index < n_train else "val"
        rows[split].append({"image": png, "style": names.index(name), "style_name": name,
                            "source_key": f"{name}/{filename}", "sha256": f"{len(rows[split]):064x}",
                            "width": size, "height": size})
    shards = []
    for split, items in rows.items():
        items = items[::2] + items[1::2]  # mix styles a little, as prepare's hash order does
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(items, schema=PARQUET_SCHEMA), buf)
        storage.write_bytes(storage.join(uri, f"{split}-00000.parquet"), buf.getvalue())
        shards.append({"path": f"{split}-00000.parquet", "split": split, "rows": len(items), "bytes": buf.tell()})
    counts = {split: {"total": len(items), "per_style": {n: sum(r["style_name"] == n for r in items) for n in names}}
              for split, items in rows.items()}
    storage.write_json(storage.join(uri, "dataset.json"),
                       {"schema_version": 1, "styles": names, "resolution": size, "channels": 3, "counts": counts,
                        "shards": shards, "split_seed": 0, "val_fraction": 0.2, "skipped": {}})
    return uri


def write_untrained_model(uri: str, styles: list[str], resolution: int = 16, seed: int = 0,
                          arch: str = "dcgan", discriminator: bool = False) -> str:
    """A model directory in the trained layout, with randomly initialised weights (and a
    discriminator where ``discriminator``)."""
    torch.manual_seed(seed)
    if arch == "stylegan":
        cfg = ModelConfig(arch="stylegan", resolution=resolution, num_styles=len(styles), g_channels=8, d_channels=8,
                          z_dim=32, w_dim=32, embed_dim=16, mapping_layers=2, max_channels=64)
    else:
        cfg = ModelConfig(arch="dcgan", resolution=resolution, num_styles=len(styles), g_channels=8, d_channels=8)
    G = build_generator(cfg)
    with torch.no_grad():  # make styles visibly different, BN stats / style means non-trivial
        if arch == "stylegan":
            for i in range(len(styles)):
                G.w_avg[i] = G.mapping(torch.randn(256, cfg.z_dim), torch.full((256,), i)).mean(dim=0)
        else:
            for i in range(len(styles)):
                G.bn0.gain.weight[i] += 0.3 * i
            G(torch.randn(64, cfg.z_dim), torch.arange(64) % len(styles))
    ckpt.write_generator_model(uri, G.eval(), cfg, styles, step=1, D=build_discriminator(cfg) if discriminator else None)
    return uri
