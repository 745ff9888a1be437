"""Model inputs derived from the open-data set, built once and kept on disk (every stage resumes).

* ``audio/<split>/<key>.npy``: front-end features of a FluidSynth rendering (FluidR3_GM) with a
  :class:`~clamp3.train.opendata.render.Variation` drawn from the seed and the piece;
* ``midi/<split>/<key>-<n>.mtf``: transcription-like MTF variants of the score's MIDI;
* ``midi/<split>/<key>-transcribed.mtf``: basic-pitch's transcription of the same rendering (training and
  validation splits only);
* ``text/<split>.npy``: the frozen text backbone's pooled output for each record's text variants
  (``[records, variants, 384]``), so training never runs the 12-layer backbone.

The training pieces' transposed copies (``transposed.jsonl``) are one more split, ``transposed``, with
renderings, noisy MIDI and text vectors but no transcriptions.

``key`` is a digest of the record id. Files are written atomically; a stage skips what exists.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import torch

from clamp3.encoder import CLaMP3
from clamp3.errors import InputError
from clamp3.fileio import atomic_write
from clamp3.preprocess.frontends import front_end
from clamp3.preprocess.midi import midi_to_mtf
from clamp3.preprocess.performance import read_midi
from clamp3.preprocess.synth import FLUID_R3, render
from clamp3.preprocess.transcribe import transcribe
from clamp3.progress import progress_bar
from clamp3.train.data import Example, read_jsonl, training_text
from clamp3.train.default_model.settings import FRONT_END, DefaultModelSettings
from clamp3.train.opendata.noise import transcription_noise
from clamp3.train.opendata.render import choose_variation, vary_midi

SPLITS = ("train", "validation", "test")
TRAINING_SPLITS = ("train", "validation")
"""The splits that training reads: they get transcriptions and text vectors; the test split is only
evaluated (``evaluation/default_model.py``), from its own renderings and transcriptions."""
TRANSPOSED = "transposed"
"""The split of the training pieces' transposed copies (text vectors, no transcriptions)."""


@dataclass(frozen=True)
class Piece:
    """One record of the open-data set, with the paths of its files."""

    id: str
    abc: Path
    midi: Path
    mtf: Path
    example: Example

    @property
    def key(self) -> str:
        return hashlib.sha1(self.id.encode()).hexdigest()[:16]


def read_pieces(data: Path, split: str) -> list[Piece]:
    """The records of ``<data>/<split>.jsonl`` (or ``evaluation/<split>.jsonl``) as :class:`Piece` s."""
    path = data / f"{split}.jsonl"
    if not path.is_file():
        path = data / "evaluation" / f"{split}.jsonl"
    pieces = []
    for record in read_jsonl(path):
        abc = next(f for f in record.files if f.suffix == ".abc")
        example = Example(record.id, record.texts, record.translations, record.eval_text, ())
        pieces.append(Piece(record.id, abc, abc.with_suffix(".mid"), abc.with_suffix(".mtf"), example))
    return pieces


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.save(handle, array)

    atomic_write(path, write)


def save_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _save_mtf(path: Path, midi: mido.MidiFile, name: str) -> None:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    save_text(path, midi_to_mtf(buffer.getvalue(), name=name))


# ------------------------------------------------------------------ audio


@dataclass(frozen=True)
class _AudioJob:
    piece: Piece
    target: Path
    seed: int
    seconds: float


def _rendering(job: _AudioJob) -> np.ndarray:
    """The piece's training rendering: always the same samples for the same seed."""
    variation = choose_variation(job.piece.id, job.seed)
    midi = vary_midi(job.piece.midi.read_bytes(), variation, job.seconds, str(job.piece.midi))
    return render(midi, FLUID_R3, front_end(FRONT_END).sample_rate, job.seconds, variation.reverb)


def _render_features(job: _AudioJob) -> str | None:
    """Render and featurise one piece; the reason as text when it fails."""
    torch.set_num_threads(1)
    try:
        _save_npy(job.target, front_end(FRONT_END).features(_rendering(job), job.piece.midi))
    except (InputError, OSError) as exc:
        return f"{job.piece.id}: {exc}"
    return None


def _render_transcription(job: _AudioJob) -> str | None:
    """Render (the opening of) one piece again and write basic-pitch's transcription of it as MTF."""
    torch.set_num_threads(1)
    try:
        _save_mtf(job.target, transcribe(_rendering(job)), job.piece.id)
    except (InputError, OSError, ValueError) as exc:
        return f"{job.piece.id}: {exc}"
    return None


def audio_path(settings: DefaultModelSettings, split: str, piece: Piece) -> Path:
    return settings.inputs / "audio" / split / f"{piece.key}.npy"


def build_audio(settings: DefaultModelSettings, split: str, pieces: Sequence[Piece]) -> list[str]:
    """Render the pieces without features yet; returns the failures."""
    jobs = [
        _AudioJob(piece, audio_path(settings, split, piece), settings.seed, settings.audio_seconds)
        for piece in pieces
        if not audio_path(settings, split, piece).is_file()
    ]
    return _run_parallel(_render_features, jobs, f"render {split}", settings)


