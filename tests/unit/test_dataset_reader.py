"""The one reader of a split's shards (ray_gan.data.dataset.read_split / read_shards):
used by evaluation, the training loop's validation images and the benchmarks."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ray_gan import storage
from ray_gan.data.dataset import even_sample, read_dataset_info, read_shards, read_split, style_mapping
from ray_gan.data.prepare import PARQUET_SCHEMA
from ray_gan.images import encode

STYLES = ["a", "b", "c"]


def write_dataset(uri: str, shard_sizes: list[int], missing: int = 0) -> str:
    """A prepared dataset whose row ``r`` (over all train shards, in order) has style
    ``r % 3`` and an 8 px image filled with ``r``: a sample says which rows it took.
    ``missing`` more shards are listed in dataset.json but never written."""
    shards, r = [], 0
    for k, n in enumerate(shard_sizes):
        rows = []
        for _ in range(n):
            img = np.full((8, 8, 3), r, np.uint8)
            rows.append({"image": encode(img), "style": r % 3, "style_name": STYLES[r % 3],
                         "source_key": f"{STYLES[r % 3]}/{r}", "sha256": f"{r:064x}", "width": 8, "height": 8})
            r += 1
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), buf)
        storage.write_bytes(storage.join(uri, f"train-{k:05d}.parquet"), buf.getvalue())
        shards.append({"path": f"train-{k:05d}.parquet", "split": "train", "rows": n, "bytes": buf.tell()})
    shards += [{"path": f"train-{len(shard_sizes) + k:05d}.parquet", "split": "train", "rows": 1, "bytes": 1}
               for k in range(missing)]
    storage.write_json(storage.join(uri, "dataset.json"),
                       {"schema_version": 1, "styles": STYLES, "resolution": 8, "channels": 3,
                        "counts": {"train": {"total": r, "per_style": {s: r // 3 for s in STYLES}}},
                        "shards": shards})
    return uri


def rows_of(sample) -> list[int]:
    return [int(img[0, 0, 0]) for img in sample.images]


def test_even_sample_is_floor_i_n_over_k():
    assert even_sample(10, 4).tolist() == [0, 2, 5, 7]
    assert even_sample(5, None).tolist() == even_sample(5, 9).tolist() == [0, 1, 2, 3, 4]
    assert even_sample(5, 0).tolist() == []


def test_limit_reads_only_the_shards_it_needs_and_samples_evenly(tmp_path):
    info = read_dataset_info(write_dataset(str(tmp_path / "ds"), [10, 10], missing=1))
    flat = read_split(info, "train", limit=12, by_style=False)  # the missing third shard is never read
    assert rows_of(flat) == [int(i) for i in even_sample(20, 12)]  # evenly spaced, in the shards' order
    assert flat.styles.tolist() == [r % 3 for r in rows_of(flat)] and flat.styles.dtype == np.int64
    assert flat.keys == [f"{STYLES[r % 3]}/{r}" for r in rows_of(flat)]
    assert flat.images.shape == (12, 8, 8, 3) and flat.images.dtype == np.uint8
    grouped = read_split(info, "train", limit=12)  # the same sample, grouped by style
    assert sorted(rows_of(grouped)) == rows_of(flat)
    assert grouped.styles.tolist() == sorted(flat.styles.tolist())
    with pytest.raises(storage.StorageError):
        read_split(info, "train")  # no limit: every listed shard is read


def test_per_style_stops_once_every_wanted_style_has_enough(tmp_path):
    info = read_dataset_info(write_dataset(str(tmp_path / "ds"), [9, 9], missing=1))
    two = read_split(info, "train", per_style=2)
    assert two.styles.tolist() == [0, 0, 1, 1, 2, 2]
    assert rows_of(two) == [0, 3, 1, 4, 2, 5]  # of the 3 rows of each style in the first shard: floor(i·3/2)
    six = read_split(info, "train", per_style=6)  # the second shard is needed too
    assert np.bincount(six.styles).tolist() == [6, 6, 6]


def test_style_map_keeps_and_renumbers_styles(tmp_path):
    info = read_dataset_info(write_dataset(str(tmp_path / "ds"), [12]))
    mapping = style_mapping(info.styles, ["c", "a"])
    assert mapping == {0: 1, 2: 0}
    sample = read_split(info, "train", style_map=mapping)
    assert sample.styles.tolist() == [0] * 4 + [1] * 4  # model indices, grouped
    assert rows_of(sample) == [2, 5, 8, 11, 0, 3, 6, 9]
    with pytest.raises(ValueError, match="share none"):
        style_mapping(info.styles, ["z"])
    with pytest.raises(ValueError, match="no 'val' shards"):
        read_split(info, "val")


def test_training_validation_images_come_from_the_reader(tmp_path):
    from ray_gan.train.loop import _ValidationImages

    info = read_dataset_info(write_dataset(str(tmp_path / "ds"), [10, 10], missing=1))
    val = _ValidationImages(info.shard_uris("train"), 12)
    images, styles = val.get()
    assert images.dtype == torch.uint8 and images.shape == (12, 8, 8, 3)
    assert styles.dtype == torch.long
    assert images[:, 0, 0, 0].tolist() == [int(i) for i in even_sample(20, 12)]  # evenly spaced, shard order
    assert val.get()[0] is images  # read once
    assert _ValidationImages([], 12).get() is None
    empty = read_shards(info.shard_uris("train")[:1], style_map={})
    assert empty.images.shape[0] == 0 and empty.keys == []
