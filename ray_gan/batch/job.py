"""``ray-gan batch JOB.yaml``: style variants at scale on Ray Data, with a Parquet manifest.

Work is cut into *chunks* (``chunk_size`` consecutive variants of one style), numbered
style by style. The chunk numbers are generated on the cluster (``ray.data.range``), so the
driver never holds a list of the work, and mapped by a fixed-size pool of generator actors
(``ActorPoolStrategy``: ``replicas``, each with ``gpus_per_replica``). An actor checks
whether its chunk's manifest part exists (complete: skipped), else renders the chunk,
encodes and writes its images on ``write_threads`` while rendering goes on (``layout: tar``:
encodes them there, then writes the chunk's images as one tar shard, one PUT), then writes
the chunk's manifest part — last, atomically. Hence, for any interruption:

* a manifest row exists only if its image object was written before it;
* a chunk whose part exists is complete and is skipped on a re-run (one existence check per
  chunk; the output is never listed);
* a re-run renders and writes again only the chunks without a part, so each part
  describes exactly the bytes stored;
* part names are fixed per chunk, so the manifest never holds a duplicate row.

Quality gates (``spec.gates``, :mod:`ray_gan.batch.gates`) are calibrated once in the
driver (stored in ``OUT/gates.safetensors``, reused by a re-run) and applied in the
replicas: a rejected candidate is replaced by the variant's next seed, and its row lists
the seeds skipped and why. A variant none of ``max_attempts`` seeds passes fails the job
with the reasons (a permanent error: the replica reports it, nothing retries it).

``job.json`` records the spec and model digest at the start, and at the end of each run its
status (``complete``, ``incomplete`` after ``max_chunks``, ``failed`` with the error), that
run's counts (candidates each gate rejected included), timings, throughput and device
fingerprint. Then the contact sheet (``OUT/report.html``, :mod:`ray_gan.batch.report`)
is written.

Output layout::

    OUT/job.json                                        the spec, model digest, status
    OUT/report.html                                     the contact sheet
    OUT/gates.safetensors                               the gates' calibration (with gates)
    OUT/images/<style>/<image_id>.<ext>                 image_id = <style>-<variant:08d>
    OUT/shards/<style>/<style>-c<chunk:07d>.tar         layout: tar, instead of images/: one
                                                        per work unit, members <image_id>.<ext>
    OUT/manifest/part-s<style_index:03d>-c<chunk:07d>.parquet
    OUT/manifest/range-s<style_index:03d>-c<first>-c<last>.parquet   after --compact
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ray_gan import storage
from ray_gan.batch.gates import NEAR_DUPLICATE, REASONS, REJECTED, hamming
from ray_gan.checkpoint import read_model_info
from ray_gan.config import BatchJobSpec
from ray_gan.generate.controls import ControlError, check_controls, model_controls
from ray_gan.manifest import (EXTENSIONS, IMAGES_DIR, MANIFEST_DIR, image_uri, manifest_row, pack_tar, part_name,
                              read_manifest, shard_uri, write_part)

__all__ = ["BatchError", "BatchResult", "IMAGES_DIR", "MANIFEST_DIR", "load_spec", "read_manifest", "run_batch"]

JOB_JSON = "job.json"
MAX_BLOCKS = 1024  # blocks of the work-unit dataset, whatever the job's size
UNITS_PER_CALL = 16  # most work units a replica is handed at once (and pipelines: see _GenerateChunks.__call__)
IMAGES_PER_CALL = 1024  # … and fewer where units are big, so replicas end a job together
OLD_CHUNK_SIZE = 64  # every job's chunk size before the default followed the model (job.json records it)
# Spec fields that define *which* images a job makes; the rest only say how fast.
IDENTITY_FIELDS = ("job_id", "model", "styles", "variants_per_style", "seed_base", "truncation", "mix", "edits",
                   "image_format", "layout", "chunk_size", "gates")


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
    report: str | None = None  # the contact sheet (OUT/report.html)


def image_id(style: str, variant: int) -> str:
    return f"{style}-{variant:08d}"


@dataclass(frozen=True)
class ChunkPlan:
    """Work unit ``g`` of a job, computed where it runs (never listed in the driver):
    units are numbered style by style, ``chunks_per_style`` each."""

    styles: tuple[str, ...]
    style_indices: tuple[int, ...]
    variants_per_style: int
    chunk_size: int

    @property
    def chunks_per_style(self) -> int:
        return -(-self.variants_per_style // self.chunk_size)

    @property
    def total_chunks(self) -> int:
        return len(self.styles) * self.chunks_per_style

    def chunk(self, g: int) -> tuple[str, int, int, int, int]:
        """(style, style index, chunk within the style, first variant, variants)."""
        i, c = divmod(int(g), self.chunks_per_style)
        start = c * self.chunk_size
        return self.styles[i], self.style_indices[i], c, start, min(self.chunk_size, self.variants_per_style - start)


def _near_duplicate(c: "_Candidate", kept: list["_Candidate"], style: str, max_hamming: int, max_rms: float
                    ) -> str | None:
    """Why ``c`` is a near-duplicate of an image in ``kept`` (None: it is not)."""
    d = hamming(c.phash, np.array([k.phash for k in kept], np.uint64))
    j = int(d.argmin())
    if d[j] <= max_hamming:
        return f"{NEAR_DUPLICATE}: pHash distance {int(d[j])} <= {max_hamming} of {image_id(style, kept[j].variant)}"
    rms = np.sqrt(((np.stack([k.pixels for k in kept]) - c.pixels) ** 2).mean(axis=1))
    j = int(rms.argmin())
    if rms[j] <= max_rms:
        return f"{NEAR_DUPLICATE}: pixel RMS difference {rms[j]:.4f} <= {max_rms:g} of {image_id(style, kept[j].variant)}"
    return None


@dataclass
class _Candidate:
    """A variant's image as rendered and checked, and the seeds it replaced."""

    variant: int
    attempt: int
    seed: int
    image: np.ndarray
    phash: int
    train_score: float | None
    confidence: float | None
    skipped: list[tuple[int, str]]
    pixels: np.ndarray | None = None  # for the near-duplicate gate


