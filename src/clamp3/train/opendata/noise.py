"""Transcription-like damage to MIDI, so the symbolic tower learns to match what audio-to-MIDI gives.

An automatic transcription (basic-pitch, for instance) of a rendered tune differs from the score's MIDI
in predictable ways, which :func:`transcription_noise` imitates: no key or time signature, one piano
track at 120 bpm with performance timing, onsets and releases off by tens of milliseconds, some notes
missed, "ghost" notes at harmonics (an octave, an octave and a fifth) or next to a real note, and
velocities that are flat or follow loudness instead of the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

from clamp3.preprocess.performance import timed_messages, write_performance

GHOST_INTERVALS = (12, 19, 24, 1, -1, -12)


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


def transcription_noise(midi: mido.MidiFile, rng: np.random.Generator) -> mido.MidiFile:
    """A damaged copy of ``midi`` (see the module docstring); ``rng`` decides every change."""
    notes = notes_of(midi)
    tempo = rng.uniform(0.85, 1.15)
    drop, ghost = rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.15)
    flat = rng.random() < 0.5
    out: list[Note] = []
    for note in notes:
        start = max(0.0, note.start / tempo + rng.normal(0.0, 0.015))
        end = max(start + 0.03, note.end / tempo + rng.normal(0.0, 0.04))
        velocity = 80 if flat else int(np.clip(rng.normal(70, 20), 20, 127))
        if rng.random() >= drop:
            out.append(Note(start, end, note.pitch, velocity))
        if rng.random() < ghost:
            pitch = note.pitch + int(rng.choice(GHOST_INTERVALS))
            if 21 <= pitch <= 108:
                length = min(end - start, rng.uniform(0.05, 0.3))
                out.append(
                    Note(start + rng.uniform(0.0, 0.03), start + length, pitch, max(20, velocity - 30))
                )
    timed = [(0.0, mido.Message("program_change", channel=0, program=0))]
    for note in out:
        timed.append(
            (note.start, mido.Message("note_on", channel=0, note=note.pitch, velocity=note.velocity))
        )
        timed.append((note.end, mido.Message("note_off", channel=0, note=note.pitch, velocity=0)))
    return write_performance(timed)
