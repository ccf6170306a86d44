"""One storage layer for every stage: a URI is a local path or ``s3://bucket/prefix``.

S3 endpoint, region and credentials come only from the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``),
so the same code talks to AWS, MinIO or SeaweedFS.

Writes through :func:`write_bytes` are atomic: a local file is written beside its
target and renamed over it; an S3 object only becomes visible when its upload
completes. A reader therefore never sees a half-written manifest, checkpoint or
``dataset.json``.

S3 calls survive an unreachable or failing server: pyarrow's client retries each request
(AWS standard strategy), and on top of that :func:`_retrying` repeats a whole read, write
or stat with exponential backoff and jitter for up to ``RAY_GAN_S3_RETRY_S`` seconds
(default 120) while the error is transient (connection refused or reset, timeouts, 5xx,
throttling). A missing object, a missing bucket or refused credentials fail at once.
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs


class StorageError(RuntimeError):
    """A storage location is missing, unreadable or misconfigured."""


T = TypeVar("T")
# Errors no retry can mend: what is missing or refused stays so.
_PERMANENT = ("ACCESS_DENIED", "AccessDenied", "NO_SUCH_BUCKET", "NoSuchBucket", "InvalidAccessKeyId",
              "SignatureDoesNotMatch", "INVALID_PARAMETER", "NoSuchKey", "Path does not exist")


def _transient(exc: OSError) -> bool:
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    return not any(mark in str(exc) for mark in _PERMANENT)


def _retrying(uri: str, call: Callable[[], T]) -> T:
    """``call()``; on S3, repeated with backoff while it fails transiently (see module docstring)."""
    if not is_s3(uri):
        return call()
    budget = float(os.environ.get("RAY_GAN_S3_RETRY_S", "120"))
    deadline, delay = time.monotonic() + budget, 0.2
    while True:
        try:
            return call()
        except OSError as exc:
            if not _transient(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 5.0)


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    kwargs: dict[str, Any] = {"region": region}
    if endpoint:
        if "://" not in endpoint:
            endpoint = "https://" + endpoint
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        kwargs["access_key"] = key
        kwargs["secret_key"] = secret
        token = os.environ.get("AWS_SESSION_TOKEN")
        if token:
            kwargs["session_token"] = token
    # allow_delayed_open: an object smaller than one upload part goes up as one PutObject on
    # close, instead of a multipart upload's three requests (5 vs 10 ms a PUT to SeaweedFS on
    # the 2-core machine); either way the object appears whole or not at all.
    return pafs.S3FileSystem(retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=5), allow_delayed_open=True,
                             **kwargs)


_FS_CACHE: dict[tuple, pafs.FileSystem] = {}
_S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
           "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(pyarrow filesystem, path inside it)`` for a URI.

    The path form is what pyarrow and Ray Data expect: ``bucket/key`` for S3, an
    absolute path locally.
    """
    uri = str(uri)
    if is_s3(uri):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"S3 URI has no bucket: {uri!r}")
        env_key = tuple(os.environ.get(k) for k in _S3_ENV)
        fs = _FS_CACHE.get(env_key)
        if fs is None:
            fs = _FS_CACHE[env_key] = _s3_filesystem()
        return fs, (parsed.netloc + "/" + parsed.path.lstrip("/")).rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"unsupported URI scheme (use a local path or s3://): {uri!r}")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI (``/`` separated for S3 and local alike)."""
    uri = str(uri)
    if is_s3(uri):
        return posixpath.join(uri.rstrip("/"), *[p.strip("/") for p in parts])
    return os.path.join(uri, *parts)


def normalize(uri: str) -> str:
    """Canonical form of a URI: absolute local path, or ``s3://bucket/key`` without a trailing slash."""
    if is_s3(uri):
        return str(uri).rstrip("/")
    return filesystem(uri)[1]


@dataclass(frozen=True)
class FileEntry:
    key: str  # path relative to the listed prefix, '/'-separated
    size: int


def list_files(uri: str, suffixes: tuple[str, ...] | None = None) -> list[FileEntry]:
    """All files under a prefix (recursive), sorted by key. Missing prefix → empty list."""
    fs, root = filesystem(uri)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    try:
        infos = _retrying(uri, lambda: fs.get_file_info(selector))
    except OSError as exc:
        raise StorageError(f"cannot list {uri}: {exc}") from exc
    out = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) :].lstrip("/").replace(os.sep, "/")
        if suffixes and not rel.lower().endswith(suffixes):
            continue
        out.append(FileEntry(rel, int(info.size or 0)))
    out.sort(key=lambda e: e.key)
    return out


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    try:
        return _retrying(uri, lambda: fs.get_file_info(path).type == pafs.FileType.File)
    except OSError as exc:
        raise StorageError(f"cannot stat {uri}: {exc}") from exc


def is_dir(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)

    def read() -> bytes:
        with fs.open_input_stream(path) as f:
            return f.read()

    try:
        return _retrying(uri, read)
    except FileNotFoundError as exc:
        raise StorageError(f"not found: {uri}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc


def read_range(uri: str, offset: int, length: int) -> bytes:
    """``length`` bytes of an object from byte ``offset`` (an S3 ranged GET): one image of a
    batch job's tar shard. Raises if the object holds fewer."""
    fs, path = filesystem(uri)

    def read() -> bytes:
        with fs.open_input_file(path) as f:
            return f.read_at(length, offset)

    try:
        data = _retrying(uri, read)
    except FileNotFoundError as exc:
        raise StorageError(f"not found: {uri}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc
    if len(data) != length:
        raise StorageError(f"{uri} holds {offset + len(data)} bytes, fewer than the {offset + length} expected")
    return data


def open_input_file(uri: str) -> BinaryIO:
    """A seekable reader (e.g. for the central directory of a remote ``.zip``)."""
    fs, path = filesystem(uri)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError as exc:
        raise StorageError(f"not found: {uri}") from exc


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object atomically (see module docstring)."""
    fs, path = filesystem(uri)
    try:
        if isinstance(fs, pafs.LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            # An S3 PUT (or multipart upload) is all-or-nothing: the object appears on close,
            # so a retried write leaves no partial object.
            def put() -> None:
                with fs.open_output_stream(path) as f:
                    f.write(data)

            _retrying(uri, put)
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc}") from exc


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, obj: Any) -> None:
    write_bytes(uri, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def delete(uri: str) -> None:
    fs, path = filesystem(uri)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def delete_prefix(uri: str) -> None:
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)

