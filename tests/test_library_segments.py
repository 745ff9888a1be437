"""A library with segments: the windows of every piece are kept beside the items, follow them through
change, move, copy, removal and pruning, and are searched (``search(segments=True)``, ``locate``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import clamp3
from clamp3.errors import Clamp3Error, UnknownItemError
from clamp3.library import Library
from clamp3.library.store import vectors_of
from clamp3.preprocess.windows import BAR, SECOND, Span, WindowSettings
from tests.test_library import mixed_music
from tests.tiny import tiny_model_with_tokenizer

WINDOWS = WindowSettings(bars=((2, 1),), seconds=((4.0, 2.0),))


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny-segments-model"))


@pytest.fixture(scope="module")
def model(model_dir):
    return clamp3.load_model(str(model_dir))


@pytest.fixture()
def music(reference_dir, tmp_path):
    root = mixed_music(reference_dir, tmp_path / "music")
    (root / "broken.mid").unlink()
    return root


@pytest.fixture()
def library(model_dir, model, reference_dir, tmp_path):
    library = Library.create(tmp_path / "lib", model=str(model_dir), segments=WINDOWS)
    library.use_model(model)
    return library


@pytest.fixture()
def options(reference_dir):
    from clamp3.pipeline import PipelineOptions

    return PipelineOptions(mert=str(reference_dir / "mert" / "model"))


def _segments(library: Library) -> dict[str, dict]:
    """Segment id -> row (vector included); no duplicate ids."""
    table = library._store.query(
        ["id", "item_id", "path", "kind", "start", "end", "unit", "vector"], table=library._store.segments
    )
    rows = table.drop(["vector"]).to_pylist()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "duplicate segment rows"
    for row, vector in zip(rows, vectors_of(table), strict=True):
        row["vector"] = vector
    return {row["id"]: row for row in rows}


def _items(library: Library) -> dict[str, dict]:
    return {row["id"]: row for row in library._store.query(["id", "path", "kind"]).to_pylist()}


def test_every_piece_gets_its_windows(library, music, options):
    report = library.add([music], options=options, cache=False)
    assert report.failures == [] and report.embedded == 7  # three tunes, MIDI, audio, two texts
    items, segments = _items(library), _segments(library)
    by_item: dict[str, list[dict]] = {}
    for row in segments.values():
        by_item.setdefault(row["item_id"], []).append(row)
    kinds = {items[i]["kind"] for i in by_item}
    assert kinds == {"abc", "midi", "audio"}  # texts have no windows
    assert set(by_item) == {i for i, row in items.items() if row["kind"] != "text"}
    for item_id, rows in by_item.items():
        unit = BAR if items[item_id]["kind"] == "abc" else SECOND
        assert {row["unit"] for row in rows} == {unit}
        assert all(row["path"] == items[item_id]["path"] for row in rows)
    tune = next(i for i, row in items.items() if row["path"].endswith("three.abc#1"))
    # four bars in windows of two bars every bar: 1-2, 2-3, 3-4
    assert sorted((row["start"], row["end"]) for row in by_item[tune]) == [(1, 2), (2, 3), (3, 4)]
    norms = np.linalg.norm(np.stack([row["vector"] for row in segments.values()]), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert library.stats()["segments"] == {**WINDOWS.to_dict(), "rows": len(segments)}
    assert library.windows == WINDOWS

    # a window's own vector finds that window first, in locate and in search
    row = next(r for r in by_item[tune] if r["start"] == 2)
    label, spans = library.locate(items[tune]["path"], vector=row["vector"])
    assert label == "vector" and spans[0].span == Span(2, 3, BAR) and spans[0].score == pytest.approx(1.0)
    assert [hit.rank for hit in spans] == [1, 2, 3] and spans[0].id == tune
    hits = library.search(vector=row["vector"], k=3, segments=True, combine="window")
    assert (hits[0].id, hits[0].span) == (tune, Span(2, 3, BAR)) and hits[0].score == pytest.approx(1.0)
    texts = library.search(vector=row["vector"], k=10, segments=True, kinds={"text"})
    assert {hit.kind for hit in texts} == {"text"} and all(hit.span is None for hit in texts)
    with pytest.raises(UnknownItemError):
        library.locate("no-such-item", text="a reel")


def test_segments_follow_changes_moves_copies_and_removals(library, music, options):
    library.add([music], options=options, cache=False)
    before = _segments(library)
    midi_rows = {k: r for k, r in before.items() if r["kind"] == "midi"}

    # a tune removed from the ABC file: its windows go with it
    text = (music / "scores" / "three.abc").read_text()
    (music / "scores" / "three.abc").write_text(text[: text.index("X:3")])
    library.add([music], options=options, cache=False)
    after = _segments(library)
    assert not any(r["path"].endswith("#3") for r in after.values())
    assert len(after) == len(before) - 3

    # a moved file keeps its windows under its new path, a copy gets its own
    shutil.move(music / "bwv66.mid", music / "moved.mid")
    shutil.copy(music / "moved.mid", music / "copy.mid")
    report = library.add([music], options=options, cache=False, prune=True)
    assert report.embedded == 0 and report.reused == 2
    now = _segments(library)
    moved = [r for r in now.values() if r["path"].endswith("moved.mid")]
    copied = [r for r in now.values() if r["path"].endswith("copy.mid")]
    assert not any(r["path"].endswith("bwv66.mid") for r in now.values())
    assert len(moved) == len(copied) == len(midi_rows)
    old_vectors = sorted(tuple(np.round(r["vector"], 6)) for r in midi_rows.values())
    assert sorted(tuple(np.round(r["vector"], 6)) for r in moved) == old_vectors
    assert set(_items(library)) >= {r["item_id"] for r in now.values()}  # no window without its item

    # removing an item removes its windows; pruning a gone file removes its windows
    copy_id = copied[0]["item_id"]
    assert library.remove([copy_id]) == 1
    assert not any(r["item_id"] == copy_id for r in _segments(library).values())
    (music / "moved.mid").unlink()
    library.add([music], options=options, cache=False, prune=True)
    assert not any(
        r["kind"] == "midi" and r["path"].endswith("moved.mid") for r in _segments(library).values()
    )


def test_a_library_without_segments_says_how_to_get_them(model_dir, model, music, options, tmp_path):
    plain = Library.create(tmp_path / "plain", model=str(model_dir))
    plain.use_model(model)
    plain.add([music], options=options, cache=False)
    assert plain.windows is None and plain.stats()["segments"] is None
    with pytest.raises(Clamp3Error, match="keeps no segments.*library init --segments"):
        plain.search(text="a reel", segments=True)
    with pytest.raises(Clamp3Error, match="keeps no segments"):
        plain.locate(str(music / "bwv66.mid"), text="a reel")


def test_cli_init_with_window_sizes_and_locate_in_the_library(
    model_dir, music, reference_dir, tmp_path, run, monkeypatch
):
    lib = tmp_path / "cli-lib"
    made = run("library", "init", lib, "--model", model_dir, "--segments", "--bar-windows", "2:1,3:3")
    assert made.exit_code == 0 and "segments of 2 bars (hop 1), 3 bars (hop 3), 6 s (hop 3)" in made.output
    model = ["--model", model_dir, "--mert", reference_dir / "mert" / "model", "--quiet"]
    assert run("library", "add", music, "--library", lib, *model).exit_code == 0
    stats = json.loads(run("library", "stats", "--library", lib, "--json").output)
    assert stats["segments"]["bars"] == [[2, 1], [3, 3]] and stats["segments"]["rows"] > 0
    piece = str(music / "scores" / "three.abc") + "#1"
    located = run("locate", "--text", "a reel", piece, "--library", lib, "--json", *model)
    assert located.exit_code == 0, located.output
    spans = [json.loads(line) for line in located.output.splitlines()]
    # bars 1-2, 2-3, 3-4 and 1-3 (the last 3-bar window ends at bar 4: 2-4)
    assert sorted((s["start"], s["end"]) for s in spans) == [(1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]
    assert {s["unit"] for s in spans} == {"bar"} and [s["rank"] for s in spans] == [1, 2, 3, 4, 5]
    monkeypatch.chdir(music)  # a path relative to the working folder names the same item
    relative = run("locate", "--text", "a reel", "scores/three.abc#1", "--library", lib, "--json", *model)
    assert relative.output == located.output
    hits = run("library", "search", "--text", "a reel", "--library", lib, "--segments", "--json", *model)
    assert hits.exit_code == 0, hits.output
    rows = [json.loads(line) for line in hits.output.splitlines()]
    assert any(row.get("unit") == "second" for row in rows) and any(row.get("unit") == "bar" for row in rows)
    assert all("start" not in row for row in rows if row["modality"] == "text")
