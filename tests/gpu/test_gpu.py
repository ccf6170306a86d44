"""The CUDA path, checked on a GPU machine (was bench/gpu_check.py):

1. the training step (``GANStep``) for stylegan (bf16 autocast) and dcgan: losses stay
   finite; images/s and peak memory at a few resolutions;
2. rendering on the GPU: an image's bytes do not depend on the batch it was rendered
   in; the difference to the CPU render of the same (style, seed) stays within 1/255;
3. the Ray path on the GPU: demo-data → prepare → ``train --gpus-per-worker 1`` →
   ``batch`` with ``gpus_per_replica`` (every image rendered on CUDA);
4. Ray Serve with GPU replicas answering a request.

    python -m pytest -m gpu tests/gpu -s          # every check; -s prints the numbers
    python -m pytest -m gpu tests/gpu -k ray -s   # the Ray checks only
    python -m pytest -m gpu tests/gpu -k serve -s # Ray Serve only

Each check prints one ``gpu-check {...}`` JSON line (the numbers in docs/benchmarks.md).
Skipped where torch sees no CUDA device.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from helpers import write_untrained_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU: run `python -m pytest -m gpu tests/gpu` on a GPU machine"),
]

CLI = [sys.executable, "-m", "ray_gan.cli"]


def report(name: str, result: dict) -> None:
    print(f"gpu-check {json.dumps({name: result}, default=str)}", flush=True)


@pytest.mark.parametrize("arch,res,batch", [("stylegan", 32, 64), ("stylegan", 32, 256), ("stylegan", 128, 32),
                                            ("dcgan", 64, 64)])
def test_train_step(arch: str, res: int, batch: int, steps: int = 30) -> None:
    from ray_gan.config import TrainConfig
    from ray_gan.models import build_discriminator, build_generator
    from ray_gan.train.step import GANStep

    device = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats()
    tc = TrainConfig.from_flat(dataset="-", out="-", arch=arch, batch_size=batch, augment="diffaugment")
    mc = tc.new_model_config(4, res)  # what `ray-gan train` builds (stylegan: packed D)
    torch.manual_seed(0)
    G, D = build_generator(mc).to(device), build_discriminator(mc).to(device)
    st = GANStep(G, D, copy.deepcopy(G).eval(), mc, tc, device)
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    y = torch.arange(batch, device=device) % 4
    for i in range(3):
        st.step(x, y, i)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(3, 3 + steps):
        stats = st.step(x, y, i)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    report("train_step", {"arch": arch, "resolution": res, "batch": batch, "amp_bf16": st.amp, "steps": steps,
                          "images_per_s": round(steps * batch / dt, 1), "losses": [round(v, 4) for v in stats.tolist()],
                          "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20)})
    assert bool(torch.isfinite(stats).all()), stats.tolist()


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
def test_render_on_gpu(arch: str, tmp_path: Path) -> None:
    import numpy as np

    from ray_gan.generate.render import Renderer

    uri = write_untrained_model(str(tmp_path / f"render-{arch}"), ["a", "b", "c"], resolution=32, arch=arch)
    gpu, cpu = Renderer(uri, "cuda"), Renderer(uri, "cpu")
    alone = gpu.render([1], [7])[0]
    crowd = gpu.render([0] * 20 + [1], list(range(20)) + [7])[-1]
    diff = int(np.abs(gpu.render([0, 1, 2], [1, 2, 3]).astype(int) - cpu.render([0, 1, 2], [1, 2, 3])).max())
    batch_independent = bool(np.array_equal(alone, crowd))
    report("render", {"arch": arch, "batch_independent_bytes": batch_independent, "max_abs_diff_vs_cpu": diff})
    assert batch_independent
    assert diff <= 1


def run_cli(name: str, args: list[str], timeout: int = 400) -> None:
    t = time.perf_counter()
    p = subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    report(name, {"rc": p.returncode, "s": round(time.perf_counter() - t, 1),
                  "tail": out[-1500:] if p.returncode else out[-300:]})
    assert p.returncode == 0, f"ray-gan {name} failed:\n{out[-3000:]}"


def test_ray_train_and_batch(tmp_path: Path, train_steps: int = 300) -> None:
    import pyarrow.parquet as pq

    run_cli("demo_data", ["demo-data", str(tmp_path / "raw"), "--per-style", "100"])
    run_cli("prepare", ["prepare", str(tmp_path / "raw"), str(tmp_path / "ds")])
    run_cli("train", ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "model"), "--arch", "stylegan",
                      "--workers", "1", "--gpus-per-worker", "1", "--steps", str(train_steps),
                      "--checkpoint-every", str(train_steps), "--batch-size", "64"])
    (tmp_path / "job.yaml").write_text(json.dumps({
        "job_id": "gpu", "model": str(tmp_path / "model"), "variants_per_style": 64, "output": str(tmp_path / "batch"),
        "replicas": 2, "gpus_per_replica": 0.5, "truncation": 0.8, "mix": {"layers": "fine"}}))
    run_cli("batch", ["batch", str(tmp_path / "job.yaml")])
    rows = pq.read_table(tmp_path / "batch" / "manifest").to_pylist()
    devices = sorted({r["device"] for r in rows})
    report("batch", {"rows": len(rows), "devices": devices})
    assert rows and devices == ["cuda"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
def test_gpu_image_bytes_do_not_depend_on_the_micro_batch_size(arch: str, tmp_path: Path) -> None:
    """Serve renders up to 64 rows at a time, batch jobs 16: on the GPU too, every image
    has the same bytes at every micro-batch size used (the contract of generate/render.py)."""
    from ray_gan.generate.render import Renderer

    model = write_untrained_model(str(tmp_path / "m"), ["a", "b", "c"], resolution=32, arch=arch)
    seeds = list(range(200, 269))
    styles = [s % 3 for s in seeds]
    base = Renderer(model, "cuda", render_batch=16).render(styles, seeds, 0.7)
    for size in (32, 48, 64, 128):
        same = Renderer(model, "cuda", render_batch=size).render(styles, seeds, 0.7)
        report("gpu_micro_batch", {"arch": arch, "rows": size, "differing_images": int((same != base).any(axis=(1, 2, 3)).sum())})
        assert (same == base).all(), size


def test_ray_serve_gpu_replicas(tmp_path: Path) -> None:
    """Serve with GPU replicas: start, request, check, stop."""
    model = write_untrained_model(str(tmp_path / "model"), ["a", "b", "c"], resolution=32, arch="stylegan")
    port = _free_port()
    log_path = tmp_path / "serve.log"  # a file, not a pipe: Ray's log volume would fill a pipe and block serve
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(CLI + ["serve", model, "--port", str(port), "--gpus-per-replica", "0.5",
                                       "--replicas", "2"], env=dict(os.environ), stdout=log_file,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 240
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/styles", timeout=5) as r:
                        styles = json.loads(r.read())
                    break
                except Exception:
                    if time.time() > deadline or proc.poll() is not None:
                        pytest.fail(f"serve did not come up (exit code {proc.poll()}):\n{log_path.read_text()[-3000:]}")
                    time.sleep(2)
            body = json.dumps({"styles": styles["styles"][:2], "n": 4, "seed": 3,
                               "truncation": 0.7, "mix": {"layers": "coarse", "seed": 11}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/variants", data=body,
                                         headers={"content-type": "application/json"})
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as r:
                doc = json.loads(r.read())
            report("serve_request", {"styles": styles, "images": len(doc["images"]),
                                     "s": round(time.perf_counter() - t, 3), "keys": sorted(doc)})
            assert len(doc["images"]) == 2 * 4
            assert doc["device"]["kind"] == "cuda" and doc["device"]["cudnn"]  # the replica was given a GPU
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
