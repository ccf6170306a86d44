"""Real images of one split of a prepared dataset, as the model sees them.

Evaluation needs a few thousand to ~20k images, so the shards are read directly with
pyarrow through :mod:`ray_gan.storage` (local or ``s3://``), not through Ray Data.
``prepare`` writes rows in a seeded hash order, so every shard is a random sample of its
split: shards are read in order only until the limits are met (a 20k-image sample of a
10M-image split reads a handful of shards), and the rows read are then sampled evenly
(``floor(i · n / k)``), per style or over all of them. Deterministic for a given dataset.

Images are brought into the model's image space with the same transform as training
(``train/loop.py``'s ``to_input``): the channel mean for one-channel models, then a
bilinear, antialiased resize to the model's resolution when the dataset's differs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from ray_gan import storage
from ray_gan.data.dataset import DatasetInfo
from ray_gan.images import decode_batch, to_model_space


@dataclass(frozen=True)
class RealImages:
    images: np.ndarray  # uint8 (N, R, R, 3) in the model's image space, grouped by style
    styles: np.ndarray  # int64 (N,) model style indices, ascending
    keys: list[str]  # source_key of each image ('' where the shards do not record it)
    available: dict[int, int]  # model style index → images of that style in the split (dataset.json)


def style_mapping(dataset_styles: list[str], model_styles: list[str]) -> dict[int, int]:
    """Dataset style index → model style index, by name (styles missing on either side are left out)."""
    mapping = {i: model_styles.index(name) for i, name in enumerate(dataset_styles) if name in model_styles}
    if not mapping:
        raise ValueError(f"the dataset's styles {dataset_styles} share none with the model's {model_styles}")
    return mapping


def even_sample(n: int, k: int | None) -> np.ndarray:
    """``k`` evenly spaced indices into ``range(n)`` (all of them when ``k`` is None or ≥ n)."""
    if k is None or k >= n:
        return np.arange(n)
    return (np.arange(k) * n) // k


def read_split(info: DatasetInfo, split: str, style_map: dict[int, int], resolution: int, channels: int = 3,
               per_style: int | None = None, limit: int | None = None) -> RealImages:
    """Images of ``split`` whose style the model knows: at most ``per_style`` of each style
    and at most ``limit`` in all (both evenly spaced), decoded and in model space."""
    uris = info.shard_uris(split)
    if not uris:
        raise ValueError(f"dataset {info.uri} has no {split!r} shards")
    blobs: list[bytes] = []
    styles: list[int] = []
    keys: list[str] = []
    wanted = set(style_map.values())
    for uri in uris:
        per = np.bincount(np.asarray(styles, dtype=np.int64), minlength=max(wanted) + 1)
        if (limit is not None and len(styles) >= limit) or \
                (limit is None and per_style is not None and all(per[m] >= per_style for m in wanted)):
            break
        data = storage.read_bytes(uri)
        names = pq.ParquetFile(io.BytesIO(data)).schema_arrow.names
        cols = ["image", "style"] + (["source_key"] if "source_key" in names else [])
        table = pq.read_table(io.BytesIO(data), columns=cols)
        s = table.column("style").to_pylist()
        keep = [i for i, v in enumerate(s) if v in style_map]
        img_col = table.column("image")
        blobs += [img_col[i].as_py() for i in keep]
        styles += [style_map[s[i]] for i in keep]
        key_col = table.column("source_key").to_pylist() if "source_key" in cols else None
        keys += [key_col[i] if key_col else "" for i in keep]
    style_arr = np.asarray(styles, dtype=np.int64)
    split_counts = info.counts.get(split, {}).get("per_style", {})
    available: dict[int, int] = {}
    for d, m in sorted(style_map.items(), key=lambda dm: dm[1]):
        n = int(split_counts.get(info.styles[d], (style_arr == m).sum()))
        if n:
            available[m] = n
    rows = np.arange(len(style_arr))
    if limit is not None:
        rows = rows[even_sample(len(rows), limit)]
    picked = []
    for m in sorted(available):
        mine = rows[style_arr[rows] == m]
        picked.append(mine[even_sample(len(mine), per_style)])
    sel = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    if len(sel) == 0:
        raise ValueError(f"dataset {info.uri}: no {split!r} images in the model's styles")
    images = to_model_space(decode_batch([blobs[i] for i in sel]), resolution, channels)
    return RealImages(images, style_arr[sel], [keys[i] for i in sel], available)
