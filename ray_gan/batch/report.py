"""The contact sheet of a batch run: ``OUT/report.html``, one self-contained page (PNGs
embedded) written at the end of every run, complete or not.

* a grid per style: the style's first variants (up to :data:`GRID_IMAGES`), read back from
  storage as delivered (one that is missing or damaged is left out and counted: the page is
  still written, and ``ray-gan verify`` lists the problem);
* gate statistics per style, from the manifest: candidates each gate rejected, the share of
  variants that needed a replacement seed, the lowest training-copy score and the style
  confidence delivered; and images that share a perceptual hash with another image of
  the run (near-duplicates *across* work units, which the per-unit gate does not see);
* throughput and timings of each run (``job.json``), the device, and links to
  ``job.json`` and the manifest.

Manifest parts are read on a thread pool, a few columns at a time, and only per-style sums
and the hashes are kept: a million-image run costs about 10 MB of hashes.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ray_gan import storage
from ray_gan.batch.gates import REASONS
from ray_gan.html import CSS as _CSS
from ray_gan.html import fmt as _fmt
from ray_gan.html import img as _img
from ray_gan.html import table as _table
from ray_gan.images import decode, encode, make_grid
from ray_gan.manifest import MANIFEST_DIR, manifest_files, read_image

REPORT_HTML = "report.html"
GRID_IMAGES = 32
GRID_COLS = 8
COLUMNS = ["style", "variant", "image_uri", "image_offset", "image_size", "attempt", "skipped", "phash", "train_score",
           "style_confidence"]


class _StyleStats:
    def __init__(self) -> None:
        self.images = 0
        self.replaced = 0
        self.rejected = dict.fromkeys(REASONS, 0)
        self.min_train_score: float | None = None
        self.confidence: list[float] = []  # per-part minima and medians are not additive: keep a sample
        self.min_confidence: float | None = None
        self.grid: list[tuple[int, dict]] = []  # (variant, where its image is) of the first variants
        self.hashes: list[np.ndarray] = []


def _read_part(uri: str):
    import pyarrow as pa

    table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    missing = [c for c in COLUMNS if c not in table.column_names]  # parts written before the gates or shards
    for c in missing:
        table = table.append_column(c, pa.nulls(len(table)))
    return table.select(COLUMNS)


def _collect(output: str, workers: int = 16) -> dict[str, _StyleStats]:
    stats: dict[str, _StyleStats] = defaultdict(_StyleStats)
    uris = manifest_files(output)
    with ThreadPoolExecutor(workers) as pool:
        for table in pool.map(_read_part, uris):
            cols = table.to_pydict()
            for i, style in enumerate(cols["style"]):
                s = stats[style]
                s.images += 1
                skipped = cols["skipped"][i] or []
                s.replaced += bool(skipped)
                for k in skipped:
                    reason = k["reason"].split(":", 1)[0]
                    if reason in s.rejected:
                        s.rejected[reason] += 1
                score, conf = cols["train_score"][i], cols["style_confidence"][i]
                if score is not None:
                    s.min_train_score = score if s.min_train_score is None else min(s.min_train_score, score)
                if conf is not None:
                    s.min_confidence = conf if s.min_confidence is None else min(s.min_confidence, conf)
                    if len(s.confidence) < 10_000:
                        s.confidence.append(conf)
                if cols["variant"][i] < GRID_IMAGES:
                    s.grid.append((cols["variant"][i], {k: cols[k][i] for k in ("image_uri", "image_offset",
                                                                                 "image_size")}))
            for style in set(cols["style"]):
                mine = pc.and_(pc.equal(table["style"], style), pc.is_valid(table["phash"]))
                stats[style].hashes.append(table.filter(mine)["phash"].to_numpy().astype(np.uint64))
    return stats


def _grid_png(entries: list[tuple[int, dict]]) -> tuple[bytes | None, int]:
    """The grid of a style's first variants, and how many of them could not be read back
    (missing or damaged: left out here, listed by ``ray-gan verify``)."""
    images, unreadable = [], 0
    for _, where in sorted(entries, key=lambda e: e[0])[:GRID_IMAGES]:
        try:
            images.append(decode(read_image(where)))
        except (storage.StorageError, OSError, ValueError):  # OSError: also Pillow's unidentified image
            unreadable += 1
    if not images:
        return None, unreadable
    shape = images[0].shape  # a wrong object may decode at another size: it counts as damaged
    fits = [im for im in images if im.shape == shape]
    return encode(make_grid(np.stack(fits), cols=GRID_COLS, min_tile=48)), unreadable + len(images) - len(fits)


def write_report(output: str, job: dict) -> str:
    """Write ``OUT/report.html`` for the job whose ``job.json`` is ``job``; its URI."""
    stats = _collect(output)
    styles = [s for s in job.get("styles", sorted(stats)) if s in stats] + sorted(set(stats) - set(job.get("styles", [])))
    gates = (job.get("spec") or {}).get("gates") or {}
    rows, grids = [], []
    for name in styles:
        s = stats[name]
        hashes = np.concatenate(s.hashes) if s.hashes else np.zeros(0, np.uint64)
        _, counts = np.unique(hashes, return_counts=True)
        shared = int(counts[counts > 1].sum())
        threshold = ((job.get("gates") or {}).get("near_copy_thresholds") or {}).get(name)
        rows.append([name, s.images, *(s.rejected[r] for r in REASONS),
                     s.replaced / s.images if s.images else None, threshold, s.min_train_score,
                     float(np.median(s.confidence)) if s.confidence else None, s.min_confidence, shared])
        png, unreadable = _grid_png(s.grid)
        missing = (f'<p class="note">{unreadable} of these images could not be read back (missing or damaged): '
                   f"run <code>ray-gan verify</code></p>") if unreadable else ""
        grids.append(f"<figure><h3>{html.escape(name)}</h3>"
                     + (_img(png, f"{name}: first variants", cls="grid") if png
                        else "<p>–</p>") + missing + "</figure>")
    gate_table = _table(["style", "images", "rejected: near-duplicate", "rejected: training copy",
                         "rejected: style confidence", "share replaced", "training-copy threshold",
                         "lowest training-copy score",
                         "style confidence (median)", "style confidence (lowest)", "images sharing a pHash"], rows)
    run = job.get("run") or {}
    run_table = _table(["", "value"], [
        ["status", job.get("status")], ["runs", job.get("runs")],
        ["images this run", run.get("images_written")], ["images/s this run", run.get("images_per_s")],
        ["seconds", run.get("seconds")], ["start-up seconds", run.get("startup_seconds")],
        ["render seconds (all replicas)", run.get("render_seconds")],
        ["write wait seconds (all replicas)", run.get("write_seconds")],
        ["chunks run / skipped", f"{run.get('chunks_run')} / {run.get('chunks_skipped')}"],
        ["device", ", ".join(f"{k}: {v}" for k, v in (run.get("device") or {}).items())],
    ])
    spec = job.get("spec") or {}
    calibration = job.get("gates") or {}
    gate_lines = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in gates.items()
                         if v is not None) or "<li>none</li>"
    cal_lines = "".join(f"<li>{html.escape(k)}: {_fmt(v)}</li>" for k, v in calibration.items()
                        if not isinstance(v, dict))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>batch {html.escape(spec.get('job_id', ''))}</title>
<style>{_CSS}</style></head><body>
<h1>Batch {html.escape(spec.get('job_id', ''))}: contact sheet</h1>
<p class="note">model {html.escape(spec.get('model', ''))} (step {_fmt(job.get('model_step'))}, weights
{html.escape(str(job.get('weights_sha256', ''))[:16])}…) · {_fmt(job.get('images'))} images in {len(styles)} styles ·
truncation {html.escape(str(spec.get('truncation')))} · format {html.escape(str(spec.get('image_format')))} ·
<a href="job.json">job.json</a> · <a href="{MANIFEST_DIR}/">manifest/</a> ({html.escape(storage.join(output, MANIFEST_DIR))})</p>
<p class="note">Every image is a function of its manifest row (model, weights, style, seed, truncation, mixing, edits).
Audit the output with <code>ray-gan verify {html.escape(output)}</code>.</p>
<h2>Styles</h2><p class="note">The first {GRID_IMAGES} variants of each style, as stored.</p>
<div class="styles">{''.join(grids)}</div>
<h2>Quality gates</h2><ul>{gate_lines}</ul>
{gate_table}
<p class="note">A rejected candidate is replaced by the variant's next seed (seed_base + variant + attempt ×
variants_per_style); each manifest row lists the seeds it skipped and why (column <code>skipped</code>).
A training copy scores at or below its style's threshold (relative distance to the nearest training image,
calibrated on held-out val images). Near-duplicates are suppressed within a work unit; "images sharing a pHash"
counts identical hashes across the whole run.</p>
{f'<p class="note">Calibration:</p><ul class="note">{cal_lines}</ul>' if cal_lines else ''}
<h2>Run</h2>{run_table}
</body></html>"""
    uri = storage.join(output, REPORT_HTML)
    storage.write_bytes(uri, page.encode())
    return uri
