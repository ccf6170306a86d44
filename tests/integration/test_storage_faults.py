"""Storage against a real S3 server that goes away: SeaweedFS is stopped mid-run and
started again; writes and reads in flight retry with backoff and complete, nothing is
lost or duplicated, and a missing object still fails at once."""

from __future__ import annotations

import threading
import time

import pytest

from ray_gan import storage

pytestmark = pytest.mark.integration


def test_writes_and_reads_ride_out_an_s3_restart(s3_server, bucket, monkeypatch):
    monkeypatch.setenv("RAY_GAN_S3_RETRY_S", "120")
    prefix = f"s3://{bucket}/faults/restart"
    blobs = {f"{prefix}/obj-{i:03d}": f"payload {i}".encode() * (i + 1) for i in range(40)}
    before = dict(list(blobs.items())[:5])
    for uri, data in before.items():
        storage.write_bytes(uri, data)
    errors: list[BaseException] = []
    done: list[str] = []

    def writer() -> None:
        try:
            for uri, data in list(blobs.items())[5:]:
                storage.write_bytes(uri, data)
                done.append(uri)
                time.sleep(0.05)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    while len(done) < 3:  # the writer is under way
        time.sleep(0.01)
    s3_server["stop"]()
    stopped_at = len(done)
    # Down for longer than pyarrow's own retries last (~9-14 s against a refused
    # connection): only ray_gan's backoff carries the writes through.
    time.sleep(20)
    s3_server["start"]()
    thread.join(timeout=180)
    assert not thread.is_alive() and not errors, errors
    assert stopped_at < len(blobs) - 5  # some writes really were in flight across the outage
    for uri, data in blobs.items():  # every object, written before, during or after, is whole
        assert storage.read_bytes(uri) == data
    listed = storage.list_files(prefix)
    assert [e.key for e in listed] == sorted(u.rsplit("/", 1)[1] for u in blobs)  # none lost, none twice


def test_a_missing_object_fails_at_once_without_retrying(s3_server, bucket, monkeypatch):
    monkeypatch.setenv("RAY_GAN_S3_RETRY_S", "120")
    t0 = time.monotonic()
    with pytest.raises(storage.StorageError, match="not found"):
        storage.read_bytes(f"s3://{bucket}/faults/nope")
    assert not storage.exists(f"s3://{bucket}/faults/nope")
    assert time.monotonic() - t0 < 30  # no backoff over the whole budget
