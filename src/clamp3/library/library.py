"""A persistent, incremental music library: one LanceDB table of item vectors and their tags.

>>> lib = Library.create("lib/", model="default")            # doctest: +SKIP
>>> lib.add(["music/"])                                      # doctest: +SKIP
>>> lib.search(text="a lively Irish reel", k=5)              # doctest: +SKIP

The model (name, weights fingerprint, dimension, precision) is fixed when the library is created; vectors are
stored unit-length, so a dot product is their cosine. ``add`` commits one batch of files at a time,
each batch one atomic write that also drops the batch's stale rows, so a killed ``add`` loses at most
the batch in flight and running it again completes the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clamp3.cache import file_digest
from clamp3.distributed.urls import is_url, normalized
from clamp3.errors import Clamp3Error, InputError, UnknownItemError
from clamp3.library import ann
from clamp3.library.scan import FileStat, Recorded, recorded_files, scan, scan_urls, under
from clamp3.library.store import (
    FILE_COLUMNS,
    FORMAT_VERSION,
    INFO_COLUMNS,
    Store,
    in_filters,
    item_schema,
    segment_schema,
    sql_string,
    vectors_of,
)
from clamp3.modality import FileKind
from clamp3.preprocess.windows import BAR, Span, WindowSettings
from clamp3.progress import progress_bar

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibrarySettings:
    """How a library is built and searched; recorded in the library when it is created."""

    batch_files: int = 64
    """Files per committed batch of ``add``: a killed ``add`` loses at most this many files' work."""
    ann_threshold: int = 50_000
    """Rows from which ``add`` builds (and refreshes) the ANN index by itself; below, search is exact."""
    nprobes: int = 10
    refine_factor: int = 10
    segment_candidates: int = 10
    """Segment search asks the segments table for this many windows per hit wanted (their pieces are
    the candidates); the windows re-ranked on their full vectors are as many as an item search's."""
    recall_queries: int = 50
    """Queries (rows of the library) with which ``optimize`` measures the index's recall@10."""
    lock_timeout_s: float = 600.0
    """How long a writer waits for another writer of the same library before giving up."""


@dataclass(frozen=True)
class LibraryHit:
    rank: int
    score: float
    """Cosine similarity to the query."""
    id: str
    path: str | None
    kind: str | None
    title: str | None = None
    composer: str | None = None
    caption: str | None = None
    span: Span | None = None
    """With ``segments``: the item's best-matching passage."""


@dataclass
class AddReport:
    embedded: int = 0
    """Items embedded (new or changed files)."""
    reused: int = 0
    """Items of moved, copied or touched files, whose vectors were taken from the library."""
    unchanged: int = 0
    """Files left as they were (size and modification time as recorded)."""
    removed: int = 0
    """Rows removed: files gone from the roots (``prune``), stale tunes, files that now fail."""
    failures: list[InputError] = field(default_factory=list)
    skipped: list[Path | str] = field(default_factory=list)
    indexed: bool = False
    """Whether the ANN index was built or refreshed at the end."""


@dataclass
class Rows:
    """Library rows to commit together: items, their segments, and the files that failed."""

    items: pa.Table
    segments: pa.Table
    failures: list[InputError] = field(default_factory=list)

    @classmethod
    def empty(cls, dim: int) -> Rows:
        return cls(item_schema(dim).empty_table(), segment_schema(dim).empty_table())


@dataclass
class _AddState:
    """What one ``add`` knows while it goes through its batches."""

    recorded: dict[str, Recorded]
    """The library's files before this ``add``."""
    found: set[str]
    """The files under the roots."""
    known_hashes: set[str]
    report: AddReport
    claimed: set[str] = field(default_factory=set)
    """Gone files whose rows a moved file has taken over."""
    url_roots: list[str] = field(default_factory=list)
    """The URLs listed by this ``add``: a file under them that was not listed is gone."""

    def is_gone(self, path: str) -> bool:
        """A recorded file that no longer exists: its rows can move to a file with the same content."""
        if path not in self.recorded or path in self.found:
            return False
        return under(path, self.url_roots) if is_url(path) else not os.path.exists(path)


