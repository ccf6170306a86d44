"""The Parquet manifest: one row per stored image, written by batch jobs (``ray-gan batch``)
and by HTTP requests with an ``output`` (``POST /v1/variants``) alike.

A row says how to render its image again (model, checkpoint digest, style, seed,
truncation, mixing, edits, format) and what was stored (URI, sha256, size, device):
an image is a function of its manifest row on the same device fingerprint.

Layout under a job's (or a request's) output::

    OUT/images/<style>/<image_id>.<ext>                 one object per image (the default), or
    OUT/shards/<style>/<style>-c<chunk>.tar             a batch job's ``layout: tar``: one
                                                        uncompressed tar per work unit
    OUT/manifest/<part>.parquet

A row's image is ``image_size`` bytes of ``image_uri`` from ``image_offset`` (null: the
whole object); :func:`read_image` reads it either way.

A batch job writes one part per work unit (``part-s<style>-c<chunk>.parquet``);
``ray-gan batch --compact`` merges them into one file per style and range of chunks
(``range-s<style>-c<first>-c<last>.parquet``). Readers go through :func:`manifest_files`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import re
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq

from ray_gan import storage
from ray_gan.config import MixSpec

MANIFEST_DIR = "manifest"
IMAGES_DIR = "images"
SHARDS_DIR = "shards"
EXTENSIONS = {"png": "png", "webp": "webp", "jpeg": "jpg"}

MANIFEST_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("image_id", pa.string()),
        ("style", pa.string()),
        ("style_index", pa.int32()),
        ("variant", pa.int64()),
        ("seed", pa.int64()),
        ("truncation", pa.float64()),
        ("mix_layers", pa.string()),  # null: no style mixing
        ("mix_style", pa.string()),
        ("mix_seed", pa.int64()),
        ("edits", pa.string()),  # JSON object: direction name → strength; "{}" for none
        ("model_uri", pa.string()),
        ("weights_sha256", pa.string()),
        ("image_uri", pa.string()),
        ("image_sha256", pa.string()),
        ("image_offset", pa.int64()),  # null: the image is the whole object; else its first byte in a tar shard
        ("image_size", pa.int64()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("device", pa.string()),
        ("created", pa.timestamp("ms", tz="UTC")),
        # Quality gates (batch jobs): the candidate delivered (0: the variant's own seed),
        # the seeds skipped before it and why, and what the gates measured (null: not measured).
        ("attempt", pa.int32()),
        ("skipped", pa.list_(pa.struct([("seed", pa.int64()), ("reason", pa.string())]))),
        ("phash", pa.uint64()),
        ("train_score", pa.float64()),
        ("style_confidence", pa.float64()),
    ]
)


def image_uri(output: str, style: str, image_id: str, fmt: str) -> str:
    return storage.join(output, IMAGES_DIR, style, f"{image_id}.{EXTENSIONS[fmt]}")


def shard_uri(output: str, style: str, chunk: int) -> str:
    """A batch job's tar shard (``layout: tar``): the images of one work unit."""
    return storage.join(output, SHARDS_DIR, style, f"{style}-c{chunk:07d}.tar")


