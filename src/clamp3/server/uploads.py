"""Receiving an uploaded file: size-limited, kept in a private temporary folder, checked by the same
kind detection as files on disk, deleted after the request."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clamp3.modality import EXTENSION_KINDS, FileKind, detect_kind, extension

_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRejected(Exception):
    """An upload the server refuses: ``status`` (413, 415, 422) and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def safe_name(filename: str | None) -> str:
    """The client's file name reduced to a harmless base name (never a path), keeping its extension."""
    base = os.path.basename((filename or "").replace("\\", "/")) or "upload"
    cleaned = _SAFE_NAME.sub("_", base).lstrip(".") or "upload"
    return cleaned[-100:]


@contextmanager
def received(upload: Any, max_bytes: int) -> Iterator[tuple[Path, FileKind]]:
    """Write ``upload`` (a Starlette ``UploadFile``) into a private temporary folder and yield its path
    and kind; the folder is removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="clamp3-upload-"))  # mode 0700
    try:
        target = folder / safe_name(upload.filename)
        size = 0
        with target.open("wb") as out:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRejected(413, f"the upload is larger than {max_bytes // (1 << 20)} MB")
                out.write(chunk)
        if size == 0:
            raise UploadRejected(422, f"{target.name}: the file is empty")
        kind = detect_kind(target)
        if kind is None:
            known = ", ".join(sorted(EXTENSION_KINDS))
            raise UploadRejected(
                415,
                f"{target.name}: not a supported kind of file "
                f"({extension(target) or 'no extension'}; known: {known})",
            )
        yield target, kind
    finally:
        shutil.rmtree(folder, ignore_errors=True)