def item_id(path: str) -> str:
    """The id of the item at ``path`` (``file`` or ``file#X`` for a tune): 16 hex digits of its hash."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


def segment_id(path: str, span: Span) -> str:
    """The id of the window ``span`` of the item at ``path``."""
    return item_id(f"{path}@{span.unit}:{span.start:g}-{span.end:g}")


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
        raise Clamp3Error("vectors must be finite and non-zero")
    return vectors / norms


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _model_name(model: PathLike) -> str:
    """A registry name as it is; a model on disk by its absolute path, so it means the same anywhere."""
    name = str(model)
    return os.path.abspath(name) if Path(name).exists() else name


def _local_path(uri: PathLike) -> str:
    uri = str(uri)
    return uri if "://" in uri else os.path.abspath(uri)


class Library:
    """A music library on LanceDB (see the module docstring). Create with :meth:`create`, then
    :meth:`open`."""

    def __init__(self, store: Store, meta: dict[str, Any]) -> None:
        self._store = store
        self._meta = meta
        self.settings = LibrarySettings(**meta["settings"])
        self._model: Any = None
        self._sessions: dict[tuple[bool, str], Any] = {}
        self._last_session: tuple[bool, str] = (True, "None")

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls,
        uri: PathLike,
        model: str | None = None,
        *,
        settings: LibrarySettings | None = None,
        dtype: str | None = None,
        segments: WindowSettings | None = None,
    ) -> Library:
        """A new, empty library at ``uri`` (a folder, or an object-store URI LanceDB understands) for
        ``model`` (default: the model other commands use by default) run at ``dtype`` (default float32;
        ``"int8"``: quantized CPU inference). Loads no weights.

        ``segments`` (window sizes) makes the library keep the vectors of every piece's windows too, for
        segment-level search (:meth:`search` with ``segments=True``, :meth:`locate`); about 20 windows
        per minute of MIDI or audio and per 30 bars of sheet music with the default sizes."""
        from clamp3.api import default_model_name
        from clamp3.hub.identity import model_identity
        from clamp3.precision import precision_name

        precision = precision_name(dtype)
        identity = model_identity(_model_name(model or default_model_name()))
        meta = {
            "format_version": FORMAT_VERSION,
            "model": identity.name,
            "fingerprint": identity.fingerprint,
            "dim": identity.dim,
            "precision": precision,
            "created_at": _now().isoformat(),
            "settings": asdict(settings or LibrarySettings()),
            "index": None,
            "segments": segments.to_dict() if segments is not None else None,
        }
        return cls(Store.create(_local_path(uri), meta), meta)

    @classmethod
    def open(cls, uri: PathLike, *, model: Any = None) -> Library:
        """An existing library. ``model`` (a name, a path or a loaded model) is checked against the
        library's: another model is refused, naming both."""
        store = Store.open(_local_path(uri))
        meta = store.meta()
        if meta.get("format_version") != FORMAT_VERSION:
            raise Clamp3Error(f"{uri}: library format {meta.get('format_version')} is not supported")
        library = cls(store, meta)
        if model is not None:
            library._check_model(model)
        return library

    def _check_model(self, model: Any) -> None:
        if not isinstance(model, (str, os.PathLike)):
            self.use_model(model)
            return
        from clamp3.hub.identity import model_identity

        name = _model_name(model)
        if name == self.model_name:
            return
        fingerprint = model_identity(name).fingerprint
        recorded = self._meta["fingerprint"]
        if fingerprint is None or recorded is None or fingerprint != recorded:
            raise Clamp3Error(
                f"{self.uri}: this library holds vectors of model '{self.model_name}' "
                f"({(recorded or 'weights not local')[:12]}); it cannot be used with '{name}' "
                f"({(fingerprint or 'weights not local')[:12]})"
            )

    @property
    def uri(self) -> str:
        return self._store.uri

    @property
    def model_name(self) -> str:
        return self._meta["model"]

    @property
    def dim(self) -> int:
        return int(self._meta["dim"])

    @property
    def windows(self) -> WindowSettings | None:
        """The window sizes of the library's segments (``None``: the library keeps no segments)."""
        recorded = self._meta.get("segments")
        return WindowSettings.from_dict(recorded) if recorded is not None else None

    @property
    def precision(self) -> str:
        """What the library's vectors are computed at (float32 for libraries that do not say)."""
        return self._meta.get("precision", "float32")

    def _refuse_precision(self, precision: str) -> None:
        if precision != self.precision:
            raise Clamp3Error(
                f"{self.uri}: this library holds {self.precision} vectors; they cannot be mixed with "
                f"{precision} vectors: make a new library for them"
            )

    def _at_precision(self, options: Any) -> Any:
        """Pipeline ``options`` (default ones for ``None``) at the library's precision; options that ask
        for another ``dtype`` are refused."""
        from clamp3.pipeline import PipelineOptions
        from clamp3.precision import precision_name

        options = options if options is not None else PipelineOptions()
        if options.dtype != PipelineOptions.dtype:
            self._refuse_precision(precision_name(options.dtype))
        return replace(options, dtype=self.precision)

    def __len__(self) -> int:
        return self._store.count()

    def __repr__(self) -> str:
        return f"Library({self.uri!r}, model={self.model_name!r}, rows={len(self)})"

    # ------------------------------------------------------------------ the model, loaded on first use

    def session(self, *, cache: bool | None = None, options: Any = None, device: str | None = None) -> Any:
        """The library's model (loaded once, its fingerprint checked) with a pipeline for these options
        (one per distinct ``cache`` / ``options``, kept: an audio front end loads once). Without
        options, the pipeline asked for last (by default the cached one with default options)."""
        from clamp3.api import Session
        from clamp3.cache import FeatureCache
        from clamp3.pipeline import Pipeline

        if cache is None and options is None and self._sessions:
            return self._sessions[self._last_session]
        options = self._at_precision(options)
        if self._model is None:
            from clamp3.api import load_model

            self.use_model(load_model(self.model_name, device=device, dtype=self.precision))
        key = (cache is not False, repr(options))
        if key not in self._sessions:
            pipeline = Pipeline(self._model, FeatureCache() if key[0] else None, options)
            self._sessions[key] = Session(self._model, pipeline)
        self._last_session = key
        return self._sessions[key]

    def use_model(self, model: Any) -> None:
        """Embed with this loaded model, which must have the library's weights and precision."""
        self._refuse_precision(model.precision)
        recorded = self._meta["fingerprint"]
        if recorded is None:  # the weights were not local when the library was made
            self._meta = {**self.refresh_meta(), "fingerprint": model.fingerprint}
            self._store.put_meta(self._meta)
        elif model.fingerprint != recorded:
            raise Clamp3Error(
                f"{self.uri}: this library holds vectors of '{self.model_name}' ({recorded[:12]}); the "
                f"given weights are {model.fingerprint[:12]}: make a new library for them"
            )
        self._model = model
        self._sessions.clear()

    def configure(self, **changes: Any) -> LibrarySettings:
        """Change the library's recorded settings (for example ``nprobes=16``); returns them."""
        with self._store.write_lock(self.settings.lock_timeout_s):
            meta = self.refresh_meta()
            try:
                settings = LibrarySettings(**{**meta["settings"], **changes})
            except TypeError as exc:
                raise Clamp3Error(f"unknown library setting: {exc}") from None
            self._meta = {**meta, "settings": asdict(settings)}
            self._store.put_meta(self._meta)
        self.settings = settings
        return settings

    def refresh_meta(self) -> dict[str, Any]:
        self._meta = self._store.meta()
        return self._meta

    # ------------------------------------------------------------------ adding

    def add(
        self,
        paths: Sequence[PathLike],
        *,
        prune: bool = False,
        show_progress: bool = False,
        cache: bool = True,
        options: Any = None,
        device: str | None = None,
        on_wait: Callable[[], None] | None = None,
        ray: str | None = None,
        ray_workers: int = 2,
        ray_gpus: float | None = None,
    ) -> AddReport:
        """Index the files under ``paths``: new and changed files are embedded, moved or copied files
        take their vectors from the library, unchanged ones cost a ``stat``; with ``prune``, rows of
        files gone from ``paths`` are removed.

        ``ray`` embeds on Ray Data instead of in this process: ``"local"`` starts a local runtime (shut
        down at the end), anything else is a cluster address; ``ray_workers`` model actors, each with
        ``ray_gpus`` GPUs (see :mod:`clamp3.library.distributed`). With ``ray``, ``paths`` may be URLs
        (``s3://...``, anything fsspec reads; see :mod:`clamp3.distributed.urls`), recorded as such."""
        options = self._at_precision(options)
        urls = [normalized(str(p)) for p in paths if is_url(p)]
        if urls and ray is None:
            raise InputError(urls[0], "URLs are read on Ray only: add --ray (ray= in Python)")
        roots: list[Path | str] = [Path(os.path.abspath(p)) for p in paths if not is_url(p)]
        for root in roots:
            if not Path(root).exists():
                raise InputError(root, "no such file or directory")
        with self._store.write_lock(self.settings.lock_timeout_s, on_wait):
            recorded = recorded_files(self._store.query(FILE_COLUMNS))
            found = scan(roots, recorded).extended(scan_urls(urls, recorded))
            roots += urls
            logger.info(
                "%s: %d file(s) to look at, %d unchanged, %d unrecognised",
                self.uri,
                len(found.todo),
                len(found.unchanged),
                len(found.skipped),
            )
            state = _AddState(
                recorded,
                found=found.found,
                known_hashes={r.content_hash for r in recorded.values() if r.content_hash is not None},
                report=AddReport(unchanged=len(found.unchanged), skipped=found.skipped),
                url_roots=urls,
            )
            session_options = {"cache": cache, "options": options, "device": device}
            if ray is None:
                self._add_here(found.todo, state, show_progress, session_options)
            else:
                from clamp3.distributed.job import RayJob
                from clamp3.library.distributed import add_on_ray

                job = RayJob(ray, ray_workers, ray_gpus, show_progress, session_options)
                add_on_ray(self, found.todo, state, job, found.stats)
            report = state.report
            if prune:
                pruned = [
                    p for p in recorded if under(p, roots) and p not in state.claimed and state.is_gone(p)
                ]
                report.removed += sum(len(recorded[p].ids) for p in pruned)
                self._store.delete("file_path", pruned)
            report.indexed = self._refresh_index_if_due()
        return report

    def _add_here(
        self,
        todo: list[tuple[Path, FileKind]],
        state: _AddState,
        show_progress: bool,
        session_options: dict[str, Any],
    ) -> None:
        """Hash, reuse or embed ``todo`` in this process, one committed batch of files at a time."""
        batch = max(1, self.settings.batch_files)
        with progress_bar(len(todo), "indexing", show_progress and bool(todo)) as bar:
            for start in range(0, len(todo), batch):
                files = todo[start : start + batch]
                failed_before = len(state.report.failures)
                fresh, hashes, stats, reused, moved_from = self._hash_and_reuse(files, state)
                tables, segment_tables = [reused.items], [reused.segments]
                if fresh:
                    rows = embedded_rows(
                        self.session(**session_options), fresh, hashes, stats, self.dim, windows=self.windows
                    )
                    tables.append(rows.items)
                    segment_tables.append(rows.segments)
                    state.report.embedded += rows.items.num_rows
                    state.report.failures += rows.failures
                done = [str(p) for p, _ in files]
                self._commit(
                    Rows(pa.concat_tables(tables), pa.concat_tables(segment_tables)), done, moved_from, state
                )
                self._store.record_errors(done, state.report.failures[failed_before:])
                logger.info(
                    "committed files %d-%d of %d: %d row(s), %d failure(s)",
                    start + 1,
                    start + len(files),
                    len(todo),
                    sum(t.num_rows for t in tables),
                    len(state.report.failures) - failed_before,
                )
                bar.advance(len(files))

    def _hash_and_reuse(
        self, files: list[tuple[Path, FileKind]], state: _AddState
    ) -> tuple[list[tuple[Path, FileKind]], dict[Path, str], dict[Path, FileStat], Rows, list[str]]:
        """Hash a batch of files and take the rows of the content the library already holds.

        Returns the files still to embed, the hashes and stats, the reused rows and the gone files
        whose rows moved to a file of the batch; files that cannot be read are failures in the report."""
        report = state.report
        hashes: dict[Path, str] = {}
        stats: dict[Path, FileStat] = {}
        for path, _ in files:
            try:  # stat before reading: a file changed meanwhile looks changed at the next add
                stats[path] = FileStat.of(path)
                hashes[path] = file_digest(path)
            except OSError as exc:
                report.failures.append(InputError(path, exc.strerror or str(exc)))
        reuse = [(p, k) for p, k in files if p in hashes and hashes[p] in state.known_hashes]
        fresh = [(p, k) for p, k in files if p in hashes and hashes[p] not in state.known_hashes]
        if not reuse:
            return fresh, hashes, stats, Rows.empty(self.dim), []
        reused, moved_from = self._reused_rows(reuse, hashes, stats, state)
        report.reused += reused.items.num_rows
        return fresh, hashes, stats, reused, moved_from

    def _commit(self, rows: Rows, files: list[str], moved_from: list[str], state: _AddState) -> None:
        """``rows`` in, the other rows of ``files`` and of ``moved_from`` out: one Lance transaction
        for the segments, then one for the items (a kill in between leaves the files recorded as they
        were, so the next ``add`` writes both again)."""
        self._count_removed(rows.items["id"].to_pylist(), files, state)
        if self._store.segments is not None:
            self._store.replace(rows.segments, files + moved_from, self._store.segments)
        self._store.replace(rows.items, files + moved_from)

    def _count_removed(self, ids: list[str], files: list[str], state: _AddState) -> None:
        """Count the rows of ``files`` that a commit of their rows ``ids`` leaves out."""
        old_ids = {i for p in files if p in state.recorded for i in state.recorded[p].ids}
        state.report.removed += len(old_ids - set(ids))

    def _reused_rows(
        self,
        files: list[tuple[Path, FileKind]],
        hashes: dict[Path, str],
        stats: dict[Path, FileStat],
        state: _AddState,
    ) -> tuple[Rows, list[str]]:
        """Rows for files whose content the library already holds: copies of those rows (and of their
        segments), re-pathed. A row of a file that is gone is a move: it is replaced (its file listed in
        the result)."""
        wanted = sorted({hashes[p] for p, _ in files})
        source = self._store.rows_in("content_hash", wanted, list(item_schema(self.dim).names))
        by_hash: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for row in source.to_pylist():
            by_hash.setdefault(row["content_hash"], {}).setdefault(row["file_path"], []).append(row)
        segments_by_file: dict[str, list[dict[str, Any]]] = {}
        if self._store.segments is not None:
            names = list(segment_schema(self.dim).names)
            for row in self._store.rows_in("content_hash", wanted, names, self._store.segments).to_pylist():
                segments_by_file.setdefault(row["file_path"], []).append(row)
        rows: list[dict[str, Any]] = []
        segments: list[dict[str, Any]] = []
        moved_from: list[str] = []
        for path, _ in files:
            owners = by_hash.get(hashes[path], {})
            if not owners:
                continue
            unclaimed = (f for f in sorted(owners) if f not in state.claimed and state.is_gone(f))
            old_file = next(unclaimed, sorted(owners)[0])
            if old_file not in state.claimed and state.is_gone(old_file):
                state.claimed.add(old_file)
                moved_from.append(old_file)
            stat = stats[path]
            for row in owners[old_file]:
                new_path = _moved(row["path"], old_file, path)
                rows.append(
                    {
                        **row,
                        "id": item_id(new_path),
                        "path": new_path,
                        "file_path": str(path),
                        "size": stat.size,
                        "mtime_ns": stat.mtime_ns,
                    }
                )
            for row in segments_by_file.get(old_file, []):
                new_path = _moved(row["path"], old_file, path)
                segments.append(
                    {
                        **row,
                        "id": segment_id(new_path, _span(row)),
                        "item_id": item_id(new_path),
                        "path": new_path,
                        "file_path": str(path),
                    }
                )
        return Rows(
            pa.Table.from_pylist(rows, schema=item_schema(self.dim)),
            pa.Table.from_pylist(segments, schema=segment_schema(self.dim)),
        ), moved_from

    def add_vectors(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        paths: Sequence[str | None] | None = None,
        kinds: Sequence[str | None] | None = None,
    ) -> int:
        """Insert or update rows from precomputed vectors of the library's model (for example the
        reference's feature folders). Returns the number of rows written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(vectors) != len(ids):
            raise Clamp3Error(
                f"add_vectors needs {len(ids)} vectors of dimension {self.dim}, got shape {vectors.shape}"
            )
        if len(set(ids)) != len(ids):
            raise Clamp3Error("add_vectors: ids must be unique")
        for name, column in (("paths", paths), ("kinds", kinds)):
            if column is not None and len(column) != len(ids):
                raise Clamp3Error(f"add_vectors: {len(column)} {name} for {len(ids)} ids")
        valid_kinds = {kind.value for kind in FileKind}
        for kind in kinds or ():
            if kind is not None and kind not in valid_kinds:
                raise Clamp3Error(
                    f"add_vectors: unknown kind {kind!r}; choose from {', '.join(sorted(valid_kinds))}"
                )
        added_at = _now()
        table = pa.Table.from_pylist(
            [
                {
                    "id": str(id_),
                    "path": paths[i] if paths is not None else None,
                    "kind": kinds[i] if kinds is not None else None,
                    "model": self._meta["fingerprint"] or self.model_name,
                    "vector": vector,
                    "added_at": added_at,
                }
                for i, (id_, vector) in enumerate(zip(ids, _unit(vectors), strict=True))
            ],
            schema=item_schema(self.dim),
        )
        with self._store.write_lock(self.settings.lock_timeout_s):
            self._store.replace(table, [])
            self._refresh_index_if_due()
        return table.num_rows

    def errors(self) -> dict[str, str]:
        """The files that failed at their last ``add`` (path -> reason); fixed files leave it."""
        return self._store.errors()

    def remove(self, ids: Sequence[str]) -> int:
        """Remove rows by id; returns how many there were."""
        ids = list(dict.fromkeys(ids))
        with self._store.write_lock(self.settings.lock_timeout_s):
            present = sum(self._store.count(where) for where in in_filters("id", ids))
            self._store.delete("id", ids)
        return present

    # ------------------------------------------------------------------ reading

    def get(self, id: str) -> dict[str, Any]:
        """One item's row (without its vector); :class:`UnknownItemError` for an unknown id."""
        return self._row(id, INFO_COLUMNS).to_pylist()[0]

    def vector(self, id: str) -> np.ndarray:
        return vectors_of(self._row(id, ["vector"]))[0]

    def _row(self, id: str, columns: Sequence[str]) -> pa.Table:
        rows = self._store.query(columns, f"id = {sql_string(id)}")
        if rows.num_rows == 0:
            raise UnknownItemError(f"no item with id {id!r} in the library")
        return rows

    def query_vector(
        self,
        *,
        text: str | None = None,
        path: PathLike | None = None,
        vector: Any = None,
        like: str | None = None,
    ) -> tuple[str, np.ndarray]:
        """The label and unit vector of a query: a text, a file, a vector, or a library item's id."""
        given = [
            name
            for name, value in (("text", text), ("path", path), ("vector", vector), ("like", like))
            if value is not None
        ]
        if len(given) != 1:
            raise Clamp3Error("give exactly one query: a text, a file, a vector or the id of an item (like)")
        if like is not None:
            return like, self.vector(like)
        if vector is not None:
            query = np.asarray(vector, dtype=np.float32).reshape(-1)
            label = "vector"
        else:
            from clamp3.api import query_vector

            label, query = query_vector(self.session(), path, text)
        if query.shape != (self.dim,):
            raise Clamp3Error(
                f"the query vector has {query.size} values; this library's vectors have {self.dim}"
            )
        return label, _unit(query[None])[0]

    def search(
        self,
        text: str | None = None,
        path: PathLike | None = None,
        vector: Any = None,
        like: str | None = None,
        k: int = 10,
        kinds: set[FileKind] | set[str] | None = None,
        where: str | None = None,
        exact: bool = False,
        include_query: bool = False,
        segments: bool = False,
        combine: str = "max",
    ) -> list[LibraryHit]:
        """The ``k`` items most similar to the query, best first. ``kinds`` and ``where`` (a SQL filter
        on the row's columns, such as ``"composer LIKE '%Bach%'"``) restrict the candidates;
        ``exact`` skips the ANN index. The query's own rows (the item of ``like``, the items of the
        file ``path`` when the library holds it) are left out unless ``include_query``.

        ``segments`` (a library made with segments) also searches the windows of the pieces: each hit
        carries its best passage (:attr:`LibraryHit.span`) and its score combines the item's global
        score with its best window's (``combine``, see :data:`~clamp3.retrieval.spans.COMBINE`)."""
        _, query = self.query_vector(text=text, path=path, vector=vector, like=like)
        filters = []
        if kinds:
            values = sorted(k.value if isinstance(k, FileKind) else str(k) for k in kinds)
            filters.append(f"kind IN ({', '.join(sql_string(v) for v in values)})")
        if path is not None and not include_query:
            filters.append(f"file_path != {sql_string(os.path.abspath(path))}")
        own = [f"id != {sql_string(like)}"] if like is not None and not include_query else []
        if not segments:
            conditions = [*filters, *own, *([f"({where})"] if where else [])]
            return self._nearest(query, k, " AND ".join(conditions) or None, exact)
        segment_filters = [*filters, *([f"item_id != {sql_string(like)}"] if own else [])]
        return self._search_segments(query, k, filters + own, segment_filters, where, exact, combine)

    def _nearest(self, query: np.ndarray, k: int, where: str | None, exact: bool) -> list[LibraryHit]:
        if k < 1:
            raise Clamp3Error(f"k must be at least 1, got {k}")
        builder = (
            self._store.items.search(query, vector_column_name="vector")
            .distance_type(ann.DISTANCE)
            .select([*INFO_COLUMNS, "_distance"])
            .limit(k)
        )
        if where:
            builder = builder.where(where, prefilter=True)
        if exact:
            builder = builder.bypass_vector_index()
        else:  # without an index LanceDB ignores these and scans every row, exactly
            builder = builder.nprobes(self.settings.nprobes).refine_factor(self.settings.refine_factor)
        try:
            rows = builder.to_arrow()
        except (ValueError, RuntimeError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise Clamp3Error(f"the search failed (check the filter): {message}") from None
        return [_hit(rank, 1.0 - row["_distance"], row) for rank, row in enumerate(rows.to_pylist(), start=1)]

    def _search_segments(
        self,
        query: np.ndarray,
        k: int,
        filters: list[str],
        segment_filters: list[str],
        where: str | None,
        exact: bool,
        combine: str,
    ) -> list[LibraryHit]:
        """Candidates from both tables: the ``k`` best items and the pieces of the best windows
        (:attr:`LibrarySettings.segment_candidates` per hit; their scores exact: re-ranked on the full
        vectors), each piece's best window among those; the window-only candidates' global scores from
        their vectors, their rows checked against the filters."""
        from concurrent.futures import ThreadPoolExecutor

        from clamp3.retrieval.spans import piece_score

        conditions = " AND ".join([*filters, *([f"({where})"] if where else [])]) or None
        with ThreadPoolExecutor(max_workers=1) as pool:  # the item search runs beside the window search
            items = pool.submit(self._nearest, query, k, conditions, exact)
            best = self._best_windows(query, k, segment_filters, exact)
            found = {hit.id: hit for hit in items.result()}
        others = sorted(set(best) - set(found))
        if others:
            rows = self._store.rows_in("id", others, [*INFO_COLUMNS, "vector"], where=conditions)
            for row, vector in zip(rows.drop(["vector"]).to_pylist(), vectors_of(rows), strict=True):
                found[row["id"]] = _hit(0, float(vector @ query), row)  # ranked below
        scored = []
        for hit in found.values():
            window_score, span = best.get(hit.id, (None, None))
            scored.append((piece_score(hit.score, window_score, combine), hit.id, span, hit))
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        return [
            replace(hit, rank=rank, score=score, span=span)
            for rank, (score, _, span, hit) in enumerate(scored[:k], start=1)
        ]

    def _best_windows(
        self, query: np.ndarray, k: int, filters: list[str], exact: bool
    ) -> dict[str, tuple[float, Span]]:
        """Item id -> (score, span) of its best window among the ``segment_candidates * k`` best."""
        builder = (
            self._segments_table()
            .search(query, vector_column_name="vector")
            .distance_type(ann.DISTANCE)
            .select(["item_id", "start", "end", "unit", "_distance"])
            .limit(self.settings.segment_candidates * k)
        )
        if filters:
            builder = builder.where(" AND ".join(filters), prefilter=True)
        if exact:
            builder = builder.bypass_vector_index()
        else:
            refine = max(1, self.settings.refine_factor // self.settings.segment_candidates)
            builder = builder.nprobes(self.settings.nprobes).refine_factor(refine)
        best: dict[str, tuple[float, Span]] = {}
        for row in builder.to_arrow().to_pylist():  # best first
            if row["item_id"] not in best:
                best[row["item_id"]] = (1.0 - row["_distance"], _span(row))
        return best

    def _segments_table(self) -> Any:
        if self._store.segments is None:
            raise Clamp3Error(
                f"{self.uri}: this library keeps no segments (make one with `clamp3 library init --segments`)"
            )
        return self._store.segments

    def segments_of(self, item: str) -> tuple[str, list[Span], np.ndarray]:
        """The id, window spans and window vectors of an item, given by its id or its path (absolute, or
        relative to the working folder)."""
        table = self._segments_table()
        names = {item, os.path.abspath(item)} if not is_url(item) else {item}
        paths = " OR ".join(f"path = {sql_string(name)}" for name in sorted(names))
        found = self._store.query(["id"], f"id = {sql_string(item)} OR {paths}")
        if found.num_rows == 0:
            raise UnknownItemError(f"no item with id or path {item!r} in the library")
        own_id = found["id"][0].as_py()
        rows = self._store.query(["start", "end", "unit", "vector"], f"item_id = {sql_string(own_id)}", table)
        spans = [_span(row) for row in rows.select(["start", "end", "unit"]).to_pylist()]
        return own_id, spans, vectors_of(rows)

    def locate(
        self,
        item: str,
        *,
        text: str | None = None,
        path: PathLike | None = None,
        vector: Any = None,
        like: str | None = None,
    ) -> tuple[str, list[Any]]:
        """Where in ``item`` (an id or a path) the query matches: the query's label and the item's
        windows ranked by cosine (:class:`~clamp3.retrieval.spans.SpanHit`, best first)."""
        from clamp3.retrieval.spans import rank_spans

        own_id, spans, vectors = self.segments_of(item)
        if not spans:
            raise Clamp3Error(f"item {item!r} has no passages to locate (a text or an image)")
        label, query = self.query_vector(text=text, path=path, vector=vector, like=like)
        return label, rank_spans(query, [(own_id, spans, vectors)])

    def similarity(self, first: dict[str, Any], second: dict[str, Any]) -> float:
        """Cosine between two queries, each given as :meth:`query_vector`'s keywords, e.g.
        ``{"like": item_id}`` or ``{"path": "take.mid"}``."""
        return float(np.dot(self.query_vector(**first)[1], self.query_vector(**second)[1]))

    def classify(
        self, labels: Sequence[str], queries: Sequence[dict[str, Any]], *, language: str = "en"
    ) -> list[dict[str, float]]:
        """Zero-shot classification with the caller's labels: for each query (as :meth:`query_vector`'s
        keywords), each label's probability (the built-in prompt templates of ``language``)."""
        from clamp3.retrieval import ZeroShotClassifier

        if not labels or not queries:
            raise Clamp3Error("give at least one label and one item to classify")
        vectors = np.stack([self.query_vector(**query)[1] for query in queries])
        classifier = ZeroShotClassifier.from_labels(labels, self.session().embed_texts, language=language)
        probabilities = classifier.probabilities(vectors)
        return [dict(zip(classifier.labels, map(float, row), strict=True)) for row in probabilities]

    def map(self, limit: int = 5000) -> list[dict[str, Any]]:
        """2-D coordinates of the items (their vectors' first two principal components), for a map of
        the library; a library larger than ``limit`` rows is sampled (evenly, always the same rows)."""
        from clamp3.library.projection import principal_plane

        rows = self._store.count()
        if rows == 0:
            return []
        offsets = np.linspace(0, rows - 1, num=min(limit, rows)).round().astype(int)
        columns = ["id", "kind", "title", "path", "vector"]
        table = self._store.items.take_offsets(sorted(set(offsets.tolist()))).select(columns).to_arrow()
        points = principal_plane(vectors_of(table))
        return [
            {"id": i, "kind": k, "title": t, "path": p, "x": round(float(x), 5), "y": round(float(y), 5)}
            for i, k, t, p, (x, y) in zip(
                table["id"].to_pylist(),
                table["kind"].to_pylist(),
                table["title"].to_pylist(),
                table["path"].to_pylist(),
                points,
                strict=True,
            )
        ]

    # ------------------------------------------------------------------ index and statistics

    def optimize(self) -> dict[str, Any] | None:
        """Compact the table, build (or refresh) the ANN index and measure its recall@10.

        Returns the index description recorded in the library (``None`` below
        :data:`~clamp3.library.ann.MIN_INDEX_ROWS` rows, where search stays exact)."""
        with self._store.write_lock(self.settings.lock_timeout_s):
            return self._optimize()

    def _optimize(self) -> dict[str, Any] | None:
        logger.info("%s: compacting and indexing", self.uri)
        rows = self._store.count()
        meta = self.refresh_meta()
        index = _index(self._store.items, rows, "id")
        if index is not None:
            index.update(self._measure_recall(rows))
        meta = {**meta, "index": index}
        if self._store.segments is not None:
            meta["segment_index"] = _index(self._store.segments, self._store.segments.count_rows(), "item_id")
        self._meta = meta
        self._store.put_meta(self._meta)
        return index

    def _measure_recall(self, rows: int) -> dict[str, Any]:
        count = min(self.settings.recall_queries, rows)
        picked = np.random.default_rng(0).choice(rows, size=count, replace=False)
        sample = (
            self._store.items.take_offsets(sorted(int(i) for i in picked)).select(["id", "vector"]).to_arrow()
        )

        def search(vector: np.ndarray, k: int, exact: bool) -> list[str]:
            return [hit.id for hit in self._nearest(vector, k, None, exact)]

        recall = ann.measured_recall(search, vectors_of(sample), sample["id"].to_pylist())
        return {"recall@10": round(recall, 4), "recall_queries": count, "measured_at": _now().isoformat()}

    def _refresh_index_if_due(self) -> bool:
        due = [(self._store.count(), self._meta.get("index"))]
        if self._store.segments is not None:
            due.append((self._store.segments.count_rows(), self._meta.get("segment_index")))
        if not any(
            rows >= self.settings.ann_threshold and (index is None or rows > 1.1 * index["rows"])
            for rows, index in due
        ):
            return False
        self._optimize()
        return True

    def stats(self) -> dict[str, Any]:
        """Rows by kind, the model, and the state of the ANN index with its last measured recall."""
        meta = self.refresh_meta()
        by_kind = {kind.value: self._store.count(f"kind = {sql_string(kind.value)}") for kind in FileKind}
        rows = self._store.count()
        by_kind = {kind: n for kind, n in by_kind.items() if n}
        untyped = rows - sum(by_kind.values())
        if untyped:
            by_kind["vectors"] = untyped
        index = meta.get("index")
        if index is not None:
            live = ann.vector_index(self._store.items)
            if live is None:
                index = None
            else:
                stats = self._store.items.index_stats(live.name)
                index = {
                    **index,
                    "indexed_rows": stats.num_indexed_rows,
                    "unindexed_rows": stats.num_unindexed_rows,
                }
        return {
            "uri": self.uri,
            "name": self.uri.rstrip("/").rsplit("/", 1)[-1],
            "rows": rows,
            "by_kind": by_kind,
            "model": meta["model"],
            "fingerprint": meta["fingerprint"],
            "dim": meta["dim"],
            "precision": self.precision,
            "index": index,
            "version": self._store.items.version,
            "segments": None
            if self._store.segments is None
            else {**meta["segments"], "rows": self._store.segments.count_rows()},
        }

    # ------------------------------------------------------------------ export

    def export(self, path: PathLike, format: str = "parquet") -> int:
        """Write every row: one Parquet file (columns id, path, kind, vector and the tags), or the
        reference's layout, one ``(1, D)`` ``.npy`` per item named after its path. Returns the count."""
        from clamp3.library.export import export_npy, export_parquet

        if format == "parquet":
            return export_parquet(self._store, Path(path), self._meta)
        if format == "npy":
            return export_npy(self._store, Path(path))
        raise Clamp3Error(f"unknown export format {format!r}; choose parquet or npy")


def _index(table: Any, rows: int, key: str) -> dict[str, Any] | None:
    """Compact ``table`` and build its ANN index and a B-tree on its ``key`` column (the lookups of
    segment search); below :data:`~clamp3.library.ann.MIN_INDEX_ROWS` rows, where search stays exact,
    the ANN index is dropped. Returns the ANN index description to record."""
    table.optimize()
    if rows < ann.MIN_INDEX_ROWS:
        stale = ann.vector_index(table)
        if stale is not None:
            table.drop_index(stale.name)
        return None
    from lancedb.index import BTree

    table.create_index(key, config=BTree(), replace=True)
    return {
        "type": ann.INDEX_TYPE,
        "partitions": ann.build_index(table, rows),
        "rows": rows,
        "built_at": _now().isoformat(),
    }


def _moved(item_path: str | None, old_file: str, new_file: Path) -> str:
    """An item path of ``old_file`` (``file`` or ``file#X``) re-pathed to ``new_file``."""
    return str(new_file) + (item_path or "")[len(old_file) :]


def _span(row: dict[str, Any]) -> Span:
    """The span of a segment row (bars are whole numbers, stored as floats with the seconds)."""
    start, end, unit = row["start"], row["end"], row["unit"]
    return Span(int(start), int(end), unit) if unit == BAR else Span(start, end, unit)


def _hit(rank: int, score: float, row: dict[str, Any], span: Span | None = None) -> LibraryHit:
    """A search hit from an item row (:data:`~clamp3.library.store.INFO_COLUMNS`)."""
    return LibraryHit(
        rank, score, row["id"], row["path"], row["kind"], row["title"], row["composer"], row["caption"], span
    )


def _recorded_names(item: Any, names: dict[Path, str] | None) -> tuple[str, str]:
    """The file name and the item path (``file`` or ``file#X``) the library records an item under:
    its path, or the name its file is given in ``names`` (the URL of a local copy)."""
    file_name = (names or {}).get(item.path, str(item.path))
    return file_name, file_name + item.id[len(str(item.path)) :]


def embedded_rows(
    session: Any,
    files: list[tuple[Path, FileKind]],
    hashes: dict[Path, str],
    stats: dict[Path, FileStat],
    dim: int,
    names: dict[Path, str] | None = None,
    windows: WindowSettings | None = None,
) -> Rows:
    """The library rows of ``files`` (their items embedded with ``session``, their tags read; with
    ``windows``, the items' windows embedded too) and the files that failed; in this process or in a Ray
    actor. ``names``: the name a file is recorded under when it is not its path (the URL of a local
    copy). An item whose windows cannot be embedded fails as a whole."""
    from clamp3.library.tags import Tags, interleaved_bars, read_tags

    items, failures = session.pipeline.items_from_files(files)
    embedded = session.pipeline.embed_items(items)
    items, failures = embedded.items, failures + embedded.failures
    vectors = _unit(embedded.vectors) if items else np.zeros((0, dim), np.float32)
    segment_rows: list[dict[str, Any]] = []
    if windows is not None:
        windowed, failed = session.pipeline.embed_windows(items, windows)
        failures += failed
        dropped = {error.path for error in failed}
        kept = [i for i, item in enumerate(items) if item.id not in dropped]
        items, vectors = [items[i] for i in kept], vectors[kept]
        for item, spans, window_vectors in windowed:
            file_name, path = _recorded_names(item, names)
            for span, vector in zip(spans, _unit(window_vectors), strict=True):
                segment_rows.append(
                    {
                        "id": segment_id(path, span),
                        "item_id": item_id(path),
                        "path": path,
                        "file_path": file_name,
                        "content_hash": hashes[item.path],
                        "kind": item.kind.value,
                        "start": float(span.start),
                        "end": float(span.end),
                        "unit": span.unit,
                        "vector": vector,
                    }
                )
    tags: dict[str, Tags] = {}
    for path, kind in files:
        tags.update(read_tags(path, kind))
    added_at = _now()
    rows = []
    for item, vector in zip(items, vectors, strict=True):
        found = tags.get(item.id, Tags())
        bars = found.bars
        if bars is None and item.kind in (FileKind.ABC, FileKind.MUSICXML) and isinstance(item.data, str):
            bars = interleaved_bars(item.data)
        stat = stats[item.path]
        file_name, path = _recorded_names(item, names)
        rows.append(
            {
                "id": item_id(path),
                "path": path,
                "file_path": file_name,
                "content_hash": hashes[item.path],
                "size": stat.size,
                "mtime_ns": stat.mtime_ns,
                "kind": item.kind.value,
                "title": found.title,
                "composer": found.composer,
                "tags": json.dumps(dict(found.extra), ensure_ascii=False) if found.extra else None,
                "duration_s": found.duration_s,
                "bars": bars,
                "caption": item.caption,
                "model": session.model.fingerprint,
                "vector": vector,
                "added_at": added_at,
            }
        )
    return Rows(
        pa.Table.from_pylist(rows, schema=item_schema(dim)),
        pa.Table.from_pylist(segment_rows, schema=segment_schema(dim)),
        failures,
    )