def pack_tar(members: list[tuple[str, bytes]]) -> tuple[bytes, list[int]]:
    """An uncompressed POSIX tar of ``(name, data)`` members, and each member's data offset.
    The bytes depend only on the members (mtime 0, owner root, mode 0644), so a work unit
    written again is the same object; any ``tar`` unpacks it."""
    buf = io.BytesIO()
    offsets = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
            # the member's data ends the archive so far, padded to whole blocks
            offsets.append(tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
    return buf.getvalue(), offsets


def read_image(row: dict) -> bytes:
    """The stored bytes of a manifest row's image (a whole object, or a range of a shard)."""
    if row.get("image_offset") is None:
        return storage.read_bytes(row["image_uri"])
    return storage.read_range(row["image_uri"], int(row["image_offset"]), int(row["image_size"]))


def manifest_row(*, job_id: str, image_id: str, style: str, style_index: int, variant: int, seed: int,
                 truncation: float, mix: MixSpec | None, edits: dict[str, float] | None, model_uri: str,
                 weights_sha256: str, uri: str | None, data: bytes, fmt: str, resolution: int, device: str,
                 offset: int | None = None,
                 attempt: int = 0, skipped: list[tuple[int, str]] | None = None, phash: int | None = None,
                 train_score: float | None = None, style_confidence: float | None = None) -> dict:
    """The manifest row of one stored image (``data``: its bytes as stored; the quality
    fields as :mod:`ray_gan.batch.gates` measured them; ``offset``: its first byte in the
    tar shard ``uri``, None when ``uri`` is the image's own object)."""
    return {
        "job_id": job_id, "image_id": image_id, "style": style, "style_index": style_index, "variant": variant,
        "seed": seed, "truncation": float(truncation), "mix_layers": mix.layers if mix else None,
        "mix_style": (mix.style or style) if mix else None,
        "mix_seed": (mix.seed if mix.seed is not None else seed + mix.seed_offset) if mix else None,
        "edits": json.dumps(edits or {}, sort_keys=True), "model_uri": model_uri,
        "weights_sha256": weights_sha256, "image_uri": uri, "image_sha256": hashlib.sha256(data).hexdigest(),
        "image_offset": None if offset is None else int(offset), "image_size": len(data),
        "format": fmt, "width": resolution, "height": resolution, "device": device,
        "created": _dt.datetime.now(_dt.timezone.utc),
        "attempt": int(attempt), "skipped": [{"seed": int(a), "reason": r} for a, r in (skipped or [])],
        "phash": None if phash is None else int(phash),
        "train_score": None if train_score is None else float(train_score),
        "style_confidence": None if style_confidence is None else float(style_confidence),
    }


def write_part(output: str, name: str, rows: list[dict]) -> str:
    """Write ``rows`` as manifest part ``name`` (one object, written whole); its URI."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), buf, compression="zstd")
    uri = storage.join(output, MANIFEST_DIR, name)
    storage.write_bytes(uri, buf.getvalue())
    return uri


def part_name(style_index: int, chunk: int) -> str:
    """A batch job's manifest part: the rows of one work unit (chunk) of one style."""
    return f"part-s{style_index:03d}-c{chunk:07d}.parquet"


def range_name(style_index: int, first: int, last: int) -> str:
    """A compacted manifest file: the rows of chunks ``first … last`` of one style."""
    return f"range-s{style_index:03d}-c{first:07d}-c{last:07d}.parquet"


_PART_RE = re.compile(r"^part-s(\d{3})-c(\d{7})\.parquet$")
_RANGE_RE = re.compile(r"^range-s(\d{3})-c(\d{7})-c(\d{7})\.parquet$")


def manifest_files(output: str) -> list[str]:
    """URIs of the manifest files under ``output`` that hold its rows: compacted ranges, and
    the parts no range covers (a compaction interrupted before it removed its parts leaves
    both; the range then holds the rows)."""
    names = [p.key for p in storage.list_files(storage.join(output, MANIFEST_DIR), suffixes=(".parquet",))]
    ranges: dict[int, list[tuple[int, int]]] = {}
    for n in names:
        m = _RANGE_RE.match(n)
        if m:
            ranges.setdefault(int(m[1]), []).append((int(m[2]), int(m[3])))
    keep = []
    for n in names:
        m = _PART_RE.match(n)
        if m and any(a <= int(m[2]) <= b for a, b in ranges.get(int(m[1]), ())):
            continue
        keep.append(storage.join(output, MANIFEST_DIR, n))
    return keep


def compact_manifest(output: str, span: int = 1024, workers: int = 16) -> tuple[int, int]:
    """Merge a batch job's per-chunk parts into one file per style and range of ``span``
    chunks (:func:`range_name`), then remove the merged parts; (ranges written, parts
    removed). Each range is written whole before its parts go, and readers prefer a range
    over the parts it covers, so an interrupted compaction loses nothing and a re-run
    finishes it."""
    from concurrent.futures import ThreadPoolExecutor

    names = [p.key for p in storage.list_files(storage.join(output, MANIFEST_DIR), suffixes=(".parquet",))]
    groups: dict[tuple[int, int], list[str]] = {}
    for n in names:
        m = _PART_RE.match(n)
        if m:
            groups.setdefault((int(m[1]), int(m[2]) // span), []).append(n)
    read = lambda n: pq.read_table(io.BytesIO(storage.read_bytes(storage.join(output, MANIFEST_DIR, n))))  # noqa: E731
    written = removed = 0
    with ThreadPoolExecutor(workers) as pool:
        for (style, r), parts in sorted(groups.items()):
            first = r * span
            name = range_name(style, first, first + span - 1)
            tables = list(pool.map(read, sorted(parts)))
            if name in names:  # an earlier, interrupted compaction: keep its rows too
                tables.append(read(name))
            table = pa.concat_tables(tables, promote_options="default")
            ids = table.column("image_id").to_pylist()
            if len(set(ids)) != len(ids):  # the same chunk in the range and a part: one copy of each row
                first_row = {i: k for k, i in reversed(list(enumerate(ids)))}
                table = table.take(sorted(first_row.values()))
            table = table.sort_by([("variant", "ascending")])
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="zstd")
            storage.write_bytes(storage.join(output, MANIFEST_DIR, name), buf.getvalue())
            written += 1
            for n in parts:
                storage.delete(storage.join(output, MANIFEST_DIR, n))
                removed += 1
    return written, removed


def read_manifest(output: str) -> pa.Table:
    """The whole manifest under ``output`` as a pyarrow Table (an empty table if none yet)."""
    tables = [pq.read_table(io.BytesIO(storage.read_bytes(uri))) for uri in manifest_files(output)]
    # Parts written before a column existed read as null in it.
    return pa.concat_tables(tables, promote_options="default") if tables else MANIFEST_SCHEMA.empty_table()
