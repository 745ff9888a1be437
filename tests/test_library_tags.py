"""Tags of music files for the library index: ABC, MusicXML, MIDI and audio, good and hostile files."""

import sys
import time
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

import clamp3.library.tags as tags_module
from clamp3.cli.demo import DEFAULT_LIBRARY as EXAMPLES
from clamp3.library.tags import MAX_CHARS, Tags, interleaved_bars, read_tags
from clamp3.modality import FileKind
from clamp3.preprocess.sheet import abc_file_tunes, sheet_to_interleaved

COLLECTION = """\
% a collection of two tunes
T:My Collection
O:Ireland
C:Trad.

X:1
T:First Tune
T:The Other Name
C:Anon
R:reel
N:a note % a comment
K:D
T:Part B
DEFG|ABcd|

X:2
T:Second Tune
R:jig
Z:me
+:and you
M:6/8
K:G
GAB|
"""

MUSICXML = """\
<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="4.0">
  <movement-title>  Das   Lied </movement-title>
  <identification>
    <creator type="composer">Franz Schubert</creator>
    <creator type="lyricist">Wilhelm Müller</creator>
    <creator type="arranger">A. N. Other</creator>
    <rights>Public domain</rights>
  </identification>
  <part-list><score-part id="P1"><part-name>Voice</part-name></score-part></part-list>
  <part id="P1"><measure number="1"><note><rest/><duration>4</duration></note></measure></part>
</score-partwise>
"""


def _write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_abc_tunes_are_keyed_by_pipeline_ids(tmp_path):
    path = _write(tmp_path / "two.abc", COLLECTION)
    tags = read_tags(path, FileKind.ABC)
    assert list(tags) == [tune.id for tune in abc_file_tunes(path)] == [f"{path}#1", f"{path}#2"]
    first, second = tags[f"{path}#1"], tags[f"{path}#2"]
    assert first.title == "First Tune"  # not the collection's T:, nor the body's "Part B"
    assert first.composer == "Anon"  # the tune's C: replaces the file header's
    assert first.extra == {
        "subtitle": "The Other Name",
        "origin": "Ireland",
        "rhythm": "reel",
        "notes": "a note",
        "key": "D",
    }
    assert second.title == "Second Tune"
    assert second.composer == "Trad."  # the file header's C: is every tune's default
    assert second.extra == {
        "origin": "Ireland",
        "rhythm": "jig",
        "transcription": "me and you",
        "meter": "6/8",
        "key": "G",
    }
    assert first.duration_s is None and first.bars is None


def test_abc_without_x_is_one_item(tmp_path):
    path = _write(tmp_path / "lone.abc", "T:  Lone   Tune \nC:Someone\nM:3/4\nK:A\nABc|\n")
    assert read_tags(path, FileKind.ABC) == {
        str(path): Tags(title="Lone Tune", composer="Someone", extra={"meter": "3/4", "key": "A"})
    }


def test_abc_examples():
    path = EXAMPLES / "scores" / "the-blue-garters.abc"
    tags = read_tags(path, FileKind.ABC)
    assert list(tags) == [f"{path}#1514"]
    tune = tags[f"{path}#1514"]
    assert tune.title == "Blue Garters, The"
    assert tune.extra["subtitle"] == "na gairteini.de gorm."
    assert tune.extra["rhythm"] == "reel"
    assert tune.extra["book"] == "\"O'Neill's Dance Music of Ireland, 1514\""
    assert tune.extra["transcription"] == "transcribed by John B. Walsh, walsh@math.ubc.ca 8/23/96"
    rakes = read_tags(EXAMPLES / "scores" / "the-rakes-of-clonmel.abc", FileKind.ABC)
    (clonmel,) = rakes.values()
    assert clonmel.title == "The Rakes of Clonmel."
    assert clonmel.extra["transcription"] == "Transcribed by Tom Keays (htkeays@mailbox.syr.edu) | abc 1.6"


def test_values_are_cut_and_blank_ones_dropped(tmp_path):
    path = _write(tmp_path / "long.abc", f"X:1\nT:{'x' * 5000}\nC:   \nO:\nK:C\nC|\n")
    (tune,) = read_tags(path, FileKind.ABC).values()
    assert tune.title == "x" * MAX_CHARS
    assert tune.composer is None
    assert tune.extra == {"key": "C"}


@pytest.mark.parametrize(
    ("name", "title", "composer"),
    [
        ("the-morning-air.musicxml", "The Morning Air", "Traditional"),
        ("bwv324-meine-seel-erhebet-den-herrn.musicxml", "bwv324.mxl", "J.S. Bach"),
        ("bwv396-nun-sich-der-tag-geendet-hat.musicxml", "bwv396.mxl", "J.S. Bach"),
    ],
)
def test_musicxml_examples(name, title, composer):
    path = EXAMPLES / "scores" / name
    assert read_tags(path, FileKind.MUSICXML) == {str(path): Tags(title=title, composer=composer)}


