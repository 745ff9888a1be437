"""Segment-level search at scale: a library of ``--items`` pieces with ``--windows`` windows each (10^6
segment rows by default, 768 dimensions), searched with ``Library.search(segments=True)``.

Stages (results saved in ``WORK/results.json`` as soon as measured; an interrupted run resumes):

* ``fill``: the items (``Library.add_vectors``) and their windows (appended to the segments table in
  chunks of 50,000 rows; resumes from the rows already there). Item vectors come from the clustered
  mixture of ``benchmarks/library.py``; a piece's windows are its vector plus noise, so that windows
  of one piece are close and the best window of a query is meaningful.
* ``index``: ``Library.optimize()``: IVF-RQ indexes of both tables and the B-trees on their ids.
* ``cost``: what segments cost when indexing: the example library's scores, MIDI and audio
  (``--copies`` unique copies) added with the bundled model, no cache, to a library without and one
  with segments (default windows), twice each, alternating; rows and seconds of each, and the ratio.
* ``search``: in a fresh process (its own peak memory), with a warm page cache and warm-up queries:
  ``--queries`` queries (a window of a random piece, plus noise), each searched with
  ``segments=True`` (both tables, candidates rescored exactly), without (items only), and the
  segment table's ANN query alone; p50/p95 of each, and recall@10 of the segment search's pieces
  against the exact segment search's (the windows of a piece are near-copies here, so which of them
  is best is noise and is not compared).

Usage: ``python benchmarks/segments.py WORK [--items 50000] [--windows 20] [--dim 768]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from library import (
    REPO,
    load_results,
    mixture,
    peak_rss_mb,
    read_through,
    save_results,
    unique_copies,
)

FILL_CHUNK = 50_000
STAGES = ("fill", "index", "search", "cost")


def window_vectors(item_vectors: np.ndarray, first_item: int, windows: int) -> np.ndarray:
    """``windows`` vectors per item: the item's vector plus seeded noise, unit length."""
    rng = np.random.default_rng(first_item)
    repeated = np.repeat(item_vectors, windows, axis=0)
    noisy = repeated + rng.standard_normal(repeated.shape).astype(np.float32) * 0.01
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def segment_library(work: Path, dim: int):
    from clamp3.library import Library, LibrarySettings
    from clamp3.preprocess.windows import WindowSettings

    uri = work / "segments"
    if uri.exists():
        return Library.open(uri)
    # a model is only named, never loaded: this library takes precomputed vectors
    settings = LibrarySettings(ann_threshold=10**9)
    library = Library.create(uri, model="saas", settings=settings, segments=WindowSettings())
    if library.dim != dim:
        raise SystemExit(f"saas has {library.dim} dimensions; --dim {dim} is not supported")
    return library


def stage_fill(work: Path, args) -> dict:
    import pyarrow as pa

    from clamp3.library.store import segment_schema

    library = segment_library(work, args.dim)
    started = time.perf_counter()
    per_chunk = FILL_CHUNK // args.windows
    for first in range(0, args.items, per_chunk):
        n = min(per_chunk, args.items - first)
        items = mixture(first, n, args.dim, args.clusters)
        segments = library._store.segments
        if len(library) < first + n:
            library.add_vectors([f"i{i}" for i in range(first, first + n)], items, kinds=["midi"] * n)
        if segments.count_rows() < (first + n) * args.windows:
            vectors = window_vectors(items, first, args.windows)
            rows = [
                {
                    "id": f"i{i}@{w}",
                    "item_id": f"i{i}",
                    "kind": "midi",
                    "start": 6.0 * w,
                    "end": 6.0 * w + 12.0,
                    "unit": "second",
                    "vector": vectors[(i - first) * args.windows + w],
                }
                for i in range(first, first + n)
                for w in range(args.windows)
            ]
            segments.add(pa.Table.from_pylist(rows, schema=segment_schema(args.dim)))
        print(f"fill: {first + n} items", file=sys.stderr, flush=True)
    return {
        "items": len(library),
        "segment_rows": library._store.segments.count_rows(),
        "fill_s_this_run": round(time.perf_counter() - started, 1),
    }


def stage_index(work: Path, args) -> dict:
    library = segment_library(work, args.dim)
    started = time.perf_counter()
    library.optimize()
    meta = library.refresh_meta()
    return {
        "build_s": round(time.perf_counter() - started, 1),
        "index": meta["index"],
        "segment_index": meta["segment_index"],
    }


