"""Performance MIDI, renderings' variations, transcription-like noise and transcription decoding."""

from __future__ import annotations

import io
import shutil

import mido
import numpy as np
import pytest

from clamp3.errors import InputError
from clamp3.preprocess.performance import notes_of, read_midi, timed_messages, write_performance
from clamp3.preprocess.synth import FLUID_R3, render
from clamp3.preprocess.transcribe import FRAME_SECONDS, decode_notes, notes_to_midi
from clamp3.train.opendata.noise import transcription_noise
from clamp3.train.opendata.render import Variation, choose_variation, piano_roll, vary_midi


def score_midi(notes=((60, 0, 480), (64, 480, 960), (67, 960, 1920)), tempo=500000) -> bytes:
    """A two-track score file in beats: (pitch, start tick, end tick) at ``tempo``."""
    meta = mido.MidiTrack(
        [mido.MetaMessage("set_tempo", tempo=tempo), mido.MetaMessage("key_signature", key="C")]
    )
    events = []
    for pitch, start, end in notes:
        events += [(start, mido.Message("note_on", note=pitch, velocity=90, channel=1))]
        events += [(end, mido.Message("note_off", note=pitch, velocity=0, channel=1))]
    track = mido.MidiTrack([mido.Message("program_change", program=40, channel=1)])
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - last))
        last = tick
    buffer = io.BytesIO()
    mido.MidiFile(type=1, ticks_per_beat=480, tracks=[meta, track]).save(file=buffer)
    return buffer.getvalue()


def test_write_performance_places_messages_in_seconds():
    midi = write_performance(
        [(0.5, mido.Message("note_on", note=60)), (1.25, mido.Message("note_off", note=60))]
    )
    timed = timed_messages(midi)
    assert [(round(t, 6), m.type) for t, m in timed] == [(0.5, "note_on"), (1.25, "note_off")]
    assert midi.type == 0 and midi.ticks_per_beat == 480


def test_variations_are_deterministic_and_vary():
    assert choose_variation("tune#1", 42) == choose_variation("tune#1", 42)
    drawn = {choose_variation(f"tune#{i}", 42) for i in range(50)}
    assert len({v.program for v in drawn}) > 10
    assert all(0.8 <= v.tempo <= 1.25 for v in drawn)
    assert {v.reverb for v in drawn} == {True, False}


def test_vary_midi_sets_program_scales_tempo_and_cuts():
    midi = vary_midi(score_midi(), Variation(program=73, tempo=2.0), seconds=0.75)
    timed = timed_messages(midi)
    programs = {m.program for _, m in timed if m.type == "program_change"}
    assert programs == {73}
    onsets = [(round(t, 4), m.note) for t, m in timed if m.type == "note_on"]
    assert onsets == [(0.0, 60), (0.25, 64), (0.5, 67)]  # beats of 0.5 s played twice as fast
    offs = [round(t, 4) for t, m in timed if m.type == "note_off"]
    assert max(offs) == pytest.approx(0.75)  # the last note is cut at 0.75 s
    roll = piano_roll(midi, 0.25, 4)
    assert roll[:, 60 - 21].tolist() == [1, 0, 0, 0] and roll[:, 67 - 21].tolist() == [0, 0, 1, 0]


def test_unreadable_midi_names_the_file():
    with pytest.raises(InputError, match=r"bad\.mid.*unreadable MIDI"):
        read_midi(b"not a midi file", "bad.mid")


def test_transcription_noise_is_seeded_and_looks_transcribed():
    notes = tuple((60 + (i % 12), i * 240, i * 240 + 200) for i in range(200))
    score = read_midi(score_midi(notes))
    first = transcription_noise(score, np.random.default_rng(1))
    again = transcription_noise(score, np.random.default_rng(1))
    other = transcription_noise(score, np.random.default_rng(2))
    assert [str(m) for m in first.tracks[0]] == [str(m) for m in again.tracks[0]]
    assert [str(m) for m in first.tracks[0]] != [str(m) for m in other.tracks[0]]
    assert not any(m.is_meta and m.type == "key_signature" for m in first.tracks[0])
    original, noisy = notes_of(score), notes_of(first)
    assert 0.8 * len(original) <= len(noisy) <= 1.2 * len(original)
    assert {n.velocity for n in noisy} != {90}
    starts = np.array([n.start for n in original])
    shifted = [min(abs(starts - n.start)) for n in noisy if n.pitch in {o.pitch for o in original}]
    assert 0 < np.median(shifted) < 0.1  # jittered, tempo-scaled onsets stay near the score's


def test_decode_notes_splits_at_onset_peaks_and_drops_blips():
    note = np.zeros((100, 88), np.float32)
    onset = np.zeros((100, 88), np.float32)
    note[10:50, 39] = 0.9  # C4 held, re-struck at frame 30
    onset[10, 39], onset[30, 39] = 0.9, 0.8
    note[60:62, 50] = 0.9  # two frames (23 ms): too short
    notes = decode_notes(note, onset)
    assert [(round(s / FRAME_SECONDS), round(e / FRAME_SECONDS), p) for s, e, p, _ in notes] == [
        (10, 30, 60),
        (30, 50, 60),
    ]
    midi = notes_to_midi(notes)
    assert [(m.type, m.note) for _, m in timed_messages(midi)] == [
        ("note_on", 60), ("note_off", 60), ("note_on", 60), ("note_off", 60)
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not FLUID_R3.is_file(), reason="needs fluidsynth")
def test_render_sounds_the_notes():
    from clamp3.preprocess.frontends import pitchgram_frames

    samples = render(vary_midi(score_midi(), Variation(program=0), 2.0), FLUID_R3, 22050, 2.0)
    assert samples.shape == (44100,) and 0.01 < np.abs(samples).max() <= 1.0
    frames = pitchgram_frames(samples)
    assert int(frames[3].argmax()) + 21 == 60
