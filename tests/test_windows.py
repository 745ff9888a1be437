"""Windows of pieces for segment-level search: bars of interleaved ABC, seconds of MTF and features."""

import numpy as np
import pytest

from clamp3.preprocess.midi import midi_to_mtf, mtf_to_midi_bytes
from clamp3.preprocess.windows import (
    BAR,
    SECOND,
    Span,
    WindowSettings,
    abc_bars,
    abc_excerpt,
    abc_windows,
    feature_windows,
    mtf_excerpt,
    mtf_seconds,
    mtf_windows,
    window_starts,
)

ABC = "L:1/8\nM:4/4\nK:G\nV:1 treble\n" + "".join(f"[V:1]bar{i} G2 A2|\n" for i in range(1, 11))

# 120 bpm until 2 s, then 60 bpm: one note per beat on beats 0..5, a note held across 4-7 s
MTF = "\n".join(
    [
        "ticks_per_beat 100",
        "set_tempo 500000 0",
        "program_change 0 0 41",
        "note_on 0 0 60 90",
        "note_off 100 0 60 0",  # 0.0-0.5 s
        "note_on 0 0 62 90",
        "note_off 100 0 62 0",  # 0.5-1.0 s
        "note_on 0 0 64 90",
        "note_off 100 0 64 0",  # 1.0-1.5 s
        "note_on 0 0 65 90",
        "note_off 100 0 65 0",  # 1.5-2.0 s
        "set_tempo 1000000 0",
        "note_on 0 0 67 90",
        "note_off 100 0 67 0",  # 2-3 s
        "note_on 0 0 69 90",
        "note_off 100 0 69 0",  # 3-4 s
        "note_on 0 0 71 90",
        "note_off 300 0 71 0",  # 4-7 s
        "end_of_track 0",
    ]
)


def _notes(mtf: str) -> list[int]:
    return [
        int(line.split()[3])
        for line in mtf.splitlines()
        if line.startswith("note_on ") and line.split()[4] != "0"
    ]


def test_bars_are_the_body_lines_numbered_from_one():
    header, bars = abc_bars(ABC)
    assert header == ["L:1/8", "M:4/4", "K:G", "V:1 treble"]
    assert len(bars) == 10 and bars[0].startswith("[V:1]bar1 ")
    excerpt = abc_excerpt(ABC, 3, 5)
    assert excerpt.splitlines() == [*header, "[V:1]bar3 G2 A2|", "[V:1]bar4 G2 A2|", "[V:1]bar5 G2 A2|"]
    with pytest.raises(ValueError, match="outside the piece's 10 bars"):
        abc_excerpt(ABC, 9, 11)


def test_window_starts_cover_the_piece_and_end_at_its_end():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]
    assert window_starts(3, 4, 2) == [0]  # a short piece is one window


def test_abc_windows_of_every_size_with_their_bars():
    windows = abc_windows(ABC, ((4, 2), (8, 4)))
    spans = [(w.span.start, w.span.end) for w in windows]
    assert spans == [(1, 4), (1, 8), (3, 6), (3, 10), (5, 8), (7, 10)]
    assert all(w.span.unit == BAR for w in windows)
    third = windows[2]
    assert third.data == abc_excerpt(ABC, 3, 6)
    assert abc_windows("X:1\nK:C\n", ((4, 2),)) == []  # no bar lines, no windows


def test_mtf_seconds_follow_the_tempo_map():
    assert mtf_seconds(MTF) == pytest.approx(7.0)