class _RunProgress:
    """One per run, a Ray actor without CPUs: replicas add each chunk as it finishes — Ray
    Data hands a block's rows back only once the whole block is done, and a block of a big
    job holds hundreds of chunks — so the progress bar and its ETA move per chunk; and the
    driver sets ``stop`` once ``max_chunks`` chunks are done, after which replicas pass the
    remaining work units by without rendering them."""

    def __init__(self) -> None:
        self.chunks = self.images = 0
        self.stop = False

    def add(self, chunks: int, images: int) -> bool:
        """Count a finished chunk; whether the run should stop (the replica reads the answer
        before its next chunk, without waiting for it)."""
        self.chunks += chunks
        self.images += images
        return self.stop

    def snapshot(self) -> tuple[int, int]:
        return self.chunks, self.images

    def request_stop(self) -> None:
        self.stop = True


class _GenerateChunks:
    """Ray Data actor UDF: one generator replica. A work unit whose manifest part exists is
    complete and skipped (one existence check per unit). Otherwise the unit is rendered in
    micro-batches; candidates a quality gate rejects are replaced by the variant's next
    seeds (:meth:`BatchJobSpec.seed`); each accepted image is encoded, hashed and written
    on ``write_threads`` while the next micro-batch renders (the traced forward runs
    without the GIL), and the unit's manifest part is written last, on a finisher thread
    while the next unit renders. Images of a unit an
    interrupted run left without a part are written again: the part then describes exactly
    the bytes stored."""

    def __init__(self, spec: dict, output: str, weights_sha256: str, use_gpu: bool, plan: ChunkPlan,
                 write_threads: int, gate_models=None, progress=None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from ray_gan.batch.gates import GateChecker, GateModels
        from ray_gan.generate.render import Renderer

        self.spec = BatchJobSpec(**spec)
        self.output, self.plan = output, plan
        self.renderer = Renderer(self.spec.model, device="cuda" if use_gpu else "cpu", traced=True)
        if self.renderer.info.weights_sha256 != weights_sha256:
            raise BatchError(f"model {self.spec.model} changed while the job was running")
        self.weights_sha256 = weights_sha256
        self.pool = ThreadPoolExecutor(write_threads, thread_name_prefix="write")
        self.finisher = ThreadPoolExecutor(1, thread_name_prefix="finish")  # a unit's shard and part
        self.device = json.dumps(self.renderer.fingerprint, sort_keys=True)
        gates = self.spec.gates if self.spec.gates is not None and self.spec.gates.any else None
        self.gates = gates
        if gate_models is not None and not isinstance(gate_models, GateModels):
            import ray

            gate_models = ray.get(gate_models)  # an ObjectRef: one copy per node, through the object store
        self.checker = GateChecker(gates, gate_models, self.renderer.device)
        self.progress, self.stop_seen, self.last_report = progress, False, None

    def _write(self, style: str, s_idx: int, psi: float, c: _Candidate) -> tuple[dict, bytes | None]:
        """Encode and hash one image; with ``layout: files`` also write it (its row, None),
        with ``tar`` leave it to :meth:`_write_shard` (its row without a URI, its bytes)."""
        from ray_gan.images import encode

        spec = self.spec
        iid = image_id(style, c.variant)
        data = encode(c.image, spec.image_format)
        uri = None
        if spec.layout == "files":
            uri = image_uri(self.output, style, iid, spec.image_format)
            storage.write_bytes(uri, data)
        return manifest_row(
            job_id=spec.job_id, image_id=iid, style=style, style_index=s_idx, variant=c.variant, seed=c.seed,
            truncation=psi, mix=spec.mix, edits=spec.edits, model_uri=self.renderer.info.uri,
            weights_sha256=self.weights_sha256, uri=uri, data=data, fmt=spec.image_format,
            resolution=self.renderer.info.config.resolution, device=self.renderer.device.type,
            attempt=c.attempt, skipped=c.skipped, phash=c.phash, train_score=c.train_score,
            style_confidence=c.confidence), (None if uri else data)

    def _write_shard(self, style: str, chunk: int, written: list[tuple[dict, bytes | None]]) -> list[dict]:
        """``layout: tar``: the unit's images as one tar object (one PUT); each row gets the
        shard's URI and its image's offset in it."""
        if self.spec.layout == "files":
            return [row for row, _ in written]
        ext = EXTENSIONS[self.spec.image_format]
        tar, offsets = pack_tar([(f"{row['image_id']}.{ext}", data) for row, data in written])
        uri = shard_uri(self.output, style, chunk)
        storage.write_bytes(uri, tar)
        return [{**row, "image_uri": uri, "image_offset": off} for (row, _), off in zip(written, offsets)]

    def _candidates(self, style: str, s_idx: int, psi: float, first: dict[int, int],
                    skipped: dict[int, list[tuple[int, str]]]) -> dict[int, _Candidate]:
        """Render variant ``v``'s candidates from attempt ``first[v]`` on until one passes
        the per-image gates; rejected seeds go in ``skipped[v]``."""
        spec, out = self.spec, {}
        attempt = dict(first)
        todo = sorted(first)
        while todo:
            seeds = [spec.seed(v, attempt[v]) for v in todo]
            images = self.renderer.render([s_idx] * len(todo), seeds, psi, mix=spec.mix, edits=spec.edits or None)
            checked = self.checker.check(images, s_idx)
            retry = []
            for i, v in enumerate(todo):
                reason = checked.reasons[i]
                if reason is None:
                    out[v] = _Candidate(
                        v, attempt[v], seeds[i], images[i], int(checked.phash[i]),
                        None if checked.train_score is None else float(checked.train_score[i]),
                        None if checked.confidence is None else float(checked.confidence[i]), skipped[v],
                        None if checked.pixels is None else checked.pixels[i])
                    continue
                skipped[v].append((seeds[i], reason))
                attempt[v] += 1
                self._check_attempts(style, v, skipped[v])
                retry.append(v)
            todo = retry
        return out

    def _check_attempts(self, style: str, v: int, skipped: list[tuple[int, str]]) -> None:
        if len(skipped) >= self.gates.max_attempts:
            reasons = "; ".join(f"seed {a}: {r}" for a, r in skipped[-3:])
            raise BatchError(f"{image_id(style, v)}: all {self.gates.max_attempts} seeds tried were rejected by "
                             f"the quality gates (last: {reasons}); the gates are too strict for this model, or "
                             "the model has collapsed or copies its training data")

    def _accept(self, style: str, s_idx: int, psi: float, variants: list[int], kept: list[_Candidate]
                ) -> list[_Candidate]:
        """Candidates for ``variants`` that pass every gate. Near-duplicates are decided in
        variant order against the unit's images accepted so far (``kept``), so which seed a
        variant gets depends only on its unit."""
        skipped: dict[int, list[tuple[int, str]]] = {v: [] for v in variants}
        found = self._candidates(style, s_idx, psi, {v: 0 for v in variants}, skipped)
        nd = self.gates.near_duplicates if self.gates is not None else None
        out = []
        for v in variants:
            c = found[v]
            while nd is not None and kept:
                reason = _near_duplicate(c, kept, style, nd.max_hamming, nd.max_rms)
                if reason is None:
                    break
                skipped[v].append((c.seed, reason))
                self._check_attempts(style, v, skipped[v])
                c = self._candidates(style, s_idx, psi, {v: c.attempt + 1}, skipped)[v]
            if nd is not None:
                kept.append(c)
            out.append(c)
        return out

    @staticmethod
    def _empty(images: int = 0) -> dict:
        return {"images": images, "written": 0, "skipped": 0, "stopped": 0, "render_s": 0.0, "write_s": 0.0,
                **dict.fromkeys(REJECTED.values(), 0)}

    def _stopped(self) -> bool:
        """Has the driver asked this run to stop (``max_chunks`` reached)? The tracker's
        answer to this replica's last report, read only once it has arrived: no round trip
        on the way to the next chunk. Progress is advisory: an unreachable tracker means no."""
        import ray

        if not self.stop_seen and self.last_report is not None:
            ready, _ = ray.wait([self.last_report], timeout=0)
            if ready:
                try:
                    self.stop_seen = bool(ray.get(ready[0]))
                except Exception:  # noqa: BLE001 - the tracker is gone: carry on
                    self.progress = None
                self.last_report = None
        return self.stop_seen

    def _report(self, result: dict) -> None:
        if self.progress is not None:
            try:
                self.last_report = self.progress.add.remote(1, int(result["images"]))
            except Exception:  # noqa: BLE001
                self.progress = None

    def _part_exists(self, g: int) -> bool:
        _, s_idx, chunk, _, _ = self.plan.chunk(g)
        return storage.exists(storage.join(self.output, MANIFEST_DIR, part_name(s_idx, chunk)))

    def _render_chunk(self, g: int, done: bool | None = None) -> tuple[dict, tuple | None]:
        """Render unit ``g`` and queue its images' writes; its counts, and what
        :meth:`_finish_chunk` needs (None: its part exists, ``done``, so it is skipped)."""
        spec = self.spec
        style, s_idx, chunk, start, count = self.plan.chunk(g)
        counts = self._empty(count)
        if done if done is not None else self._part_exists(g):
            return {**counts, "skipped": 1}, None
        psi = spec.truncation_for(style)
        step = self.renderer.render_batch
        futures, kept, render_s = [], [], 0.0
        for a in range(start, start + count, step):
            t = time.perf_counter()
            accepted = self._accept(style, s_idx, psi, list(range(a, min(a + step, start + count))), kept)
            render_s += time.perf_counter() - t
            futures += [self.pool.submit(self._write, style, s_idx, psi, c) for c in accepted]
        return {**counts, "render_s": render_s}, (style, chunk, part_name(s_idx, chunk), futures)

    def _finish_chunk(self, counts: dict, work: tuple | None) -> dict:
        """Wait for the unit's image writes (the first failure is raised), write its tar shard
        (``layout: tar``), then its manifest part, last."""
        if work is None:
            return counts
        style, chunk, name, futures = work
        rows = self._write_shard(style, chunk, [f.result() for f in futures])  # in variant order
        write_part(self.output, name, rows)
        counts = dict(counts)
        for r in rows:
            for s in r["skipped"]:
                counts[REJECTED[s["reason"].split(":", 1)[0]]] += 1
        return {**counts, "written": counts["images"]}

    def _run_chunk(self, g: int) -> dict:
        """Unit ``g`` from start to end (its part exists: skipped)."""
        return self._finish_chunk(*self._render_chunk(g))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        """The units of ``batch``, pipelined: while unit k+1 renders, unit k's last writes,
        its shard and its part go up on the finisher thread (one unit behind at most), so
        the forward does not wait for storage between units. The units' existence checks
        run first, side by side on the write threads."""
        ids = [int(g) for g in batch["id"]]
        done = list(self.pool.map(self._part_exists, ids))
        results: list = []  # a unit's result, or the future of its finish

        def settle(keep: int) -> None:  # wait for all but the last ``keep`` finishes
            pending = [i for i, r in enumerate(results) if isinstance(r, Future)]
            for i in pending[:max(0, len(pending) - keep)]:
                t = time.perf_counter()
                res = results[i].result()  # a storage failure is raised: Ray Data retries the units
                results[i] = {**res, "write_s": time.perf_counter() - t, "error": ""}
                self._report(results[i])

        for g, d in zip(ids, done):
            if self._stopped():
                results.append({**self._empty(), "stopped": 1, "error": ""})
                continue
            try:
                counts, work = self._render_chunk(g, d)
            except BatchError as e:  # permanent (no retry helps): the driver stops the job with this message
                results.append({**self._empty(), "error": str(e)})
                self._report(results[-1])
                continue
            if work is None:
                results.append({**counts, "error": ""})
                self._report(results[-1])
                continue
            results.append(self.finisher.submit(self._finish_chunk, counts, work))
            settle(keep=1)
        settle(keep=0)
        out = {k: [r[k] for r in results] for k in results[0]}
        out["device"] = [self.device] * len(results)
        return out


def _check_job_json(output: str, spec: BatchJobSpec, weights_sha256: str) -> dict | None:
    """The job.json of this very job if the output already holds it (None if it holds no
    job); raise if it holds another."""
    uri = storage.join(output, JOB_JSON)
    if not storage.exists(uri):
        return None
    prev = storage.read_json(uri)
    mine = spec.model_dump()
    # A field the job's spec predates had its default then (chunk_size's was OLD_CHUNK_SIZE);
    # an unset chunk_size takes the job's.
    then = {**{f: BatchJobSpec.model_fields[f].default for f in IDENTITY_FIELDS}, "chunk_size": OLD_CHUNK_SIZE,
            **prev["spec"]}
    diffs = [f for f in IDENTITY_FIELDS if then[f] != mine[f] and not (f == "chunk_size" and mine[f] is None)]
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
    return prev


def _with_chunk_size(spec: BatchJobSpec, prev: dict | None, resolution: int) -> BatchJobSpec:
    """``spec`` with its chunk size settled: an unset one becomes the job's own on a re-run
    (``prev``: its job.json), else :meth:`BatchJobSpec.default_chunk_size` for the model."""
    if spec.chunk_size is not None:
        return spec
    chunk = prev["spec"].get("chunk_size", OLD_CHUNK_SIZE) if prev is not None else spec.default_chunk_size(resolution)
    return spec.model_copy(update={"chunk_size": chunk})


def _units_per_call(chunk_size: int) -> int:
    """Work units per replica call: UNITS_PER_CALL, or as many as make IMAGES_PER_CALL."""
    return max(1, min(UNITS_PER_CALL, IMAGES_PER_CALL // chunk_size))


def _num_blocks(total_chunks: int, replicas: int) -> int:
    """Blocks of the work-unit dataset: enough for every replica to stay busy, few enough
    that the driver's bookkeeping does not grow with the job (at most MAX_BLOCKS)."""
    return max(1, min(total_chunks, max(8 * replicas, min(MAX_BLOCKS, -(-total_chunks // 16)))))


def run_batch(spec: BatchJobSpec, log: Callable[[str], None] = print, max_chunks: int | None = None) -> BatchResult:
    """Run (or complete) the job. ``max_chunks``: stop once this many work units have been
    handled in this run (a preview or a partial run; ``job.json`` says ``incomplete`` and a
    later run completes the job)."""
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
    prev = _check_job_json(output, spec, info.weights_sha256)
    spec = _with_chunk_size(spec, prev, info.config.resolution)
    plan = ChunkPlan(tuple(styles), tuple(style_idx), spec.variants_per_style, spec.chunk_size)
    total = len(styles) * spec.variants_per_style
    manifest = storage.join(output, MANIFEST_DIR)
    if prev is not None and prev.get("status") == "complete":
        log(f"batch {spec.job_id}: already complete ({total} images) → {output}; `ray-gan verify {output}` audits it")
        report = storage.join(output, "report.html")
        return BatchResult(output, total, 0, plan.total_chunks, 0, manifest,
                           report if storage.exists(report) else None)

    gate_models = None
    if spec.gates is not None and spec.gates.any:
        from ray_gan.batch.gates import calibrate

        try:
            gate_models = calibrate(spec.gates, info, output, log)
        except (ValueError, storage.StorageError) as e:
            raise BatchError(f"quality gates: {e}") from None
        pinned = ((prev or {}).get("gates") or {}).get("dataset_checksum")
        if pinned is not None and pinned != gate_models.summary.get("dataset_checksum"):
            raise BatchError(f"the gates' dataset {gate_models.summary.get('dataset')} changed since job "
                             f"{spec.job_id!r} started; its gates would not match: use a new output URI")

    started = _now()
    job_doc = {"spec": spec.model_dump(), "weights_sha256": info.weights_sha256, "model_step": info.step,
               "styles": styles, "status": "running", "images": total, "chunks": plan.total_chunks,
               "started": started, "runs": (prev or {}).get("runs", 0) + 1}
    if gate_models is not None:
        job_doc["gates"] = {**((prev or {}).get("gates") or {}), **gate_models.summary}
    storage.write_json(storage.join(output, JOB_JSON), job_doc)
    log(f"batch {spec.job_id}: {total} images in {plan.total_chunks} chunks of {spec.chunk_size} on "
        f"{spec.replicas} replicas → {output}" + (" (completing an earlier run)" if prev else ""))

    from ray_gan.console import Progress

    init_ray()
    use_gpu = spec.gpus_per_replica > 0
    # Work units are generated on the cluster (ids 0 … total_chunks − 1); the driver holds
    # only running counts, whatever the job's size.
    tracker = ray.remote(num_cpus=0)(_RunProgress).remote()
    ds = ray.data.range(plan.total_chunks, override_num_blocks=_num_blocks(plan.total_chunks, spec.replicas))
    ds = ds.map_batches(
        _GenerateChunks,
        fn_constructor_kwargs=dict(spec=spec.model_dump(), output=output, weights_sha256=info.weights_sha256,
                                   use_gpu=use_gpu, plan=plan, write_threads=spec.write_threads,
                                   gate_models=None if gate_models is None else ray.put(gate_models),
                                   progress=tracker),
        batch_size=_units_per_call(spec.chunk_size),
        compute=ray.data.ActorPoolStrategy(size=spec.replicas),
        num_cpus=spec.cpus_per_replica,
        num_gpus=spec.gpus_per_replica if use_gpu else None,
    )  # Ray Data restarts a generator actor that dies and retries its chunk (max_restarts and
    # max_task_retries -1 by default): the chunk is rendered and written again, its part last,
    # so nothing is lost or duplicated (tests/integration/test_batch_scale.py).
    counts = {"chunks_run": 0, "chunks_skipped": 0, "images_done": 0, "images_written": 0,
              **dict.fromkeys(REJECTED.values(), 0)}
    render_s = write_s = 0.0
    device = None
    t0 = time.monotonic()
    first: float | None = None  # when the first chunk came back: the actors' start-up before it
    status = "complete"
    rows = None
    try:
        with Progress("batch", total, "images", status="starting replicas") as bar:
            stop_sent = False
            rows = _rows_with_progress(ds, tracker)
            for row, (chunks_done, images_done) in rows:
                if row is not None:
                    if row["error"]:
                        raise BatchError(row["error"])
                    if row["stopped"]:
                        status = "incomplete"
                        continue
                    skipped = bool(row["skipped"])
                    counts["chunks_skipped" if skipped else "chunks_run"] += 1
                    counts["images_done"] += int(row["images"])
                    counts["images_written"] += int(row["written"])
                    for key in REJECTED.values():
                        counts[key] += int(row[key])
                    render_s += float(row["render_s"])
                    write_s += float(row["write_s"])
                    device = device or json.loads(row["device"])
                if first is None and (row is not None or chunks_done):
                    first = time.monotonic() - t0
                if first is not None:
                    bar.update(min(total, max(counts["images_done"], images_done)))
                done = max(chunks_done, counts["chunks_run"] + counts["chunks_skipped"])
                if max_chunks is not None and done >= max_chunks and not stop_sent:
                    tracker.request_stop.remote()  # replicas pass the rest by; the dataset drains
                    stop_sent = True
    except BaseException as e:
        tracker.request_stop.remote()
        if rows is not None:
            rows.close()  # the thread reading the dataset stops it
        job_doc.update(status="failed", failure=f"{type(e).__name__}: {str(e)[:2000]}")
        _finish(output, job_doc, counts, t0, first, render_s, write_s, device)
        raise
    job_doc["status"] = status
    _finish(output, job_doc, counts, t0, first, render_s, write_s, device)
    rejected = sum(counts[REJECTED[r]] for r in REASONS)
    if status == "complete":
        log(f"batch {spec.job_id}: complete: {total} images under {storage.join(output, IMAGES_DIR)}, "
            f"manifest {manifest} ({counts['images_written']} images written this run, "
            f"{job_doc['run']['images_per_s']:.0f} images/s"
            + (f", {rejected} candidates rejected by the gates and replaced" if spec.gates else "") + ")")
    else:
        log(f"batch {spec.job_id}: stopped after {max_chunks} chunks ({counts['images_done']} of {total} images); "
            f"run it again to complete it")
    from ray_gan.batch.report import write_report

    report = write_report(output, job_doc)
    log(f"batch {spec.job_id}: contact sheet → {report}; audit with `ray-gan verify {output}`")
    return BatchResult(output, total, counts["chunks_run"], counts["chunks_skipped"], counts["images_written"],
                       manifest, report)


_END = object()


def _rows_with_progress(ds, tracker, poll_s: float = 0.5):
    """Yield ``(row, (chunks, images))``: each row of ``ds`` as it comes back (consumed on a
    thread), and at least every ``poll_s`` seconds ``(None, …)``, with the chunks and
    images the replicas have reported to ``tracker`` so far."""
    import queue
    import threading

    import ray

    rows: queue.Queue = queue.Queue(maxsize=256)  # bounded: the driver holds at most this many rows
    closing = threading.Event()  # the driver stopped reading (done, or an error): stop the dataset too

    def put(item) -> bool:
        while not closing.is_set():
            try:
                rows.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def consume() -> None:
        try:
            for row in ds.iter_rows():
                if not put(row):
                    return  # leaving the loop closes the iterator: Ray Data shuts the run down
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the driver's thread
            put(e)

    threading.Thread(target=consume, name="batch-rows", daemon=True).start()
    snapshot, last = (0, 0), 0.0
    try:
        while True:
            try:
                item = rows.get(timeout=poll_s)
            except queue.Empty:
                item = None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            if time.monotonic() - last >= poll_s:
                try:
                    snapshot = tuple(ray.get(tracker.snapshot.remote(), timeout=10))
                except Exception:  # noqa: BLE001 - progress is advisory
                    pass
                last = time.monotonic()
            yield item, snapshot
    finally:
        closing.set()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _finish(output: str, job_doc: dict, counts: dict, t0: float, first: float | None, render_s: float,
            write_s: float, device: dict | None) -> None:
    """``job.json`` at the end of a run: status, this run's counts, timings (``startup_seconds``:
    until the first chunk came back), throughput and device fingerprint (and the failure, if
    it failed). ``render_seconds``: time in the forward; ``write_seconds``: time replicas waited
for a unit's writes, shard and part once the next unit had rendered or their batch of
units ended (writes that overlapped rendering are not in it); both add up over the
replicas."""
    wall = time.monotonic() - t0
    job_doc["run"] = {**counts, "seconds": round(wall, 3),
                      "startup_seconds": None if first is None else round(first, 3),
                      "images_per_s": counts["images_written"] / wall if wall > 0 else 0.0,
                      "render_seconds": round(render_s, 3), "write_seconds": round(write_s, 3),
                      "device": device}
    job_doc["completed" if job_doc["status"] == "complete" else "ended"] = _now()
    storage.write_json(storage.join(output, JOB_JSON), job_doc)


def load_spec(path: str) -> BatchJobSpec:
    """Read and validate a YAML job spec (local path or URI)."""
    import yaml

    doc = yaml.safe_load(storage.read_bytes(path))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a batch job spec must be a YAML mapping")
    return BatchJobSpec(**doc)
