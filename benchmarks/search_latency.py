"""Top-k search latency: clamp3's chunked top-k against the reference's search method.

* clamp3 - ``clamp3.retrieval.top_k`` on an L2-normalised float32 matrix (normalised once, as
  ``VectorIndex`` does), read in chunks of 65536 rows; ``np.argpartition``-style selection with a
  stable tie order.
* reference - ``inference/clamp3_search.py``: every call loads each ``.npy`` file of the folder
  (``sorted(os.listdir)``, ``np.load(f).squeeze()``), stacks them, then ``torch.cosine_similarity``
  and ``torch.argsort`` over all rows. The top-level script runs it once per query, so a batch of
  100 queries costs 100 folder loads.

Random 768-d vectors. The reference's folder load is timed on ``--reference-files`` files written to
a temporary folder and its in-memory part on up to ``--reference-rows`` rows; both scale linearly in
the number of rows (one file read and one row of arithmetic per item), so larger sizes are
extrapolated from the per-row cost and marked "(extrapolated)". ``torch.cosine_similarity`` needs
about 3x the matrix in temporaries, which at 10^6 x 768 would be about 9 GB.

Usage: ``python benchmarks/search_latency.py [--sizes 100000 1000000] [--no-readme]``. The table is
printed and written to ``benchmarks/README.md`` under "Search latency" (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from clamp3.retrieval import top_k
from clamp3.retrieval.search import DEFAULT_CHUNK_ROWS

HEADING = "## Search latency"


def timed(function: Callable[[], object], repeats: int) -> float:
    """Median wall time in seconds of ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_unit_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    """Random float32 rows normalised in place, chunk by chunk (no second copy of the matrix)."""
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, dim), np.float32)
    for start in range(0, rows, DEFAULT_CHUNK_ROWS):
        block = rng.standard_normal((min(DEFAULT_CHUNK_ROWS, rows - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        matrix[start : start + len(block)] = block
    return matrix


def reference_load(folder: Path) -> tuple[list[str], torch.Tensor]:
    """The reference's folder load: every ``.npy`` file, keyed by the name before its first dot."""
    features = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".npy"):
            features[name.split(".")[0]] = np.load(folder / name).squeeze()
    return list(features), torch.tensor(np.array(list(features.values())))


def reference_rank(query: torch.Tensor, references: torch.Tensor, k: int) -> torch.Tensor:
    """The reference's scoring of one query: cosine against every row, full argsort, first k."""
    sims = torch.cosine_similarity(query.unsqueeze(0), references, dim=1)
    return torch.argsort(sims, descending=True)[:k]


def per_row_load_seconds(files: int, dim: int, repeats: int) -> float:
    """Seconds per file of the reference's folder load, measured on ``files`` files on disk."""
    vectors = random_unit_rows(files, dim, seed=3)
    with tempfile.TemporaryDirectory() as folder:
        for i, vector in enumerate(vectors):
            np.save(Path(folder) / f"ref{i:07d}.npy", vector[None, :])
        return timed(lambda: reference_load(Path(folder)), repeats) / files


def measure(args: argparse.Namespace) -> list[dict[str, object]]:
    load_per_row = per_row_load_seconds(args.reference_files, args.dim, args.repeats)
    print(f"reference folder load: {load_per_row * 1e6:.1f} us per file ({args.reference_files} files)")
    queries = random_unit_rows(args.batch, args.dim, seed=1)
    query = torch.from_numpy(queries[0])
    rows = []
    for size in args.sizes:
        database = random_unit_rows(size, args.dim, seed=2)
        one = timed(lambda db=database: top_k(queries[:1], db, args.k, normalized=True), args.repeats)
        batch = timed(lambda db=database: top_k(queries, db, args.k, normalized=True), args.repeats)
        measured_rows = min(size, args.reference_rows)
        refs = torch.from_numpy(database[:measured_rows])
        rank_seconds = timed(lambda r=refs: reference_rank(query, r, args.k), args.repeats)
        rank_seconds *= size / measured_rows
        reference_one = rank_seconds + load_per_row * size
        rows.append(
            {
                "size": size,
                "ours_one_ms": one * 1e3,
                "ours_batch_ms": batch * 1e3 / args.batch,
                "ref_compute_ms": rank_seconds * 1e3,
                "ref_one_ms": reference_one * 1e3,
                "compute_extrapolated": measured_rows < size,
                "load_extrapolated": args.reference_files < size,
            }
        )
        del database, refs
    return rows


def table(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    lines = [
        "| database | clamp3, 1 query | clamp3, batch of 100 | reference, 1 query "
        "(load folder + cosine + argsort) | reference, in-memory part only | speed-up (1 query) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        compute_mark = " (extrapolated)" if row["compute_extrapolated"] else ""
        one_mark = " (extrapolated)" if row["compute_extrapolated"] or row["load_extrapolated"] else ""
        lines.append(
            f"| {row['size']:,} x {args.dim} | {row['ours_one_ms']:.1f} ms "
            f"| {row['ours_batch_ms']:.2f} ms/query | {row['ref_one_ms']:,.0f} ms{one_mark} "
            f"| {row['ref_compute_ms']:,.0f} ms{compute_mark} "
            f"| {row['ref_one_ms'] / row['ours_one_ms']:,.0f}x |"
        )
    return "\n".join(lines)


def section(body: str, args: argparse.Namespace, load_average: str) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, load average {load_average} at the start"
    return (
        f"{HEADING}\n\n"
        f"`python benchmarks/search_latency.py` (top-{args.k} cosine search, random {args.dim}-d float32 "
        f"vectors; median of {args.repeats} runs after a warm-up; numpy {np.__version__}, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; {machine}).\n\n"
        f"{body}\n\n"
        "* clamp3: `clamp3.retrieval.top_k` on a matrix normalised once (what `VectorIndex` holds), "
        f"read {DEFAULT_CHUNK_ROWS} rows at a time; a batch of queries shares each pass over the matrix.\n"
        "* reference: `inference/clamp3_search.py` loads every `.npy` file of the folder on each call, then "
        "`torch.cosine_similarity` and a full `torch.argsort`; its top-level script handles one query per "
        "call, so a batch of 100 costs 100 times the 1-query figure.\n"
        f"* The folder load was timed on {args.reference_files:,} files and the in-memory part on at most "
        f"{args.reference_rows:,} rows; larger sizes are those per-row costs times the row count (both steps "
        "are linear in the rows). At 10^6 rows the reference's cosine would also need about 9 GB of "
        "temporaries.\n"
        "* Timings on a shared machine (see the load average) vary by up to about 50 % between runs.\n"
    )


def write_readme(path: Path, text: str) -> None:
    """Replace the "Search latency" section of ``path`` (or append it; create the file if missing)."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-files", type=int, default=10_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--readme", type=Path, default=Path(__file__).with_name("README.md"))
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    load_average = (
        " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"
    )
    body = table(measure(args), args)
    print(body)
    if not args.no_readme:
        write_readme(args.readme, section(body, args, load_average))
        print(f"written to {args.readme}")


if __name__ == "__main__":
    main()
