"""The library's tables in LanceDB: the Arrow schema of an item row, the metadata row, atomic writes.

Every write is one Lance commit: readers (searches in other threads or processes) see the table before
or after it, never between, and a process killed during a write leaves the previous version intact
(the files of an uncommitted write are never referenced). Writers of one local library take a lock
file, so two ``add`` processes run one after the other instead of racing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clamp3.errors import Clamp3Error

ITEMS_TABLE = "items"
SEGMENTS_TABLE = "segments"
META_TABLE = "meta"
ERRORS_TABLE = "errors"
FORMAT_VERSION = 1
LOCK_FILE = ".clamp3-write.lock"
_IN_CHUNK = 512
"""Ids or paths per ``IN (...)`` list, so that a filter stays a modest SQL string."""

FILE_COLUMNS = ("id", "path", "file_path", "content_hash", "size", "mtime_ns", "kind")
"""What a rescan reads of every row (never the vectors)."""
INFO_COLUMNS = (
    "id",
    "path",
    "file_path",
    "kind",
    "title",
    "composer",
    "tags",
    "duration_s",
    "bars",
    "caption",
    "added_at",
)
"""What a search hit or an item lookup returns."""


def item_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string()),
            pa.field("file_path", pa.string()),
            pa.field("content_hash", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime_ns", pa.int64()),
            pa.field("kind", pa.string()),
            pa.field("title", pa.string()),
            pa.field("composer", pa.string()),
            pa.field("tags", pa.string()),
            pa.field("duration_s", pa.float64()),
            pa.field("bars", pa.int32()),
            pa.field("caption", pa.string()),
            pa.field("model", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("added_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def segment_schema(dim: int) -> pa.Schema:
    """One window of an item: its span (``start``/``end`` in ``unit``: ``bar`` or ``second``) and vector."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("path", pa.string()),
            pa.field("file_path", pa.string()),
            pa.field("content_hash", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("start", pa.float64()),
            pa.field("end", pa.float64()),
            pa.field("unit", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


ERRORS_SCHEMA = pa.schema(
    [
        pa.field("file_path", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("at", pa.timestamp("us", tz="UTC")),
    ]
)
"""The files that failed at their last ``add``, with the reason."""
_META_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_filters(column: str, values: Sequence[str]) -> Iterator[str]:
    """``column IN (...)`` filters covering ``values``, a bounded number of values each."""
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start : start + _IN_CHUNK]
        yield f"{column} IN ({', '.join(sql_string(v) for v in chunk)})"


def is_local(uri: str) -> bool:
    return "://" not in uri


class Store:
    """The tables of one library: ``items`` (one row per item), ``meta`` (one JSON document) and, when
    the library keeps segments, ``segments`` (one row per window of an item)."""

    def __init__(self, uri: str, db: Any) -> None:
        self.uri = uri
        self._db = db
        self.items = db.open_table(ITEMS_TABLE)
        self._meta = db.open_table(META_TABLE)
        self.segments = (
            db.open_table(SEGMENTS_TABLE) if SEGMENTS_TABLE in set(db.list_tables().tables) else None
        )

    @staticmethod
    def _connect(uri: str) -> Any:
        import lancedb

        # every read checks for the latest committed version, so a long-lived reader sees new writes
        return lancedb.connect(uri, read_consistency_interval=timedelta(0))

    @classmethod
    def create(cls, uri: str, meta: dict[str, Any]) -> Store:
        db = cls._connect(uri)
        existing = set(db.list_tables().tables)
        if ITEMS_TABLE in existing or META_TABLE in existing:
            raise Clamp3Error(f"{uri}: already holds a library; open it instead")
        meta_rows = pa.table({"key": ["library"], "value": [json.dumps(meta)]}, schema=_META_SCHEMA)
        db.create_table(META_TABLE, data=meta_rows)
        db.create_table(ITEMS_TABLE, schema=item_schema(meta["dim"]))
        if meta.get("segments") is not None:
            db.create_table(SEGMENTS_TABLE, schema=segment_schema(meta["dim"]))
        return cls(uri, db)

    @classmethod
    def open(cls, uri: str) -> Store:
        if is_local(uri) and not Path(uri).is_dir():
            raise Clamp3Error(f"{uri}: no such library (create it with `clamp3 library init {uri}`)")
        db = cls._connect(uri)
        tables = set(db.list_tables().tables)
        if ITEMS_TABLE not in tables or META_TABLE not in tables:
            raise Clamp3Error(f"{uri}: not a clamp3 library (create one with `clamp3 library init`)")
        return cls(uri, db)

    # ------------------------------------------------------------------ metadata

    def meta(self) -> dict[str, Any]:
        rows = self._meta.search().where("key = 'library'").select(["value"]).limit(1).to_arrow()
        if rows.num_rows != 1:
            raise Clamp3Error(f"{self.uri}: the library's metadata row is missing")
        return json.loads(rows["value"][0].as_py())

    def put_meta(self, meta: dict[str, Any]) -> None:
        row = pa.table({"key": ["library"], "value": [json.dumps(meta)]}, schema=_META_SCHEMA)
        self._merge(self._meta, "key").execute(row)

    # ------------------------------------------------------------------ reads

    def query(self, columns: Sequence[str], where: str | None = None, table: Any = None) -> pa.Table:
        """The rows of ``table`` (default: items) matching ``where`` (all when ``None``), ``columns`` only."""
        builder = (table if table is not None else self.items).search().select(list(columns)).limit(None)
        if where:
            builder = builder.where(where)
        return builder.to_arrow()

    def rows_in(
        self,
        column: str,
        values: Sequence[str],
        columns: Sequence[str],
        table: Any = None,
        where: str | None = None,
    ) -> pa.Table:
        """The rows of ``table`` (default: items) whose ``column`` is one of ``values`` (and that match
        ``where``)."""
        extra = f" AND ({where})" if where else ""
        tables = [
            self.query(columns, f"({chunk}){extra}", table) for chunk in in_filters(column, list(values))
        ]
        return pa.concat_tables(tables) if tables else self.query(columns, "false", table)

    def count(self, where: str | None = None) -> int:
        return self.items.count_rows(where)

    # ------------------------------------------------------------------ writes

    def replace(self, rows: pa.Table, files: Sequence[str], table: Any = None) -> None:
        """One commit to ``table`` (default: items): insert or update ``rows`` (by id) and delete the
        other rows of ``files``."""
        table = table if table is not None else self.items
        merge = self._merge(table, "id")
        if files:
            files = list(files)
            stale = " OR ".join(in_filters("file_path", files))
            merge = merge.when_not_matched_by_source_delete(stale)
        if rows.num_rows == 0 and not files:
            return
        merge.execute(rows.cast(table.schema))

    @property
    def items_uri(self) -> str:
        """Where the ``items`` Lance dataset is: Ray actors write their fragments there."""
        return self.items.uri

    @property
    def segments_uri(self) -> str | None:
        """Where the ``segments`` Lance dataset is (``None`` in a library without segments)."""
        return self.segments.uri if self.segments is not None else None

    def add_fragments(
        self, fragments: Sequence[str], files: Sequence[str], dataset_uri: str | None = None
    ) -> None:
        """One Lance transaction on ``dataset_uri`` (default: items): the rows of ``fragments`` (written
        by Ray actors, each as its ``FragmentMetadata`` JSON) in, every row of ``files`` that the table
        held before out."""
        import lance
        from lance.fragment import FragmentMetadata

        dataset_uri = dataset_uri or self.items_uri
        new = [FragmentMetadata.from_json(f) for f in fragments]
        if is_local(self.uri):
            for fragment in new:
                for data in fragment.files:
                    if not (Path(dataset_uri) / "data" / data.path).is_file():
                        raise Clamp3Error(
                            f"{self.uri}: a worker wrote {data.path} where this machine cannot see it: "
                            "with Ray on several machines, put the library on storage they all reach"
                        )
        dataset = lance.dataset(dataset_uri)
        updated, removed = [], []
        if files:
            stale = " OR ".join(in_filters("file_path", list(files)))
            for fragment in dataset.get_fragments():
                kept = fragment.delete(stale)
                if kept is None:
                    removed.append(fragment.fragment_id)
                elif kept != fragment.metadata:
                    updated.append(kept)
        if not (new or updated or removed):
            return
        operation = lance.LanceOperation.Update(
            removed_fragment_ids=removed, updated_fragments=updated, new_fragments=new
        )
        lance.LanceDataset.commit(dataset, operation, read_version=dataset.version)

    def delete(self, column: str, values: Sequence[str]) -> None:
        """Delete the rows whose ``column`` is one of ``values``: their segments first, then the items
        (a kill in between leaves items without segments, which the same call, run again, completes)."""
        values = list(values)
        if self.segments is not None:  # an item's windows name it by item_id
            for where in in_filters("item_id" if column == "id" else column, values):
                self.segments.delete(where)
        for where in in_filters(column, values):
            self.items.delete(where)

    def record_errors(self, files: Sequence[str], failures: Sequence[Any]) -> None:
        """Replace the ``errors`` rows of ``files`` with ``failures`` (:class:`InputError`), one commit."""
        from datetime import datetime, timezone

        if not files:
            return
        table = self._db.create_table(ERRORS_TABLE, schema=ERRORS_SCHEMA, exist_ok=True)
        at = datetime.now(timezone.utc)
        rows = pa.Table.from_pylist(
            [{"file_path": f.path, "reason": f.reason, "at": at} for f in failures], schema=ERRORS_SCHEMA
        )
        stale = " OR ".join(in_filters("file_path", list(files)))
        merge = self._merge(table, "file_path").when_not_matched_by_source_delete(stale)
        merge.execute(rows)

    def errors(self) -> dict[str, str]:
        """File path -> reason of the files that failed at their last ``add``."""
        if ERRORS_TABLE not in self._db.list_tables().tables:
            return {}
        rows = self._db.open_table(ERRORS_TABLE).to_arrow()
        return dict(zip(rows["file_path"].to_pylist(), rows["reason"].to_pylist(), strict=True))

    @staticmethod
    def _merge(table: Any, key: str) -> Any:
        return table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()

    @contextmanager
    def write_lock(self, timeout_s: float, on_wait: Any = None) -> Iterator[None]:
        """Hold the library's writer lock (local libraries; on object storage Lance's own commit
        conflict checks are what stands between two writers)."""
        if not is_local(self.uri):
            yield
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(Path(self.uri) / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            try:
                lock.acquire(timeout=timeout_s)
            except Timeout:
                raise Clamp3Error(
                    f"{self.uri}: another process has been writing to this library for {timeout_s:.0f} s; "
                    "try again when it has finished"
                ) from None
        try:
            yield
        finally:
            lock.release()


def vectors_of(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """The ``vector`` column as a float32 ``(N, D)`` array."""
    column = table.column("vector")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        return np.zeros((0, column.type.list_size), np.float32)
    return column.values.to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
