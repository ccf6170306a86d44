"""``ray-gan batch JOB.yaml``: style variants at scale on Ray Data, with a Parquet manifest.

Work is cut into *chunks* (``chunk_size`` consecutive variants of one style). Each chunk
is one row of a Ray Dataset, mapped by a fixed-size pool of generator actors
(``replicas``, each with ``gpus_per_replica``). An actor renders its chunk, writes the
images it does not find already written, then writes the chunk's manifest part — last,
atomically. Hence, for any interruption:

* a manifest row exists only if its image object was written before it;
* a chunk whose part exists is complete and is skipped on a re-run;
* a re-run renders only the chunks without a part and writes only the images that are
  missing; a row for an image kept from the interrupted run records the stored bytes'
  sha256 (they match a fresh render on the same kind of device);
* part names are fixed per chunk, so the manifest never holds a duplicate row.

Output layout::

    OUT/job.json                                        the spec, model digest, status
    OUT/images/<style>/<image_id>.<ext>                 image_id = <style>-<variant:08d>
    OUT/manifest/part-s<style_index:03d>-c<chunk:07d>.parquet
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ray_gan import storage
from ray_gan.checkpoint import read_model_info
from ray_gan.config import BatchJobSpec
from ray_gan.generate.controls import ControlError, check_controls, model_controls
from ray_gan.manifest import EXTENSIONS, IMAGES_DIR, MANIFEST_DIR, image_uri, manifest_row, read_manifest, write_part

__all__ = ["BatchError", "BatchResult", "IMAGES_DIR", "MANIFEST_DIR", "load_spec", "read_manifest", "run_batch"]

JOB_JSON = "job.json"
# Spec fields that define *which* images a job makes; the rest only say how fast.
IDENTITY_FIELDS = ("job_id", "model", "styles", "variants_per_style", "seed_base", "truncation", "mix", "edits",
                   "image_format", "chunk_size")


class BatchError(RuntimeError):
    pass


@dataclass(frozen=True)
class BatchResult:
    output: str
    images: int
    chunks_run: int
    chunks_skipped: int
    images_written: int
    manifest: str


def image_id(style: str, variant: int) -> str:
    return f"{style}-{variant:08d}"


def part_name(style_index: int, chunk: int) -> str:
    return f"part-s{style_index:03d}-c{chunk:07d}.parquet"


class _GenerateChunks:
    """Ray Data actor UDF: one generator replica."""

    def __init__(self, spec: dict, output: str, weights_sha256: str, use_gpu: bool) -> None:
        from ray_gan.generate.render import Renderer

        self.spec = BatchJobSpec(**spec)
        self.output = output
        self.renderer = Renderer(self.spec.model, device="cuda" if use_gpu else "cpu", traced=True)
        if self.renderer.info.weights_sha256 != weights_sha256:
            raise BatchError(f"model {self.spec.model} changed while the job was running")
        self.weights_sha256 = weights_sha256

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from ray_gan.images import encode

        spec, out = self.spec, {"part": [], "images": [], "written": []}
        res = self.renderer.info.config.resolution
        device = self.renderer.device.type
        for style, s_idx, chunk, start, count, existing in zip(
            batch["style"], batch["style_index"], batch["chunk"], batch["start"], batch["count"], batch["existing"]
        ):
            style, s_idx, chunk, start, count = str(style), int(s_idx), int(chunk), int(start), int(count)
            have = set(existing) if existing is not None else set()
            variants = list(range(start, start + count))
            seeds = [spec.seed_base + v for v in variants]
            psi = spec.truncation_for(style)
            images = self.renderer.render([s_idx] * count, seeds, psi, mix=spec.mix, edits=spec.edits or None)
            rows, written = [], 0
            for v, seed, img in zip(variants, seeds, images):
                iid = image_id(style, v)
                data = encode(img, spec.image_format)
                uri = image_uri(self.output, style, iid, spec.image_format)
                if uri.rsplit("/", 1)[-1] in have:
                    # Left by an interrupted run: keep it, and describe the bytes that are
                    # actually stored (they may come from another device or encoder).
                    data = storage.read_bytes(uri)
                else:
                    storage.write_bytes(uri, data)
                    written += 1
                rows.append(manifest_row(
                    job_id=spec.job_id, image_id=iid, style=style, style_index=s_idx, variant=v, seed=seed,
                    truncation=psi, mix=spec.mix, edits=spec.edits, model_uri=self.renderer.info.uri,
                    weights_sha256=self.weights_sha256, uri=uri, data=data, fmt=spec.image_format,
                    resolution=res, device=device))
            name = part_name(s_idx, chunk)
            write_part(self.output, name, rows)
            out["part"].append(name)
            out["images"].append(count)
            out["written"].append(written)
        return out


def _check_job_json(output: str, spec: BatchJobSpec, weights_sha256: str) -> bool:
    """True if this output already holds this very job; raise if it holds another."""
    uri = storage.join(output, JOB_JSON)
    if not storage.exists(uri):
        return False
    prev = storage.read_json(uri)
    mine = spec.model_dump()
    diffs = [f for f in IDENTITY_FIELDS if prev["spec"].get(f) != mine[f]]
    if diffs:
        raise BatchError(
            f"{output} already holds job {prev['spec'].get('job_id')!r} with a different "
            f"{', '.join(diffs)}; use another output URI (or the original spec to complete it)"
        )
    if prev["weights_sha256"] != weights_sha256:
        raise BatchError(
            f"the model at {spec.model} changed since job {spec.job_id!r} started "
            f"(weights {prev['weights_sha256'][:12]}… → {weights_sha256[:12]}…); "
            "its images would not match: use a new output URI"
        )
    return True


def run_batch(spec: BatchJobSpec, log: Callable[[str], None] = print) -> BatchResult:
    import ray

    from ray_gan.runtime import init_ray

    # Absolute URIs: Ray workers do not share the driver's working directory.
    spec = spec.model_copy(update={"model": storage.normalize(spec.model), "output": storage.normalize(spec.output)})
    info = read_model_info(spec.model)
    styles = info.styles if spec.styles == "all" else list(spec.styles)
    style_idx = info.style_indices(styles)
    try:  # before any work starts
        check_controls(model_controls(info, directions=bool(spec.edits)), spec.truncation, spec.mix, spec.edits)
    except ControlError as e:
        raise BatchError(str(e)) from None
    output = storage.normalize(spec.output)
    rerun = _check_job_json(output, spec, info.weights_sha256)
    job_doc = {"spec": spec.model_dump(), "weights_sha256": info.weights_sha256, "model_step": info.step,
               "styles": styles, "status": "running"}
    storage.write_json(storage.join(output, JOB_JSON), job_doc)

    done = {p.key for p in storage.list_files(storage.join(output, MANIFEST_DIR), suffixes=(".parquet",))}
    chunks, skipped = [], 0
    for style, s_idx in zip(styles, style_idx):
        for c, start in enumerate(range(0, spec.variants_per_style, spec.chunk_size)):
            if part_name(s_idx, c) in done:
                skipped += 1
                continue
            count = min(spec.chunk_size, spec.variants_per_style - start)
            chunks.append({"style": style, "style_index": s_idx, "chunk": c, "start": start, "count": count})
    existing: dict[str, set[str]] = {}
    if chunks and rerun:  # only an interrupted run can have images without a manifest part
        for e in storage.list_files(storage.join(output, IMAGES_DIR)):
            style, _, key = e.key.partition("/")
            existing.setdefault(style, set()).add(key)
    ext = EXTENSIONS[spec.image_format]
    for ch in chunks:
        have = existing.get(ch["style"], set())
        ch["existing"] = [k for v in range(ch["start"], ch["start"] + ch["count"])
                          if (k := f"{image_id(ch['style'], v)}.{ext}") in have]

    total = len(styles) * spec.variants_per_style
    log(f"batch {spec.job_id}: {total} images in {len(chunks) + skipped} chunks; "
        f"{skipped} already complete, {len(chunks)} to run on {spec.replicas} replicas → {output}")
    written = run_images = 0
    if chunks:
        from ray_gan.console import Progress

        init_ray()
        use_gpu = spec.gpus_per_replica > 0
        ds = ray.data.from_items(chunks, override_num_blocks=len(chunks)).map_batches(
            _GenerateChunks,
            fn_constructor_kwargs=dict(spec=spec.model_dump(), output=output, weights_sha256=info.weights_sha256,
                                       use_gpu=use_gpu),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=spec.replicas),
            num_cpus=spec.cpus_per_replica,
            num_gpus=spec.gpus_per_replica if use_gpu else None,
        )
        with Progress("batch", sum(ch["count"] for ch in chunks), "images", status="starting replicas") as bar:
            for row in ds.iter_rows():
                run_images += int(row["images"])
                written += int(row["written"])
                bar.update(run_images)
    job_doc.update(status="complete", images=total,
                   completed=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    storage.write_json(storage.join(output, JOB_JSON), job_doc)
    manifest = storage.join(output, MANIFEST_DIR)
    log(f"batch {spec.job_id}: complete: {total} images under {storage.join(output, IMAGES_DIR)}, "
        f"manifest {manifest} ({written} images written this run)")
    return BatchResult(output, total, len(chunks), skipped, written, manifest)


def load_spec(path: str) -> BatchJobSpec:
    """Read and validate a YAML job spec (local path or URI)."""
    import yaml

    doc = yaml.safe_load(storage.read_bytes(path))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a batch job spec must be a YAML mapping")
    return BatchJobSpec(**doc)
