"""Audio made from the open-data MIDI: FluidSynth renderings with varied instrument, tempo and reverb.

Each rendering is decided by a :class:`Variation` drawn from a seed and the piece's id, so the same build
renders the same audio again. :func:`piano_roll` gives the notes that a rendering sounds, on the audio
front ends' frame grid, for measuring how much of them a front end keeps.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from clamp3.preprocess.performance import notes_of, read_midi, timed_messages, write_performance

MUSESCORE_GENERAL = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
"""Evaluation-only sound font (MIT, Debian ``musescore-general-soundfont-small``); never used in training."""

PROGRAMS = (0, 1, 6, 11, 12, 19, 21, 22, 24, 25, 40, 41, 42, 48, 52, 56, 65, 68, 71, 73, 74, 75, 78, 109, 110)
"""General MIDI programs (0-based) drawn for renderings: pianos, mallets, organs, reeds, strings, winds."""


@dataclass(frozen=True)
class Variation:
    """How one rendering differs from the score: GM program, tempo factor and reverb."""

    program: int = 0
    tempo: float = 1.0
    reverb: bool = False


def choose_variation(key: str, seed: int) -> Variation:
    """A deterministic :class:`Variation` for ``key`` (a piece id, plus a copy number) and ``seed``."""
    rng = random.Random(hashlib.sha256(f"{seed}:{key}".encode()).digest())
    return Variation(
        program=rng.choice(PROGRAMS), tempo=round(rng.uniform(0.8, 1.25), 3), reverb=rng.random() < 0.5
    )


def vary_midi(
    data: bytes, variation: Variation, seconds: float | None = None, name: str = "<midi>"
) -> mido.MidiFile:
    """The MIDI as performed with ``variation``: every melodic channel on ``variation.program``, times
    scaled by ``1 / variation.tempo``, cut after ``seconds`` (every note still sounding is ended there)."""
    timed = timed_messages(read_midi(data, name))
    channels = sorted({msg.channel for _, msg in timed if msg.type == "note_on" and msg.channel != 9})
    varied = [(0.0, mido.Message("program_change", channel=c, program=variation.program)) for c in channels]
    sounding: set[tuple[int, int]] = set()
    for when, msg in timed:
        when /= variation.tempo
        if seconds is not None and when >= seconds:
            break
        if msg.type == "program_change":
            continue
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_on", "note_off"):
            sounding.discard((msg.channel, msg.note))
        varied.append((when, msg))
    end = seconds if seconds is not None else (varied[-1][0] if varied else 0.0)
    varied += [(end, mido.Message("note_off", channel=c, note=n)) for c, n in sorted(sounding)]
    return write_performance(varied)


def piano_roll(midi: mido.MidiFile, frame_seconds: float, frames: int) -> np.ndarray:
    """``[frames, 88]`` with 1 where a piano-range note sounds during a frame (drums excluded)."""
    roll = np.zeros((frames, 88), dtype=np.float32)
    for note in notes_of(midi):
        if 21 <= note.pitch <= 108:
            lo, hi = int(note.start / frame_seconds), int(np.ceil(note.end / frame_seconds))
            roll[lo : min(hi, frames), note.pitch - 21] = 1.0
    return roll
