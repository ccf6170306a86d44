import os

import pytest

from ray_gan import storage


def test_local_roundtrip_and_listing(tmp_path):
    root = str(tmp_path / "root")
    storage.write_bytes(storage.join(root, "b", "x.bin"), b"xyz")
    storage.write_bytes(storage.join(root, "a.txt"), b"hello")
    assert storage.read_bytes(storage.join(root, "a.txt")) == b"hello"
    assert [(e.key, e.size) for e in storage.list_files(root)] == [("a.txt", 5), ("b/x.bin", 3)]
    assert [e.key for e in storage.list_files(root, suffixes=(".bin",))] == ["b/x.bin"]
    assert storage.exists(storage.join(root, "a.txt"))
    assert not storage.exists(storage.join(root, "nope"))
    assert storage.list_files(str(tmp_path / "missing")) == []


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    target = str(tmp_path / "doc.json")
    storage.write_json(target, {"v": 1})
    storage.write_json(target, {"v": 2})
    assert storage.read_json(target) == {"v": 2}
    assert os.listdir(tmp_path) == ["doc.json"]


def test_failed_write_keeps_old_content(tmp_path, monkeypatch):
    target = str(tmp_path / "doc.bin")
    storage.write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(storage.StorageError, match="disk full"):
        storage.write_bytes(target, b"new")
    monkeypatch.undo()
    assert storage.read_bytes(target) == b"old"
    assert os.listdir(tmp_path) == ["doc.bin"]


def test_s3_uri_parsing(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    fs, path = storage.filesystem("s3://bucket/some/prefix/")
    assert path == "bucket/some/prefix"
    assert type(fs).__name__ == "S3FileSystem"
    assert storage.join("s3://bucket/p/", "a", "/b") == "s3://bucket/p/a/b"
    assert storage.normalize("s3://bucket/p/") == "s3://bucket/p"


def test_bad_uris():
    with pytest.raises(storage.StorageError, match="no bucket"):
        storage.filesystem("s3:///key")
    with pytest.raises(storage.StorageError, match="unsupported URI scheme"):
        storage.filesystem("gs://bucket/key")
    with pytest.raises(storage.StorageError, match="not found"):
        storage.read_bytes("/definitely/not/here")


def test_endpoint_without_scheme_and_cache_follows_env(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "minio.example:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    fs1, _ = storage.filesystem("s3://b/k")
    assert fs1.region == "eu-west-1"
    monkeypatch.setenv("AWS_SESSION_TOKEN", "t2")
    fs2, _ = storage.filesystem("s3://b/k")
    assert fs2 is not fs1  # a changed credential variable gives a new client


def test_only_transient_s3_errors_are_retried(monkeypatch):
    from ray_gan.storage import _retrying, _transient

    assert _transient(OSError("AWS Error NETWORK_CONNECTION during PutObject operation: curlCode: 7"))
    assert _transient(OSError("AWS Error SLOW_DOWN during PutObject operation"))
    assert not _transient(FileNotFoundError("Path does not exist 'b/k'"))
    assert not _transient(OSError("AWS Error ACCESS_DENIED during HeadObject operation"))
    assert not _transient(OSError("AWS Error NO_SUCH_BUCKET during CreateMultipartUpload operation"))
    monkeypatch.setenv("RAY_GAN_S3_RETRY_S", "30")
    monkeypatch.setattr("ray_gan.storage.time.sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise OSError("AWS Error NETWORK_CONNECTION: Connection refused")
        return "ok"

    assert _retrying("s3://b/k", flaky) == "ok" and len(calls) == 4
    calls.clear()

    def denied():
        calls.append(1)
        raise OSError("AWS Error ACCESS_DENIED")

    import pytest

    with pytest.raises(OSError, match="ACCESS_DENIED"):
        _retrying("s3://b/k", denied)
    assert len(calls) == 1  # a refusal is not retried
    with pytest.raises(OSError):
        _retrying("/local/path", lambda: (_ for _ in ()).throw(OSError("disk")))  # local: never retried
