"""Batch throughput: ``ray-gan batch`` end to end over the raw generator forward.

    python -m bench.batch_throughput [--per-style 10000] [--chunk-size N] [--replicas 2]
                                     [--arch stylegan] [--resolution 32] [--storage s3|local]
                                     [--layout files|tar] [--write-threads N]

End to end: a batch job of the default preset model (untrained weights render as fast as
trained ones) that renders, encodes PNG, hashes and writes every image and its manifest to
SeaweedFS (``weed mini`` on 127.0.0.1, started here; ``--storage local``: a local
directory) on this machine's local Ray. Its images/s are counted from the first chunk back
to the end (``job.json``'s ``startup_seconds`` — starting the actors and loading the model
— is reported apart) and over the whole run. Baseline, measured in the same run on the
same cores: the raw forward (``Renderer.render``) of the same number of images in
micro-batches of the job's ``render_batch``, the fastest of three ways to use the cores —
eager and traced in one process with one torch thread per core, and traced in one
single-threaded process per core (the replicas' shape). Target (issue #19): end to end
≥ 0.85 × raw at the default chunk size. A second reference, also per core: each image
rendered and encoded as the job encodes it (PNG at fixed settings), with no threads, Ray,
storage or manifest — the ceiling of any job on these cores; end to end over it says
what the rest costs. ``--layout``: the job's image layout (``files``,
one object per image; ``tar``, one shard per work unit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from bench.common import code_state, cpu_flags, cpu_model, markdown_table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_seaweedfs(work: str) -> tuple[subprocess.Popen, str]:
    """``weed mini`` on loopback with telemetry off; sets the AWS variables; returns once a
    write lands."""
    import boto3

    weed = shutil.which("weed") or os.path.join(os.path.dirname(sys.executable), "weed")
    key, secret = "bench", "bench-secret"
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "s3.json")
    with open(cfg, "w") as f:
        json.dump({"identities": [{"name": "bench", "credentials": [{"accessKey": key, "secretKey": secret}],
                                   "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
    ports = {k: _free_port() for k in ("master", "volume", "filer", "s3")}
    os.makedirs(os.path.join(work, "data"))
    cmd = [weed, "mini", f"-dir={os.path.join(work, 'data')}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-s3.config={cfg}", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
           "-master.telemetry=false", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
           f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}"]
    log = open(os.path.join(work, "weed.log"), "ab")  # a file, never an unread pipe
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                      AWS_REGION="us-east-1")
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 90
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
            return proc, f"s3://{bucket}"
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("SeaweedFS did not come up; see weed.log") from None
            time.sleep(0.5)


def _forward(model: str, first: int, n: int, render_batch: int, traced: bool, barrier=None,
             encode_format: str | None = None) -> float:
    """Seconds to render variants ``first … first+n-1`` after a warm-up (and, with a
    ``barrier``, once every process is ready); with ``encode_format``, each image is also
    encoded as the job encodes it, in the same thread."""
    from ray_gan.generate.render import Renderer
    from ray_gan.images import encode

    r = Renderer(model, "cpu", render_batch=render_batch, traced=traced)
    r.render([0] * render_batch, list(range(render_batch)))  # warm-up (and tracing)
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    for a in range(first, first + n, render_batch):
        images = r.render([0] * min(render_batch, first + n - a), list(range(a, min(a + render_batch, first + n))))
        if encode_format is not None:
            for image in images:
                encode(image, encode_format)
    return time.perf_counter() - t0


def _forward_process(model: str, first: int, n: int, render_batch: int, barrier,
                     encode_format: str | None = None) -> float:
    import torch

    torch.set_num_threads(1)
    return _forward(model, first, n, render_batch, True, barrier, encode_format)


def per_core_rate(model: str, n: int, render_batch: int, encode_format: str | None = None) -> float:
    """Images/s of the traced forward (and, with ``encode_format``, the encode) in one
    single-threaded process per core, side by side."""
    import multiprocessing as mp

    cores = os.cpu_count() or 1
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(cores)
    share = -(-n // cores)
    with ctx.Pool(cores) as pool:
        seconds = pool.starmap(_forward_process, [(model, i * share, share, render_batch, barrier, encode_format)
                                                  for i in range(cores)])
    return share * cores / max(seconds)


def raw_forward_rate(model: str, n: int, render_batch: int) -> dict:
    """Images/s of the bare forward (no encode, no write): eager and traced in this process
    on all cores, and traced in one single-threaded process per core, side by side."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    out = {kind: n / _forward(model, 0, n, render_batch, kind == "traced") for kind in ("eager", "traced")}
    out["traced_per_core"] = per_core_rate(model, n, render_batch)
    return out


