"""``clamp3 embed | search | locate | score | eval``: retrieval tasks over files, folders or feature dumps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from clamp3.cli.common import (
    friendly_errors,
    model_options,
    ray_options,
    report_problems,
    segment_search_options,
    window_options,
)
from clamp3.errors import InputError
from clamp3.extras import require
from clamp3.fileio import atomic_write, embeddings_schema, npy_name, save_npy
from clamp3.modality import FileKind, kinds_from_names


def parse_kinds(modality: str | None, option: str = "--modality") -> set[FileKind] | None:
    """``--modality``: comma-separated towers (text, symbolic, audio) or file kinds (abc, midi, ...)."""
    try:
        return kinds_from_names(modality.split(",")) if modality else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.command("embed")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder (npy: one file per item, mirroring the input tree) or file (npz, parquet: read back by "
    "search, score, eval and probe with ids, paths, modalities and the model).",
)
@click.option(
    "--local", "local", is_flag=True, help="Per-position features [1, L, H] instead of global [1, D]."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["npy", "npz", "parquet"]),
    default=None,
    help="Output format [npy; with --ray: parquet, the only one it writes].",
)
@ray_options
@model_options
@friendly_errors
def embed_command(
    paths: tuple[str, ...],
    output: Path,
    local: bool,
    fmt: str | None,
    ray_address: str | None,
    ray_workers: int,
    ray_gpus: float | None,
    model_args: dict[str, Any],
) -> None:
    """Embed files and folders of any modality mix; with --ray, files and folders at URLs too
    (s3://bucket/music, gs://..., file:///...).

    With the npy format each item's file is written as soon as its chunk of files is embedded, so an
    interrupted run keeps its finished work; a re-run reads it back from the cache and completes the rest.
    """
    import numpy as np
    from rich.console import Console

    from clamp3.api import Session, relative_id
    from clamp3.distributed.urls import is_url

    if ray_address is not None:
        _embed_on_ray(paths, output, local, fmt, ray_address, ray_workers, ray_gpus, model_args)
        return
    if any(is_url(p) for p in paths):
        raise click.UsageError("URLs are read on Ray only: add --ray")
    fmt = fmt or "npy"
    if local and fmt != "npy":
        raise click.UsageError("--local writes one .npy per item; use --format npy")
    if fmt == "parquet":
        require("--format parquet", "pyarrow")
    session = Session.open(**model_args)
    # npy outputs are written chunk by chunk; npz and parquet gather their rows for one file at the end
    ids, paths_out, kinds, vectors, failures, skipped = [], [], [], [], [], []
    written: dict[Path, str] = {}
    embedded = 0
    for root in map(Path, paths):
        files, unknown = session.pipeline.collect([root])
        skipped += unknown
        for chunk in session.pipeline.iter_embeddings(files, global_features=not local):
            failures += chunk.failures
            for item, vector in zip(chunk.items, chunk.vectors, strict=True):
                relative = relative_id(item, root)
                if fmt == "npy":
                    target = output / npy_name(relative)
                    if target in written:
                        failures.append(
                            InputError(item.id, f"its output {target} is also {written[target]}'s")
                        )
                        continue
                    written[target] = item.id
                    save_npy(target, vector[None])
                else:
                    ids.append(relative)
                    paths_out.append(item.id)
                    kinds.append(item.kind.value)
                    vectors.append(vector)
                embedded += 1
    if not embedded and not failures:
        raise click.ClickException(f"no input files found in {', '.join(map(str, paths))}")
    if fmt == "npz":
        matrix = np.stack(vectors) if vectors else np.zeros((0, session.model.embedding_dim), np.float32)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.savez(
                    handle,
                    ids=np.array(ids),
                    paths=np.array(paths_out),
                    modality=np.array(kinds),
                    vectors=matrix.astype(np.float32),
                    model=np.array(session.model.fingerprint),
                    model_name=np.array(session.name or ""),
                )

        atomic_write(output, write)
    elif fmt == "parquet":
        _write_parquet(output, ids, paths_out, kinds, vectors, session.model.fingerprint, session.name)
    Console(stderr=True).print(f"{embedded} item(s) embedded into {output}")
    if report_problems(failures, skipped):
        raise SystemExit(1)


def _embed_on_ray(
    paths: tuple[str, ...],
    output: Path,
    local: bool,
    fmt: str | None,
    address: str,
    workers: int,
    gpus: float | None,
    model_args: dict[str, Any],
) -> None:
    """``embed --ray``: one Parquet file of global vectors (see :mod:`clamp3.distributed.embed`)."""
    from rich.console import Console

    from clamp3.distributed.embed import embed_on_ray

    if local or fmt not in (None, "parquet"):
        raise click.UsageError(
            "--ray writes global vectors to one Parquet file: leave out --local; --format parquet or none"
        )
    require("--ray", "ray.data")
    report = embed_on_ray(
        list(paths),
        output,
        model_args["model"],
        ray=address,
        ray_workers=workers,
        ray_gpus=gpus,
        cache=model_args["cache"],
        options=model_args["options"],
        device=model_args["device"],
    )
    Console(stderr=True).print(f"{report.items} item(s) embedded into {output}")
    if report_problems(report.failures, report.skipped):
        raise SystemExit(1)


def _write_parquet(output: Path, ids, paths, kinds, vectors, fingerprint: str, name: str | None) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"id": ids, "path": paths, "modality": kinds, "vector": [v.astype(np.float32) for v in vectors]},
        schema=embeddings_schema(fingerprint, name),
    )
    atomic_write(output, lambda tmp: pq.write_table(table, str(tmp)))


def hit_json(
    rank: int,
    score: float,
    id: str,
    path: str | None,
    kind: str | None,
    caption: str | None,
    span: Any = None,
) -> str:
    """One search hit as the JSON line ``search --json`` prints (``library search --json`` too); with
    ``--segments``, the best passage as ``start``, ``end`` and ``unit`` (``bar`` or ``second``)."""
    hit = {
        "rank": rank,
        "score": round(score, 6),
        "id": id,
        "path": path,
        "modality": kind,
        "caption": caption,
    }
    if span is not None:
        hit.update(start=span.start, end=span.end, unit=span.unit)
    return json.dumps(hit, ensure_ascii=False)


@click.command("search")
@click.argument("arguments", nargs=-1, type=click.Path(path_type=Path))
@click.option("--text", default=None, help="Query text in any language (then every argument is a target).")
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--modality",
    default=None,
    help="Only these targets: text, symbolic, audio, or kinds (abc, midi...); not for bare .npy vectors.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@click.option("--include-query", is_flag=True, help="Keep the query file among the hits when it is a target.")
@click.option("--library", "library_dir", default=None, help="Search this library (clamp3 library) instead.")
@segment_search_options
@window_options
@model_options
@friendly_errors
def search_command(
    arguments: tuple[Path, ...],
    text: str | None,
    k: int,
    modality: str | None,
    as_json: bool,
    include_query: bool,
    library_dir: str | None,
    segments: bool,
    combine: str,
    windows: Any,
    model_args: dict[str, Any],
) -> None:
    """Search TARGETS with a QUERY file (clamp3 search QUERY TARGETS...) or a text (--text "...");
    with --library, search that library (clamp3 search QUERY --library DIR)."""
    from rich.console import Console
    from rich.table import Table

    from clamp3.api import search

    if text is None and not arguments:
        raise click.UsageError("give a query file or --text")
    query, targets = (None, arguments) if text is not None else (arguments[0], arguments[1:])
    if library_dir is not None and targets:
        raise click.UsageError("with --library, give only the query (a file or --text), no targets")
    if library_dir is None and not targets:
        raise click.UsageError("give at least one target file or folder (or --library)")
    result = search(
        query,
        targets,
        text=text,
        k=k,
        kinds=parse_kinds(modality),
        library=library_dir,
        include_query=include_query,
        segments=segments,
        windows=windows,
        combine=combine,
        **model_args,
    )
    if as_json:
        for hit in result.hits:
            click.echo(hit_json(hit.rank, hit.score, hit.id, hit.path, hit.kind, hit.caption, hit.span))
    else:
        columns = ("rank", "score", "modality", "path", *(("passage",) if segments else ()))
        table = Table(*columns, title=f"Top {len(result.hits)} of {result.candidates}")
        for hit in result.hits:
            where = hit.path + (f'  (caption: "{hit.caption}")' if hit.caption else "")
            passage = (str(hit.span) if hit.span else "",) if segments else ()
            table.add_row(str(hit.rank), f"{hit.score:.4f}", hit.kind or "features", where, *passage)
        Console().print(table)
    if report_problems(result.failures, result.skipped):
        raise SystemExit(1)


@click.command("locate")
@click.argument("arguments", nargs=-1, required=True)
@click.option("--text", default=None, help="Query text in any language (then the one argument is the PIECE).")
@click.option(
    "-k", "--top-k", "k", type=click.IntRange(min=1), default=None, help="Only the best K passages."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per passage, best first.")
@click.option(
    "--library",
    "library_dir",
    default=None,
    help="PIECE is an item (id or path) of this library, whose stored passages are ranked.",
)
@window_options
@model_options
@friendly_errors
def locate_command(
    arguments: tuple[str, ...],
    text: str | None,
    k: int | None,
    as_json: bool,
    library_dir: str | None,
    windows: Any,
    model_args: dict[str, Any],
) -> None:
    """Where in PIECE a QUERY matches: clamp3 locate QUERY PIECE, or clamp3 locate --text "..." PIECE.

    The QUERY is a few bars of ABC, a MIDI or audio excerpt (or --text); PIECE's passages (windows of
    bars for sheet music, of seconds for MIDI and audio) are ranked by similarity, best first."""
    from clamp3.api import locate

    expected = 1 if text is not None else 2
    if len(arguments) != expected:
        raise click.UsageError("give QUERY and PIECE, or --text and PIECE")
    query = Path(arguments[0]) if text is None else None
    result = locate(query, arguments[-1], text=text, windows=windows, library=library_dir, **model_args)
    spans = result.spans[:k] if k is not None else result.spans
    if as_json:
        for hit in spans:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("rank", "score", "passage", "piece", title=f"{len(spans)} passages of {result.piece}")
        for hit in spans:
            table.add_row(str(hit.rank), f"{hit.score:.4f}", str(hit.span), hit.id)
        Console().print(table)
    if report_problems(result.failures):
        raise SystemExit(1)


@click.command("score")
@click.argument("queries", type=click.Path(path_type=Path))
@click.argument("references", type=click.Path(path_type=Path))
@click.option("--group", is_flag=True, help="Cosine between the mean vectors of the two sets.")
@click.option(
    "--csv", "csv_path", type=click.Path(path_type=Path), help="Write the pairwise similarities here."
)
@click.option("--allow-unmatched", is_flag=True, help="Go on with the common keys when some do not pair up.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@model_options
@friendly_errors
def score_command(
    queries: Path,
    references: Path,
    group: bool,
    csv_path: Path | None,
    allow_unmatched: bool,
    as_json: bool,
    model_args: dict[str, Any],
) -> None:
    """Similarity of QUERIES to REFERENCES: pairwise (same relative path and name) or --group."""
    from clamp3.api import score
    from clamp3.retrieval import write_pairs_csv

    result = score(
        queries,
        references,
        mode="group" if group else "pairwise",
        allow_unmatched=allow_unmatched,
        **model_args,
    )
    pairs = None if group else result.details.n_queries
    if csv_path is not None:
        if group:
            raise click.UsageError("--csv lists pairs; it does not apply to --group")
        write_pairs_csv(result.details, csv_path)
    if as_json:
        click.echo(json.dumps({"mode": result.mode, "score": result.score, "pairs": pairs}))
    elif group:
        click.echo(f"Group similarity: {result.score:.4f}")
    else:
        click.echo(f"Avg. pairwise similarity: {result.score:.4f} over {pairs} pairs")
    if report_problems(result.failures):
        raise SystemExit(1)


@click.command("eval")
@click.argument("queries", type=click.Path(path_type=Path))
@click.argument("references", type=click.Path(path_type=Path))
@click.option("--both", is_flag=True, help="Also evaluate the references as queries.")
@click.option("--ranks", "ranks_path", type=click.Path(path_type=Path), help="Write per-query ranks (JSONL).")
@click.option(
    "--plot", "plot_path", type=click.Path(path_type=Path), help="Write a PNG of the rank distribution."
)
@click.option("--allow-unmatched", is_flag=True, help="Go on with the common keys when some do not pair up.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@model_options
@friendly_errors
def eval_command(
    queries: Path,
    references: Path,
    both: bool,
    ranks_path: Path | None,
    plot_path: Path | None,
    allow_unmatched: bool,
    as_json: bool,
    model_args: dict[str, Any],
) -> None:
    """Retrieval quality of QUERIES against REFERENCES paired by key: MRR and Hit@1/10/100."""
    from clamp3.api import evaluate
    from clamp3.retrieval import write_ranks_jsonl

    if plot_path is not None:
        require("--plot", "matplotlib.figure")
    outcome = evaluate(queries, references, both=both, allow_unmatched=allow_unmatched, **model_args)
    result = outcome.result
    if ranks_path is not None:
        write_ranks_jsonl(result.forward, ranks_path)
    if plot_path is not None:
        from clamp3.retrieval.plots import plot_rank_distribution

        plot_rank_distribution(result.forward, plot_path, title=f"{queries} -> {references}")
    directions = [("", result.forward)] + ([("reverse", result.backward)] if result.backward else [])
    if as_json:
        summary = {**_metrics_json(result.forward)}
        if result.backward is not None:
            summary["reverse"] = _metrics_json(result.backward)
        click.echo(json.dumps(summary))
    else:
        for name, metrics in directions:
            click.echo(f"{name + ' ' if name else ''}MRR: {metrics.mrr:.4f}")
            for k, value in metrics.hits.items():
                click.echo(f"{name + ' ' if name else ''}Hit@{k}: {value:.4f}")
            click.echo(f"Total query features: {metrics.n_queries}")
            click.echo(f"Total reference features: {metrics.n_references}")
    if report_problems(outcome.failures):
        raise SystemExit(1)


def _metrics_json(metrics) -> dict[str, float | int]:
    return {
        "mrr": metrics.mrr,
        **{f"hit@{k}": value for k, value in metrics.hits.items()},
        "queries": metrics.n_queries,
        "references": metrics.n_references,
    }
