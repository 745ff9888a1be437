"""Input files at URLs (``s3://``, ``gs://``, ``file://``, anything fsspec opens): listed on the driver,
read by the workers into a private temporary file for the converters, which take paths.

A file's kind is its extension's on the driver (files without a known extension are skipped, the
content of an object is not read there); the worker that reads the bytes detects the kind from name
and content, as for a local file. Hidden files and the caption files of images beside them are left
out of a folder's listing; an image's caption file is read with the image.
"""

from __future__ import annotations

import posixpath
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clamp3.errors import Clamp3Error, InputError
from clamp3.modality import CAPTION_SUFFIX, FileKind, kind_from_extension


def is_url(path: Any) -> bool:
    """True for ``scheme://...``: an input read with fsspec rather than from the local filesystem."""
    return "://" in str(path)


@dataclass(frozen=True)
class UrlFile:
    url: str
    kind: FileKind
    """The kind of the file's extension; the worker detects the file's own."""
    size: int
    mtime_ns: int
    """The modification time the storage reports (0 when it reports none)."""


@dataclass(frozen=True)
class UrlRoot:
    url: str
    """The argument as fsspec names it (``file:///music``, ``s3://bucket/music``)."""
    is_file: bool


@dataclass
class UrlListing:
    files: list[UrlFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    roots: list[UrlRoot] = field(default_factory=list)


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise Clamp3Error("URL inputs need fsspec: pip install 'clamp3[ray]'") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(url, " ".join(str(exc).split())[:300]) from None


def normalized(url: str) -> str:
    """``url`` as fsspec names the files under it (``file:///a/b/`` -> ``file:///a/b``)."""
    fs, path = _filesystem(url)
    return fs.unstrip_protocol(path)


def _mtime_ns(fs: Any, path: str, info: dict[str, Any]) -> int:
    """The modification time the storage reports (``mtime``, S3's ``LastModified``, fsspec's
    ``modified``), in nanoseconds; 0 when it reports none (then only the size tells a change)."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, (int, float)):
        return round(value * 1e9)
    if not isinstance(value, datetime):
        try:
            value = fs.modified(path)
        except (NotImplementedError, OSError):
            return 0
    return round(value.timestamp() * 1e9)


def list_urls(urls: list[str], recursive: bool = True) -> UrlListing:
    """The files at or under ``urls`` (folders sorted by relative path, each file once)."""
    listing = UrlListing()
    seen: set[str] = set()
    for url in urls:
        fs, root = _filesystem(url)
        if not fs.exists(root):
            raise InputError(url, "no such file or directory")
        is_dir = fs.isdir(root)
        listing.roots.append(UrlRoot(fs.unstrip_protocol(root), not is_dir))
        if is_dir:
            found = fs.find(root, maxdepth=None if recursive else 1, detail=True)
            entries = sorted(
                (path, info)
                for path, info in found.items()
                if not any(part.startswith(".") for part in posixpath.relpath(path, root).split("/"))
            )
            sidecars = {
                posixpath.splitext(path)[0] + CAPTION_SUFFIX
                for path, _ in entries
                if kind_from_extension(path) is FileKind.IMAGE
            }
            entries = [(path, info) for path, info in entries if path not in sidecars]
        else:
            entries = [(root, fs.info(root))]
        for path, info in entries:
            name = fs.unstrip_protocol(path)
            kind = kind_from_extension(path)
            if name in seen:
                continue
            seen.add(name)
            if kind is None:
                listing.skipped.append(name)
            else:
                listing.files.append(UrlFile(name, kind, int(info["size"]), _mtime_ns(fs, path, info)))
    return listing


def fetch(url: str, folder: Path) -> Path:
    """Copy the file at ``url`` into ``folder`` under its own name (its extension tells its kind); for
    an image, its caption file too when there is one."""
    fs, path = _filesystem(url)
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / posixpath.basename(path)
    with fs.open(path, "rb") as source, local.open("wb") as target:
        shutil.copyfileobj(source, target)
    sidecar = posixpath.splitext(path)[0] + CAPTION_SUFFIX
    if kind_from_extension(path) is FileKind.IMAGE and fs.exists(sidecar):
        fs.get_file(sidecar, str(folder / posixpath.basename(sidecar)))
    return local
