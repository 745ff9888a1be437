"""What the web page plays or shows for an item: its audio file, its MIDI file (or the MIDI rendered to
audio by FluidSynth where it is installed), its score engraved to SVG by Verovio (a passage of bars
highlighted on request), its image or text.

Only files recorded in the library are ever opened: the path comes from the item's row, never from a
request.
"""

from __future__ import annotations

import functools
import io
import re
import xml.etree.ElementTree as ET
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
HIGHLIGHT = {"fill": "#fcd34d", "fill-opacity": "0.45"}
"""How highlighted bars look: a band behind them, one per system they span."""
HIGHLIGHT_PAD = 270.0
"""How far the band reaches above and below the staves: 1.5 staff spaces (Verovio's are 180 units)."""
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_BARS = re.compile(r"\s*(\d{1,6})\s*(?:-\s*(\d{1,6})\s*)?")
_LINE = re.compile(r"M\s*(-?[\d.]+)[ ,](-?[\d.]+)\s*L\s*(-?[\d.]+)[ ,](-?[\d.]+)\s*$")
_TRANSLATE = re.compile(r"translate\(\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*\)")
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)


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


def parse_bars(text: str) -> tuple[int, int]:
    """``"9-12"`` (or ``"9"``) as bars ``(9, 12)``: numbered from 1, the last one included."""
    found = _BARS.fullmatch(text)
    if found is None:
        raise ValueError(f"bars must look like 9-12 (or 9), got {text[:40]!r}")
    first = int(found.group(1))
    last = int(found.group(2) or first)
    if not 1 <= first <= last:
        raise ValueError(f"bars must count from 1 and end at or after they start, got {text[:40]!r}")
    return first, last


def item_media(
    item: dict[str, Any],
    render: str | None = None,
    page: int | None = None,
    bars: tuple[int, int] | None = None,
) -> Media:
    """The media of a library row (see :meth:`clamp3.library.Library.get`). ``render="audio"`` turns a
    MIDI item into WAV audio; ``page`` picks the page of an engraved score (default: the first one,
    or with ``bars`` the page that holds the first of them); ``bars`` ``(first, last)`` highlights
    those bars of a score (see :func:`highlighted`)."""
    file_path = item.get("file_path")
    shown = media_kind(item.get("kind"))
    if not file_path or shown is None:
        raise Clamp3Error(f"item {item['id']} has no media to show")
    if bars is not None and shown != "score":
        raise Clamp3Error(f"item {item['id']} is not a score: bars are highlighted in ABC and MusicXML only")
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
    score = (str(path), item.get("path") or str(path), item["kind"], stat.st_size, stat.st_mtime_ns)
    if bars is None:
        return Media("image/svg+xml", content=_engraved(*score, page or 1).svg)
    return Media("image/svg+xml", content=_highlighted_page(score, page, bars))


@dataclass(frozen=True)
class Engraving:
    svg: bytes
    """One page of the score."""
    measure_pages: tuple[int, ...]
    """The page of each measure of the whole score, in order."""


def _highlighted_page(
    score: tuple[str, str, str, int, int], page: int | None, bars: tuple[int, int]
) -> bytes:
    """The page ``page`` (default: the one holding bar ``bars[0]``) with ``bars`` highlighted. Bar n is
    the n-th measure of the engraving, counted over all pages (a pickup is bar 1)."""
    first, last = bars
    engraving = _engraved(*score, page or 1)
    count = len(engraving.measure_pages)
    if first > count:
        raise Clamp3Error(f"the score has {count} bar(s): there is no bar {first}")
    chosen = page or engraving.measure_pages[first - 1]
    if chosen != (page or 1):
        engraving = _engraved(*score, chosen)
    before = sum(1 for p in engraving.measure_pages if p < chosen)
    return highlighted(engraving.svg, range(first - before, min(last, count) - before + 1))


