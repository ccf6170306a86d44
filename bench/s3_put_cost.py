"""What one S3 PUT costs beside rendering one image: CPU milliseconds per PUT of a PNG the
size of the default model's images, in this client (``storage.write_bytes``: pyarrow's S3
client; and boto3's ``put_object`` beside it) and in the S3 server (``weed mini`` on
127.0.0.1, started here), over the CPU milliseconds of one image's traced forward on one
thread — measured in one run on the same machine. Why ``layout: tar`` (issue #19): when a
PUT costs more than a render, one object per image caps a batch job's throughput.

    python -m bench.s3_put_cost [--puts 2000] [--resolution 32]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

from bench.batch_throughput import _cpu_seconds, start_seaweedfs
from bench.common import code_state, cpu_flags, cpu_model, markdown_table


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--puts", type=int, default=2000)
    p.add_argument("--resolution", type=int, default=32)
    a = p.parse_args()

    import boto3
    import torch

    from ray_gan import checkpoint as ckpt
    from ray_gan import storage
    from ray_gan.config import ModelConfig
    from ray_gan.generate.render import RENDER_BATCH, Renderer
    from ray_gan.images import encode
    from ray_gan.models import build_generator

    work = tempfile.mkdtemp(prefix="bench-put-")
    weed = None
    try:
        cfg = ModelConfig.default_for("stylegan", 3, a.resolution)
        torch.manual_seed(0)
        model = os.path.join(work, "model")
        ckpt.write_generator_model(model, build_generator(cfg).eval(), cfg, ["a", "b", "c"], step=1)
        torch.set_num_threads(1)
        r = Renderer(model, "cpu", render_batch=RENDER_BATCH, traced=True)
        images = r.render([0] * RENDER_BATCH, list(range(RENDER_BATCH)))  # warm-up
        n = 100 * RENDER_BATCH
        c0 = _cpu()
        for s in range(0, n, RENDER_BATCH):
            r.render([0] * RENDER_BATCH, list(range(s, s + RENDER_BATCH)))
        forward_ms = 1e3 * (_cpu() - c0) / n
        data = encode(images[0])
        weed, root = start_seaweedfs(os.path.join(work, "weed"))
        client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        bucket = root[len("s3://"):]
        puts = {"pyarrow (storage.write_bytes)": lambda i: storage.write_bytes(f"{root}/a/{i:08d}.png", data),
                "boto3 (put_object)": lambda i: client.put_object(Bucket=bucket, Key=f"b/{i:08d}.png", Body=data)}
        rows = []
        for name, put in puts.items():
            for i in range(50):  # connections up
                put(10**7 + i)
            c0, s0, t0 = _cpu(), _cpu_seconds(weed), time.perf_counter()
            for i in range(a.puts):
                put(i)
            wall = time.perf_counter() - t0
            client_ms, server_ms = 1e3 * (_cpu() - c0) / a.puts, 1e3 * (_cpu_seconds(weed) - s0) / a.puts
            rows.append([name, f"{a.puts / wall:.0f}", f"{client_ms:.2f}", f"{server_ms:.2f}", f"{forward_ms:.2f}",
                         f"{(client_ms + server_ms) / forward_ms:.1f}"])
    finally:
        if weed is not None:
            weed.terminate()
            weed.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(markdown_table(["client", "PUTs/s (one at a time)", "client CPU ms / PUT", "server CPU ms / PUT",
                          "forward CPU ms / image (1 thread)", "PUT / forward"], rows))
    print(f"{len(data)}-byte PNG ({a.resolution} px). Machine: {cpu_model()} ({os.cpu_count()} cores; {cpu_flags()}); "
          f"code {code_state()}.")


if __name__ == "__main__":
    main()
