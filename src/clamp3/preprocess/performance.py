"""Performance MIDI: messages placed in seconds rather than in beats.

Renderings, transcription-like noise and transcriptions all write MIDI this way: one type-0 track at
120 bpm with 480 ticks per beat (one tick is 1/960 s).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import mido

from clamp3.errors import InputError

TICKS_PER_BEAT = 480
TEMPO = 500000


def read_midi(data: bytes, name: str = "<midi>") -> mido.MidiFile:
    try:
        return mido.MidiFile(file=io.BytesIO(data))
    except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise InputError(name, f"unreadable MIDI ({exc})") from exc


def timed_messages(midi: mido.MidiFile) -> list[tuple[float, mido.Message]]:
    """The channel messages of all tracks with their times in seconds (the file's tempo map applied)."""
    now, timed = 0.0, []
    for msg in midi:
        now += msg.time
        if not msg.is_meta and msg.type != "sysex":
            timed.append((now, msg))
    return timed


def write_performance(timed: list[tuple[float, mido.Message]]) -> mido.MidiFile:
    """A type-0 file at 120 bpm holding ``(seconds, message)`` pairs (sorted by time)."""
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0)])
    ticks_per_second = TICKS_PER_BEAT * 1_000_000 / TEMPO
    last = 0
    for seconds, msg in sorted(timed, key=lambda pair: pair[0]):
        tick = round(seconds * ticks_per_second)
        track.append(msg.copy(time=tick - last))
        last = tick
    return mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT, tracks=[track])


@dataclass(frozen=True)
class Note:
    start: float
    end: float
    pitch: int
    velocity: int


def notes_of(midi: mido.MidiFile) -> list[Note]:
    """The sounding notes of a file in seconds (drums excluded), in order of onset."""
    started: dict[tuple[int, int], tuple[float, int]] = {}
    notes = []
    for when, msg in timed_messages(midi):
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            if key in started:  # a repeated note-on ends the previous one
                begin, velocity = started.pop(key)
                notes.append(Note(begin, when, msg.note, velocity))
            started[key] = (when, msg.velocity)
        elif key in started:
            begin, velocity = started.pop(key)
            notes.append(Note(begin, when, msg.note, velocity))
    return sorted(notes, key=lambda note: (note.start, note.pitch))
