"""``Library.add`` on Ray Data: the files to embed go through a pool of model actors, which write
their rows into the library's Lance dataset as uncommitted fragments; the driver commits them.

The driver plans as the single-process ``add`` does (scan with ``stat``, hash new and changed files,
reuse the rows of content the library already holds) and sends only the files left to embed to Ray:
``from_items`` → ``map_batches`` with a fixed pool of :class:`Embedder` actors (each loads the library's
model once, checks its fingerprint, converts, embeds and reads tags) → ``iter_batches`` on the driver.
Files at URLs are listed with the size and modification time the storage reports; the actor that
reads one (:mod:`clamp3.distributed.urls`) hashes it.

Each actor call writes the rows of its files as Lance fragment files into the ``items`` dataset
(``lance.fragment.write_fragments``: data files that no version references yet) and returns one
:data:`CALL_SCHEMA` row: its files, the ids of the rows it wrote, its failures and the fragments'
metadata. No vector reaches the driver. The driver commits the fragments of whole calls, at least
``batch_files`` files at a time, under the writer lock: each commit is one Lance ``Update``
transaction that adds the new fragments and deletes every older row of their files
(:meth:`~clamp3.library.store.Store.add_fragments`). Readers see a commit whole or not at all; a
killed job loses at most the uncommitted calls, whose fragment files are orphans that no version
references (Lance's cleanup, run by ``library optimize``, deletes them once they are 7 days old), and
a re-run takes up where it stopped. A file that fails is in its call's failures, never stops the job,
and is recorded in the library's ``errors`` table (file_path, reason, at), replaced per file on each
run, as in the single-process path. The actors write where the driver commits: with Ray on several
machines, the library must be on storage they all reach (a shared folder or object storage).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from clamp3.distributed.job import ModelActor, RayJob, actor_dataset, local_files, ray_runtime
from clamp3.errors import Clamp3Error, InputError
from clamp3.library.scan import FileStat
from clamp3.modality import FileKind
from clamp3.preprocess.windows import WindowSettings
from clamp3.progress import progress_bar

if TYPE_CHECKING:
    from clamp3.library.library import Library, _AddState

CALL_SCHEMA = pa.schema(
    [
        pa.field("files", pa.list_(pa.string())),
        pa.field("ids", pa.list_(pa.string())),
        pa.field("failures", pa.list_(pa.struct([("path", pa.string()), ("reason", pa.string())]))),
        pa.field("fragments", pa.list_(pa.string())),
        pa.field("segment_fragments", pa.list_(pa.string())),
    ]
)
"""What an actor call returns, one row: its files (as the driver named them), the ids of the rows it
wrote, the files (or tunes) that failed, and the ``FragmentMetadata`` JSON of the fragments holding
its rows (and, in a library with segments, its items' windows). One row cannot be split across
blocks, so a fragment always arrives with its files."""


class Embedder(ModelActor):
    """A Ray Data actor: writes the library rows of its batch of files (URLs read into a private
    folder, their content hashed here) as fragments of the library's ``items`` dataset."""

    def __init__(
        self, dim: int, items_uri: str, segments_uri: str | None, windows: dict | None, **model: Any
    ) -> None:
        import lance

        try:
            lance.dataset(items_uri)
        except ValueError:
            raise Clamp3Error(
                f"{items_uri}: this Ray worker cannot reach the library; with Ray on several machines, "
                "put the library on storage they all reach"
            ) from None
        super().__init__(**model)
        self.dim = dim
        self.items_uri = items_uri
        self.segments_uri = segments_uri
        self.windows = WindowSettings.from_dict(windows) if windows is not None else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lance.fragment import write_fragments

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
            rows = embedded_rows(
                self.session,
                files,
                hashes,
                stats,
                self.dim,
                {path: n for n, path in local.paths.items()},
                windows=self.windows,
            )

        def fragments(table: pa.Table, uri: str | None) -> list[str]:
            if uri is None or table.num_rows == 0:
                return []
            return [json.dumps(f.to_json()) for f in write_fragments(table, uri, schema=table.schema)]

        call = {
            "files": names,
            "ids": rows.items["id"].to_pylist(),
            "failures": [
                {"path": f.path, "reason": f.reason} for f in local.failures + local.named(rows.failures)
            ],
            "fragments": fragments(rows.items, self.items_uri),
            "segment_fragments": fragments(rows.segments, self.segments_uri),
        }
        return pa.Table.from_pylist([call], schema=CALL_SCHEMA)


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
    """Embed ``fresh`` (input rows) on a pool of actors and commit their fragments as they come back."""
    try:
        import lance  # noqa: F401
    except ImportError:
        raise Clamp3Error("library add --ray needs pylance: pip install 'clamp3[ray]'") from None
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
            items_uri=library._store.items_uri,
            segments_uri=library._store.segments_uri,
            windows=library._meta.get("segments"),
        )
        _commit_stream(library, dataset, len(fresh), state, job.show_progress)


def _commit_stream(library: Library, dataset: Any, files: int, state: _AddState, show_progress: bool) -> None:
    """Commit the actors' fragments as their calls come back: whole calls, at least ``batch_files``
    files per commit."""
    pending: list[dict[str, Any]] = []

    def commit() -> int:
        done = [f for call in pending for f in call["files"]]
        ids = [i for call in pending for i in call["ids"]]
        failures = [InputError(f["path"], f["reason"]) for call in pending for f in call["failures"]]
        library._count_removed(ids, done, state)
        if library._store.segments_uri is not None:  # segments first, as in the single-process add
            segment_fragments = [f for call in pending for f in call["segment_fragments"]]
            library._store.add_fragments(segment_fragments, done, library._store.segments_uri)
        library._store.add_fragments([f for call in pending for f in call["fragments"]], done)
        library._store.record_errors(done, failures)
        state.report.embedded += len(ids)
        state.report.failures += failures
        pending.clear()
        return len(done)

    with progress_bar(files, "embedding on Ray", show_progress) as bar:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            pending += block.to_pylist()
            if sum(len(call["files"]) for call in pending) >= library.settings.batch_files:
                bar.advance(commit())
        if pending:
            bar.advance(commit())
