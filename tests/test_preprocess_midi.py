"""MIDI <-> MTF: byte parity with the reference fixtures, type 0/1/2 files, broken files, round trips."""

from __future__ import annotations

import io
import json
import random
import struct
import time
from collections import defaultdict
from pathlib import Path

import mido
import pytest

from clamp3.errors import InputError
from clamp3.preprocess.midi import (
    M3_DROPPED_META_TYPES,
    is_midi_path,
    merged_events,
    midi_to_mtf,
    mtf_to_midi,
    mtf_to_midi_bytes,
    read_midi,
)


@pytest.fixture(scope="module")
def midi2mtf(reference_dir: Path) -> Path:
    return reference_dir / "midi2mtf"


@pytest.fixture(scope="module")
def cases(midi2mtf: Path) -> list[dict[str, str]]:
    """The fixture index: one entry per MIDI file with its two expected MTF files."""
    return json.loads((midi2mtf / "index.json").read_text(encoding="utf-8"))


# --- hand-assembled Standard MIDI Files -------------------------------------------------------------


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack(">L", len(body)) + body


def smf(fmt: int, ticks_per_beat: int, *tracks: bytes) -> bytes:
    return chunk(b"MThd", struct.pack(">hhh", fmt, len(tracks), ticks_per_beat)) + b"".join(
        chunk(b"MTrk", track) for track in tracks
    )


def ev(delta: int, *data: int) -> bytes:
    return vlq(delta) + bytes(data)


def meta(delta: int, kind: int, payload: bytes) -> bytes:
    return vlq(delta) + bytes([0xFF, kind]) + vlq(len(payload)) + payload


def eot_track() -> bytes:
    return chunk(b"MTrk", eot())


def eot(delta: int = 0) -> bytes:
    return meta(delta, 0x2F, b"")


def tempo(delta: int, microseconds: int) -> bytes:
    return meta(delta, 0x51, microseconds.to_bytes(3, "big"))


# Type 0, explicit running status for note_on (incl. velocity 0) and pitchwheel, both sysex forms.
TYPE0 = smf(
    0,
    96,
    tempo(0, 500000)
    + ev(0, 0x90, 60, 100)
    + ev(96, 62, 80)
    + ev(0, 60, 0)
    + ev(48, 62, 0)
    + ev(0, 0xF0, 3, 1, 2, 0xF7)
    + ev(0, 0xF7, 2, 3, 4)
    + ev(0, 0xE0, 0x00, 0x40)
    + ev(10, 0x7F, 0x7F)
    + eot(),
)
TYPE0_MTF = """ticks_per_beat 96
set_tempo 500000 0
note_on 0 0 60 100
note_on 96 0 62 80
note_on 0 0 60 0
note_on 48 0 62 0
sysex 0 [1, 2]
sysex 0 [3, 4]
pitchwheel 0 0 0
pitchwheel 10 0 8191
end_of_track 0"""

# Type 1: the stable sort puts track 0's events first at equal ticks; the marker's delta (240) is lost
# in m3 mode; the last end_of_track's delta (20) ends the stream.
TYPE1 = smf(
    1,
    480,
    meta(0, 0x03, b"Lead") + tempo(0, 500000) + meta(240, 0x06, b"X") + tempo(240, 1000000) + eot(),
    ev(0, 0xC1, 40) + ev(0, 0x91, 69, 80) + ev(480, 0x81, 69, 64) + eot(20),
)
TYPE1_FULL = """ticks_per_beat 480
track_name Lead 0
set_tempo 500000 0
program_change 0 1 40
note_on 0 1 69 80
marker X 240
set_tempo 1000000 240
note_off 0 1 69 64
end_of_track 20"""
TYPE1_M3 = """ticks_per_beat 480
set_tempo 500000 0
program_change 0 1 40
note_on 0 1 69 80
set_tempo 1000000 240
note_off 0 1 69 64
end_of_track 20"""

# Type 2: the second sequence starts where the first one ends (its end_of_track, tick 112).
TYPE2 = smf(
    2,
    96,
    ev(0, 0x90, 60, 64) + ev(96, 0x80, 60, 64) + eot(16),
    tempo(0, 400000) + ev(5, 0x90, 64, 64) + ev(48, 0x80, 64, 64) + eot(),
)
TYPE2_MTF = """ticks_per_beat 96
note_on 0 0 60 64
note_off 96 0 60 64
set_tempo 400000 16
note_on 5 0 64 64
note_off 48 0 64 64
end_of_track 0"""


