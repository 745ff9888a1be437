"""Transposed copies of MusicXML scores (the open-data set's transposition)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from clamp3.errors import InputError
from clamp3.train.opendata.transpose import (
    INTERVALS,
    MAX_FIFTHS,
    choose_interval,
    key_signatures,
    transpose_musicxml,
)

SCORE = b"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part id="P1"><measure number="1">
<attributes><divisions>1</divisions><key><fifths>2</fifths><mode>major</mode></key></attributes>
<harmony><root><root-step>D</root-step></root><kind>major</kind><bass><bass-step>F</bass-step>
<bass-alter>1</bass-alter></bass></harmony>
<note><pitch><step>D</step><octave>4</octave></pitch><duration>1</duration></note>
<note><pitch><step>F</step><alter>1</alter><octave>4</octave></pitch><duration>1</duration></note>
<note><pitch><step>C</step><octave>5</octave></pitch><duration>1</duration><accidental>natural</accidental></note>
<note><pitch><step>B</step><alter>-1</alter><octave>3</octave></pitch><duration>1</duration>
<accidental>flat</accidental></note>
<note><rest/><duration>1</duration></note>
<note><unpitched><display-step>E</display-step><display-octave>4</display-octave></unpitched>
<duration>1</duration></note>
</measure></part></score-partwise>"""


def interval(name):
    return next(i for i in INTERVALS if i.name == name)


def pitches(xml: bytes) -> list[tuple[str, str | None, str, str | None]]:
    """``(step, alter, octave, accidental)`` of every pitched note."""
    root = ElementTree.fromstring(xml)
    return [
        (
            n.findtext("pitch/step"),
            n.findtext("pitch/alter"),
            n.findtext("pitch/octave"),
            n.findtext("accidental"),
        )
        for n in root.iter("note")
        if n.find("pitch") is not None
    ]


def test_intervals_move_key_signatures_along_the_line_of_fifths():
    fifths = {i.name: i.fifths for i in INTERVALS}
    assert fifths == {
        "m2": -5, "-m2": 5, "M2": 2, "-M2": -2, "m3": -3, "-m3": 3, "M3": 4, "-M3": -4, "P4": -1, "-P4": 1,
    }  # fmt: skip


def test_a_major_second_up_spells_every_pitch_in_the_new_key():
    moved = transpose_musicxml(SCORE, interval("M2"))
    assert pitches(moved) == [
        ("E", None, "4", None),
        ("G", "1", "4", None),
        ("D", None, "5", "natural"),
        ("C", None, "4", "natural"),
    ]
    root = ElementTree.fromstring(moved)
    assert key_signatures(moved) == [4] and root.findtext(".//key/mode") == "major"
    assert (root.findtext(".//root-step"), root.findtext(".//root-alter")) == ("E", None)
    assert (root.findtext(".//bass-step"), root.findtext(".//bass-alter")) == ("G", "1")
    assert root.findtext(".//unpitched/display-step") == "E"  # drums keep their place


def test_a_minor_third_down_crosses_the_octave_and_adds_flats_and_sharps():
    moved = transpose_musicxml(SCORE, interval("-m3"))
    assert pitches(moved) == [
        ("B", None, "3", None),
        ("D", "1", "4", None),
        ("A", None, "4", "natural"),
        ("G", None, "3", "natural"),
    ]
    assert key_signatures(moved) == [5]
    assert pitches(transpose_musicxml(moved, interval("m3"))) == pitches(SCORE)


def test_the_interval_is_drawn_from_the_seed_and_keeps_key_signatures_readable():
    chosen = {choose_interval([2], f"piece{n}", 42) for n in range(40)}
    assert len(chosen) > 5 and chosen <= set(INTERVALS)
    assert choose_interval([2], "piece1", 42) == choose_interval([2], "piece1", 42)
    assert all(abs(5 + i.fifths) <= MAX_FIFTHS for n in range(40) if (i := choose_interval([5], f"p{n}", 1)))
    assert {choose_interval([5], f"p{n}", 1).name for n in range(40)} <= {
        "m2",
        "-M2",
        "m3",
        "-M3",
        "P4",
        "-P4",
    }
    assert choose_interval([6, -6], "piece", 42) is None


def test_malformed_scores_and_too_many_accidentals_are_refused_by_name():
    with pytest.raises(InputError, match=r"^tune.xml: not well-formed MusicXML"):
        transpose_musicxml(b"<score-partwise>", interval("M2"), name="tune.xml")
    sharp = SCORE.replace(b"<fifths>2</fifths>", b"<fifths>6</fifths>")
    with pytest.raises(InputError, match=r"^tune.xml: a key signature transposed by M2 has 8 accidentals"):
        transpose_musicxml(sharp, interval("M2"), name="tune.xml")
    double = SCORE.replace(b"<step>F</step><alter>1</alter>", b"<step>E</step><alter>2</alter>")
    assert pitches(transpose_musicxml(double, interval("-M2")))[1] == ("D", "2", "4", None)
    with pytest.raises(InputError, match="E transposed by M2 needs more than a double accidental"):
        transpose_musicxml(double, interval("M2"), name="tune.xml")


def test_corpus_scores_transpose_as_music21_transposes_them():
    pytest.importorskip("music21")
    from music21 import converter

    from clamp3.preprocess.abc_convert import abc_to_musicxml, read_musicxml
    from clamp3.train.opendata.analysis import quiet
    from clamp3.train.opendata.corpus import collection_pieces

    pieces = [*collection_pieces("oneills1850")[::400], *collection_pieces("chorales")[:2]]
    for piece in pieces:
        xml = abc_to_musicxml(piece.abc).text.encode() if piece.abc else read_musicxml(piece.musicxml)
        step = choose_interval(key_signatures(xml), piece.id, 42)
        with quiet():
            expected = converter.parseData(xml, format="musicxml").transpose(step.name)
            moved = converter.parseData(transpose_musicxml(xml, step), format="musicxml")
        names = [[p.nameWithOctave for n in s.recurse().notes for p in n.pitches] for s in (expected, moved)]
        assert names[0] == names[1] and len(names[0]) > 50, piece.id
