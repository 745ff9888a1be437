"""What an ``add`` has to do: the files under the given roots compared with the library's rows.

A file whose size and modification time equal what the library recorded for every one of its rows is
unchanged and costs one ``stat``: its kind is taken from the library, its bytes are not read. Every
other file is new or changed; its content hash then decides whether it must be embedded or whether
rows with the same content (a moved or copied file) can give their vectors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from clamp3.modality import FileKind, collect_files, detect_kind


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStat:
        stat = os.stat(path)
        return cls(stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Recorded:
    """What the library holds of one file: its rows' ids, content hash, stat and kind."""

    ids: tuple[str, ...]
    content_hash: str | None
    stat: FileStat | None
    """``None`` when the file's rows disagree (a write was cut short): the file counts as changed."""
    kind: FileKind


def recorded_files(rows: pa.Table) -> dict[str, Recorded]:
    """Group the library's file rows (:data:`~clamp3.library.store.FILE_COLUMNS`) by file path."""
    grouped: dict[str, list[tuple[str, str | None, FileStat, str]]] = {}
    columns = rows.to_pydict()
    for id_, file_path, content_hash, size, mtime_ns, kind in zip(
        columns["id"],
        columns["file_path"],
        columns["content_hash"],
        columns["size"],
        columns["mtime_ns"],
        columns["kind"],
        strict=True,
    ):
        if file_path is not None:
            grouped.setdefault(file_path, []).append((id_, content_hash, FileStat(size, mtime_ns), kind))
    recorded = {}
    for file_path, entries in grouped.items():
        hashes = {entry[1] for entry in entries}
        stats = {entry[2] for entry in entries}
        consistent = len(hashes) == 1 and len(stats) == 1
        recorded[file_path] = Recorded(
            tuple(entry[0] for entry in entries),
            entries[0][1] if consistent else None,
            entries[0][2] if consistent else None,
            FileKind(entries[0][3]),
        )
    return recorded


@dataclass
class Scan:
    """The input files under the roots, split into unchanged ones and the ones to look at."""

    todo: list[tuple[Path | str, FileKind]] = field(default_factory=list)
    """Local files (``Path``) and files at URLs (``str``)."""
    stats: dict[str, FileStat] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Path | str] = field(default_factory=list)
    found: set[str] = field(default_factory=set)
    """Every input file path seen, unchanged or not."""

    def extended(self, other: Scan) -> Scan:
        """Both scans' files (the roots of ``other`` are not those of this one)."""
        return Scan(
            self.todo + other.todo,
            {**self.stats, **other.stats},
            self.unchanged + other.unchanged,
            self.skipped + other.skipped,
            self.found | other.found,
        )


def scan(roots: Sequence[Path], recorded: dict[str, Recorded], recursive: bool = True) -> Scan:
    """Walk ``roots`` (absolute paths) and compare each file with what the library recorded."""
    result = Scan()

    def kind_of(path: Path) -> FileKind | None:
        key = str(path)
        try:
            stat = FileStat.of(path)
        except OSError:
            return detect_kind(path)
        result.stats[key] = stat
        known = recorded.get(key)
        if known is not None and known.stat == stat:
            result.unchanged.append(key)
            return known.kind
        return detect_kind(path)

    files, result.skipped = collect_files(roots, recursive=recursive, kind_of=kind_of)
    result.found = {str(path) for path, _ in files}
    result.unchanged = [key for key in result.unchanged if key in result.found]
    unchanged = set(result.unchanged)
    result.todo = [(path, kind) for path, kind in files if str(path) not in unchanged]
    return result


def scan_urls(urls: Sequence[str], recorded: dict[str, Recorded], recursive: bool = True) -> Scan:
    """:func:`scan` for URLs: the files listed under them, compared by the size and modification time
    that the storage reports (see :mod:`clamp3.distributed.urls`)."""
    from clamp3.distributed.urls import list_urls

    listing = list_urls(list(urls), recursive)
    result = Scan(skipped=list(listing.skipped))
    for file in listing.files:
        stat = result.stats[file.url] = FileStat(file.size, file.mtime_ns)
        known = recorded.get(file.url)
        if known is not None and known.stat == stat:
            result.unchanged.append(file.url)
        else:
            result.todo.append((file.url, file.kind))
        result.found.add(file.url)
    return result


def under(file_path: str, roots: Sequence[Path]) -> bool:
    """True when ``file_path`` is one of ``roots`` or inside one of them."""
    return any(file_path == str(root) or file_path.startswith(str(root) + os.sep) for root in roots)