class CpuByRole(threading.Thread):
    """Where the machine's CPU went during a run: every process's CPU seconds (Linux
    ``/proc``, read every 0.2 s), summed by role — the generator replicas, the S3 server,
    this driver, Ray's other processes (raylet, GCS, dashboard, idle workers, helper actors)
    and anything else. A process is counted up to its last reading before it exited, under
    the role its last non-empty command line gives (a Ray worker becomes a replica when it
    renames itself; an exiting one has none)."""

    def __init__(self, s3_pid: int | None) -> None:
        super().__init__(daemon=True)
        self.s3_pid, self.stop = s3_pid, threading.Event()
        self.snaps: list[tuple[float, dict[int, float]]] = [(time.perf_counter(), {})]
        self.cmds: dict[int, str] = {}
        self._take()

    def _role(self, pid: int) -> str:
        cmd = self.cmds.get(pid, "")
        if pid == os.getpid():
            return "driver"
        if pid == self.s3_pid:
            return "s3_server"
        if "MapWorker" in cmd or "_GenerateChunks" in cmd:
            return "replicas"
        return "ray_other" if "ray" in cmd else "other"

    def _take(self) -> None:
        cpu = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                seconds = _proc_cpu_seconds(name)
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:  # gone meanwhile
                continue
            pid = int(name)
            cpu[pid] = seconds
            if cmd:
                self.cmds[pid] = cmd
        self.snaps.append((time.perf_counter(), cpu))

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self._take()

    def finish(self) -> None:
        self.stop.set()
        self.join()
        self._take()

    def shares(self, start: float, end: float) -> dict[str, float]:
        """Each role's share of the machine's CPU time (all cores) from ``start`` to ``end``
        (``time.perf_counter`` values)."""
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for t, cpu in self.snaps:
            for pid, c in cpu.items():
                if t <= start or pid not in first:
                    first[pid] = c if t <= start else 0.0  # a process born inside the window starts at 0
                if t <= end:
                    last[pid] = c
        roles: dict[str, float] = {}
        for pid, c in last.items():
            role = self._role(pid)
            roles[role] = roles.get(role, 0.0) + max(c - first.get(pid, 0.0), 0.0)
        return {k: v / ((end - start) * (os.cpu_count() or 1)) for k, v in sorted(roles.items())}


