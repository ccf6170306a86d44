"""``ray-gan prepare``: raw images → sharded Parquet + ``dataset.json``, on Ray Data.

Data flow::

    list source (driver: folder / zip central directory / S3 listing)
      → Ray Data map_batches: read bytes, validate, RGB, crop+resize, PNG, sha256
      → driver: drop exact duplicates (same source sha256; first key wins),
                assign each image to train/val by a hash of (seed, sha256),
                plan shards (rows in a seeded hash order, so shards mix styles;
                ``shard_rows`` per shard)
      → Ray Data groupby(shard).map_groups: write ``train-00000.parquet`` … atomically
      → driver: write ``dataset.json`` (last: a dataset without it is incomplete)

The split depends only on the image content and the seed, so the same image lands in
the same split on every run and however the source is laid out.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import math
from collections import Counter
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ray_gan import storage
from ray_gan.config import PrepareConfig
from ray_gan.data.dataset import DATASET_JSON, SCHEMA_VERSION
from ray_gan.data.validate import SkipImage, process_image
from ray_gan.data.sources import SourceReader, list_source

PARQUET_SCHEMA = pa.schema(
    [
        ("image", pa.binary()),
        ("style", pa.int32()),
        ("style_name", pa.string()),
        ("source_key", pa.string()),
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)


def split_of(sha256: str, seed: int, val_fraction: float) -> str:
    """Deterministic per image: a uniform number from hash(seed, content) vs the fraction."""
    h = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return "val" if u < val_fraction else "train"


def _order_key(sha256: str, seed: int) -> str:
    return hashlib.sha256(f"order:{seed}:{sha256}".encode()).hexdigest()


def _process_batch(batch: dict[str, np.ndarray], src: str, resolution: int, max_pixels: int,
                   max_file_bytes: int, progress=None) -> dict[str, list]:
    """Ray Data UDF (a stateless task): a batch of source keys → processed rows or skip reasons.
    ``progress``: a :class:`ray_gan.progress.Reporter` that counts the files done."""
    reader = SourceReader(src)
    out: dict[str, list] = {k: [] for k in ("key", "style_name", "status", "detail", "image", "sha256", "grey")}
    try:
        for key, style in zip(batch["key"], batch["style_name"]):
            status, detail, image, digest, grey = "ok", "", b"", "", False
            try:
                try:
                    data = reader.read(str(key))
                except storage.StorageError:
                    raise  # an unreachable file or bucket fails the job
                except Exception as exc:  # noqa: BLE001 - a damaged, encrypted or Deflate64 zip member
                    raise SkipImage("corrupt", f"{type(exc).__name__}: {exc}"[:200]) from exc
                digest = hashlib.sha256(data).hexdigest()
                image, _, _, grey = process_image(data, resolution, max_pixels, max_file_bytes)
            except SkipImage as skip:
                status, detail, image = skip.reason, skip.detail, b""
            for k, v in (("key", str(key)), ("style_name", str(style)), ("status", status),
                         ("detail", detail), ("image", image), ("sha256", digest), ("grey", grey)):
                out[k].append(v)
    finally:
        reader.close()
    if progress is not None:
        progress.add(len(out["key"]))
    return out


class _WriteShard:
    def __init__(self, dst: str, styles: list[str], resolution: int, seed: int) -> None:
        self.dst, self.styles, self.resolution, self.seed = dst, styles, resolution, seed

    def __call__(self, group: dict[str, np.ndarray]) -> dict[str, list]:
        order = sorted(range(len(group["key"])),
                       key=lambda i: (_order_key(str(group["sha256"][i]), self.seed), str(group["key"][i])))
        shard = str(group["shard"][0])
        r = self.resolution
        table = pa.table(
            {
                "image": [bytes(group["image"][i]) for i in order],
                "style": [self.styles.index(str(group["style_name"][i])) for i in order],
                "style_name": [str(group["style_name"][i]) for i in order],
                "source_key": [str(group["key"][i]) for i in order],
                "sha256": [str(group["sha256"][i]) for i in order],
                "width": [r] * len(order),
                "height": [r] * len(order),
            },
            schema=PARQUET_SCHEMA,
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        data = buf.getvalue()
        storage.write_bytes(storage.join(self.dst, f"{shard}.parquet"), data)
        return {"shard": [shard], "rows": [len(order)], "bytes": [len(data)]}


def prepare(cfg: PrepareConfig, log: Callable[[str], None] = print) -> dict:
    """Run the whole preparation; returns the ``dataset.json`` document."""
    import ray

    from ray_gan.console import Progress
    from ray_gan.progress import Track
    from ray_gan.runtime import init_ray

    init_ray()
    # Absolute URIs: Ray workers do not share the driver's working directory.
    cfg = cfg.model_copy(update={"src": storage.normalize(cfg.src), "dst": storage.normalize(cfg.dst)})
    items = list_source(cfg.src)
    if not items:
        raise storage.StorageError(f"no files found under {cfg.src}")
    bar = Progress("prepare", len(items), "files", status="starting")

    n_blocks = max(1, math.ceil(len(items) / cfg.files_per_task))
    ds = ray.data.from_items([{"key": i.key, "style_name": i.style} for i in items], override_num_blocks=n_blocks)
    with Track(lambda state, count: bar.update(count)) as reporter:
        ds = ds.map_batches(
            _process_batch,
            fn_kwargs=dict(src=cfg.src, resolution=cfg.resolution, max_pixels=cfg.max_pixels,
                           max_file_bytes=cfg.max_file_bytes, progress=reporter),
            batch_size=cfg.files_per_task,
        ).materialize()
    bar.update(len(items), status="writing shards")

    meta = ds.select_columns(["key", "style_name", "status", "sha256", "grey"]).to_pandas()
    meta = meta.sort_values("key", kind="stable").reset_index(drop=True)
    skipped: Counter[str] = Counter(meta.loc[meta.status != "ok", "status"])
    ok = meta[meta.status == "ok"]
    dup_mask = ok.duplicated("sha256", keep="first")
    skipped["duplicate"] = int(dup_mask.sum())
    keep = ok[~dup_mask].copy()
    if keep.empty:
        raise ValueError(f"no usable images under {cfg.src}; skipped: {dict(skipped)}")
    styles = sorted(keep.style_name.unique().tolist())
    keep["split"] = [split_of(s, cfg.seed, cfg.val_fraction) for s in keep.sha256]
    # Rows go into shards in a seeded pseudo-random order (not by style or name), so
    # every shard, block and streamed batch mixes styles and items.
    keep["order"] = [_order_key(s, cfg.seed) for s in keep.sha256]
    keep = keep.sort_values(["split", "order", "key"], kind="stable")
    keep["shard"] = ""
    for split, idx in keep.groupby("split").groups.items():
        pos = np.arange(len(idx))
        keep.loc[idx, "shard"] = [f"{split}-{p // cfg.shard_rows:05d}" for p in pos]
    plan = dict(zip(keep.key, keep.shard))

    plan_ref = ray.put(plan)
    dst = storage.normalize(cfg.dst)
    # An interrupted re-run must not leave an old dataset.json describing new shards.
    storage.delete(storage.join(dst, DATASET_JSON))

    def _assign(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        p = ray.get(plan_ref)
        batch["shard"] = np.array([p.get(str(k), "") for k in batch["key"]], dtype=object)
        return batch

    to_write = ds.filter(expr="status == 'ok'").map_batches(_assign).filter(expr="shard != ''")
    written = (
        to_write.groupby("shard", num_partitions=max(1, keep.shard.nunique()))
        .map_groups(_WriteShard, fn_constructor_kwargs=dict(dst=dst, styles=styles, resolution=cfg.resolution,
                                                          seed=cfg.seed),
                    compute=ray.data.ActorPoolStrategy(size=1))
        .to_pandas()
        .sort_values("shard")
    )
    bar.close()

    counts: dict[str, dict[str, int]] = {"train": {s: 0 for s in styles}, "val": {s: 0 for s in styles}}
    for (split, style), n in keep.groupby(["split", "style_name"]).size().items():
        counts[split][style] = int(n)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": cfg.src,
        "resolution": cfg.resolution,
        # 1 when every kept image is grey (R = G = B): new models of it draw one channel, so
        # they cannot draw colour the data never has (fringes along glyph edges)
        "channels": 1 if bool(keep.grey.all()) else 3,
        "split_seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "styles": styles,
        "counts": {split: {"total": sum(c.values()), "per_style": c} for split, c in counts.items()},
        "skipped": {reason: int(n) for reason, n in sorted(skipped.items()) if n},
        "source_files": len(items),
        "shards": [
            {"path": f"{r.shard}.parquet", "split": r.shard.split("-")[0], "rows": int(r.rows), "bytes": int(r.bytes)}
            for r in written.itertuples()
        ],
    }
    storage.write_json(storage.join(dst, DATASET_JSON), doc)
    live = {s["path"] for s in doc["shards"]}
    for entry in storage.list_files(dst, suffixes=(".parquet",)):
        if "/" not in entry.key and entry.key not in live and entry.key.split("-")[0] in ("train", "val"):
            storage.delete(storage.join(dst, entry.key))  # stale shard of an earlier, larger run

    log(
        f"prepare: {len(keep)} images kept in {len(styles)} styles "
        f"(train {doc['counts']['train']['total']}, val {doc['counts']['val']['total']}), "
        f"{len(doc['shards'])} shards → {dst}; skipped "
        + (", ".join(f"{k}={v}" for k, v in doc["skipped"].items()) or "nothing")
    )
    return doc
