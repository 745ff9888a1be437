"""Real music for the throughput benchmarks: music21 corpus scores and their MIDI, multi-line texts from
the project's documentation, and the audio of the demo library and the test fixtures.

Scores are converted as clamp3 converts them (MusicXML and ABC to interleaved ABC, MIDI to MTF), so
the encoders see the segment lengths real collections have.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO_FOLDERS = (
    ROOT / "src" / "clamp3" / "demo_data",
    ROOT / "tests" / "fixtures" / "reference" / "mert" / "audio",
)
TEXT_SOURCES = ("README.md", "MODEL_CARD.md", "docs")
ABC_COLLECTIONS = ("ryansMammoth", "oneills1850")


def chorale_paths(count: int) -> list[Path]:
    """The first ``count`` Bach chorales (MusicXML) of the music21 corpus."""
    from music21 import corpus

    paths = sorted(Path(p) for p in corpus.getComposer("bach") if str(p).endswith(".mxl"))
    return paths[:count]


def scores(count: int) -> list[str]:
    """Interleaved ABC of ``count`` scores: half Bach chorales (MusicXML), half folk tunes (ABC)."""
    from music21 import corpus

    from clamp3.preprocess.sheet import abc_file_tunes, tune_to_interleaved, xml_to_interleaved

    texts = [xml_to_interleaved(path).text for path in chorale_paths(count // 2)]
    abc_files = sorted(
        Path(p) for name in ABC_COLLECTIONS for p in corpus.getComposer(name) if str(p).endswith(".abc")
    )
    for path in abc_files:
        for tune in abc_file_tunes(path):
            if len(texts) == count:
                return texts
            try:
                texts.append(tune_to_interleaved(tune.text, source=tune.id).text)
            except ValueError:  # a tune the converter refuses is left out
                continue
    return texts


def midi_texts(count: int) -> list[str]:
    """MTF of ``count`` chorales written to MIDI by music21 (the chorales after those of :func:`scores`)."""
    from music21 import converter

    from clamp3.preprocess.midi import midi_to_mtf

    texts = []
    with tempfile.TemporaryDirectory() as folder:
        for number, path in enumerate(chorale_paths(2 * count)[count:]):
            midi = Path(folder) / f"{number}.mid"
            converter.parse(path).write("midi", fp=midi)
            texts.append(midi_to_mtf(midi, m3_compatible=True))
    return texts


def texts(count: int) -> list[str]:
    """``count`` multi-line texts: paragraphs of two or more lines from the documentation, markup dropped."""
    files = []
    for name in TEXT_SOURCES:
        source = ROOT / name
        files += sorted(source.rglob("*.md")) if source.is_dir() else [source]
    found = []
    for file in files:
        for paragraph in file.read_text(encoding="utf-8").split("\n\n"):
            lines = [re.sub(r"[`*#|_\[\]]", "", line).strip() for line in paragraph.splitlines()]
            lines = [line for line in lines if line and not line.startswith(("-", "python", "clamp3 "))]
            if len(lines) >= 2:
                found.append("\n".join(lines))
            if len(found) == count:
                return found
    return found


def audio_files() -> list[Path]:
    """The real recordings and renderings shipped with clamp3 (demo library, queries, fixtures)."""
    suffixes = {".ogg", ".wav", ".mp3", ".flac"}
    return sorted(p for folder in AUDIO_FOLDERS for p in folder.rglob("*") if p.suffix in suffixes)
