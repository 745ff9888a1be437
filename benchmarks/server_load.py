"""A bounded load test of ``clamp3 serve`` on loopback: text queries from concurrent clients.

A library of ``--items`` vectors (a two-level mixture, as in ``benchmarks/library.py``) for the bundled
``default`` model is made once in ``WORK``; ``clamp3 serve`` is started on a free loopback port as a
separate process and warmed up with ``--warmup`` queries sent the same way (its memory is also taken
before them: ``rss_cold_mb``); then ``--queries`` distinct text queries (so that each one runs the text
tower; none comes from the cache) are sent by ``--clients`` threads. Reported: p50 / p95 latency,
errors, requests/s and the server's resident memory before and after the measured queries. The server is
stopped at the end; nothing leaves the machine.

Usage: ``python benchmarks/server_load.py WORK [--items 10000] [--queries 500] [--clients 16]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from library import mixture

WORDS = [
    "calm",
    "lively",
    "Irish",
    "reel",
    "jig",
    "waltz",
    "chorale",
    "piano",
    "fiddle",
    "slow",
    "minor",
    "dance",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def ensure_library(work: Path, items: int) -> Path:
    from clamp3.library import Library

    uri = work / f"server-load-{items}"
    if uri.exists() and len(Library.open(uri)) == items:
        return uri
    library = Library.open(uri) if uri.exists() else Library.create(uri, model="default")
    vectors = mixture(7, items, library.dim, 200)
    library.add_vectors([f"item{i:06d}" for i in range(items)], vectors, kinds=["abc"] * items)
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100, help="Queries sent before the measured ones.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    uri = ensure_library(args.work, args.items)
    port = free_port()
    env = {**os.environ, "CLAMP3_CACHE_DIR": str(args.work / f"server-load-cache-{time.time_ns()}")}
    command = [sys.executable, "-m", "clamp3", "serve", "--library", str(uri), "--port", str(port), "--quiet"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                httpx.get(f"{base}/api/stats", timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        httpx.post(f"{base}/api/search", json={"text": "warm up", "k": 10}, timeout=60).raise_for_status()
        cold = rss_mb(server.pid)
        rng = np.random.default_rng(0)
        texts = [f"{i} " + " ".join(rng.choice(WORDS, size=4)) for i in range(args.queries + args.warmup)]

        def query(text: str) -> tuple[float, int]:
            started = time.perf_counter()
            answer = httpx.post(f"{base}/api/search", json={"text": text, "k": 10}, timeout=120)
            ok = answer.status_code == 200 and len(answer.json()["hits"]) == 10
            return time.perf_counter() - started, 0 if ok else 1

        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(query, texts[args.queries :]))  # the same load, to fill caches and pools
            before = rss_mb(server.pid)
            started = time.perf_counter()
            results = list(pool.map(query, texts[: args.queries]))
        wall = time.perf_counter() - started
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = np.array([seconds for seconds, _ in results])
    report = {
        "items": args.items,
        "queries": args.queries,
        "clients": args.clients,
        "p50_ms": round(1000 * float(np.quantile(latencies, 0.5)), 1),
        "p95_ms": round(1000 * float(np.quantile(latencies, 0.95)), 1),
        "errors": int(sum(errors for _, errors in results)),
        "requests_per_s": round(args.queries / wall, 1),
        "rss_cold_mb": round(cold),
        "rss_before_mb": round(before),
        "rss_after_mb": round(after),
        "rss_growth": round(after / before - 1, 3),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