def stage_search(work: Path, args) -> dict:
    """Runs itself in a child process, so that its peak memory is the search's own."""
    command = [sys.executable, __file__, str(work), "--child-search", "--dim", str(args.dim)]
    command += ["--items", str(args.items), "--windows", str(args.windows), "--clusters", str(args.clusters)]
    command += ["--queries", str(args.queries), "--warmup-queries", str(args.warmup_queries)]
    command += ["--exact-queries", str(args.exact_queries)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def child_search(work: Path, args) -> None:
    read_through(work / "segments")
    library = segment_library(work, args.dim)
    rng = np.random.default_rng(7)
    picked = rng.integers(0, args.items, args.queries + args.warmup_queries)
    noise = rng.standard_normal((len(picked), args.dim)).astype(np.float32) * 0.01
    queries = np.stack([library.vector(f"i{item}") for item in picked]) + noise  # near the piece's windows
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for query in queries[: args.warmup_queries]:
        library.search(vector=query, k=10, segments=True)
    segment_times, item_times, window_times, recalls, right = [], [], [], [], 0
    for query, item in zip(queries[args.warmup_queries :], picked[args.warmup_queries :], strict=True):
        started = time.perf_counter()
        hits = library.search(vector=query, k=10, segments=True)
        segment_times.append(time.perf_counter() - started)
        right += hits[0].id == f"i{item}"
        started = time.perf_counter()
        library.search(vector=query, k=10)
        item_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        library._best_windows(query, 10, [], exact=False)  # the segment table's ANN query alone
        window_times.append(time.perf_counter() - started)
        if len(recalls) < args.exact_queries:
            exact = library.search(vector=query, k=10, segments=True, exact=True)
            recalls.append(len({hit.id for hit in hits} & {hit.id for hit in exact}) / len(exact))

    def ms(values: list[float], q: float) -> float:
        return round(1000 * float(np.quantile(values, q)), 2)

    print(
        json.dumps(
            {
                "queries": len(segment_times),
                "segment_search_p50_ms": ms(segment_times, 0.5),
                "segment_search_p95_ms": ms(segment_times, 0.95),
                "item_search_p50_ms": ms(item_times, 0.5),
                "item_search_p95_ms": ms(item_times, 0.95),
                "window_ann_p50_ms": ms(window_times, 0.5),
                "window_ann_p95_ms": ms(window_times, 0.95),
                "recall@10": round(statistics.mean(recalls), 4),
                "recall_queries": len(recalls),
                "right_piece_first": round(right / len(segment_times), 4),
                "peak_rss_mb": round(peak_rss_mb()),
            }
        )
    )


def stage_cost(work: Path, args) -> dict:
    import shutil

    import clamp3
    from clamp3.library import Library
    from clamp3.preprocess.windows import WindowSettings

    examples = REPO / "src" / "clamp3" / "demo_data" / "library"
    folder = work / "cost-music"
    shutil.rmtree(folder, ignore_errors=True)
    sources = sorted(p for kind in ("scores", "midi", "audio") for p in (examples / kind).iterdir())
    unique_copies(sources, folder, args.copies)
    model = clamp3.load_model("default")
    runs: dict[str, list[float]] = {"plain": [], "segments": []}
    rows = {}
    for attempt in range(2):
        for name, windows in (("plain", None), ("segments", WindowSettings())):
            uri = work / f"cost-{name}-{attempt}"
            shutil.rmtree(uri, ignore_errors=True)
            Library.create(uri, model="default", segments=windows)
            library = Library.open(uri, model=model)
            started = time.perf_counter()
            library.add([folder], cache=False)
            runs[name].append(time.perf_counter() - started)
            stats = library.stats()
            rows[name] = {"items": stats["rows"], "segment_rows": (stats["segments"] or {}).get("rows", 0)}
    best = {name: min(times) for name, times in runs.items()}
    return {
        "rows": rows,
        "add_s": {name: [round(t, 1) for t in times] for name, times in runs.items()},
        "segments_over_plain_time": round(best["segments"] / best["plain"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup-queries", type=int, default=50)
    parser.add_argument("--exact-queries", type=int, default=50)
    parser.add_argument("--copies", type=int, default=3, help="Copies of the example library (cost).")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--redo", nargs="*", default=[], choices=list(STAGES))
    parser.add_argument("--child-search", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child_search:
        child_search(args.work, args)
        return
    results = load_results(args.work)
    load = {"loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    for stage in args.stages:
        if stage in results and stage not in args.redo:
            continue
        results[stage] = {**globals()[f"stage_{stage}"](args.work, args), **load}
        save_results(args.work, results)
        print(f"{stage}: {json.dumps(results[stage])}", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