# --- reading MIDI back for the round trips (independent of the code under test) --------------------


def timeline(midi: mido.MidiFile, m3_compatible: bool = False) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) via mido's own merge; type 2 tracks are chained into one first.

    ``m3_compatible`` models the reference quirk: a dropped meta's delta is lost, so every later event
    comes that much earlier.
    """
    tracks = [[msg for track in midi.tracks for msg in track]] if midi.type == 2 else midi.tracks
    tick, out = 0, []
    for msg in mido.merge_tracks(tracks):
        if m3_compatible and msg.type in M3_DROPPED_META_TYPES:
            continue
        tick += msg.time
        out.append((tick, msg))
    return out


def notes(midi: mido.MidiFile, m3_compatible: bool = False) -> list[tuple[int, int, int, int, int | None]]:
    """Sorted (pitch, channel, velocity, on tick, off tick) of every note."""
    sounding: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    found = []
    for tick, msg in timeline(midi, m3_compatible):
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.channel, msg.note].append((tick, msg.velocity))
        elif msg.type in ("note_on", "note_off") and sounding[msg.channel, msg.note]:
            start, velocity = sounding[msg.channel, msg.note].pop(0)
            found.append((msg.note, msg.channel, velocity, start, tick))
    found += [(n, c, v, s, None) for (c, n), left in sounding.items() for s, v in left]
    return sorted(found)


def tempos(midi: mido.MidiFile, m3_compatible: bool = False) -> list[tuple[int, int]]:
    return [(tick, msg.tempo) for tick, msg in timeline(midi, m3_compatible) if msg.type == "set_tempo"]


def round_trip(source: Path | bytes, m3_compatible: bool) -> mido.MidiFile:
    """MIDI -> MTF -> MIDI bytes -> parsed MIDI."""
    data = mtf_to_midi_bytes(midi_to_mtf(source, m3_compatible))
    return mido.MidiFile(file=io.BytesIO(data))


# --- parity with the reference ----------------------------------------------------------------------


@pytest.mark.parametrize("m3_compatible", [True, False], ids=["m3", "full"])
def test_matches_reference_byte_for_byte(
    midi2mtf: Path, cases: list[dict[str, str]], m3_compatible: bool
) -> None:
    key = "mtf_m3_compatible" if m3_compatible else "mtf_not_m3_compatible"
    wrong = [
        case["midi"]
        for case in cases
        if midi_to_mtf(midi2mtf / case["midi"], m3_compatible).encode("utf-8")
        != (midi2mtf / case[key]).read_bytes()
    ]
    assert wrong == []


def test_fixture_index_covers_every_file(midi2mtf: Path, cases: list[dict[str, str]]) -> None:
    assert len(cases) == 10
    assert sorted(c["midi"] for c in cases) == sorted(
        f"midi/{p.name}" for p in (midi2mtf / "midi").glob("*.mid")
    )


def test_merge_equals_mido_merged_track(midi2mtf: Path, cases: list[dict[str, str]]) -> None:
    for case in cases:
        parsed = read_midi(midi2mtf / case["midi"])
        mine = [(delta, msg.copy(time=0).dict()) for delta, msg in merged_events(parsed)]
        theirs = [(msg.time, msg.copy(time=0).dict()) for msg in mido.merge_tracks(parsed.tracks)]
        assert mine == theirs, case["midi"]


def test_bytes_and_path_give_the_same_text(midi2mtf: Path) -> None:
    path = midi2mtf / "midi/mido_controls_sysex.mid"
    assert midi_to_mtf(path.read_bytes()) == midi_to_mtf(path) == midi_to_mtf(str(path))


# --- file types, running status, sysex --------------------------------------------------------------


def test_type0_running_status_and_sysex() -> None:
    assert midi_to_mtf(TYPE0, m3_compatible=False) == TYPE0_MTF
    assert midi_to_mtf(TYPE0) == TYPE0_MTF


def test_type1_stable_merge_and_m3_drops_meta_deltas() -> None:
    assert midi_to_mtf(TYPE1, m3_compatible=False) == TYPE1_FULL
    assert midi_to_mtf(TYPE1, m3_compatible=True) == TYPE1_M3


def test_type2_plays_tracks_one_after_another() -> None:
    assert midi_to_mtf(TYPE2, m3_compatible=False) == TYPE2_MTF
    assert midi_to_mtf(TYPE2) == TYPE2_MTF


def test_sysex_meta_text_escapes() -> None:
    data = smf(0, 24, meta(0, 0x01, "tab\there \\ café".encode()) + meta(0, 0x03, b"") + eot())
    assert midi_to_mtf(data, m3_compatible=False) == (
        "ticks_per_beat 24\ntext tab\\there \\\\ caf\\xc3\\xa9 0\ntrack_name  0\nend_of_track 0"
    )


@pytest.mark.parametrize("name", ["a.mid", "b.MID", "c.midi", "d.MIDI", "e.Mid", "dir.x/f.mId"])
def test_midi_suffixes_any_case(name: str) -> None:
    assert is_midi_path(name)


@pytest.mark.parametrize("name", ["a.kar", "a.mid.txt", "mid", "a.mtf", "a.smf"])
def test_other_suffixes_are_not_midi(name: str) -> None:
    assert not is_midi_path(name)


def test_upper_case_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "SONG.MID"
    path.write_bytes(TYPE0)
    assert midi_to_mtf(path, m3_compatible=False) == TYPE0_MTF


# --- broken files -----------------------------------------------------------------------------------


BROKEN = {
    "data_byte_over_127": (smf(0, 96, ev(0, 0x90, 60, 200) + eot()), "data byte must be in range 0..127"),
    "sysex_byte_over_127": (smf(0, 96, ev(0, 0xF0, 3, 1, 0x90, 0xF7) + eot()), "data byte"),
    "running_status_first": (smf(0, 96, ev(0, 60, 64) + eot()), "running status"),
    "undefined_status": (smf(0, 96, ev(0, 0xF4) + eot()), "undefined status byte 0xf4"),
    "bad_key_signature": (smf(0, 96, meta(0, 0x59, bytes([10, 0])) + eot()), "Could not decode key"),
    "short_tempo": (smf(0, 96, meta(0, 0x51, b"\x07") + eot()), "malformed event data"),
    "bad_smpte_rate": (smf(0, 96, meta(0, 0x54, bytes([0xE0, 0, 0, 0, 0])) + eot()), "malformed event"),
    "format_3": (smf(3, 96, eot()), "unsupported MIDI file format 3"),
    "not_midi": (b"RIFF\x00\x00\x00\x00WAVEfmt garbage that is no MIDI file", "MThd not found"),
    "no_track_chunk": (smf(1, 96, eot())[:14] + chunk(b"XTrk", eot()), "no MTrk header"),
    "truncated": (TYPE1[:-9], "truncated MIDI file"),
    "missing_tracks": (smf(1, 96, eot())[:10] + b"\x00\x05" + smf(1, 96, eot())[12:], "truncated"),
    "empty": (b"", "empty file"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_raises_input_error_naming_the_file(tmp_path: Path, case: str) -> None:
    data, reason = BROKEN[case]
    path = tmp_path / f"{case}.mid"
    path.write_bytes(data)
    with pytest.raises(InputError) as caught:
        midi_to_mtf(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message
    assert caught.value.path == str(path)


def test_a_header_declaring_65535_tracks_is_refused_at_once() -> None:
    data = b"MThd" + struct.pack(">IHHH", 6, 1, 65535, 96) + eot_track() * 3
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"^tracks.mid: the header declares 65535 tracks; more than 32767"):
        midi_to_mtf(data, name="tracks.mid")
    assert time.perf_counter() - started < 0.5
    declared = b"MThd" + struct.pack(">IHHH", 6, 1, 32767, 96) + eot_track() * 3
    with pytest.raises(InputError, match="truncated MIDI file"):
        midi_to_mtf(declared)


NOTELESS = {
    "no_events": smf(1, 96, eot(), eot()),
    "silent_note_on": smf(0, 96, tempo(0, 500000) + ev(0, 0x90, 60, 0) + ev(96, 0x80, 60, 0) + eot()),
    "controls_only": smf(0, 96, ev(0, 0xB0, 7, 100) + ev(0, 0xC0, 5) + eot(480)),
}


@pytest.mark.parametrize("case", sorted(NOTELESS))
def test_files_without_notes_convert_but_are_not_embedded(case: str) -> None:
    text = midi_to_mtf(NOTELESS[case])
    lines = text.splitlines()
    assert lines[0] == "ticks_per_beat 96" and lines[-1].startswith("end_of_track ")
    with pytest.raises(
        InputError, match=rf"^{case}.mid: no notes \(no note_on with a velocity\): nothing to embed$"
    ):
        midi_to_mtf(NOTELESS[case], name=f"{case}.mid", require_notes=True)


def test_one_sounding_note_is_enough_to_embed() -> None:
    assert midi_to_mtf(TYPE1, require_notes=True) == TYPE1_M3


def test_broken_bytes_name_the_given_name() -> None:
    with pytest.raises(InputError, match=r"^upload\.mid: invalid MIDI file near byte \d+: MThd not found"):
        midi_to_mtf(b"garbage bytes here", name="upload.mid")
    with pytest.raises(InputError, match=r"^<bytes>: "):
        midi_to_mtf(b"garbage bytes here")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file"):
        midi_to_mtf(tmp_path / "absent.mid")


def test_mutated_files_give_text_or_input_error(midi2mtf: Path) -> None:
    """Random byte damage never escapes as anything but InputError (and mostly does not crash at all)."""
    rng = random.Random(1234)
    sources = [TYPE0, TYPE1, TYPE2, (midi2mtf / "midi/mido_controls_sysex.mid").read_bytes()]
    outcomes = {"text": 0, "error": 0}
    for _ in range(400):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        try:
            text = midi_to_mtf(bytes(data), m3_compatible=rng.random() < 0.5)
        except InputError as exc:
            assert str(exc).startswith("<bytes>: ") and "\n" not in str(exc)
            outcomes["error"] += 1
        else:
            assert text.startswith("ticks_per_beat ") and text.isascii()
            outcomes["text"] += 1
    assert outcomes["text"] > 0 and outcomes["error"] > 0


# --- MTF -> MIDI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("m3_compatible", [True, False], ids=["m3", "full"])
def test_mtf_midi_mtf_is_identity(midi2mtf: Path, cases: list[dict[str, str]], m3_compatible: bool) -> None:
    for case in cases:
        text = midi_to_mtf(midi2mtf / case["midi"], m3_compatible)
        assert midi_to_mtf(mtf_to_midi_bytes(text), m3_compatible) == text, case["midi"]


@pytest.mark.parametrize("m3_compatible", [True, False], ids=["m3", "full"])
def test_round_trip_keeps_notes_tempi_and_resolution(
    midi2mtf: Path, cases: list[dict[str, str]], m3_compatible: bool
) -> None:
    """Exact for every file, except that m3 mode loses the delta times of dropped metas (see below)."""
    for case in cases:
        original = mido.MidiFile(midi2mtf / case["midi"])
        back = round_trip(midi2mtf / case["midi"], m3_compatible)
        assert back.ticks_per_beat == original.ticks_per_beat, case["midi"]
        assert notes(back) == notes(original, m3_compatible), case["midi"]
        assert tempos(back) == tempos(original, m3_compatible), case["midi"]
        assert len(notes(back)) > 0


def test_m3_round_trip_shifts_events_after_a_timed_marker(midi2mtf: Path) -> None:
    """The reference quirk: the dropped marker's 228-tick delta is lost, so later events move earlier."""
    path = midi2mtf / "midi/mido_controls_sysex.mid"
    original = mido.MidiFile(path)
    marker_tick = next(tick for tick, msg in timeline(original) if msg.type == "marker")

    def shift(tick: int | None) -> int | None:
        return tick - 228 if tick is not None and tick >= marker_tick else tick

    expected = sorted((p, c, v, shift(on), shift(off)) for p, c, v, on, off in notes(original))
    back = round_trip(path, m3_compatible=True)
    assert notes(back) == expected
    assert tempos(back) == [(tick, t) for tick, t in ((shift(a), b) for a, b in tempos(original))]
    assert notes(round_trip(path, m3_compatible=False)) == notes(original)


