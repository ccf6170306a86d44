"""A prepared dataset: ``dataset.json`` plus Parquet shards, read back as a Ray Dataset
(training) or, for a sample of a split, directly (:func:`read_split`).

The direct reader serves evaluation, the training loop's validation images and the
benchmarks: a few thousand to ~20k images, read with pyarrow through
:mod:`ray_gan.storage` (local or ``s3://``), not through Ray Data. ``prepare`` writes rows
in a seeded hash order, so every shard is a random sample of its split: shards are read
in order only until the limits are met (a 20k-image sample of a 10M-image split reads a
handful of shards), and the rows read are then sampled evenly (:func:`even_sample`), over
all of them and/or per style. Deterministic for a given dataset.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from ray_gan import storage
from ray_gan.images import decode_batch

DATASET_JSON = "dataset.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    uri: str
    styles: list[str]
    resolution: int
    counts: dict
    shards: list[dict]
    checksum: str  # sha256 of dataset.json: identifies exactly this preparation
    raw: dict

    @property
    def channels(self) -> int:
        """1 when every image is grey (prepare checks), else 3; the shards hold RGB either way."""
        return int(self.raw.get("channels", 3))

    def shard_uris(self, split: str) -> list[str]:
        return [storage.join(self.uri, s["path"]) for s in self.shards if s["split"] == split]

    def count(self, split: str) -> int:
        return int(self.counts.get(split, {}).get("total", 0))


def read_dataset_info(uri: str) -> DatasetInfo:
    doc_uri = storage.join(uri, DATASET_JSON)
    if not storage.exists(doc_uri):
        raise storage.StorageError(f"no prepared dataset at {uri} (missing {DATASET_JSON}); run `ray-gan prepare`")
    data = storage.read_bytes(doc_uri)
    import json

    doc = json.loads(data)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{doc_uri}: schema_version {doc.get('schema_version')} not supported (want {SCHEMA_VERSION})")
    return DatasetInfo(
        uri=storage.normalize(uri),
        styles=list(doc["styles"]),
        resolution=int(doc["resolution"]),
        counts=doc["counts"],
        shards=list(doc["shards"]),
        checksum=hashlib.sha256(data).hexdigest(),
        raw=doc,
    )


def decode_images(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data UDF: PNG bytes → ``image`` uint8 (N, H, W, 3), ``style`` int64."""
    return {
        "image": decode_batch([bytes(b) for b in batch["image"]]),
        "style": np.asarray(batch["style"], dtype=np.int64),
    }


def image_dataset(info: DatasetInfo, split: str):
    """Decoded images of one split as a (lazy, streaming) Ray Dataset."""
    import ray

    uris = info.shard_uris(split)
    if not uris:
        raise ValueError(f"dataset {info.uri} has no {split!r} shards")
    fs, _ = storage.filesystem(info.uri)
    paths = [storage.filesystem(u)[1] for u in uris]
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=["image", "style"])
    return ds.map_batches(decode_images, batch_format="numpy")


@dataclass(frozen=True)
class SplitImages:
    """A sample of one split, decoded, at the dataset's resolution."""

    images: np.ndarray  # uint8 (N, H, W, 3)
    styles: np.ndarray  # int64 (N,) style indices (mapped by style_map where one was given)
    keys: list[str]  # source_key of each image ('' where the shards do not record it)


def style_mapping(dataset_styles: list[str], model_styles: list[str]) -> dict[int, int]:
    """Dataset style index → model style index, by name (styles missing on either side are left out)."""
    mapping = {i: model_styles.index(name) for i, name in enumerate(dataset_styles) if name in model_styles}
    if not mapping:
        raise ValueError(f"the dataset's styles {dataset_styles} share none with the model's {model_styles}")
    return mapping


def even_sample(n: int, k: int | None) -> np.ndarray:
    """``k`` evenly spaced indices into ``range(n)``, ``floor(i · n / k)`` (all of them when
    ``k`` is None or ≥ n)."""
    if k is None or k >= n:
        return np.arange(n)
    return (np.arange(k) * n) // k


def read_split(info: DatasetInfo, split: str, per_style: int | None = None, limit: int | None = None,
               style_map: dict[int, int] | None = None, by_style: bool = True) -> SplitImages:
    """A sample of ``split``: see :func:`read_shards`; ``style_map`` defaults to every style
    of the dataset, unchanged."""
    uris = info.shard_uris(split)
    if not uris:
        raise ValueError(f"dataset {info.uri} has no {split!r} shards")
    if style_map is None:
        style_map = {i: i for i in range(len(info.styles))}
    return read_shards(uris, per_style, limit, style_map, by_style)


def read_shards(uris: list[str], per_style: int | None = None, limit: int | None = None,
                style_map: dict[int, int] | None = None, by_style: bool = True) -> SplitImages:
    """The images of these shards (one split, in order) whose style is in ``style_map``
    (dataset style index → the index to return; None: every style, unchanged): at most
    ``limit`` in all, then at most ``per_style`` of each style, both evenly spaced over
    the rows read. Shards are read until ``limit`` rows, or (without a limit) until
    ``per_style`` rows of every style in ``style_map``, are in hand. ``by_style``: the
    sample grouped by style, ascending; otherwise in the shards' order."""
    import pyarrow.parquet as pq

    blobs: list[bytes] = []
    styles: list[int] = []
    keys: list[str] = []
    wanted = sorted(set(style_map.values())) if style_map is not None else None
    for uri in uris:
        if limit is not None and len(styles) >= limit:
            break
        if limit is None and per_style is not None and wanted is not None:
            per = np.bincount(np.asarray(styles, dtype=np.int64), minlength=wanted[-1] + 1)
            if all(per[m] >= per_style for m in wanted):
                break
        data = storage.read_bytes(uri)
        names = pq.ParquetFile(io.BytesIO(data)).schema_arrow.names
        cols = ["image", "style"] + (["source_key"] if "source_key" in names else [])
        table = pq.read_table(io.BytesIO(data), columns=cols)
        s = table.column("style").to_pylist()
        keep = [i for i, v in enumerate(s) if style_map is None or v in style_map]
        img_col = table.column("image")
        blobs += [img_col[i].as_py() for i in keep]
        styles += [s[i] if style_map is None else style_map[s[i]] for i in keep]
        key_col = table.column("source_key").to_pylist() if "source_key" in cols else None
        keys += [key_col[i] if key_col else "" for i in keep]
    style_arr = np.asarray(styles, dtype=np.int64)
    rows = np.arange(len(style_arr))
    if limit is not None:
        rows = rows[even_sample(len(rows), limit)]
    picked = []
    for m in np.unique(style_arr[rows]):  # ascending
        mine = rows[style_arr[rows] == m]
        picked.append(mine[even_sample(len(mine), per_style)])
    sel = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    if not by_style:
        sel = np.sort(sel)
    return SplitImages(decode_batch([blobs[i] for i in sel]), style_arr[sel], [keys[i] for i in sel])
