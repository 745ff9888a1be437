"""Transcription-like damage to MIDI, so the symbolic tower learns to match what audio-to-MIDI gives.

An automatic transcription (basic-pitch, for instance) of a rendered tune differs from the score's MIDI
in predictable ways, which :func:`transcription_noise` imitates: no key or time signature, one piano
track at 120 bpm with performance timing, onsets and releases off by tens of milliseconds, some notes
missed, "ghost" notes at harmonics (an octave, an octave and a fifth) or next to a real note, and
velocities that are flat or follow loudness instead of the score.
"""

from __future__ import annotations

import mido
import numpy as np

from clamp3.preprocess.performance import Note, notes_of, write_performance

GHOST_INTERVALS = (12, 19, 24, 1, -1, -12)


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
