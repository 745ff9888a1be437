"""``clamp3 library init | add | search | stats | remove | optimize | export``: a persistent library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from clamp3.cli.common import (
    DTYPE_CHOICES,
    friendly_errors,
    model_options,
    ray_options,
    report_problems,
    segment_search_options,
    window_options,
)
from clamp3.cli.tasks import hit_json, parse_kinds

library_option = click.option(
    "--library",
    "library_dir",
    envvar="CLAMP3_LIBRARY",
    required=True,
    help="The library (a folder) [$CLAMP3_LIBRARY].",
)


def _open(library_dir: str, model: Any = None):
    from clamp3.library import Library

    return Library.open(library_dir, model=model)


@click.group("library")
def library_group() -> None:
    """A persistent, incremental library of vectors (LanceDB) with fast search."""


@library_group.command("init")
@click.argument("directory")
@click.option("-m", "--model", default=None, help="Model name or path [saas if downloaded, else default].")
@click.option(
    "--ann-threshold",
    type=click.IntRange(min=1),
    default=None,
    help="Rows from which `add` builds the ANN index by itself [50000].",
)
@click.option(
    "--batch-files", type=click.IntRange(min=1), default=None, help="Files committed together by `add` [64]."
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPE_CHOICES),
    default="float32",
    show_default=True,
    help="Precision of the library's vectors (int8: quantized, for CPUs); fixed for the library.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="Also keep the vectors of every piece's windows (bars, seconds), for search --segments and locate.",
)
@window_options
@friendly_errors
def init_command(
    directory: str,
    model: str | None,
    ann_threshold: int | None,
    batch_files: int | None,
    dtype: str,
    segments: bool,
    windows: Any,
) -> None:
    """Create an empty library in DIRECTORY for one model (loads no weights)."""
    from dataclasses import replace

    from clamp3.library import Library, LibrarySettings

    settings = LibrarySettings()
    if ann_threshold is not None:
        settings = replace(settings, ann_threshold=ann_threshold)
    if batch_files is not None:
        settings = replace(settings, batch_files=batch_files)
    library = Library.create(
        directory, model=model, settings=settings, dtype=dtype, segments=windows if segments else None
    )
    kept = f"; segments of {_describe(windows)}" if segments else ""
    click.echo(
        f"created {library.uri} for model '{library.model_name}' ({library.dim} dimensions, "
        f"{library.precision}{kept})"
    )


def _describe(windows: Any) -> str:
    """``4 bars (hop 2), 8 bars (hop 4), 6 s (hop 3), 12 s (hop 6)``."""
    bars = [f"{size} bars (hop {hop})" for size, hop in windows.bars]
    seconds = [f"{size:g} s (hop {hop:g})" for size, hop in windows.seconds]
    return ", ".join(bars + seconds)


@library_group.command("add")
@click.argument("paths", nargs=-1, required=True)
@library_option
@click.option("--prune", is_flag=True, help="Remove the rows of files gone from PATHS.")
@ray_options
@model_options
@friendly_errors
def add_command(
    paths: tuple[str, ...],
    library_dir: str,
    prune: bool,
    ray_address: str | None,
    ray_workers: int,
    ray_gpus: float | None,
    model_args: dict[str, Any],
) -> None:
    """Index PATHS: new and changed files are embedded, unchanged ones cost a stat. With --ray, PATHS
    may be URLs (s3://bucket/music, gs://..., file:///...)."""
    from rich.console import Console

    if ray_address is not None:
        from clamp3.extras import require

        require("--ray", "ray.data")
    library = _open(library_dir, model_args["model"])
    options = model_args["options"]
    report = library.add(
        list(paths),
        prune=prune,
        show_progress=options.show_progress,
        cache=model_args["cache"],
        options=options,
        device=model_args["device"],
        on_wait=lambda: click.echo(f"waiting for another process writing to {library.uri} ...", err=True),
        ray=ray_address,
        ray_workers=ray_workers,
        ray_gpus=ray_gpus,
    )
    Console(stderr=True).print(
        f"{report.embedded} embedded, {report.reused} reused, {report.unchanged} unchanged file(s), "
        f"{report.removed} removed; {len(library)} rows"
        + (", ANN index refreshed" if report.indexed else ""),
        markup=False,
    )
    if report_problems(report.failures, report.skipped):
        raise SystemExit(1)


@library_group.command("search")
@click.argument("query", required=False, type=click.Path(path_type=Path))
@click.option("--text", default=None, help="Query text in any language.")
@click.option("--like", default=None, help="The id of an item: more like this one.")
@click.option("--include-query", is_flag=True, help="Keep the query's own item(s) among the hits.")
@click.option("--kind", "kind", default=None, help="Only these kinds: text, symbolic, audio, or abc, midi...")
@click.option("--where", default=None, help="SQL filter on the rows, e.g. \"composer LIKE '%Bach%'\".")
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--exact", is_flag=True, help="Exact search even when an ANN index exists.")
@segment_search_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@library_option
@model_options
@friendly_errors
def search_command(
    query: Path | None,
    text: str | None,
    like: str | None,
    include_query: bool,
    kind: str | None,
    where: str | None,
    k: int,
    exact: bool,
    segments: bool,
    combine: str,
    as_json: bool,
    library_dir: str,
    model_args: dict[str, Any],
) -> None:
    """Search the library with a QUERY file, a --text or an item's id (--like)."""
    library = _open(library_dir, model_args["model"])
    if text is not None or query is not None:
        library.session(cache=model_args["cache"], options=model_args["options"], device=model_args["device"])
    hits = library.search(
        text=text,
        path=query,
        like=like,
        k=k,
        kinds=parse_kinds(kind, "--kind"),
        where=where,
        exact=exact,
        include_query=include_query,
        segments=segments,
        combine=combine,
    )
    if as_json:
        for hit in hits:
            click.echo(hit_json(hit.rank, hit.score, hit.id, hit.path, hit.kind, hit.caption, hit.span))
        return
    from rich.console import Console
    from rich.table import Table

    columns = ("rank", "score", "kind", "title", "path", *(("passage",) if segments else ()), "id")
    table = Table(*columns, title=f"Top {len(hits)} of {len(library)}")
    for hit in hits:
        passage = (str(hit.span) if hit.span else "",) if segments else ()
        table.add_row(
            str(hit.rank),
            f"{hit.score:.4f}",
            hit.kind or "",
            hit.title or "",
            hit.path or "",
            *passage,
            hit.id,
        )
    Console().print(table)


@library_group.command("stats")
@library_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def stats_command(library_dir: str, as_json: bool) -> None:
    """Rows by kind, the model, and the ANN index with its last measured recall@10."""
    stats = _open(library_dir).stats()
    if as_json:
        click.echo(json.dumps(stats, ensure_ascii=False))
        return
    click.echo(f"library:  {stats['uri']}")
    click.echo(
        f"model:    {stats['model']} ({(stats['fingerprint'] or 'weights not local')[:12]}, "
        f"{stats['dim']} d, {stats['precision']})"
    )
    click.echo(f"rows:     {stats['rows']}")
    for name, count in sorted(stats["by_kind"].items()):
        click.echo(f"  {name:<9} {count}")
    index = stats["index"]
    if index is None:
        click.echo("index:    none (exact search)")
    else:
        click.echo(
            f"index:    {index['type']}, {index['indexed_rows']} rows indexed, "
            f"{index['unindexed_rows']} not yet; "
            f"recall@10 {index['recall@10']} over {index['recall_queries']} queries ({index['measured_at']})"
        )


@library_group.command("remove")
@click.argument("ids", nargs=-1, required=True)
@library_option
@friendly_errors
def remove_command(ids: tuple[str, ...], library_dir: str) -> None:
    """Remove items by id."""
    library = _open(library_dir)
    removed = library.remove(list(ids))
    click.echo(f"removed {removed} of {len(set(ids))} id(s); {len(library)} rows")
    if removed < len(set(ids)):
        raise SystemExit(1)


@library_group.command("optimize")
@library_option
@friendly_errors
def optimize_command(library_dir: str) -> None:
    """Compact the library and build (or refresh) its ANN index; measures the index's recall@10."""
    index = _open(library_dir).optimize()
    if index is None:
        click.echo("compacted; too few rows for an ANN index (search stays exact)")
    else:
        click.echo(
            f"{index['type']} index over {index['rows']} rows ({index['partitions']} partitions), "
            f"recall@10 {index['recall@10']}"
        )


@library_group.command("export")
@click.argument("output", type=click.Path(path_type=Path))
@library_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "npy"]), default="parquet", show_default=True)
@friendly_errors
def export_command(output: Path, library_dir: str, fmt: str) -> None:
    """Write every row to OUTPUT: one Parquet file, or one (1, D) .npy per item (the reference's layout)."""
    count = _open(library_dir).export(output, format=fmt)
    click.echo(f"exported {count} rows to {output}")
