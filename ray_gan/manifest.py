"""The Parquet manifest: one row per stored image, written by batch jobs (``ray-gan batch``)
and by HTTP requests with an ``output`` (``POST /v1/variants``) alike.

A row says how to render its image again (model, checkpoint digest, style, seed,
truncation, mixing, edits, format) and what was stored (URI, sha256, size, device):
an image is a function of its manifest row on the same device fingerprint.

Layout under a job's (or a request's) output::

    OUT/images/<style>/<image_id>.<ext>
    OUT/manifest/<part>.parquet
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from ray_gan import storage
from ray_gan.config import MixSpec

MANIFEST_DIR = "manifest"
IMAGES_DIR = "images"
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
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("device", pa.string()),
        ("created", pa.timestamp("ms", tz="UTC")),
    ]
)


def image_uri(output: str, style: str, image_id: str, fmt: str) -> str:
    return storage.join(output, IMAGES_DIR, style, f"{image_id}.{EXTENSIONS[fmt]}")


def manifest_row(*, job_id: str, image_id: str, style: str, style_index: int, variant: int, seed: int,
                 truncation: float, mix: MixSpec | None, edits: dict[str, float] | None, model_uri: str,
                 weights_sha256: str, uri: str, data: bytes, fmt: str, resolution: int, device: str) -> dict:
    """The manifest row of one stored image (``data``: its bytes as stored)."""
    return {
        "job_id": job_id, "image_id": image_id, "style": style, "style_index": style_index, "variant": variant,
        "seed": seed, "truncation": float(truncation), "mix_layers": mix.layers if mix else None,
        "mix_style": (mix.style or style) if mix else None,
        "mix_seed": (mix.seed if mix.seed is not None else seed + mix.seed_offset) if mix else None,
        "edits": json.dumps(edits or {}, sort_keys=True), "model_uri": model_uri,
        "weights_sha256": weights_sha256, "image_uri": uri, "image_sha256": hashlib.sha256(data).hexdigest(),
        "format": fmt, "width": resolution, "height": resolution, "device": device,
        "created": _dt.datetime.now(_dt.timezone.utc),
    }


def write_part(output: str, name: str, rows: list[dict]) -> str:
    """Write ``rows`` as manifest part ``name`` (one object, written whole); its URI."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), buf, compression="zstd")
    uri = storage.join(output, MANIFEST_DIR, name)
    storage.write_bytes(uri, buf.getvalue())
    return uri


def read_manifest(output: str) -> pa.Table:
    """The whole manifest under ``output`` as a pyarrow Table (an empty table if none yet)."""
    parts = storage.list_files(storage.join(output, MANIFEST_DIR), suffixes=(".parquet",))
    tables = [pq.read_table(io.BytesIO(storage.read_bytes(storage.join(output, MANIFEST_DIR, p.key))))
              for p in parts]
    return pa.concat_tables(tables) if tables else MANIFEST_SCHEMA.empty_table()