@pytest.mark.parametrize("data", [TYPE0, TYPE1, TYPE2], ids=["type0", "type1", "type2"])
@pytest.mark.parametrize("m3_compatible", [True, False], ids=["m3", "full"])
def test_round_trip_generated_files(data: bytes, m3_compatible: bool) -> None:
    original = mido.MidiFile(file=io.BytesIO(data))
    back = round_trip(data, m3_compatible)
    assert back.ticks_per_beat == original.ticks_per_beat
    assert tempos(back) == tempos(original, m3_compatible)
    assert notes(back) == notes(original, m3_compatible)


def test_type1_m3_round_trip_moves_events_after_the_marker() -> None:
    back = round_trip(TYPE1, m3_compatible=True)
    assert tempos(back) == [(0, 500000), (240, 1000000)]
    assert notes(back) == [(69, 1, 80, 0, 240)]
    assert notes(round_trip(TYPE1, m3_compatible=False)) == [(69, 1, 80, 0, 480)]


def test_round_trip_multitrack_running_status_file() -> None:
    """A generated 3-track file written with running status (several channels, overlapping notes)."""
    rng = random.Random(7)
    tracks = [tempo(0, 600000) + tempo(1000, 450000) + eot(5)]
    for channel in (0, 3, 9):
        body, status = b"", None
        for _ in range(40):
            kind = rng.choice([0x90, 0x80, 0xB0, 0xE0])
            byte = kind | channel
            data = (rng.randrange(40, 90), rng.randrange(0, 128))
            running = b"" if byte == status else bytes([byte])
            body += vlq(rng.choice([0, 0, 7, 30, 96])) + running + bytes(data)
            status = byte
        tracks.append(body + eot())
    data = smf(1, 192, *tracks)
    original = mido.MidiFile(file=io.BytesIO(data))
    assert sum(1 for t in original.tracks for m in t if m.type == "note_on") > 20
    for m3_compatible in (True, False):
        back = round_trip(data, m3_compatible)
        assert back.ticks_per_beat == 192
        assert notes(back) == notes(original)
        assert tempos(back) == [(0, 600000), (1000, 450000)]


