"""Offline audio front ends: shapes, pitch placement, loudness invariance and errors."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error, InputError
from clamp3.preprocess.frontends import (
    FRONT_ENDS,
    HOP,
    LOWEST_PITCH,
    SAMPLE_RATE,
    basic_pitch_posteriors,
    front_end,
    pitchgram_frames,
    stack_frames,
)


def tone(midi_pitch: int, seconds: float = 2.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    frequency = 440.0 * 2 ** ((midi_pitch - 69) / 12)
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.mark.parametrize("pitch", [45, 60, 69, 84])
def test_pitchgram_peaks_at_the_played_semitone(pitch):
    frames = pitchgram_frames(tone(pitch))
    assert frames.shape == (int(2.0 * SAMPLE_RATE) // HOP + 1, 88)
    middle = frames[len(frames) // 2]
    assert int(middle.argmax()) + LOWEST_PITCH == pitch
    assert middle.max() > middle[abs(np.arange(88) + LOWEST_PITCH - pitch) > 2].max() + 2.0


def test_features_ignore_loudness_and_silence_is_zero():
    pitchgram = front_end("pitchgram-v1")
    loud, quiet = pitchgram.features(tone(64, amplitude=0.8)), pitchgram.features(tone(64, amplitude=0.05))
    np.testing.assert_allclose(loud, quiet, atol=1e-3)
    assert not pitchgram.features(np.zeros(SAMPLE_RATE * 2, np.float32)).any()


def test_positions_stack_four_frames():
    for name, frontend in FRONT_ENDS.items():
        if name == "basic-pitch-v1":
            continue
        features = frontend.features(tone(60, seconds=3.0))
        frames = frontend.frames(tone(60, seconds=3.0))
        assert features.shape == (-(-len(frames) // 4), frontend.dim)
        np.testing.assert_array_equal(features[0, : frontend.frame_dim], frames[0])
        np.testing.assert_array_equal(features[0, frontend.frame_dim : 2 * frontend.frame_dim], frames[1])
    assert front_end("pitchgram-v1").seconds_per_position == pytest.approx(4 * HOP / SAMPLE_RATE)


def test_stack_frames_pads_the_last_position():
    frames = np.arange(10, dtype=np.float32).reshape(5, 2)
    stacked = stack_frames(frames, 2)
    assert stacked.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]]


def test_bad_audio_is_refused_with_the_file_name():
    pitchgram = front_end("pitchgram-v1")
    with pytest.raises(InputError, match=r"clip\.wav.*shorter than 1 s"):
        pitchgram.features(np.zeros(1000, np.float32), "clip.wav")
    broken = tone(60)
    broken[100] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pitchgram.features(broken, "nan.wav")
    with pytest.raises(Clamp3Error, match="unknown audio front end 'mfcc'"):
        front_end("mfcc")


def test_basic_pitch_finds_the_note():
    note, onset = basic_pitch_posteriors(tone(60, seconds=2.0))
    assert note.shape == onset.shape == (int(np.ceil(2.0 * SAMPLE_RATE / 256)), 88)
    middle = note[len(note) // 2]
    assert int(middle.argmax()) + LOWEST_PITCH == 60
    assert middle.max() > 0.5
    features = front_end("basic-pitch-v1").features(tone(72, seconds=2.0))
    assert features.shape[1] == 352
    assert int(features[2, :88].argmax()) + LOWEST_PITCH == 72