def _proc_cpu_seconds(pid: int | str) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used so far (Linux
    /proc; OSError once it is gone)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _cpu_seconds(proc: subprocess.Popen | None) -> float:
    """CPU seconds ``proc`` has used so far (0 without a process). ``weed mini`` runs its
    master, volume, filer and S3 gateway in one process."""
    return 0.0 if proc is None else _proc_cpu_seconds(proc.pid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-style", type=int, default=10000,
                   help="images per style; a few thousand leave too short a window for a steady rate")
    p.add_argument("--styles", type=int, default=3)
    p.add_argument("--chunk-size", type=int, default=None, help="default: the job's (by the model's resolution)")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--arch", default="stylegan")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--storage", choices=["s3", "local"], default="s3")
    p.add_argument("--layout", choices=["files", "tar"], default="files")
    p.add_argument("--write-threads", type=int, default=None, help="default: BatchJobSpec's")
    p.add_argument("--json", default="")
    a = p.parse_args()

    import torch

    from ray_gan import checkpoint as ckpt
    from ray_gan import storage
    from ray_gan.batch.job import JOB_JSON, run_batch
    from ray_gan.config import BatchJobSpec, ModelConfig
    from ray_gan.generate.render import RENDER_BATCH
    from ray_gan.models import build_generator
    from ray_gan.runtime import init_ray

    work = tempfile.mkdtemp(prefix="bench-batch-")
    weed = None
    try:
        root = work
        if a.storage == "s3":
            weed, root = start_seaweedfs(os.path.join(work, "weed"))
        styles = [f"s{i}" for i in range(a.styles)]
        cfg = ModelConfig.default_for(a.arch, len(styles), a.resolution)
        torch.manual_seed(0)
        model = storage.join(root, "model")
        ckpt.write_generator_model(model, build_generator(cfg).eval(), cfg, styles, step=1)
        n = a.per_style * len(styles)
        raw = raw_forward_rate(model, n, RENDER_BATCH)
        # The ceiling a job can reach when storage, Ray and the manifest cost nothing: each
        # image rendered and encoded (the job's format and settings), per core, no threads.
        render_encode = per_core_rate(model, n, RENDER_BATCH, BatchJobSpec.model_fields["image_format"].default)
        init_ray()
        chunk = {"chunk_size": a.chunk_size} if a.chunk_size else {}
        if a.write_threads:
            chunk["write_threads"] = a.write_threads
        spec = BatchJobSpec(job_id="bench", model=model, variants_per_style=a.per_style, replicas=a.replicas,
                            output=storage.join(root, "out"), layout=a.layout, **chunk)
        sampler = CpuByRole(weed.pid if weed is not None else None)
        sampler.start()
        t0 = time.perf_counter()
        run_batch(spec, log=lambda m: None)
        t_end = time.perf_counter()
        wall = t_end - t0
        sampler.finish()
        job = storage.read_json(storage.join(spec.output, JOB_JSON))
        run, chunk_size = job["run"], job["spec"]["chunk_size"]  # the chunk size the job settled on
        startup = run["startup_seconds"] or 0.0
        # images after start-up: all but each replica's first unit (the replicas start together,
        # so when the first unit is back the others' first units are nearly done)
        steady = (n - a.replicas * chunk_size) / max(run["seconds"] - startup, 1e-9)
        cpu_by_role = sampler.shares(t0 + startup, t_end)  # after start-up, as the end-to-end rate
        whole_run = sampler.shares(t0, t_end)
        best_raw = max(raw.values())
        results = {"machine": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "code": code_state(),
                   "model": f"{a.arch} {a.resolution}px", "images": n, "chunk_size": chunk_size,
                   "replicas": a.replicas, "write_threads": spec.write_threads, "storage": a.storage,
                   "layout": a.layout, "raw_images_per_s": raw,
                   "render_encode_images_per_s": render_encode,
                   "end_to_end_images_per_s": steady, "whole_run_images_per_s": n / wall,
                   "startup_s": startup, "ratio": steady / best_raw, "run": run,
                   # end to end over render + encode: what Ray, storage and the manifest cost
                   "ratio_to_render_encode": steady / render_encode,
                   # the S3 server's share of the machine's CPU time during the run (0 for local disk)
                   "s3_server_cpu_share": whole_run.get("s3_server", 0.0),
                   # every process's share of the machine's CPU after start-up, by role
                   "cpu_share_by_role": cpu_by_role,
                   "cpu_share_by_role_whole_run": whole_run}
    finally:
        if weed is not None:
            weed.terminate()
            weed.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    print(markdown_table(
        ["model", "images", "chunk", "replicas", "storage", "layout",
         "raw forward img/s (eager / traced / traced per core)", "render + encode img/s",
         "end to end img/s (after start-up)", "whole run img/s", "start-up s",
         "CPU after start-up: replicas / S3 server / driver / Ray's other processes / other", "ratio",
         "ratio to render + encode"],
        [[results["model"], str(n), str(chunk_size), str(a.replicas), a.storage, a.layout,
          f"{raw['eager']:.0f} / {raw['traced']:.0f} / {raw['traced_per_core']:.0f}", f"{render_encode:.0f}",
          f"{steady:.0f}",
          f"{n / wall:.0f}", f"{startup:.1f}",
          " / ".join(f"{cpu_by_role.get(k, 0.0):.0%}" for k in ("replicas", "s3_server", "driver", "ray_other",
                                                                 "other")),
          f"{results['ratio']:.2f}", f"{results['ratio_to_render_encode']:.2f}"]]))
    print(f"Machine: {results['machine']} ({results['cores']} cores; {results['cpu_flags']}); code {results['code']}.")


if __name__ == "__main__":
    main()