@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_musicxml_creators_rights_and_movement_title(tmp_path, suffix):
    path = tmp_path / f"lied{suffix}"
    if suffix == ".mxl":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/container.xml", "<container/>")
            archive.writestr("lied.xml", MUSICXML)
    else:
        _write(path, MUSICXML)
    assert read_tags(path, FileKind.MUSICXML) == {
        str(path): Tags(
            title="Das Lied",
            composer="Franz Schubert",
            extra={"lyricist": "Wilhelm Müller", "arranger": "A. N. Other", "rights": "Public domain"},
        )
    }


def test_musicxml_work_title_wins_and_movement_is_kept(tmp_path):
    text = MUSICXML.replace(
        "<movement-title>", "<work><work-title>Winterreise</work-title></work><movement-title>"
    )
    path = _write(tmp_path / "w.xml", text)
    tags = read_tags(path, FileKind.MUSICXML)[str(path)]
    assert tags.title == "Winterreise"
    assert tags.extra["movement"] == "Das Lied"


def test_musicxml_entities_are_refused(tmp_path):
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY l0 "ha">{laughs}]>'
    bomb += "<score-partwise><work><work-title>&l9;</work-title></work></score-partwise>"
    external = '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    external += "<score-partwise><work><work-title>&e;</work-title></work></score-partwise>"
    start = time.perf_counter()
    assert read_tags(_write(tmp_path / "bomb.xml", bomb), FileKind.MUSICXML) == {}
    assert read_tags(_write(tmp_path / "external.xml", external), FileKind.MUSICXML) == {}
    assert time.perf_counter() - start < 1


def test_midi_examples():
    path = EXAMPLES / "midi" / "bwv330-herr-ich-habe-missgehandelt.mid"
    tags = read_tags(path, FileKind.MIDI)[str(path)]
    assert tags.extra == {"tracks": "Soprano | Alto | Tenor | Bass"}
    assert tags.title is None  # track 0 has no name
    assert tags.duration_s == pytest.approx(mido.MidiFile(path).length) == pytest.approx(26.0)
    plover = EXAMPLES / "midi" / "the-grey-plover.mid"
    tags = read_tags(plover, FileKind.MIDI)[str(plover)]
    assert tags.extra == {}  # its one track name is empty
    assert tags.duration_s == pytest.approx(32.5)


def test_midi_names_texts_and_title(tmp_path):
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name="Größe".encode().decode("latin-1")),  # UTF-8 bytes
            mido.MetaMessage("copyright", text="(c) 1999 Someone"),
            mido.MetaMessage("text", text="first"),
            mido.MetaMessage("text", text="second"),
            mido.MetaMessage("set_tempo", tempo=250000),
        ]
    )
    piano = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name="Piano"),
            mido.Message("note_on", note=60, velocity=80),
            mido.Message("note_off", note=60, time=4 * 480),
        ]
    )
    midi.tracks.extend([conductor, piano])
    path = tmp_path / "song.mid"
    midi.save(path)
    tags = read_tags(path, FileKind.MIDI)[str(path)]
    assert tags.title == "Größe"
    assert tags.extra == {
        "tracks": "Größe | Piano",
        "text": "first | second",
        "copyright": "(c) 1999 Someone",
    }
    assert tags.duration_s == pytest.approx(1.0)  # 4 beats at 240 bpm


@pytest.mark.parametrize("name", ["bwv396-nun-sich-der-tag-geendet-hat.ogg", "the-blue-garters.ogg"])
def test_audio_examples(name):
    path = EXAMPLES / "audio" / name
    tags = read_tags(path, FileKind.AUDIO)[str(path)]
    assert tags.duration_s == pytest.approx(sf.info(str(path)).duration, abs=0.05)
    assert tags.title is None and tags.extra == {}  # the files carry only libsndfile's encoder tag


