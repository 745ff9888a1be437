"""Writing a library's rows out: one Parquet file, or the reference's one-``.npy``-per-item folder.

Both read the table in batches, so a library larger than memory exports in bounded memory, and both
write atomically (a Parquet file appears complete or not at all; each ``.npy`` likewise).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clamp3.fileio import atomic_write, npy_name, save_npy
from clamp3.library.store import Store, vectors_of

PARQUET_COLUMNS = (
    "id",
    "path",
    "kind",
    "vector",
    "title",
    "composer",
    "tags",
    "duration_s",
    "bars",
    "caption",
    "content_hash",
    "model",
    "added_at",
)


def _batches(store: Store, columns: tuple[str, ...]):
    return store.items.search().select(list(columns)).limit(None).to_batches()


def export_parquet(store: Store, target: Path, meta: dict[str, Any]) -> int:
    import pyarrow.parquet as pq

    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        schema = store.items.schema
        fields = [schema.field(name) for name in PARQUET_COLUMNS]
        import pyarrow as pa

        out_schema = pa.schema(
            fields, metadata={"model": meta["model"], "fingerprint": meta["fingerprint"] or ""}
        )
        with pq.ParquetWriter(str(tmp), out_schema) as writer:
            for batch in _batches(store, PARQUET_COLUMNS):
                table = pa.Table.from_batches([batch]).select(list(PARQUET_COLUMNS)).cast(out_schema)
                writer.write_table(table)
                written += table.num_rows

    atomic_write(target, write)
    return written


def export_npy(store: Store, folder: Path) -> int:
    """Items with a file path mirror their files' tree below the files' common folder; other rows
    (``add_vectors`` without paths) are named after their id. Two items that would share a name keep
    the first; the second is named after its id."""
    paths = store.query(["path"]).column("path").to_pylist()
    files = [p.partition("#")[0] for p in paths if p]
    root = os.path.commonpath([os.path.dirname(f) for f in files]) if files else ""
    used: set[Path] = set()
    written = 0
    for batch in _batches(store, ("id", "path", "vector")):
        ids, item_paths = batch.column("id").to_pylist(), batch.column("path").to_pylist()
        vectors = vectors_of(batch)
        for id_, path, vector in zip(ids, item_paths, vectors, strict=True):
            name = (
                npy_name(os.path.relpath(path, root)) if path and os.path.isabs(path) else Path(f"{id_}.npy")
            )
            if name in used:
                name = Path(f"{id_}.npy")
            used.add(name)
            save_npy(folder / name, vector[None])
            written += 1
    return written
