"""Segment-level search with the bundled model: ``locate`` finds where an excerpt (ABC bars, a MIDI or an
audio excerpt) sits in its piece, and ``search --segments`` names each hit's best passage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from clamp3.api import Session, locate, search
from clamp3.cli.demo import DEMO_DATA
from clamp3.errors import Clamp3Error, InputError
from clamp3.modality import FileKind
from clamp3.preprocess.midi import midi_to_mtf, mtf_to_midi_bytes, read_midi
from clamp3.preprocess.synth import FLUID_R3, render
from clamp3.preprocess.windows import BAR, SECOND, Span, WindowSettings, abc_bars, abc_excerpt, mtf_excerpt

SCORES = DEMO_DATA / "library" / "scores"
MIDI = DEMO_DATA / "library" / "midi"
RATE = 22050


@pytest.fixture(scope="module")
def session():
    return Session.open("default", cache=False)


@pytest.fixture(scope="module")
def reel(session):
    """The interleaved ABC of the Alhambra reel (16 bars)."""
    path = SCORES / "the-alhambra-reel.abc"
    items, failures = session.pipeline.items_from_files([(path, FileKind.ABC)])
    assert not failures and len(abc_bars(items[0].data)[1]) == 16
    return items[0].data


def _check_ranking(spans, count: int) -> None:
    assert [hit.rank for hit in spans] == list(range(1, count + 1))
    scores = [hit.score for hit in spans]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0 + 1e-5


def test_an_abc_excerpt_is_found_at_its_bars(session, reel, tmp_path):
    query = tmp_path / "bars-6-10.abc"
    query.write_text(abc_excerpt(reel, 6, 10))  # five bars, not a window of the piece
    result = locate(query, SCORES / "the-alhambra-reel.abc", model=session.model, cache=False)
    best = result.spans[0]
    assert best.span.unit == BAR and best.span.overlap(Span(6, 10, BAR)) >= 0.5
    # 4-bar windows every 2 bars and 8-bar windows every 4: 7 + 3 distinct spans over 16 bars
    _check_ranking(result.spans, 10)
    assert {(h.span.start, h.span.end) for h in result.spans} >= {(1, 4), (13, 16), (1, 8), (9, 16)}
    assert best.score > result.spans[-1].score + 0.1


def test_locate_json_of_a_midi_excerpt_in_seconds(run, tmp_path):
    piece = MIDI / "the-grey-plover.mid"
    query = tmp_path / "excerpt.mid"
    query.write_bytes(mtf_to_midi_bytes(mtf_excerpt(midi_to_mtf(piece, m3_compatible=True), 11.0, 19.0)))
    result = run("locate", query, piece, "--json", "-m", "default", "--no-cache", "--quiet")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert all(set(line) == {"rank", "score", "start", "end", "unit", "id"} for line in lines)
    assert [line["rank"] for line in lines] == list(range(1, len(lines) + 1))
    assert [line["score"] for line in lines] == sorted((line["score"] for line in lines), reverse=True)
    best = lines[0]
    assert best["unit"] == SECOND and best["id"] == str(piece)
    assert Span(best["start"], best["end"], SECOND).overlap(Span(11.0, 19.0, SECOND)) >= 0.5
    # the 32-second piece in 6-second windows every 3 s and 12-second windows every 6 s
    assert len(lines) == 10 + 5 and max(line["end"] for line in lines) == 32.0
    top = run("locate", query, piece, "--json", "-k", "3", "-m", "default", "--quiet")
    assert [json.loads(line) for line in top.output.splitlines()] == lines[:3]


def test_an_audio_excerpt_is_found_in_the_recording(session, tmp_path):
    samples = render(read_midi(MIDI / "bwv330-herr-ich-habe-missgehandelt.mid"), FLUID_R3, RATE, 60.0)
    piece = tmp_path / "bwv330.wav"
    sf.write(piece, samples, RATE)
    for start in (3.0, 16.0):
        query = tmp_path / f"from-{start:g}.wav"
        sf.write(query, samples[int(start * RATE) : int((start + 8) * RATE)], RATE)
        best = locate(query, piece, model=session.model, cache=False).spans[0]
        assert best.span.unit == SECOND and best.span.overlap(Span(start, start + 8, SECOND)) >= 0.5, start


def test_a_text_query_ranks_every_passage_and_windows_are_settings(session):
    windows = WindowSettings(bars=((2, 2),), seconds=((6.0, 3.0),))
    result = locate(
        None, SCORES / "the-alhambra-reel.abc", text="an Irish reel", model=session.model, windows=windows
    )
    assert [(h.span.start, h.span.end) for h in sorted(result.spans, key=lambda h: h.span.start)] == [
        (a, a + 1) for a in range(1, 16, 2)
    ]
    _check_ranking(result.spans, 8)
    assert "LocateResult(query='an Irish reel'" in repr(result)


def test_search_with_segments_names_the_best_passage(session, reel, tmp_path, run):
    query = tmp_path / "bars-9-12.abc"
    query.write_text(abc_excerpt(reel, 9, 12))
    plain = search(query, [SCORES], model=session.model, k=3)
    found = search(query, [SCORES], model=session.model, k=3, segments=True)
    assert found.hits[0].path == f"{SCORES / 'the-alhambra-reel.abc'}#1"  # tune 1 of the file
    assert found.hits[0].span == Span(9, 12, BAR) and found.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(hit.span is None for hit in plain.hits)
    # "max" never scores a piece below its global score
    global_scores = {hit.path: hit.score for hit in search(query, [SCORES], model=session.model, k=20).hits}
    assert all(hit.score >= global_scores[hit.path] - 1e-6 for hit in found.hits)
    windows_only = search(query, [SCORES], model=session.model, k=3, segments=True, combine="window")
    assert windows_only.hits[0].span == Span(9, 12, BAR)

    result = run("search", query, SCORES, "--segments", "--json", "-k", "2", "-m", "default", "--quiet")
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert (hits[0]["start"], hits[0]["end"], hits[0]["unit"]) == (9, 12, "bar")
    table = run("search", query, SCORES, "--segments", "-k", "1", "-m", "default")
    assert "bars 9-12" in table.output


def test_locate_refuses_what_has_no_passages(session, tmp_path, run):
    text = tmp_path / "notes.txt"
    text.write_text("a calm chorale\n")
    with pytest.raises(InputError, match="no passages to locate"):
        locate(None, text, text="a reel", model=session.model)
    result = run("locate", "--text", "a reel", tmp_path / "missing.abc", "-m", "default")
    assert result.exit_code != 0 and "missing.abc" in result.output and "Traceback" not in result.output
    usage = run("locate", "--text", "a reel", text, text, "-m", "default")
    assert usage.exit_code == 2 and "give QUERY and PIECE, or --text and PIECE" in usage.output
    bad = run("locate", "--text", "a reel", text, "--bar-windows", "4", "-m", "default")
    assert bad.exit_code == 2 and "SIZE:HOP" in bad.output
    with pytest.raises(Clamp3Error, match="precomputed vectors"):
        vectors = tmp_path / "v"
        vectors.mkdir()
        np.save(vectors / "a.npy", np.ones((1, 384), np.float32))
        search(None, [vectors], text="a reel", model=session.model, segments=True)


def test_four_bars_are_found_in_a_long_piece(session, tmp_path):
    """Windows are not much longer than short queries: 4 bars at odd places of an 85-bar piece (five
    demo tunes' bars one after the other under the first one's header)."""
    header, bars = None, []
    for name in ("the-alhambra-reel", "the-blue-garters", "globe-hornpipe", "the-men-from-ulster"):
        items, _ = session.pipeline.items_from_files([(SCORES / f"{name}.abc", FileKind.ABC)])
        own_header, own_bars = abc_bars(items[0].data)
        header, bars = header or own_header, bars + own_bars
    items, _ = session.pipeline.items_from_files([(SCORES / "the-custom-house-jig.abc", FileKind.ABC)])
    bars += abc_bars(items[0].data)[1]
    assert len(bars) == 85
    piece = tmp_path / "long.abc"
    piece.write_text("\n".join([*header, *bars]) + "\n")
    for first in (18, 58, 64):
        query = tmp_path / f"bars-{first}.abc"
        query.write_text(abc_excerpt(piece.read_text(), first, first + 3))
        best = locate(query, piece, model=session.model, cache=False).spans[0]
        assert best.span.overlap(Span(first, first + 3, BAR)) >= 0.5, (first, best.span)
