"""IVF-RQ against IVF-HNSW-SQ at 10^6 x 768 in LanceDB, each queried as ``Library.search`` queries.

Both indexes are built on copies of one table of mixture vectors (see ``library.py``); the timed queries
alternate between the variants (the order reversed every other query), so that the machine's load
weighs on all of them alike. Every result is saved in ``WORK/results.json`` as soon as it is measured,
so an interrupted run resumes.

Usage: ``python benchmarks/ann_index_types.py WORK [--rows 1000000] [--clusters 256]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import IvfHnswSq, IvfRq
from library import mixture

DIM = 768
CHUNK = 50_000
COLUMNS = ["id", "path", "kind", "title", "_distance"]
VARIANTS = [("rq", 10, 10), ("rq", 10, 3), ("rq", 10, None), ("hnsw", 10, 10), ("hnsw", 10, 3)]
VARIANTS += [("hnsw", 10, None), ("hnsw", 20, 3)]


def fill(db, rows: int, clusters: int) -> None:
    schema = pa.schema(
        [(name, pa.string()) for name in ("id", "path", "kind", "title")]
        + [("vector", pa.list_(pa.float32(), DIM))]
    )
    table = db.create_table("rq", schema=schema, mode="overwrite")
    for start in range(0, rows, CHUNK):
        ids = [f"{i:016x}" for i in range(start, start + CHUNK)]
        vectors = mixture(start + 1, CHUNK, DIM, clusters).ravel()
        columns = {"id": ids, "path": [f"/m/{i}.abc" for i in ids], "kind": ["abc"] * CHUNK}
        columns |= {
            "title": ["t"] * CHUNK,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors), DIM),
        }
        table.add(pa.table(columns))


def query(table, vector, nprobes: int, refine: int | None, exact: bool = False) -> list[str]:
    builder = table.search(vector, vector_column_name="vector").distance_type("dot").select(COLUMNS).limit(10)
    if exact:
        builder = builder.bypass_vector_index()
    else:
        builder = builder.nprobes(nprobes)
        builder = builder.refine_factor(refine) if refine else builder
    return builder.to_arrow()["id"].to_pylist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=256)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}

    def save() -> None:
        path.write_text(json.dumps(results, indent=1))

    db = lancedb.connect(str(args.work / "db"))
    if "filled" not in results:
        fill(db, args.rows, args.clusters)
        results["filled"] = True
        save()
    partitions = round(args.rows**0.5)
    for name, config in (("rq", IvfRq), ("hnsw", IvfHnswSq)):
        if f"{name}_build_s" in results:
            continue
        if name != "rq":
            shutil.rmtree(args.work / "db" / f"{name}.lance", ignore_errors=True)
            shutil.copytree(args.work / "db" / "rq.lance", args.work / "db" / f"{name}.lance")
        started = time.time()
        index = config(distance_type="dot", num_partitions=partitions)
        db.open_table(name).create_index("vector", config=index, replace=True)
        results[f"{name}_build_s"] = round(time.time() - started, 1)
        save()
    tables = {name: db.open_table(name) for name in ("rq", "hnsw")}
    for table in tables.values():
        for vector in mixture(2 * 10**9, 300, DIM, args.clusters):  # loads the partitions queries probe
            query(table, vector, 10, 10)
    queries = mixture(10**9, 200, DIM, args.clusters)
    exact = [query(tables["rq"], v, 0, None, exact=True) for v in queries[:50]]
    times = {variant: [] for variant in VARIANTS}
    recalls = {variant: [] for variant in VARIANTS}
    for i, vector in enumerate(queries):
        for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            started = time.perf_counter()
            found = query(tables[variant[0]], vector, variant[1], variant[2])
            times[variant].append(time.perf_counter() - started)
            if i < len(exact):
                recalls[variant].append(len(set(found) & set(exact[i])) / 10)
    results["load"] = os.getloadavg()
    results["latency"] = {
        f"{name}, nprobes {nprobes}, refine {refine}": {
            "p50_ms": round(1000 * statistics.median(times[(name, nprobes, refine)]), 2),
            "p95_ms": round(1000 * float(np.percentile(times[(name, nprobes, refine)], 95)), 2),
            "recall@10": round(float(np.mean(recalls[(name, nprobes, refine)])), 3),
        }
        for name, nprobes, refine in VARIANTS
    }
    save()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
