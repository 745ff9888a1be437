"""``Library.add`` on Ray Data: the files to embed go through a pool of model actors, the vectors
come back to the driver, which commits them into the library.

The driver plans as the single-process ``add`` does (scan with ``stat``, hash new and changed files,
reuse the rows of content the library already holds) and sends only the files left to embed to Ray:
``from_items`` → ``map_batches`` with a fixed pool of :class:`Embedder` actors (each loads the library's
model once, checks its fingerprint, converts, embeds and reads tags) → ``iter_batches`` on the driver.
Files at URLs are listed with the size and modification time the storage reports; the actor that
reads one (:mod:`clamp3.distributed.urls`) hashes it.
Ray's streaming execution bounds what is in flight; the driver commits whole files, ``batch_files`` at a
time, with the same atomic replace as the single-process path, so a killed job loses at most the
uncommitted batches and a re-run takes up where it stopped (committed files are unchanged by then).
A file that fails comes back as a failure row, never stops the job, and is recorded in the library's
``errors`` table (file_path, reason, at), replaced per file on each run, as in the single-process path.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from clamp3.distributed.job import ModelActor, RayJob, actor_dataset, local_files, ray_runtime
from clamp3.errors import Clamp3Error, InputError
from clamp3.library.scan import FileStat
from clamp3.library.store import item_schema
from clamp3.modality import FileKind
from clamp3.progress import progress_bar

if TYPE_CHECKING:
    from clamp3.library.library import Library, _AddState


def output_schema(dim: int) -> pa.Schema:
    """What an actor returns: library rows (``id`` null on a file's outcome row), plus ``error`` (a
    failed file's reason) and ``file_items`` (how many item rows its file has in all)."""
    items = item_schema(dim)
    return pa.schema(
        [
            items.field("id").with_nullable(True),
            *(items.field(name) for name in items.names[1:]),
            pa.field("error", pa.string()),
            pa.field("file_items", pa.int64()),
        ]
    )


class Embedder(ModelActor):
    """A Ray Data actor: the library rows of its batch of files (URLs read into a private folder, their
    content hashed here)."""

    def __init__(self, dim: int, **model: Any) -> None:
        super().__init__(**model)
        self.dim = dim

    def __call__(self, batch: pa.Table) -> pa.Table:
        from clamp3.cache import file_digest
        from clamp3.library.library import embedded_rows

        given = {row["file_path"]: row for row in batch.to_pylist()}
        names = list(given)
        with tempfile.TemporaryDirectory(prefix="clamp3-ray-") as folder:
            local = local_files(names, [given[n]["kind"] for n in names], Path(folder))
            files = [(path, local.kinds[name]) for name, path in local.paths.items()]
            hashes = {path: given[n]["content_hash"] or file_digest(path) for n, path in local.paths.items()}
            stats = {
                path: FileStat(given[n]["size"], given[n]["mtime_ns"]) for n, path in local.paths.items()
            }
            rows, failures = embedded_rows(
                self.session, files, hashes, stats, self.dim, {path: n for n, path in local.paths.items()}
            )
        return with_outcomes(rows, names, local.failures + local.named(failures), self.dim)


def with_outcomes(rows: pa.Table, files: list[str], failures: list[InputError], dim: int) -> pa.Table:
    """``rows`` with each row's file's item count, and one outcome row for every file without items
    (its reason when it failed)."""
    counts = Counter(rows["file_path"].to_pylist())
    schema = output_schema(dim)
    items = rows.append_column("error", pa.nulls(rows.num_rows, pa.string())).append_column(
        "file_items", pa.array([counts[p] for p in rows["file_path"].to_pylist()], pa.int64())
    )
    reasons = {f.path: f.reason for f in failures}
    outcomes = pa.Table.from_pylist(
        [
            {"file_path": p, "error": reasons.get(p), "file_items": 0}
            for p in dict.fromkeys(files)
            if counts[p] == 0
        ],
        schema=schema,
    )
    return pa.concat_tables([items.cast(schema), outcomes])


def add_on_ray(
    library: Library,
    todo: list[tuple[Path | str, FileKind]],
    state: _AddState,
    job: RayJob,
    url_stats: dict[str, FileStat],
) -> None:
    """The Ray path of :meth:`Library.add`. Files at URLs (``str`` in ``todo``, their stats as listed)
    go to the actors as they are: their bytes are read (and hashed) there, never on the driver."""
    fresh: list[dict[str, Any]] = [
        {"file_path": url, "kind": kind.value, "content_hash": None, **asdict(url_stats[url])}
        for url, kind in todo
        if isinstance(url, str)
    ]
    todo = [(path, kind) for path, kind in todo if isinstance(path, Path)]
    batch = max(1, library.settings.batch_files)
    with progress_bar(len(todo), "hashing", job.show_progress and bool(todo)) as bar:
        for start in range(0, len(todo), batch):
            files = todo[start : start + batch]
            failed_before = len(state.report.failures)
            to_embed, hashes, stats, reused, moved_from = library._hash_and_reuse(files, state)
            embed_later = {p for p, _ in to_embed}
            done = [str(p) for p, _ in files if p not in embed_later]
            library._commit(reused, done, moved_from, state)
            library._store.record_errors(done, state.report.failures[failed_before:])
            fresh += [
                {"file_path": str(p), "kind": k.value, "content_hash": hashes[p], **asdict(stats[p])}
                for p, k in to_embed
            ]
            bar.advance(len(files))
    if fresh:
        _embed_on_ray(library, fresh, state, job)


def _embed_on_ray(library: Library, fresh: list[dict[str, Any]], state: _AddState, job: RayJob) -> None:
    """Embed ``fresh`` (input rows) on a pool of actors and commit the results as they stream back."""
    with ray_runtime(job) as ray:
        dataset = actor_dataset(
            ray,
            job,
            fresh,
            Embedder,
            library.settings.batch_files,
            model=library.model_name,
            fingerprint=library._meta["fingerprint"],
            dim=library.dim,
        )
        _commit_stream(library, dataset, len(fresh), state, job.show_progress)


def _commit_stream(library: Library, dataset: Any, files: int, state: _AddState, show_progress: bool) -> None:
    """Commit the actors' rows as they stream back: whole files only, ``batch_files`` files per commit."""
    report = state.report
    schema = item_schema(library.dim)
    pending: list[pa.Table] = []
    seen: Counter[str] = Counter()
    expected: dict[str, int] = {}
    complete: list[str] = []

    def commit() -> None:
        table = pa.concat_tables(pending)
        ready = pc.is_in(table["file_path"], pa.array(complete, pa.string()))
        mine, rest = table.filter(ready), table.filter(pc.invert(ready))
        rows = mine.filter(pc.is_valid(mine["id"])).select(schema.names).cast(schema)
        failed = mine.filter(pc.is_valid(mine["error"]))
        failures = [
            InputError(p, r)
            for p, r in zip(failed["file_path"].to_pylist(), failed["error"].to_pylist(), strict=True)
        ]
        library._commit(rows, complete, [], state)
        library._store.record_errors(complete, failures)
        report.embedded += rows.num_rows
        report.failures += failures
        pending[:] = [rest] if rest.num_rows else []

    with progress_bar(files, "embedding on Ray", show_progress) as bar:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            pending.append(block)
            paths = block["file_path"].to_pylist()
            seen.update(block.filter(pc.is_valid(block["id"]))["file_path"].to_pylist())
            expected.update(zip(paths, block["file_items"].to_pylist(), strict=True))
            complete += [p for p in dict.fromkeys(paths) if seen[p] == expected[p]]
            if len(complete) >= library.settings.batch_files:
                commit()
                bar.advance(len(complete))
                complete = []
        if complete:
            commit()
            bar.advance(len(complete))
    if pending:
        left = len(pc.unique(pa.concat_tables(pending)["file_path"]))
        raise Clamp3Error(f"the Ray job returned incomplete rows for {left} file(s); run the add again")