def _flac(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    sf.write(str(path), np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return path


def test_flac_tags_round_trip(tmp_path):
    mutagen = pytest.importorskip("mutagen")
    path = _flac(tmp_path / "song.flac")
    audio = mutagen.File(str(path), easy=True)
    audio["title"] = "  A   Song "
    audio["artist"] = ["Singer", "Band"]
    audio["composer"] = "Writer"
    audio["album"] = "Album"
    audio["date"] = "2001"
    audio["tracknumber"] = "3"
    audio["comment"] = "not kept"
    audio.save()
    assert read_tags(path, FileKind.AUDIO) == {
        str(path): Tags(
            title="A Song",
            composer="Writer",
            extra={"artist": "Singer | Band", "album": "Album", "date": "2001", "tracknumber": "3"},
            duration_s=pytest.approx(0.5),
        )
    }


def test_wav_id3_tags(tmp_path):
    pytest.importorskip("mutagen")
    from mutagen.id3 import TCOM, TIT2, TPE1
    from mutagen.wave import WAVE

    path = tmp_path / "song.wav"
    sf.write(str(path), np.zeros(4000, dtype=np.float32), 8000)
    wave = WAVE(str(path))
    wave.add_tags()
    for frame in (
        TIT2(encoding=3, text="Wave"),
        TCOM(encoding=3, text="Writer"),
        TPE1(encoding=3, text="Band"),
    ):
        wave.tags.add(frame)
    wave.save()
    tags = read_tags(path, FileKind.AUDIO)[str(path)]
    assert (tags.title, tags.composer, tags.extra) == ("Wave", "Writer", {"artist": "Band"})
    assert tags.duration_s == pytest.approx(0.5)


def test_audio_without_mutagen_has_duration_only(tmp_path, monkeypatch):
    path = _flac(tmp_path / "plain.flac", seconds=0.25)
    monkeypatch.setitem(sys.modules, "mutagen", None)  # import mutagen now raises ImportError
    assert read_tags(path, FileKind.AUDIO) == {str(path): Tags(duration_s=pytest.approx(0.25))}


@pytest.mark.parametrize("kind", [FileKind.TEXT, FileKind.MTF, FileKind.IMAGE, FileKind.FEATURES])
def test_kinds_without_tags(tmp_path, kind):
    path = _write(tmp_path / "file", "ticks_per_beat 480\n")
    assert read_tags(path, kind) == {str(path): Tags()}


def _truncated(path: Path, size: int, tmp_path: Path) -> Path:
    return _write(tmp_path / f"cut-{path.name}", path.read_bytes()[:size])


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("nul.abc", b"X:1\nT:Title\x00\nK:C\nC|\n", FileKind.ABC),
        ("empty.abc", b"", FileKind.ABC),
        ("garbage.musicxml", b"\x00\xff<score-partwise><<<", FileKind.MUSICXML),
        ("garbage.mxl", b"PK\x03\x04 not a zip archive", FileKind.MUSICXML),
        ("garbage.mid", b"MThd\x00\x00\x00\x06\x00\x01\xff\xff", FileKind.MIDI),
        ("missing.mid", None, FileKind.MIDI),
    ],
)
def test_bad_files_give_no_tags(tmp_path, name, data, kind):
    path = tmp_path / name if data is None else _write(tmp_path / name, data)
    assert read_tags(path, kind) == {}


def test_truncated_examples_give_no_tags(tmp_path):
    score = EXAMPLES / "scores" / "the-morning-air.musicxml"
    midi = EXAMPLES / "midi" / "bwv330-herr-ich-habe-missgehandelt.mid"
    assert read_tags(_truncated(score, 200, tmp_path), FileKind.MUSICXML) == {}
    assert read_tags(_truncated(midi, 100, tmp_path), FileKind.MIDI) == {}


@pytest.mark.parametrize("suffix", [".ogg", ".flac", ".wav", ".mp3", ".m4a"])
def test_garbage_audio_gives_empty_tags(tmp_path, suffix):
    path = _write(tmp_path / f"noise{suffix}", np.random.default_rng(0).bytes(4096))
    assert read_tags(path, FileKind.AUDIO) == {str(path): Tags()}
    cut = _truncated(EXAMPLES / "audio" / "the-blue-garters.ogg", 64, tmp_path)
    assert read_tags(cut, FileKind.AUDIO) == {str(cut): Tags()}


def test_abc_header_copied_to_too_many_tunes_is_refused(tmp_path, monkeypatch):
    """split_abc_tunes copies the file header in front of every tune: a long header and many tunes would
    take header x tunes characters, which are not spent beyond MAX_ABC_HEADER_COPIES."""
    path = _write(tmp_path / "many.abc", "N:" + "x" * 98 + "\n" + "X:1\nT:t\n" * 20)
    assert len(read_tags(path, FileKind.ABC)) == 20
    monkeypatch.setattr(tags_module, "MAX_ABC_HEADER_COPIES", 100 * 20 - 1)
    assert read_tags(path, FileKind.ABC) == {}


@pytest.mark.parametrize(
    ("body", "bars"),
    [
        ("CDEF|GABc|cBAG|FEDC|]", 4),
        # a pickup counts as a bar of its own: 1 + 4 (the last bar is short by the pickup's beat)
        ("G|CDEF|GABc|cBAG|FED|]", 5),
    ],
)
def test_interleaved_bars_of_a_tune(tmp_path, body, bars):
    path = _write(tmp_path / "tune.abc", f"X:1\nT:Bars\nM:4/4\nL:1/4\nK:C\n{body}\n")
    (item,) = sheet_to_interleaved(path)
    assert interleaved_bars(item.text) == bars


def test_interleaved_bars_of_a_four_voice_chorale():
    path = EXAMPLES / "scores" / "bwv324-meine-seel-erhebet-den-herrn.musicxml"
    (item,) = sheet_to_interleaved(path)
    # 36 <measure> elements in 4 parts: 9 bars, each line holding one bar of every voice
    assert path.read_text(encoding="utf-8").count("<measure ") == 36
    assert interleaved_bars(item.text) == 9
