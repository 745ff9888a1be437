"""The failures the music21-corpus conversion sweep found (evaluation/convert_sweep.py), in small inputs.

Each case is a minimal copy of what made a corpus file fail: schubert/Lindenbaum.xml (a lyric line named
"chorus"), trecento/PMFC_06_8-In Verde Prato.xml (a metronome mark without a tempo),
trecento/PMFC_13_07-Gloria Laus Honor.xml (an empty <accidental>), ryansMammoth's Highland flings (an
invisible barline ``[|]`` before the final one) and airdsAirs/book4.abc#0722 (a text line in the header).
"""

import pytest

from clamp3.errors import InputError
from clamp3.preprocess.abc_interleave import abc_to_interleaved, trim_end_runs
from clamp3.preprocess.abc_tunes import stray_header_line
from clamp3.preprocess.sheet import musicxml_to_interleaved, tune_to_interleaved

WHOLE_C = 'L:1/8\nM:4/4\nK:C\nV:1 treble nm="Voice"\n[V:1]c8|\n'
"""What xml2abc and the pipeline make of :func:`_score` without extras."""


def _score(note_extra: str = "", measure_extra: str = "") -> bytes:
    """A one-note MusicXML score, with ``note_extra`` inside the note and ``measure_extra`` before it."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>Voice</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>1</divisions><key><fifths>0</fifths></key>
        <time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef>
      </attributes>
      {measure_extra}
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>4</duration><type>whole</type>
        {note_extra}</note>
    </measure>
  </part>
</score-partwise>
""".encode()


def test_plain_score_needs_no_repair():
    assert musicxml_to_interleaved(_score()).text == WHOLE_C
    assert musicxml_to_interleaved(_score()).warnings == ()


def test_named_lyric_line_is_numbered_and_converted():
    lyric = '<lyric number="{}"><syllabic>single</syllabic><text>la</text></lyric>'
    named = musicxml_to_interleaved(_score(lyric.format("1") + lyric.format("chorus")), source="s.xml")
    numbered = musicxml_to_interleaved(_score(lyric.format("1") + lyric.format("2")), source="s.xml")
    assert named.text == numbered.text == WHOLE_C
    assert named.warnings == (
        "xml2abc: route: repaired MusicXML (xml2abc failed: ValueError: invalid literal for int() with "
        "base 10: 'chorus')",
        "xml2abc: repaired: lyric line 'chorus' numbered 2 (xml2abc reads only numbered lines)",
    )
    assert numbered.warnings == ()


def test_metronome_mark_without_tempo_is_left_out():
    relation = (
        '<direction placement="above"><direction-type><metronome><beat-unit>quarter</beat-unit>'
        "<beat-unit>quarter</beat-unit><beat-unit-dot/></metronome></direction-type></direction>"
    )
    result = musicxml_to_interleaved(_score(measure_extra=relation), source="s.xml")
    assert result.text == WHOLE_C
    assert result.warnings == (
        "xml2abc: route: repaired MusicXML (xml2abc failed: TypeError: expected string or bytes-like "
        "object, got 'NoneType')",
        "xml2abc: repaired: left out a metronome mark without a tempo (quarter = quarter., part P1, "
        "measure 1)",
    )


def test_empty_accidental_is_named_as_the_files_fault():
    with pytest.raises(InputError) as error:
        musicxml_to_interleaved(_score("<accidental></accidental>"), source="s.xml")
    assert error.value.reason == (
        "invalid MusicXML: an <accidental> without a value (part P1, measure 1); the schema requires one "
        "such as sharp or flat, and xml2abc cannot read the note"
    )


def test_invisible_barline_before_the_final_one_converts():
    tune = 'X:1\nT:t\nM:2/4\nL:1/8\nK:C\n|: ABcd |1 efga :|2 efgf "D.C."[|]|]\n'
    result = tune_to_interleaved(tune, source="t.abc#1")
    assert result.text == 'L:1/8\nM:2/4\nK:C\nV:1 treble \n[V:1]|:ABcd|1\n[V:1]efga:|2\n[V:1]efgf"^D.C."|]\n'
    assert result.warnings == (
        "xml2abc: empty measure in part 1, measure 4, it should contain at least a rest to advance the time!",
        "route: end bars trimmed (Error in stripping empty bars: list index out of range; the empty bars "
        "at the ends of voices were dropped)",
    )


def test_text_line_in_the_header_is_reported_and_its_empty_bars_dropped():
    tune = "X:1\nT:t\nM:2/4\nL:1/8\nI (1) :| (2) ||\nK:G\nGABc | dedB |]\n"
    assert stray_header_line(tune) == "I (1) :| (2) ||"
    result = tune_to_interleaved(tune, source="t.abc#1")
    assert result.text == "L:1/8\nM:2/4\nK:C\nV:1 treble \n[V:1]:|[K:G] GABc|\n[V:1]dedB|]\n"
    assert (
        "abc2xml: the header has a line that is no field, 'I (1) :| (2) ||'; the music is read from there on"
        in (result.warnings)
    )
    assert result.warnings[-1].startswith("route: end bars trimmed (")


def test_header_without_stray_lines():
    assert stray_header_line("X:1\nT:t\n% a comment\nM:2/4\nK:G\nGABc |]\n") is None


def test_end_runs_keep_the_barlines_stripping_keeps():
    lines = ["K:C\n", "V:1\n", " :| || ABcd |\n", "efga || |]\n", "V:2\n", "ABcd || efga |]\n"]
    assert trim_end_runs(lines) == [
        "K:C\n",
        "V:1\n",
        " :| ABcd |\n",
        "efga |]\n",
        "V:2\n",
        "ABcd || efga |]\n",
    ]


def test_empty_bar_inside_the_music_is_named():
    with pytest.raises(InputError) as error:
        abc_to_interleaved("X:1\nL:1/8\nM:2/4\nK:C\nV:1\nABcd || | efga |]\n", source="t.abc")
    assert error.value.reason == (
        "Unequal bar elements (an empty bar '|| |' inside the music, which abctoolkit's bar splitter "
        "cannot take)"
    )
