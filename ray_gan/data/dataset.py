"""A prepared dataset: ``dataset.json`` plus Parquet shards, read back as Ray Datasets."""

from __future__ import annotations

import hashlib
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
