"""Performance MIDI: messages placed in seconds rather than in beats.

Renderings, transcription-like noise and transcriptions all write MIDI this way: one type-0 track at
120 bpm with 480 ticks per beat (one tick is 1/960 s).
"""

from __future__ import annotations

import io

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
