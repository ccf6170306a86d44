"""Enumerate the files of a raw image source: a folder, a ``.zip`` or an S3 prefix.

The first path component under the source is the style; files directly at the top
belong to a single style named after the source (its folder or zip name).
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass

from ray_gan import storage


@dataclass(frozen=True)
class SourceItem:
    key: str  # '/'-separated path inside the source
    style: str


def is_zip(src: str) -> bool:
    return str(src).lower().rstrip("/").endswith(".zip")


def _hidden(key: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in key.split("/"))


def _style_of(key: str, default_style: str) -> str:
    parts = key.split("/")
    return parts[0] if len(parts) > 1 else default_style


def list_source(src: str) -> list[SourceItem]:
    """All candidate files, sorted by key. Non-image files are included: ``prepare``
    counts them as ``not_image`` instead of ignoring them silently."""
    base = posixpath.basename(str(src).rstrip("/"))
    if is_zip(src):
        default_style = base[:-4]
        with storage.open_input_file(src) as f, zipfile.ZipFile(f) as zf:
            keys = [i.filename for i in zf.infolist() if not i.is_dir()]
    else:
        default_style = base or "default"
        if storage.exists(src):
            raise storage.StorageError(f"{src} is a file; give a folder, a .zip or an s3:// prefix")
        keys = [e.key for e in storage.list_files(src)]
    items = [SourceItem(k, _style_of(k, default_style)) for k in keys if not _hidden(k)]
    items.sort(key=lambda i: i.key)
    return items


class SourceReader:
    """Reads the bytes of source items; keeps one open zip per reader."""

    def __init__(self, src: str) -> None:
        self.src = src
        self._zip: zipfile.ZipFile | None = None
        self._file = None

    def read(self, key: str) -> bytes:
        if is_zip(self.src):
            if self._zip is None:
                self._file = storage.open_input_file(self.src)
                self._zip = zipfile.ZipFile(self._file)
            return self._zip.read(key)
        return storage.read_bytes(storage.join(self.src, key))

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._file.close()
            self._zip = self._file = None
