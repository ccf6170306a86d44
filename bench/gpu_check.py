"""The CUDA path, checked in one run on a GPU machine (runs on CPU too, for rehearsal):

1. the training step (``GANStep``) for stylegan (bf16 autocast) and dcgan: losses stay
   finite, images/s at a few resolutions;
2. rendering on the GPU: an image's bytes do not depend on the batch it was rendered
   in; difference to the CPU render of the same (style, seed);
3. the Ray path on the GPU: demo-data → prepare → ``train --gpus-per-worker 1`` →
   ``batch`` with ``gpus_per_replica`` → Ray Serve with ``num_gpus`` answering a request.

Usage: ``python bench/gpu_check.py --out DIR [--skip-ray] [--steps N]``; writes
``DIR/gpu_check.json`` and prints it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def train_steps(arch: str, res: int, batch: int, steps: int, device: torch.device) -> dict:
    from ray_gan.config import TrainConfig
    from ray_gan.models import build_discriminator, build_generator
    from ray_gan.train.step import GANStep
    from ray_gan.train.trainer import model_config_for

    tc = TrainConfig(dataset="-", out="-", arch=arch, batch_size=batch, augment="diffaugment")
    mc = model_config_for(tc, ["a", "b", "c", "d"], res)  # what `ray-gan train` builds (stylegan: packed D)
    torch.manual_seed(0)
    G, D = build_generator(mc).to(device), build_discriminator(mc).to(device)
    st = GANStep(G, D, copy.deepcopy(G).eval(), mc, tc, device)
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    y = torch.arange(batch, device=device) % 4
    for i in range(3):
        st.step(x, y, i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(3, 3 + steps):
        stats = st.step(x, y, i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    return {"arch": arch, "resolution": res, "batch": batch, "amp_bf16": st.amp, "steps": steps,
            "images_per_s": round(steps * batch / dt, 1), "losses": [round(v, 4) for v in stats.tolist()],
            "finite": bool(torch.isfinite(stats).all()),
            "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None}


def render_check(tmp: Path, device: str) -> dict:
    import numpy as np

    from conftest import write_untrained_model
    from ray_gan.generate.render import Renderer

    out = {}
    for arch in ("stylegan", "dcgan"):
        uri = write_untrained_model(str(tmp / f"render-{arch}"), ["a", "b", "c"], resolution=32, arch=arch)
        gpu, cpu = Renderer(uri, device), Renderer(uri, "cpu")
        alone = gpu.render([1], [7])[0]
        crowd = gpu.render([0] * 20 + [1], list(range(20)) + [7])[-1]
        diff = np.abs(gpu.render([0, 1, 2], [1, 2, 3]).astype(int) - cpu.render([0, 1, 2], [1, 2, 3])).max()
        out[arch] = {"batch_independent_bytes": bool(np.array_equal(alone, crowd)), "max_abs_diff_vs_cpu": int(diff)}
    return out


def ray_check(tmp: Path, steps: int, res: dict, serve_only: bool) -> None:
    """Fills ``res`` as it goes, so a failure keeps what came before it."""
    env = dict(os.environ)
    py = [sys.executable, "-m", "ray_gan.cli"]

    def run(name: str, args: list[str], timeout: int = 400) -> None:
        t = time.perf_counter()
        p = subprocess.run(py + args, env=env, capture_output=True, text=True, timeout=timeout)
        res[name] = {"rc": p.returncode, "s": round(time.perf_counter() - t, 1),
                     "tail": (p.stdout + p.stderr)[-1500:] if p.returncode else (p.stdout + p.stderr)[-300:]}
        if p.returncode:
            raise RuntimeError(f"{name} failed")

    if serve_only:
        from conftest import write_untrained_model

        write_untrained_model(str(tmp / "model"), ["a", "b", "c"], resolution=32, arch="stylegan")
        return serve_check(tmp, py, env, res)
    run("demo_data", ["demo-data", str(tmp / "raw"), "--per-style", "100"])
    run("prepare", ["prepare", str(tmp / "raw"), str(tmp / "ds")])
    run("train", ["train", str(tmp / "ds"), "--out", str(tmp / "model"), "--arch", "stylegan", "--workers", "1",
                  "--gpus-per-worker", "1", "--steps", str(steps), "--checkpoint-every", str(steps),
                  "--batch-size", "64"])
    (tmp / "job.yaml").write_text(json.dumps({
        "job_id": "gpu", "model": str(tmp / "model"), "variants_per_style": 64, "output": str(tmp / "batch"),
        "replicas": 2, "gpus_per_replica": 0.5, "truncation": 0.8, "mix": {"layers": "fine"}}))
    run("batch", ["batch", str(tmp / "job.yaml")])
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp / "batch" / "manifest").to_pylist()
    res["batch_rows"] = len(rows)
    res["batch_devices"] = sorted({r["device"] for r in rows})
    serve_check(tmp, py, env, res)


def serve_check(tmp: Path, py: list[str], env: dict, res: dict) -> None:
    """Serve with GPU replicas: start, request, check, stop."""
    port = 8123
    gpus = "0.5" if torch.cuda.is_available() else "0"
    log_path = tmp / "serve.log"  # a file, not a pipe: Ray's log volume would fill a pipe and block serve
    log_file = open(log_path, "w")
    proc = subprocess.Popen(py + ["serve", str(tmp / "model"), "--port", str(port), "--gpus-per-replica", gpus,
                                  "--replicas", "2"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    import urllib.request

    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/styles", timeout=5) as r:
                    res["serve_styles"] = json.loads(r.read())
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"serve did not come up (exit code {proc.poll()})")
                time.sleep(2)
        body = json.dumps({"styles": res["serve_styles"]["styles"][:2], "n": 4, "seed": 3,
                           "truncation": 0.7, "mix": {"layers": "coarse", "seed": 11}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/variants", data=body,
                                     headers={"content-type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            doc = json.loads(r.read())
        res["serve_request"] = {"images": len(doc["images"]), "s": round(time.perf_counter() - t, 3),
                                "keys": sorted(doc)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        res["serve_log_tail"] = log_path.read_text()[-3000:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--serve-only", action="store_true", help="only the Ray Serve GPU check")
    ap.add_argument("--ray-only", action="store_true", help="only the Ray checks (train, batch, serve)")
    ap.add_argument("--work", help="scratch folder (default OUT/work)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.work) if a.work else out / "work"
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report: dict = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}
    runs = [("stylegan", 32, 64), ("stylegan", 32, 256), ("stylegan", 128, 32), ("dcgan", 64, 64)]
    if dev.type == "cpu":
        runs = runs[:1]
    report["train_step"] = []
    if a.serve_only or a.ray_only:
        runs = []
    for arch, res, batch in runs:
        try:
            report["train_step"].append(train_steps(arch, res, batch, a.steps, dev))
        except Exception as exc:  # keep going: report every check
            report["train_step"].append({"arch": arch, "resolution": res, "error": repr(exc)[-500:]})
    if not (a.serve_only or a.ray_only):
        try:
            report["render"] = render_check(tmp, dev.type)
        except Exception as exc:
            report["render"] = {"error": repr(exc)[-500:]}
    if not a.skip_ray:
        report["ray"] = {}
        try:
            ray_check(tmp / "ray", a.train_steps, report["ray"], a.serve_only)
        except Exception as exc:
            report["ray_error"] = repr(exc)[-500:]
    text = json.dumps(report, indent=1, default=str)
    (out / "gpu_check.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
