"""Batch runs at scale, against SeaweedFS and the session's local Ray: a million-image job
starts with a few MiB of driver memory, and a job survives a killed generator actor and an S3
server that stops mid-run. Each finished run passes ``ray-gan verify``."""

import os
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest
import yaml
from helpers import write_untrained_model

from ray_gan import storage
from ray_gan.batch.job import JOB_JSON, run_batch
from ray_gan.batch.verify import verify_output
from ray_gan.config import BatchJobSpec

pytestmark = pytest.mark.integration

STYLES = ["flat", "outline", "stripes"]


@pytest.fixture(scope="module")
def model(bucket) -> str:
    return write_untrained_model(f"s3://{bucket}/scale/model", STYLES, resolution=16, seed=5)


def _driver_peak_mib(spec: BatchJobSpec, max_chunks: int) -> float:
    """Peak Python memory (tracemalloc) of the driver while it runs ``max_chunks`` chunks."""
    tracemalloc.start()
    try:
        res = run_batch(spec, log=lambda m: None, max_chunks=max_chunks)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.chunks_run + res.chunks_skipped >= max_chunks
    return peak / 2**20


def test_a_million_image_job_starts_with_a_few_mib_of_driver_memory(model, bucket, ray_cluster):
    """The first chunks of a 1,000,002-image job cost the driver a few MiB: the chunk ids
    are generated on the cluster (ray.data.range, at most MAX_BLOCKS blocks), never listed;
    the old driver built a dict and a block per chunk, 62,500 of each here."""
    common = dict(model=model, styles="all", seed_base=0, chunk_size=16, replicas=2)
    big = BatchJobSpec(job_id="million", variants_per_style=333_334, output=f"s3://{bucket}/scale/million", **common)
    _driver_peak_mib(big.model_copy(update={"job_id": "warm", "output": f"s3://{bucket}/scale/warm",
                                            "variants_per_style": 100}), 4)
    peak = _driver_peak_mib(big, 8)
    print(f"driver peak: {peak:.1f} MiB (1,000,002 images)")
    assert peak < 16, peak
    doc = storage.read_json(storage.join(big.output, JOB_JSON))
    assert doc["status"] == "incomplete" and doc["images"] == 1_000_002 and doc["chunks"] == 3 * 20_834
    assert doc["run"]["chunks_run"] >= 8 and doc["run"]["device"]["kind"] == "cpu"
    # Replicas report each chunk as it finishes and pass the rest by once the driver says
    # stop: the run ends a few chunks after the 8th, not at the end of a 61-chunk block.
    assert doc["run"]["chunks_run"] < 30, doc["run"]


def _start_job(tmp_path, ray_cluster, spec: dict) -> subprocess.Popen:
    path = tmp_path / f"{spec['job_id']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, RAY_ADDRESS=ray_cluster["address"])
    log = open(tmp_path / f"{spec['job_id']}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "ray_gan.cli", "batch", str(path)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_parts(proc: subprocess.Popen, output: str, n: int, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while len(storage.list_files(storage.join(output, "manifest"))) < n:
        assert proc.poll() is None, "the job ended before the fault"
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.2)


def _finish(proc: subprocess.Popen, tmp_path, job_id: str, timeout_s: float = 600) -> None:
    try:
        rc = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert rc == 0, (tmp_path / f"{job_id}.log").read_text()[-3000:]


def _generator_actor_pids() -> list[int]:
    from ray.util.state import list_actors

    return [a.pid for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if "_GenerateChunks" in (a.class_name or "")]


def test_a_killed_generator_actor_is_restarted_and_the_job_completes(model, bucket, ray_cluster, tmp_path):
    output = f"s3://{bucket}/scale/actor-killed"
    spec = dict(job_id="actor-killed", model=model, styles="all", variants_per_style=200, output=output,
                chunk_size=4, replicas=2)
    proc = _start_job(tmp_path, ray_cluster, spec)
    _wait_for_parts(proc, output, 10)
    pids = _generator_actor_pids()
    assert pids, "no generator actor found"
    os.kill(pids[0], signal.SIGKILL)
    _finish(proc, tmp_path, "actor-killed")
    report = verify_output(output)
    assert report.ok and report.rows == 600, report.summary()
    assert len(storage.list_files(storage.join(output, "images"))) == 600  # none lost, none extra


def test_a_job_rides_out_an_s3_server_restart(model, bucket, ray_cluster, s3_server, tmp_path):
    output = f"s3://{bucket}/scale/s3-restart"
    spec = dict(job_id="s3-restart", model=model, styles="all", variants_per_style=200, output=output,
                chunk_size=4, replicas=2)
    proc = _start_job(tmp_path, ray_cluster, spec)
    _wait_for_parts(proc, output, 10)
    s3_server["stop"]()
    try:
        time.sleep(8)  # the outage: writes fail and are retried (RAY_GAN_S3_RETRY_S)
        assert proc.poll() is None, "the job gave up during the outage"
    finally:
        s3_server["start"]()
    _finish(proc, tmp_path, "s3-restart")
    report = verify_output(output)
    assert report.ok and report.rows == 600, report.summary()
    doc = storage.read_json(storage.join(output, JOB_JSON))
    # one run did it all: no chunk was left to a re-run
    assert doc["status"] == "complete" and (doc["run"]["chunks_run"], doc["run"]["images_written"]) == (150, 600)
