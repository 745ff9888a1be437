"""``Library.add`` on Ray Data: the files to embed go through a pool of model actors, the vectors
come back to the driver, which commits them into the library.

The driver plans as the single-process ``add`` does (scan with ``stat``, hash new and changed files,
reuse the rows of content the library already holds) and sends only the files left to embed to Ray:
``from_items`` → ``map_batches`` with a fixed pool of :class:`Embedder` actors (each loads the library's
model once, checks its fingerprint, converts, embeds and reads tags) → ``iter_batches`` on the driver.
Ray's streaming execution bounds what is in flight; the driver commits whole files, ``batch_files`` at a
time, with the same atomic replace as the single-process path, so a killed job loses at most the
uncommitted batches and a re-run takes up where it stopped (committed files are unchanged by then).
A file that fails comes back as a failure row, never stops the job, and is recorded in the library's
``errors`` table (file_path, reason, at), replaced per file on each run, as in the single-process path.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

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


class Embedder:
    """A Ray Data actor: the library's model (loaded once, its fingerprint checked) and a pipeline."""

    def __init__(
        self,
        model: str,
        fingerprint: str | None,
        dim: int,
        cache: bool,
        options: Any,
        device: str | None,
        threads: int | None,
    ) -> None:
        from clamp3.api import Session, load_model
        from clamp3.cache import FeatureCache
        from clamp3.pipeline import Pipeline

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        encoder = load_model(model, device=device)
        if fingerprint is not None and encoder.fingerprint != fingerprint:
            raise Clamp3Error(
                f"the workers' '{model}' has weights {encoder.fingerprint[:12]}, the library's are "
                f"{fingerprint[:12]}: install the same weights on every node"
            )
        self.session = Session(encoder, Pipeline(encoder, FeatureCache() if cache else None, options))
        self.dim = dim

    def __call__(self, batch: pa.Table) -> pa.Table:
        from clamp3.library.library import embedded_rows

        columns = batch.to_pydict()
        files = [(Path(p), FileKind(k)) for p, k in zip(columns["file_path"], columns["kind"], strict=True)]
        hashes = dict(zip((p for p, _ in files), columns["content_hash"], strict=True))
        stats = {
            path: FileStat(size, mtime_ns)
            for (path, _), size, mtime_ns in zip(files, columns["size"], columns["mtime_ns"], strict=True)
        }
        rows, failures = embedded_rows(self.session, files, hashes, stats, self.dim)
        return with_outcomes(rows, [str(p) for p, _ in files], failures, self.dim)


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


@dataclass(frozen=True)
class RayJob:
    """How :meth:`Library.add` runs on Ray."""

    address: str
    """``"local"`` (a runtime started and shut down for the job) or a cluster's address."""
    workers: int
    gpus: float | None
    """GPUs per actor; ``None``: one with a CUDA device or on a cluster that has GPUs, else none."""
    show_progress: bool
    session_options: dict[str, Any]
    """``cache``, ``options`` and ``device`` of the actors' pipelines."""


def add_on_ray(library: Library, todo: list[tuple[Path, FileKind]], state: _AddState, job: RayJob) -> None:
    """The Ray path of :meth:`Library.add`."""
    if job.workers < 1:
        raise Clamp3Error(f"ray_workers must be at least 1, got {job.workers}")
    batch = max(1, library.settings.batch_files)
    fresh: list[dict[str, Any]] = []
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
                {
                    "file_path": str(p),
                    "kind": k.value,
                    "content_hash": hashes[p],
                    "size": stats[p].size,
                    "mtime_ns": stats[p].mtime_ns,
                }
                for p, k in to_embed
            ]
            bar.advance(len(files))
    if fresh:
        _embed_on_ray(library, fresh, state, job)


def _embed_on_ray(library: Library, fresh: list[dict[str, Any]], state: _AddState, job: RayJob) -> None:
    """Embed ``fresh`` (input rows) on a pool of actors and commit the results as they stream back."""
    try:
        import ray.data
    except ImportError:
        raise Clamp3Error("the Ray path needs Ray: pip install 'clamp3[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=job.address, include_dashboard=False)
    try:
        device, gpus, workers = job.session_options["device"], job.gpus, job.workers
        if gpus is None:
            wants_gpu = device is not None and device.startswith("cuda")
            gpus = 1.0 if wants_gpu or (device is None and ray.cluster_resources().get("GPU", 0) > 0) else 0.0
        ray.data.DataContext.get_current().enable_progress_bars = job.show_progress
        # about 4 calls an actor at least, so that actors finishing early take more
        per_call = max(1, min(library.settings.batch_files, math.ceil(len(fresh) / (4 * workers))))
        blocks = math.ceil(len(fresh) / per_call)
        dataset = ray.data.from_items(fresh, override_num_blocks=blocks).map_batches(
            Embedder,
            fn_constructor_kwargs={
                "model": library.model_name,
                "fingerprint": library._meta["fingerprint"],
                "dim": library.dim,
                "cache": job.session_options["cache"],
                "options": job.session_options["options"],
                "device": device,
                "threads": None if gpus else 1,
            },
            compute=ray.data.ActorPoolStrategy(size=workers),
            batch_size=per_call,
            batch_format="pyarrow",
            num_gpus=gpus or None,
            num_cpus=None if gpus else 1,
        )
        _commit_stream(library, dataset, len(fresh), state, job.show_progress)
    except ray.exceptions.RayError as exc:
        raise Clamp3Error(f"the Ray job failed: {_reason(exc)}") from None
    finally:
        if started and job.address == "local":
            ray.shutdown()


def _reason(exc: BaseException) -> str:
    """The last line of a Ray error: the exception raised in the actor or task, without its module."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1].removeprefix("clamp3.errors.")[:300]


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