def test_mtf_excerpt_keeps_the_state_closes_held_notes_and_is_valid_midi():
    excerpt = mtf_excerpt(MTF, 2.0, 5.0)
    lines = excerpt.splitlines()
    assert lines[0] == "ticks_per_beat 100"
    # the state in force at 2 s, with delta 0: the second tempo and the program
    assert "set_tempo 1000000 0" in lines[1:4] and "program_change 0 0 41" in lines[1:4]
    assert _notes(excerpt) == [67, 69, 71]  # notes starting in [2, 5) s
    assert lines[-2] == "note_off 100 0 71 0"  # the held note closed at 5 s (100 ticks after its start)
    assert lines[-1] == "end_of_track 0"
    # a valid MIDI file whose own MTF has the same notes and lasts 3 s
    midi = mtf_to_midi_bytes(excerpt)
    again = midi_to_mtf(midi, m3_compatible=True)
    assert _notes(again) == [67, 69, 71]
    assert mtf_seconds(again) == pytest.approx(3.0)


def test_mtf_excerpt_drops_the_ends_of_notes_started_before_it():
    excerpt = mtf_excerpt(MTF, 0.25, 1.0)
    assert _notes(excerpt) == [62]
    assert sum(1 for line in excerpt.splitlines() if line.startswith("note_off")) == 1


def test_mtf_windows_by_seconds():
    windows = mtf_windows(MTF, ((3.0, 2.0),))
    assert [(w.span.start, w.span.end) for w in windows] == [(0.0, 3.0), (2.0, 5.0), (4.0, 7.0)]
    assert all(w.span.unit == SECOND for w in windows)
    assert _notes(windows[0].data) == [60, 62, 64, 65, 67]
    assert _notes(windows[2].data) == [71]  # the last window keeps the final events
    with pytest.raises(ValueError, match="not MTF"):
        mtf_windows("X:1\n", ((3.0, 2.0),))


def test_feature_windows_are_whole_rows():
    features = np.arange(20, dtype=np.float32)[:, None].repeat(3, axis=1)
    windows = feature_windows(features, 0.5, ((2.0, 1.0),))
    assert [(w.span.start, w.span.end) for w in windows][:3] == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    assert windows[-1].span.end == 10.0
    np.testing.assert_array_equal(windows[1].data, features[2:6])
    # windows shorter than a row are one row
    assert len(feature_windows(features[:3], 5.0, ((3.0, 1.0),))[0].data) == 1


def test_span_overlap_counts_bars_whole():
    assert Span(3, 6, BAR).overlap(Span(5, 8, BAR)) == pytest.approx(2 / 6)
    assert Span(1, 4, BAR).overlap(Span(1, 4, BAR)) == 1.0
    assert Span(0.0, 6.0, SECOND).overlap(Span(3.0, 9.0, SECOND)) == pytest.approx(3 / 9)
    assert Span(0.0, 1.0, SECOND).overlap(Span(2.0, 3.0, SECOND)) == 0.0
    with pytest.raises(ValueError):
        Span(1, 2, BAR).overlap(Span(1.0, 2.0, SECOND))


def test_settings_are_checked_and_round_trip():
    settings = WindowSettings(bars=((2, 1),), seconds=((5.0, 5.0),))
    assert WindowSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="hop"):
        WindowSettings(bars=((4, 6),))
    with pytest.raises(ValueError, match="at least one"):
        WindowSettings(seconds=())


def test_windows_carry_the_state_as_a_separate_excerpt_would():
    """mtf_windows carries the state from one window to the next; each window must still equal the
    excerpt cut on its own (windows that end with the piece run to its final event)."""
    changes = [
        f"program_change 0 0 {p}\nset_tempo {400000 + 50000 * p} 0\nnote_on 0 0 {60 + p} 90\n"
        f"note_off 100 0 {60 + p} 0"
        for p in range(12)
    ]
    mtf = "ticks_per_beat 100\n" + "\n".join(changes) + "\nend_of_track 0"
    length = mtf_seconds(mtf)
    windows = mtf_windows(mtf, ((2.0, 1.0), (3.0, 3.0)))
    assert len(windows) > 6
    for window in windows:
        end = float("inf") if window.span.end >= round(length, 3) else window.span.end
        assert window.data == mtf_excerpt(mtf, window.span.start, end), window.span
