"""What the web page plays or shows for an item: its audio file, its MIDI file (or the MIDI rendered to
audio by FluidSynth where it is installed), its score engraved to SVG by Verovio, its image or text.

Only files recorded in the library are ever opened: the path comes from the item's row, never from a
request.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clamp3.errors import Clamp3Error
from clamp3.modality import FileKind, extension

AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
MAX_TEXT_BYTES = 1 << 20
RENDER_SECONDS = 600.0


@dataclass(frozen=True)
class Media:
    """A file to stream (``path``) or bytes to send (``content``), with its media type."""

    media_type: str
    path: Path | None = None
    content: bytes | None = None


def media_kind(kind: str | None) -> str | None:
    """What the page shows for an item kind: ``audio``, ``midi``, ``score``, ``image``, ``text``."""
    return {
        FileKind.AUDIO.value: "audio",
        FileKind.MIDI.value: "midi",
        FileKind.ABC.value: "score",
        FileKind.MUSICXML.value: "score",
        FileKind.IMAGE.value: "image",
        FileKind.TEXT.value: "text",
        FileKind.MTF.value: "text",
    }.get(kind or "")


def item_media(item: dict[str, Any], render: str | None = None, page: int = 1) -> Media:
    """The media of a library row (see :meth:`clamp3.library.Library.get`). ``render="audio"`` turns a
    MIDI item into WAV audio; ``page`` picks the page of an engraved score."""
    file_path = item.get("file_path")
    shown = media_kind(item.get("kind"))
    if not file_path or shown is None:
        raise Clamp3Error(f"item {item['id']} has no media to show")
    path = Path(file_path)
    if not path.is_file():
        raise Clamp3Error(f"item {item['id']}: its file is no longer there")
    suffix = extension(path)
    if shown == "audio":
        return Media(AUDIO_TYPES.get(suffix, "application/octet-stream"), path=path)
    if shown == "image":
        return Media(IMAGE_TYPES.get(suffix, "application/octet-stream"), path=path)
    if shown == "text":
        return Media("text/plain; charset=utf-8", content=path.read_bytes()[:MAX_TEXT_BYTES])
    if shown == "midi":
        if render == "audio":
            stat = path.stat()
            return Media("audio/wav", content=_rendered_midi(str(path), stat.st_size, stat.st_mtime_ns))
        return Media("audio/midi", path=path)
    stat = path.stat()
    svg = _engraved(
        str(path), item.get("path") or str(path), item["kind"], stat.st_size, stat.st_mtime_ns, page
    )
    return Media("image/svg+xml", content=svg)


@functools.lru_cache(maxsize=64)
def _engraved(file_path: str, item_path: str, kind: str, size: int, mtime_ns: int, page: int) -> bytes:
    """One page of a score engraved by Verovio (cached by file, size and modification time)."""
    import verovio

    # fonts are loaded per toolkit from the package's data (the default path works in one thread only)
    toolkit = verovio.toolkit(False)
    toolkit.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    toolkit.setOptions({"pageWidth": 2100, "adjustPageHeight": True, "scale": 35, "footer": "none"})
    if kind == FileKind.ABC.value:
        from clamp3.preprocess.sheet import abc_file_tunes

        tunes = {tune.id: tune.text for tune in abc_file_tunes(file_path)}
        text = tunes.get(item_path) or next(iter(tunes.values()))
        toolkit.setInputFrom("abc")
        loaded = toolkit.loadData(text)
    else:
        from clamp3.preprocess.abc_convert import read_musicxml

        toolkit.setInputFrom("musicxml")
        loaded = toolkit.loadData(read_musicxml(file_path).decode("utf-8", errors="replace"))
    if not loaded or toolkit.getPageCount() < 1:
        raise Clamp3Error(f"{file_path}: Verovio could not engrave this score")
    if not 1 <= page <= toolkit.getPageCount():
        raise Clamp3Error(f"{file_path}: the score has {toolkit.getPageCount()} page(s), not {page}")
    return toolkit.renderToSVG(page).encode("utf-8")


@functools.lru_cache(maxsize=16)
def _rendered_midi(file_path: str, size: int, mtime_ns: int) -> bytes:
    import soundfile as sf

    from clamp3.preprocess.performance import read_midi
    from clamp3.preprocess.synth import FLUID_R3, can_render, render

    if not can_render():
        raise Clamp3Error(
            "MIDI to audio needs FluidSynth and a sound font (apt-get install fluidsynth fluid-soundfont-gm)"
        )
    midi = read_midi(Path(file_path).read_bytes(), file_path)
    samples = render(midi, FLUID_R3, 22050, RENDER_SECONDS, reverb=True, name=file_path)
    buffer = io.BytesIO()
    sf.write(buffer, samples, 22050, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