def _run_parallel(
    function: Callable[[_AudioJob], str | None], jobs: list, label: str, settings: DefaultModelSettings
) -> list[str]:
    failures = []
    if not jobs:
        return failures
    with progress_bar(len(jobs), label, settings.show_progress) as bar:
        if settings.workers <= 1:
            results = map(function, jobs)
            for failure in results:
                failures += [failure] if failure else []
                bar.advance(1)
        else:
            with multiprocessing.get_context("fork").Pool(settings.workers) as pool:
                for failure in pool.imap_unordered(function, jobs, chunksize=4):
                    failures += [failure] if failure else []
                    bar.advance(1)
    return failures


# ------------------------------------------------------------------ MIDI variants


def midi_paths(settings: DefaultModelSettings, split: str, piece: Piece) -> list[Path]:
    """The score's MTF, the noisy variants' paths, then the transcription's (training splits only)."""
    transcribed = [transcription_path(settings, split, piece)] if split in TRAINING_SPLITS else []
    return [piece.mtf, *noisy_midi_paths(settings, split, piece), *transcribed]


def noisy_midi_paths(settings: DefaultModelSettings, split: str, piece: Piece) -> list[Path]:
    folder = settings.inputs / "midi" / split
    return [folder / f"{piece.key}-{n}.mtf" for n in range(1, settings.noisy_midi + 1)]


def transcription_path(settings: DefaultModelSettings, split: str, piece: Piece) -> Path:
    return settings.inputs / "midi" / split / f"{piece.key}-transcribed.mtf"


def build_transcriptions(settings: DefaultModelSettings, split: str, pieces: Sequence[Piece]) -> list[str]:
    """Transcribe the renderings of the pieces without a transcription yet; returns the failures."""
    seconds = settings.transcribed_seconds
    jobs = [
        _AudioJob(piece, transcription_path(settings, split, piece), settings.seed, seconds)
        for piece in pieces
        if not transcription_path(settings, split, piece).is_file()
    ]
    return _run_parallel(_render_transcription, jobs, f"transcribe {split}", settings)


def build_midi(settings: DefaultModelSettings, split: str, pieces: Sequence[Piece]) -> list[str]:
    """Write the transcription-like MTF variants that are missing; returns the failures."""
    failures = []
    with progress_bar(len(pieces), f"noisy MIDI {split}", settings.show_progress) as bar:
        for piece in pieces:
            for number, path in enumerate(noisy_midi_paths(settings, split, piece), start=1):
                if path.is_file():
                    continue
                rng = np.random.default_rng([settings.seed, number, int(piece.key, 16)])
                try:
                    noisy = transcription_noise(read_midi(piece.midi.read_bytes(), str(piece.midi)), rng)
                    _save_mtf(path, noisy, piece.id)
                except (InputError, OSError, ValueError) as exc:
                    failures.append(f"{piece.id}: {exc}")
            bar.advance(1)
    return failures


# ------------------------------------------------------------------ text vectors


def text_variants(example: Example, count: int, seed: int, key: str) -> list[str]:
    """All English lines, all translated lines, then text-dropout draws (as in training)."""
    variants = ["\n".join(example.texts)]
    if example.translations:
        variants.append("\n".join(example.translations))
    draw = 0
    while len(variants) < count:
        rng = np.random.default_rng([seed, draw, int(key, 16)])
        variants.append("\n".join(training_text(example, rng, dropout=True)))
        draw += 1
    return variants[:count]


def text_path(settings: DefaultModelSettings, split: str) -> Path:
    return settings.inputs / "text" / f"{split}.npy"


def build_text(settings: DefaultModelSettings, split: str, pieces: Sequence[Piece], encoder: CLaMP3) -> None:
    """Embed every piece's text variants with the frozen backbone, in resumable chunks of 256 pieces."""
    target = text_path(settings, split)
    if target.is_file():
        return
    chunks = target.parent / f"{split}-chunks"
    size = 256
    with progress_bar(len(pieces), f"text {split}", settings.show_progress) as bar:
        parts = []
        for start in range(0, len(pieces), size):
            part = chunks / f"{start // size:04d}.npy"
            if not part.is_file():
                texts = [
                    text
                    for piece in pieces[start : start + size]
                    for text in text_variants(piece.example, settings.text_variants, settings.seed, piece.key)
                ]
                vectors = encoder.pooled_text_features(texts).reshape(
                    -1, settings.text_variants, encoder.model.text_proj.in_features
                )
                _save_npy(part, vectors.astype(np.float32))
            parts.append(np.load(part))
            bar.advance(min(size, len(pieces) - start))
    _save_npy(target, np.concatenate(parts))


def write_summary(settings: DefaultModelSettings, failures: dict[str, list[str]]) -> None:
    save_text(settings.inputs / "failures.json", json.dumps(failures, indent=1, ensure_ascii=False) + "\n")
