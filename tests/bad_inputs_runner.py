"""Convert files one at a time, each in a forked child under a time limit, and report their peak memory.

Used by ``tests/test_bad_inputs.py``: ``python tests/bad_inputs_runner.py`` reads a JSON object from stdin::

    {"files": [...], "out_dir": "...", "mert": "<MERT folder>", "captioner": "<BLIP folder>",
     "time_limit_s": 20, "memory_headroom_mib": 2048, "parallel": 2}

and prints one JSON line per file: ``{"file", "outcome", "messages", "seconds", "peak_mib"}``. ``outcome`` is
``ok`` (``messages`` lists what was produced), ``error`` (``messages`` holds each ``InputError`` as its
one-line text), ``crash`` (another exception escaped: a bug), or ``timeout`` (killed at the time limit).

Each file goes the way ``clamp3 convert`` sends it: its kind is detected, then the converter for that kind
runs on it alone; text and ``.npy`` feature files, which no converter reads, go through their loaders.
The heavy modules are imported here, once, before forking, and torch runs on one thread (so forking is
safe and two children share the two cores). ``peak_mib`` is the child's peak resident memory
(``ru_maxrss`` from ``wait4``) minus that of a child that does nothing, i.e. what converting the file
cost. As a safety net the child's address space is capped at its size at fork plus the headroom, so a
runaway allocation fails with ``MemoryError`` instead of swapping the machine.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from clamp3 import hub  # noqa: F401  (the converters import these on first use: once here, not per child)
from clamp3.convert import CONVERTERS, ConvertOptions, convert
from clamp3.errors import InputError
from clamp3.modality import FileKind, detect_kind
from clamp3.preprocess import midi, sheet  # noqa: F401
from clamp3.preprocess.features import load_feature_file
from clamp3.preprocess.image import BlipCaptioner
from clamp3.preprocess.mert import MertExtractor
from clamp3.preprocess.text import read_text_file

POLL_S = 0.005


def _converter_for(kind: FileKind) -> str:
    if kind is FileKind.MUSICXML:
        return "xml2interleaved"
    return next(name for name, spec in CONVERTERS.items() if kind in spec.kinds)


def convert_one(path: Path, out_dir: Path, options: ConvertOptions) -> tuple[str, list[str]]:
    """``("ok", outputs)`` or ``("error", messages)`` for one file, as the module docstring describes."""
    kind = detect_kind(path)
    try:
        if kind is FileKind.TEXT:
            return "ok", [f"text: {len(read_text_file(path))} characters"]
        if kind is FileKind.FEATURES:
            return "ok", [f"features: shape {list(load_feature_file(path).shape)}"]
    except InputError as error:
        return "error", [str(error)]
    if kind is None:
        return "error", [f"{path}: unrecognised kind"]
    converter = _converter_for(kind)
    report = convert(converter, [path], out_dir, options)
    if report.failures:
        return "error", [str(failure) for failure in report.failures]
    return "ok", [f"{converter}: {output.name}" for output in report.written]


def _child(work: Callable[[], tuple[str, list[str]]], headroom: int, pipe: int) -> None:
    """Run ``work`` in the forked child and send its outcome up ``pipe``; never returns."""
    try:
        size = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = size + headroom if hard == resource.RLIM_INFINITY else min(size + headroom, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        outcome, messages = work()
    except BaseException as exc:  # everything that escapes is a bug of the converter under test
        outcome, messages = "crash", [f"{type(exc).__name__}: {' '.join(str(exc).split())}"]
    try:
        with os.fdopen(pipe, "w") as out:
            json.dump({"outcome": outcome, "messages": messages}, out)
    finally:
        os._exit(0)  # never back into the parent's code


class _Running:
    def __init__(self, name: str, work: Callable[[], tuple[str, list[str]]], headroom: int) -> None:
        read, write = os.pipe()
        self.name = name
        self.started = time.monotonic()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read)
            _child(work, headroom, write)
        os.close(write)
        self.pipe = read
        self.answer = b""

    def poll(self, time_limit: float) -> dict | None:
        """The result once the child has ended (killed past ``time_limit`` seconds), else ``None``."""
        self._drain()
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        timed_out = not pid and time.monotonic() - self.started >= time_limit
        if not pid and not timed_out:
            return None
        if timed_out:
            os.kill(self.pid, signal.SIGKILL)
            _, status, usage = os.wait4(self.pid, 0)
        seconds = time.monotonic() - self.started
        self._drain()
        os.close(self.pipe)
        if timed_out:
            result = {"outcome": "timeout", "messages": []}
        elif self.answer:
            result = json.loads(self.answer)
        else:
            result = {"outcome": "crash", "messages": [f"the child died (wait status {status})"]}
        return {"file": self.name, **result, "seconds": round(seconds, 3), "peak_kib": usage.ru_maxrss}

    def _drain(self) -> None:
        os.set_blocking(self.pipe, False)
        try:
            while chunk := os.read(self.pipe, 65536):
                self.answer += chunk
        except BlockingIOError:
            pass


def run(request: dict) -> None:
    torch.set_num_threads(1)
    # a first load imports and initialises what loading needs, once here rather than in every child
    MertExtractor.from_pretrained(request["mert"], device="cpu")
    BlipCaptioner.from_pretrained(request["captioner"], device="cpu")
    out_dir = Path(request["out_dir"])
    options = ConvertOptions(mert=request["mert"], captioner=request["captioner"], jobs=1, device="cpu")
    limit, headroom = request["time_limit_s"], request["memory_headroom_mib"] << 20
    idle = _Running("", lambda: ("ok", []), headroom)
    while (baseline := idle.poll(limit)) is None:
        time.sleep(POLL_S)
    pending = [Path(name) for name in request["files"]]
    running: list[_Running] = []
    while pending or running:
        while pending and len(running) < request["parallel"]:
            path = pending.pop(0)
            work = functools.partial(convert_one, path, out_dir / path.name, options)
            running.append(_Running(str(path), work, headroom))
        for child in list(running):
            result = child.poll(limit)
            if result is not None:
                running.remove(child)
                peak = (result.pop("peak_kib") - baseline["peak_kib"]) / 1024
                print(json.dumps({**result, "peak_mib": round(peak, 1)}), flush=True)
        time.sleep(POLL_S)


if __name__ == "__main__":
    run(json.load(sys.stdin))
