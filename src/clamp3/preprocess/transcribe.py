"""Audio to MIDI with basic-pitch's ONNX model (no TensorFlow): what "transcribed MIDI" means in our
evaluations.

Notes are read off the note posteriorgram: a pitch sounds while its posterior stays above
``threshold``; a new note starts inside such a run where the onset posterior peaks above
``onset_threshold``; runs shorter than ``min_seconds`` are dropped. Velocity follows the peak posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

from clamp3.preprocess.frontends import SAMPLE_RATE, basic_pitch_posteriors
from clamp3.preprocess.performance import write_performance

FRAME_SECONDS = 256 / SAMPLE_RATE


@dataclass(frozen=True)
class TranscriptionSettings:
    threshold: float = 0.3
    onset_threshold: float = 0.5
    min_seconds: float = 0.06


def decode_notes(
    note: np.ndarray, onset: np.ndarray, settings: TranscriptionSettings | None = None
) -> list[tuple[float, float, int, int]]:
    """``(start, end, midi_pitch, velocity)`` from ``[frames, 88]`` note and onset posteriors."""
    settings = settings or TranscriptionSettings()
    min_frames = max(1, round(settings.min_seconds / FRAME_SECONDS))
    notes = []
    for key in range(note.shape[1]):
        active = note[:, key] > settings.threshold
        frame = 0
        while frame < len(active):
            if not active[frame]:
                frame += 1
                continue
            end = frame
            while end < len(active) and active[end]:
                end += 1
            cuts = [frame]
            for inner in range(frame + 1, end - 1):
                peak = (
                    onset[inner, key] >= onset[inner - 1, key] and onset[inner, key] > onset[inner + 1, key]
                )
                if peak and onset[inner, key] > settings.onset_threshold and inner - cuts[-1] >= min_frames:
                    cuts.append(inner)
            for start, stop in zip(cuts, [*cuts[1:], end], strict=True):
                if stop - start >= min_frames:
                    velocity = int(np.clip(40 + 87 * note[start:stop, key].max(), 1, 127))
                    notes.append((start * FRAME_SECONDS, stop * FRAME_SECONDS, key + 21, velocity))
            frame = end
    return sorted(notes)


def notes_to_midi(notes: list[tuple[float, float, int, int]]) -> mido.MidiFile:
    """A type-0 piano file at 120 bpm holding the notes (a release before an attack at the same time)."""
    events = []
    for start, end, pitch, velocity in notes:
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=velocity)))
        events.append((end, 0, mido.Message("note_off", note=pitch, velocity=0)))
    events.sort(key=lambda event: (event[0], event[1]))
    return write_performance([(seconds, msg) for seconds, _, msg in events])


def transcribe(samples: np.ndarray, settings: TranscriptionSettings | None = None) -> mido.MidiFile:
    """MIDI transcribed from a mono 22.05 kHz clip."""
    note, onset = basic_pitch_posteriors(samples)
    return notes_to_midi(decode_notes(note, onset, settings))
