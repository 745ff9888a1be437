"""The library survives ``kill -9`` of a real ``clamp3 library add`` process, two writers at once, and a
search while another process writes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from clamp3.library import Library, LibrarySettings
from clamp3.library.store import vectors_of
from clamp3.preprocess.windows import WindowSettings
from tests.tiny import tiny_model_with_tokenizer

WORDS = ["a", "calm", "chorale", "for", "four", "voices", "an", "irish", "reel"]
TUNE = "X:{n}\nT:Tune {n}\nM:4/4\nL:1/8\nK:D\nDEFG AB{c}d|dcBA GFED|]\n"


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny-crash-model"))


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """36 texts and two ABC files of three tunes each: 42 items in 38 files."""
    root = tmp_path_factory.mktemp("crash-music")
    rng = random.Random(7)
    for i in range(36):
        (root / f"t{i:02d}.txt").write_text(" ".join(rng.choices(WORDS, k=4 + i % 5)) + "\n")
    for name, first in (("a.abc", 1), ("b.abc", 4)):
        notes = "cdefgab"
        (root / name).write_text("\n".join(TUNE.format(n=n, c=notes[n % 7]) for n in range(first, first + 3)))
    return root


def _add_command(library, music, model_dir) -> list[str]:
    return [
        sys.executable,
        "-m",
        "clamp3",
        "library",
        "add",
        str(music),
        "--library",
        str(library),
        "--model",
        str(model_dir),
        "--no-cache",
        "--quiet",
    ]


def _add_then_kill(command: list[str], ready, pause_s: float, poll_s: float = 0.01) -> bool:
    """Run ``command``; once ``ready()`` holds, wait ``pause_s`` and ``kill -9`` it if it still runs.
    Returns whether it was killed (it may finish first)."""
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            time.sleep(pause_s)
            break
        time.sleep(poll_s)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return killed


def _table(library_dir) -> dict[str, tuple[str, np.ndarray]]:
    store = Library.open(library_dir)._store
    table = store.query(["id", "path", "vector"])
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)) == store.count(), "duplicate or unreadable rows"
    vectors = np.stack(table["vector"].to_numpy(zero_copy_only=False))
    return {i: (p, v) for i, p, v in zip(ids, table["path"].to_pylist(), vectors, strict=True)}


def _assert_same(table, clean) -> None:
    assert sorted(table) == sorted(clean)
    for id_, (path, vector) in clean.items():
        assert table[id_][0] == path
        np.testing.assert_allclose(table[id_][1], vector, atol=1e-6)


@pytest.fixture(scope="module")
def clean(model_dir, music, tmp_path_factory):
    """The table of an uninterrupted build."""
    directory = tmp_path_factory.mktemp("clean") / "lib"
    Library.create(directory, model=str(model_dir), settings=LibrarySettings(batch_files=3))
    subprocess.run(_add_command(directory, music, model_dir), check=True, capture_output=True)
    table = _table(directory)
    assert len(table) == 42
    return table


def test_kill_9_at_random_points_then_rerun_equals_a_clean_build(model_dir, music, clean, tmp_path):
    directory = tmp_path / "lib"
    Library.create(directory, model=str(model_dir), settings=LibrarySettings(batch_files=2))
    rng = random.Random(3)
    kills, partial = 0, []
    for _ in range(3):
        start_version = Library.open(directory)._store.items.version
        wait_commits = rng.randint(1, 2)

        def committed(start_version=start_version, wait_commits=wait_commits) -> bool:
            return Library.open(directory)._store.items.version >= start_version + wait_commits

        # killed somewhere inside the next batch
        kills += _add_then_kill(_add_command(directory, music, model_dir), committed, rng.uniform(0, 0.3))
        partial.append(len(_table(directory)))  # readable after every kill, never a duplicate row
    assert kills >= 2 and any(0 < rows < 42 for rows in partial), partial
    subprocess.run(_add_command(directory, music, model_dir), check=True, capture_output=True)
    _assert_same(_table(directory), clean)


def _segment_table(library_dir, complete: bool = True) -> dict[str, tuple[str, np.ndarray]]:
    """Segment id -> (item id, vector). A kill between a batch's two commits (segments, then items) may
    leave windows of files whose items are not written yet (searches skip them, the next add completes
    them); ``complete`` checks there are none."""
    store = Library.open(library_dir)._store
    table = store.query(["id", "item_id", "vector"], table=store.segments)
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)), "duplicate segment rows"
    if complete:
        assert set(table["item_id"].to_pylist()) <= set(store.query(["id"])["id"].to_pylist())
    return dict(zip(ids, zip(table["item_id"].to_pylist(), vectors_of(table), strict=True), strict=True))


def test_kill_9_of_a_library_with_segments_then_rerun_equals_a_clean_build(model_dir, music, tmp_path):
    windows = WindowSettings(bars=((1, 1),))
    clean_dir = tmp_path / "clean"
    Library.create(clean_dir, model=str(model_dir), settings=LibrarySettings(batch_files=3), segments=windows)
    subprocess.run(_add_command(clean_dir, music, model_dir), check=True, capture_output=True)
    clean_items, clean_segments = _table(clean_dir), _segment_table(clean_dir)
    assert len(clean_segments) == 12  # six tunes of two bars, one window a bar
    directory = tmp_path / "lib"
    Library.create(directory, model=str(model_dir), settings=LibrarySettings(batch_files=1), segments=windows)
    rng = random.Random(5)
    kills = 0
    for _ in range(3):
        store = Library.open(directory)._store
        start = (store.items.version, store.segments.version)

        def committed(start=start) -> bool:
            store = Library.open(directory)._store
            return store.segments.version > start[1] + rng.randint(0, 1) and store.items.version > start[0]

        # killed between a batch's two commits, or later
        kills += _add_then_kill(
            _add_command(directory, music, model_dir), committed, rng.uniform(0, 0.2), poll_s=0.005
        )
        _segment_table(directory, complete=False)  # readable after every kill, never a duplicate row
    assert kills >= 2
    subprocess.run(_add_command(directory, music, model_dir), check=True, capture_output=True)
    _assert_same(_table(directory), clean_items)
    segments = _segment_table(directory)
    assert sorted(segments) == sorted(clean_segments)
    for id_, (item, vector) in clean_segments.items():
        assert segments[id_][0] == item
        np.testing.assert_allclose(segments[id_][1], vector, atol=1e-6)


def test_two_writers_at_once_both_finish_without_duplicates(model_dir, music, clean, tmp_path):
    directory = tmp_path / "lib"
    Library.create(directory, model=str(model_dir), settings=LibrarySettings(batch_files=3))
    processes = [
        subprocess.Popen(_add_command(directory, music, model_dir), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert any("waiting for another process writing to" in output for output in outputs)
    _assert_same(_table(directory), clean)


def test_a_search_during_add_sees_whole_batches_only(model_dir, music, tmp_path):
    directory = tmp_path / "lib"
    Library.create(directory, model=str(model_dir), settings=LibrarySettings(batch_files=4))
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(24):  # one row per file: every commit adds 4 rows
        (texts / f"{i:02d}.txt").write_text((music / f"t{i:02d}.txt").read_text())
    reader = Library.open(directory)
    probe = np.ones(24, np.float32)
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                seen.append(len(reader.search(vector=probe, k=100)))
            except BaseException as exc:  # any failure of a concurrent read fails the test
                errors.append(exc)
                return

    thread = threading.Thread(target=search)
    thread.start()
    try:
        subprocess.run(_add_command(directory, texts, model_dir), check=True, capture_output=True)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert seen[-1] == 24 and len(set(seen)) >= 3
    assert all(n % 4 == 0 for n in seen), sorted(set(seen))
    assert seen == sorted(seen)