def test_mtf_to_midi_reads_short_tuples_and_unknown_metas() -> None:
    text = (
        "ticks_per_beat 120\nsequencer_specific (5,) 0\nsequencer_specific () 3\nsysex 1 []\n"
        "unknown_meta 96 (1, 2, 3) 0\nunknown_meta 97 () 0\nsmpte_offset 29.97 1 2 3 4 5 0\n"
        "key_signature F#m 0\ntext a  b\\tc\\\\ caf\\xe9 2\ntrack_name  0\nend_of_track 4"
    )
    midi = mtf_to_midi(text)
    assert midi.type == 1 and midi.ticks_per_beat == 120 and len(midi.tracks) == 1
    track = midi.tracks[0]
    assert track[0] == mido.MetaMessage("sequencer_specific", data=(5,))
    assert track[1] == mido.MetaMessage("sequencer_specific", data=(), time=3)
    assert track[2] == mido.Message("sysex", data=(), time=1)
    assert (track[3].type_byte, track[3].data) == (96, (1, 2, 3))
    assert track[7].text == "a  b\tc\\ café" and track[7].time == 2
    assert track[8].name == ""
    assert midi_to_mtf(mtf_to_midi_bytes(text), m3_compatible=False) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("set_tempo 500000 0", "line 1: expected 'ticks_per_beat <integer>'"),
        ("", "line 1: expected"),
        ("ticks_per_beat 96\nnote_on 0 0 60", "line 2: note_on needs 4 values"),
        ("ticks_per_beat 96\n\nfoo 1 2", "line 3: unknown message type 'foo'"),
        ("ticks_per_beat 96\nnote_on 0 0 200 64", "line 2: data byte must be in range 0..127"),
        ("ticks_per_beat 96\nnote_on x 0 60 64", "line 2: expected an integer, not 'x'"),
        ("ticks_per_beat 96\nsysex 0 1, 2", "line 2: sysex needs 2 values"),
        ("ticks_per_beat 96\nkey_signature H 0", "line 2: invalid key 'H'"),
        ("ticks_per_beat 96\ntext \\u20ac 0", "line 2: meta text has characters outside latin-1"),
    ],
)
def test_bad_mtf_raises_input_error_with_line(text: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        mtf_to_midi(text, name="song.mtf")
    assert str(caught.value).startswith("song.mtf: " + reason)