def highlighted(svg: bytes, measures: range) -> bytes:
    """A Verovio page with its measures ``measures`` (counted from 1 on this page) marked: each gets the
    class ``highlighted`` and each system a band (``rect.highlight``) behind those bars. The root element
    gets ``data-highlight-top`` and ``data-highlight-bottom``: where the bands start and end, as
    fractions of the page's height (for a page that shows only part of the score)."""
    root = ET.fromstring(svg)
    parents = {child: parent for parent in root.iter() for child in parent}
    marked = [element for number, element in enumerate(_measures(root), start=1) if number in measures]
    boxes: dict[ET.Element, list[tuple[float, float, float, float]]] = {}
    for measure in marked:
        measure.set("class", f"{measure.get('class')} highlighted")
        box = _staff_box(measure)
        if box is not None:
            boxes.setdefault(parents[measure], []).append(box)
    tops, bottoms = [], []
    for system, found in boxes.items():
        x1, x2 = min(b[0] for b in found), max(b[2] for b in found)
        y1, y2 = min(b[1] for b in found), max(b[3] for b in found)
        band = ET.Element(
            f"{{{SVG_NS}}}rect",
            {
                "class": "highlight",
                "x": f"{x1:g}",
                "y": f"{y1 - HIGHLIGHT_PAD:g}",
                "width": f"{x2 - x1:g}",
                "height": f"{y2 - y1 + 2 * HIGHLIGHT_PAD:g}",
                **HIGHLIGHT,
            },
        )
        system.insert(0, band)
        tops.append(y1 - HIGHLIGHT_PAD)
        bottoms.append(y2 + HIGHLIGHT_PAD)
    frame = _page_frame(root)
    if tops and frame is not None:
        offset, height = frame
        root.set("data-highlight-top", f"{max(0.0, (offset + min(tops)) / height):.4f}")
        root.set("data-highlight-bottom", f"{min(1.0, (offset + max(bottoms)) / height):.4f}")
    return ET.tostring(root, encoding="unicode").encode("utf-8")


def _measures(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{{{SVG_NS}}}g") if "measure" in (g.get("class") or "").split()]


def _staff_box(measure: ET.Element) -> tuple[float, float, float, float] | None:
    """``(x1, y1, x2, y2)`` of a measure's staff lines (page coordinates; ``None`` without staves)."""
    xs: list[float] = []
    ys: list[float] = []
    for staff in measure.iter(f"{{{SVG_NS}}}g"):
        if "staff" not in (staff.get("class") or "").split():
            continue
        for line in staff.findall(f"{{{SVG_NS}}}path"):
            found = _LINE.match(line.get("d") or "")
            if found is None or found.group(2) != found.group(4):
                continue
            x1, y, x2 = float(found.group(1)), float(found.group(2)), float(found.group(3))
            xs += [x1, x2]
            ys.append(y)
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def _page_frame(root: ET.Element) -> tuple[float, float] | None:
    """The vertical offset of the page's content and the page's height, in the units of the measures."""
    for inner in root.iter(f"{{{SVG_NS}}}svg"):
        if "definition-scale" not in (inner.get("class") or "").split():
            continue
        view = (inner.get("viewBox") or "").split()
        margin = next(
            (g for g in inner.iter(f"{{{SVG_NS}}}g") if "page-margin" in (g.get("class") or "").split()),
            None,
        )
        moved = _TRANSLATE.search(margin.get("transform") or "") if margin is not None else None
        if len(view) == 4 and float(view[3]) > 0:
            return (float(moved.group(2)) if moved else 0.0), float(view[3])
    return None


@functools.lru_cache(maxsize=64)
def _engraved(file_path: str, item_path: str, kind: str, size: int, mtime_ns: int, page: int) -> Engraving:
    """One page of a score engraved by Verovio, and the page of every measure (cached by file, size and
    modification time)."""
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
    svg = toolkit.renderToSVG(page).encode("utf-8")
    # the measures in order (their ids are made anew at each load: ask this toolkit, after rendering)
    measures = re.findall(r'<measure\b[^>]*?\bxml:id="([^"]+)"', toolkit.getMEI())
    return Engraving(svg, tuple(toolkit.getPageWithElement(measure) for measure in measures))


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
