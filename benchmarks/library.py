"""The music library at scale: ANN search at 10^6 x 768, a re-scan of 10^4 unchanged files, indexing
throughput against ``clamp3 embed``.

Stages (each result is saved in ``WORK/results.json`` as soon as it is measured, so an interrupted run
resumes where it stopped; ``--redo STAGE`` measures a stage again):

* ``fill``: ``--rows`` vectors of ``--dim`` dimensions into a library (``Library.add_vectors`` in
  commits of 50,000 rows; resumes from the rows already there). Not uniform noise: a two-level
  mixture (``--clusters`` centres, each with 8 sub-centres, and per-vector noise), so that nearest
  neighbours are meaningful and ANN recall measures something.
* ``index``: ``Library.optimize()``: the IVF-PQ index, its build time and its recall@10 as the library
  measures it.
* ``search``: in a fresh process (so that its peak memory is the search's own), after reading the
  library's files once (a warm page cache) and ``--warmup-queries`` other queries (which load the
  index partitions they probe, as a server's first queries do): ``--queries`` queries
  drawn from the same mixture (not rows of the library), each searched through the ANN index and
  exactly; p50 / p95 latency of each and recall@10 of the ANN against the exact top 10.
* ``rescan``: ``--files`` small text files indexed once with the bundled model, then ``Library.add``
  again on the unchanged folder (the best of 3 runs).
* ``throughput``: items/s of ``Library.add`` and of ``clamp3.embed`` on the same symbolic files and
  audio files (copies of the example library, each made unique), with the bundled model, no cache.

Usage: ``python benchmarks/library.py WORK [--rows 1000000] [--dim 768]``; the results are printed as
a table (paste it into ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FILL_CHUNK = 50_000


def mixture(seed: int, n: int, dim: int, clusters: int) -> np.ndarray:
    """``n`` unit vectors from a fixed two-level Gaussian mixture (the same centres for every seed)."""
    centres_rng = np.random.default_rng(12345)
    centres = centres_rng.standard_normal((clusters, dim)).astype(np.float32)
    subs = centres_rng.standard_normal((clusters, 8, dim)).astype(np.float32) * 0.6
    rng = np.random.default_rng(seed)
    c = rng.integers(0, clusters, n)
    s = rng.integers(0, 8, n)
    vectors = centres[c] + subs[c, s] + rng.standard_normal((n, dim)).astype(np.float32) * 0.5
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def load_results(work: Path) -> dict:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(work: Path, results: dict) -> None:
    tmp = work / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, work / "results.json")


def vector_library(work: Path, dim: int):
    from clamp3.library import Library, LibrarySettings

    uri = work / "vectors"
    if uri.exists():
        return Library.open(uri)
    # a model is only named, never loaded: this library takes precomputed vectors
    library = Library.create(uri, model="saas", settings=LibrarySettings(ann_threshold=10**9))
    if library.dim != dim:
        raise SystemExit(f"saas has {library.dim} dimensions; --dim {dim} is not supported")
    return library


def stage_fill(work: Path, args) -> dict:
    library = vector_library(work, args.dim)
    start_rows = len(library)
    started = time.perf_counter()
    for start in range(start_rows - start_rows % FILL_CHUNK, args.rows, FILL_CHUNK):
        n = min(FILL_CHUNK, args.rows - start)
        vectors = mixture(start, n, args.dim, args.clusters)
        library.add_vectors([f"v{i}" for i in range(start, start + n)], vectors)
        print(f"fill: {start + n} rows", file=sys.stderr, flush=True)
    return {"rows": len(library), "fill_s_this_run": round(time.perf_counter() - started, 1)}


def stage_index(work: Path, args) -> dict:
    library = vector_library(work, args.dim)
    started = time.perf_counter()
    index = library.optimize()
    return {"build_s": round(time.perf_counter() - started, 1), "index": index}


def stage_search(work: Path, args) -> dict:
    """Runs itself in a child process, so that ru_maxrss is the search's own peak memory."""
    command = [sys.executable, __file__, str(work), "--child-search", "--dim", str(args.dim)]
    command += ["--queries", str(args.queries), "--clusters", str(args.clusters)]
    command += ["--exact-queries", str(args.exact_queries), "--warmup-queries", str(args.warmup_queries)]
    for name in ("nprobes", "refine_factor"):
        if getattr(args, name) is not None:
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def read_through(folder: Path) -> None:
    """Read every file of ``folder`` once, so that the library's pages are in the OS page cache (as on
    a server that has been answering queries for a while) and a query's latency is not a disk's."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Linux's ``VmHWM`` belongs to the process image, while
    ``ru_maxrss`` carries the parent's peak over ``exec`` (a child started by a parent that held the
    filled vectors would report the parent's gigabytes)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_search(work: Path, args) -> None:
    read_through(work / "vectors")
    library = vector_library(work, args.dim)
    if args.nprobes is not None or args.refine_factor is not None:
        changes = {"nprobes": args.nprobes, "refine_factor": args.refine_factor}
        library.configure(**{name: value for name, value in changes.items() if value is not None})
    queries = mixture(10**9, args.queries, args.dim, args.clusters)
    cold = []
    for query in mixture(2 * 10**9, args.warmup_queries, args.dim, args.clusters):
        started = time.perf_counter()
        library.search(vector=query, k=10)  # loads the index partitions that queries probe
        cold.append(time.perf_counter() - started)
    ann_times, exact_times, found = [], [], []
    for query in queries:
        started = time.perf_counter()
        found.append({h.id for h in library.search(vector=query, k=10)})
        ann_times.append(time.perf_counter() - started)
    ann_peak_mb = peak_rss_mb()
    recalls = []
    for query, approximate in zip(queries[: args.exact_queries], found, strict=False):
        started = time.perf_counter()
        exact = library.search(vector=query, k=10, exact=True)
        exact_times.append(time.perf_counter() - started)
        recalls.append(len(approximate & {h.id for h in exact}) / len(exact))

    def ms(values: list[float], q: float) -> float:
        return round(1000 * float(np.quantile(values, q)), 2)

    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "queries": len(queries),
                "nprobes": library.settings.nprobes,
                "refine_factor": library.settings.refine_factor,
                "warmup_queries": len(cold),
                "warmup_p50_ms": ms(cold, 0.5) if cold else None,
                "ann_p50_ms": ms(ann_times, 0.5),
                "ann_p95_ms": ms(ann_times, 0.95),
                "exact_p50_ms": ms(exact_times, 0.5),
                "exact_p95_ms": ms(exact_times, 0.95),
                "recall@10": round(statistics.mean(recalls), 4),
                "recall_queries": len(recalls),
                "ann_peak_rss_mb": round(ann_peak_mb),
                "peak_rss_mb_with_exact": round(peak_mb),
            }
        )
    )


def stage_rescan(work: Path, args) -> dict:
    from clamp3.library import Library

    folder = work / "texts"
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        words = ["reel", "jig", "waltz", "hornpipe", "march", "air", "polka", "slide", "lament", "chorale"]
        for i in range(args.files):
            sub = folder / f"{i // 1000:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{i:05d}.txt").write_text(
                f"a {words[i % 10]} number {i} in {['D', 'G', 'A'][i % 3]} major\n"
            )
        (folder / "done").mkdir()
    uri = work / "texts-library"
    library = Library.open(uri) if uri.exists() else Library.create(uri, model="default")
    started = time.perf_counter()
    first = library.add([folder], show_progress=True)
    first_s = time.perf_counter() - started
    assert first.embedded + first.unchanged == args.files, first
    times = []
    for _ in range(3):
        started = time.perf_counter()
        report = library.add([folder])
        times.append(time.perf_counter() - started)
        assert report.unchanged == args.files and report.embedded == 0, report
    return {"files": args.files, "first_add_s": round(first_s, 1), "rescan_s": round(min(times), 2)}


def unique_copies(source: list[Path], folder: Path, copies: int) -> list[Path]:
    """``copies`` copies of each source file, each with one distinct byte pattern appended where the
    format ignores it (an ABC comment, a MusicXML comment, a MIDI/ogg file is copied as is and
    therefore only counted once by the cache, which the benchmark switches off)."""
    made = []
    for copy in range(copies):
        for path in source:
            target = folder / f"{copy:03d}" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            if path.suffix == ".abc":
                data += f"\n% copy {copy}\n".encode()
            elif path.suffix == ".musicxml":
                data += f"\n<!-- copy {copy} -->\n".encode()
            target.write_bytes(data)
            made.append(target)
    return made


def stage_throughput(work: Path, args) -> dict:
    import clamp3
    from clamp3.library import Library

    examples = REPO / "src" / "clamp3" / "demo_data" / "library"
    results = {}
    for name, pattern, copies in (
        ("symbolic", "scores/*", args.copies),
        ("audio", "audio/*.ogg", args.copies),
    ):
        folder = work / f"throughput-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        unique_copies(sorted(examples.glob(pattern)), folder, copies)
        model = clamp3.load_model("default")
        started = time.perf_counter()
        embedded = clamp3.embed([folder], model=model, cache=False)
        embed_s = time.perf_counter() - started
        uri = work / f"throughput-{name}-library"
        shutil.rmtree(uri, ignore_errors=True)
        Library.create(uri, model="default")
        library = Library.open(uri, model=model)
        started = time.perf_counter()
        report = library.add([folder], cache=False)
        add_s = time.perf_counter() - started
        items = len(embedded.items)
        results[name] = {
            "items": items,
            "embed_items_per_s": round(items / embed_s, 2),
            "library_add_items_per_s": round(report.embedded / add_s, 2),
        }
    return results


STAGES = {
    "fill": stage_fill,
    "index": stage_index,
    "search": stage_search,
    "rescan": stage_rescan,
    "throughput": stage_throughput,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--exact-queries", type=int, default=100)
    parser.add_argument(
        "--warmup-queries", type=int, default=300, help="Queries (other draws) before the timed ones."
    )
    parser.add_argument("--nprobes", type=int, default=None, help="Change the library's setting first.")
    parser.add_argument("--refine-factor", type=int, default=None, help="Change the library's setting first.")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--redo", nargs="*", default=[], choices=list(STAGES))
    parser.add_argument("--child-search", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child_search:
        child_search(args.work, args)
        return
    results = load_results(args.work)
    results["machine"] = {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0]}
    for stage in args.stages:
        if stage in results and stage not in args.redo and stage != "fill":
            continue
        if stage == "fill" and results.get("fill", {}).get("rows") == args.rows and "fill" not in args.redo:
            continue
        print(f"== {stage}", file=sys.stderr, flush=True)
        results[stage] = STAGES[stage](args.work, args)
        results[stage]["load_after"] = round(os.getloadavg()[0], 2)
        save_results(args.work, results)
        print(json.dumps({stage: results[stage]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
