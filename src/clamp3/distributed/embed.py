"""``clamp3 embed --ray``: files (local paths or URLs) embedded on a pool of model actors, the vectors
streamed into one Parquet file, the same file that ``clamp3 embed --format parquet`` writes.

The driver lists the files and sends their names (no bytes) to Ray Data; each actor reads its files
(copying URLs into a private folder), converts and embeds them and returns one row per item and one
per failure. The driver writes the rows in the files' order as they come back, so it holds no more
than Ray's streaming window; a file that fails is listed at the end and never stops the job.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from clamp3.distributed.job import ModelActor, RayJob, actor_dataset, local_files, ray_runtime
from clamp3.distributed.urls import is_url, list_urls
from clamp3.errors import Clamp3Error, InputError
from clamp3.fileio import atomic_write, embeddings_schema
from clamp3.modality import collect_files

OUTPUT = pa.schema(
    [
        pa.field("index", pa.int64()),
        pa.field("suffix", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("vector", pa.list_(pa.float32())),
        pa.field("model", pa.string()),
        pa.field("error", pa.string()),
    ]
)
"""An actor's rows: the input row's ``index``, the item's ``suffix`` to its file's name (``#2`` for a
tune), and its vector, or the ``error`` of a file or tune that failed."""


class VectorEmbedder(ModelActor):
    """A Ray Data actor: the vectors of its batch of files."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        columns = batch.to_pydict()
        pipeline = self.session.pipeline
        with tempfile.TemporaryDirectory(prefix="clamp3-ray-") as folder:
            files = local_files(columns["file_path"], columns["kind"], Path(folder))
            readable = [(path, files.kinds[name]) for name, path in files.paths.items()]
            items, failures = pipeline.items_from_files(readable, show_progress=False)
            embedded = pipeline.embed_items(items, show_progress=False)
        indexes: dict[str, list[int]] = {}  # a file under two arguments is two inputs
        for name, index in zip(columns["file_path"], columns["index"], strict=True):
            indexes.setdefault(name, []).append(index)
        fingerprint = self.session.model.fingerprint
        rows = [
            {
                "index": index,
                "suffix": suffix,
                "kind": item.kind.value,
                "vector": vector,
                "model": fingerprint,
            }
            for item, vector in zip(embedded.items, embedded.vectors, strict=True)
            for name, suffix in [files.owner(item.id)]
            for index in indexes[name]
        ]
        rows += [
            {"index": index, "suffix": suffix, "error": failure.reason}
            for failure in files.failures + failures + embedded.failures
            for name, suffix in [files.owner(failure.path)]
            for index in indexes[name]
        ]
        return pa.Table.from_pylist(rows, schema=OUTPUT)


@dataclass
class EmbedReport:
    """What :func:`embed_on_ray` wrote."""

    items: int = 0
    failures: list[InputError] = field(default_factory=list)
    skipped: list[Path | str] = field(default_factory=list)
    """Files whose kind is unknown (at a URL: files without a known extension)."""


@dataclass(frozen=True)
class _Input:
    name: str
    """The file as it is reported (the path under its argument as given, or the URL)."""
    id: str
    """The item id of the file: its path relative to its argument (its name for a file argument)."""


def _inputs(paths: list[str], recursive: bool) -> tuple[list[dict[str, Any]], list[_Input], list[Path | str]]:
    """The rows for Ray (``index``, ``file_path``: absolute or a URL, ``kind``), what each one is called,
    and the skipped files; each argument on its own, as ``clamp3 embed`` does."""
    rows: list[dict[str, Any]] = []
    named: list[_Input] = []
    skipped: list[Path | str] = []
    for argument in paths:
        if is_url(argument):
            listing = list_urls([argument], recursive)
            root = listing.roots[0]
            skipped += listing.skipped
            files = [(f.url, f.url, f.kind) for f in listing.files]
            ids = [
                posixpath.basename(url) if root.is_file else url.removeprefix(root.url + "/")
                for url, *_ in files
            ]
        else:
            found, unknown = collect_files([argument], recursive)
            skipped += unknown
            files = [(os.path.abspath(path), str(path), kind) for path, kind in found]
            is_file = Path(argument).is_file()
            ids = [
                path.name if is_file else os.path.relpath(path, argument).replace(os.sep, "/")
                for path, _ in found
            ]
        for (file_path, name, kind), id_ in zip(files, ids, strict=True):
            rows.append({"index": len(rows), "file_path": file_path, "kind": kind.value})
            named.append(_Input(name, id_))
    return rows, named, skipped


def embed_on_ray(
    paths: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    model: str | None = None,
    *,
    ray: str = "local",
    ray_workers: int = 2,
    ray_gpus: float | None = None,
    cache: bool = True,
    options: Any = None,
    device: str | None = None,
) -> EmbedReport:
    """Embed the files under ``paths`` (local paths or URLs) on Ray and write their vectors to the
    Parquet file ``output`` (columns ``id``, ``path``, ``modality``, ``vector``; the model's fingerprint
    in the metadata), as ``clamp3 embed --format parquet`` does in one process.

    ``ray``: ``"local"`` starts a local runtime (shut down at the end), anything else is a cluster's
    address; ``ray_workers`` model actors with ``ray_gpus`` GPUs each, as in
    :meth:`clamp3.library.Library.add`. The model is loaded by each actor, by name (a path must exist
    on every node)."""
    from clamp3.api import model_name
    from clamp3.hub.identity import model_identity
    from clamp3.pipeline import PipelineOptions

    options = options or PipelineOptions()
    name = model_name(model)
    rows, named, skipped = _inputs([str(p) for p in paths], options.recursive)
    if not rows:
        raise Clamp3Error(f"no input files found in {', '.join(map(str, paths))}")
    identity = model_identity(name)
    job = RayJob(
        ray,
        ray_workers,
        ray_gpus,
        options.show_progress,
        {"cache": cache, "options": options, "device": device},
    )
    report = EmbedReport(skipped=skipped)

    def write(tmp: Path) -> None:
        import pyarrow.parquet as pq

        writer = None
        try:
            with ray_runtime(job) as ray_module:
                dataset = actor_dataset(
                    ray_module,
                    job,
                    rows,
                    VectorEmbedder,
                    options.chunk_files,
                    True,
                    model=name,
                    fingerprint=identity.fingerprint,
                )
                for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                    table = _rows(block, named, report)
                    if writer is None and table.num_rows:
                        fingerprint = block["model"].drop_null()[0].as_py()
                        writer = pq.ParquetWriter(str(tmp), embeddings_schema(fingerprint, name))
                    if table.num_rows:
                        writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            pq.write_table(embeddings_schema(identity.fingerprint or "", name).empty_table(), str(tmp))

    atomic_write(Path(output), write)
    return report


def _rows(block: pa.Table, named: list[_Input], report: EmbedReport) -> pa.Table:
    """The output rows of an actor's block; its failures go to ``report``."""
    failed = block.filter(block["error"].is_valid()).to_pylist()
    report.failures += [InputError(named[row["index"]].name + row["suffix"], row["error"]) for row in failed]
    items = block.filter(block["error"].is_null())
    keys = [
        (named[i], s) for i, s in zip(items["index"].to_pylist(), items["suffix"].to_pylist(), strict=True)
    ]
    report.items += items.num_rows
    return pa.table(
        {
            "id": [file.id + suffix for file, suffix in keys],
            "path": [file.name + suffix for file, suffix in keys],
            "modality": items["kind"],
            "vector": items["vector"],
        }
    )
