"""Items/s of ``Library.add`` in one process and on Ray Data (a local runtime) with 1 and 2 actors.

The files are ``--copies`` copies of the demo library's scores (``src/clamp3/demo_data/library/scores``),
each made unique (see
``benchmarks/library.py``), embedded with the bundled ``default`` model, no cache, into a fresh library
per run. Ray runs are timed from ``add`` to its end, so they include the actors' start (importing torch,
loading the model); ``one_file_s`` is the same run on one file (about that start alone), and
``items_per_s_after_start`` the rate without it. The local runtime itself is started once beforehand
(``ray_init_s``).
One CPU actor has one torch thread; the single process has torch's default threads.

Usage: ``python benchmarks/distributed.py WORK [--copies 6]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from library import unique_copies

from clamp3.cli.demo import DEFAULT_LIBRARY


def timed_add(work: Path, name: str, folder: Path, **ray_options) -> dict:
    from clamp3.library import Library

    uri = work / f"library-{name}"
    shutil.rmtree(uri, ignore_errors=True)
    library = Library.create(uri, model="default")
    started = time.perf_counter()
    report = library.add([folder], cache=False, **ray_options)
    seconds = time.perf_counter() - started
    if report.failures:
        raise SystemExit(f"{name}: {len(report.failures)} file(s) failed, first: {report.failures[0]}")
    return {
        "items": report.embedded,
        "s": round(seconds, 2),
        "items_per_s": round(report.embedded / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--copies", type=int, default=6)
    args = parser.parse_args()
    import ray

    work = args.work.resolve()
    folder = work / "scores"
    shutil.rmtree(folder, ignore_errors=True)
    files = unique_copies(sorted((DEFAULT_LIBRARY / "scores").glob("*")), folder, args.copies)
    results: dict = {"files": len(files), "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    results["single_process"] = timed_add(work, "here", folder)
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    results["ray_init_s"] = round(time.perf_counter() - started, 2)
    one = work / "one"
    shutil.rmtree(one, ignore_errors=True)
    one.mkdir()
    shutil.copy(files[0], one)
    for workers in (1, 2):
        result = timed_add(work, f"ray-{workers}", folder, ray="local", ray_workers=workers)
        result["one_file_s"] = timed_add(work, f"ray-{workers}-one", one, ray="local", ray_workers=workers)[
            "s"
        ]
        result["items_per_s_after_start"] = round(result["items"] / (result["s"] - result["one_file_s"]), 2)
        results[f"ray_{workers}_workers"] = result
    ray.shutdown()
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
