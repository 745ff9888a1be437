"""Build ``library/`` and ``queries/`` of ``src/clamp3/demo_data``, the files ``clamp3 demo`` searches.

    python examples/build_library.py [--opendata /work/build/opendata] [--out src/clamp3/demo_data]

The built files are committed and the demo never runs this script: it records where every file comes
from, and it needs what users do not have: the open-data build of the bundled model's training set
(``python -m clamp3.train.opendata.build``), the music21 corpus, ``fluidsynth`` and the FluidR3_GM
sound font. Every piece is a record of the build's held-out ``test.jsonl`` from a licence-checked
collection (public-domain books, Bach chorales); Essen (evaluation only) is never used.

* ABC scores: the tune's text in the music21 corpus, unchanged; converted by clamp3 it gives exactly the
  build's interleaved ABC (checked).
* MusicXML: a chorale's MusicXML inside the corpus's ``.mxl``, unchanged (its conversion checked the same
  way); one air converted from its ABC by music21.
* MIDI: the build's MIDI of the piece (music21's export).
* Audio: the build's MIDI rendered by clamp3's FluidSynth renderer (FluidR3_GM), first 10 s, mono
  22,050 Hz Ogg Vorbis.
* Images: drawn here with PIL, each with a hand-written ``<stem>.caption.txt``.
* Queries (not part of the library): a "transcribed" MIDI (clamp3's transcription-like noise) and a
  rendering on another instrument and tempo, of tunes whose scores are in the library.

Re-running writes the same bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from clamp3.preprocess.abc_tunes import split_abc_tunes
from clamp3.preprocess.sheet import read_abc, tune_to_interleaved, xml_to_interleaved
from clamp3.train.opendata.corpus import CHORALES, collection, corpus_root
from clamp3.train.opendata.noise import transcription_noise
from clamp3.train.opendata.render import FLUID_R3, Variation, render, vary_midi

OPENDATA = Path("/work/build/opendata")
DEMO_DATA = Path(__file__).resolve().parents[1] / "src" / "clamp3" / "demo_data"
COLLECTIONS = ("ryansMammoth", "oneills1850", "airdsAirs", "miscFolk", CHORALES)
"""The collections pieces may come from (public-domain books and Bach chorales)."""
SAMPLE_RATE = 22050
SECONDS = 10.0
PEAK = 0.7
"""Audio is scaled to this peak level (FluidSynth's output peaks near 0.07)."""
IMAGE_SIZE = 256


@dataclass(frozen=True)
class Piece:
    name: str
    """File stem in the library."""
    record: str
    """The piece's id in the open-data build's ``test.jsonl``."""
    form: str


BLUE_GARTERS = Piece("the-blue-garters", "oneills1850/1476-1555.abc#1514", "reel")
ALHAMBRA = Piece("the-alhambra-reel", "ryansMammoth/AlhambraReel.abc#1", "reel")
GREY_PLOVER = Piece("the-grey-plover", "oneills1850/1476-1555.abc#1544", "reel")
RAKES = Piece("the-rakes-of-clonmel", "oneills1850/0900-0950.abc#902", "jig")
CUSTOM_HOUSE = Piece("the-custom-house-jig", "ryansMammoth/CustomHouseJig.abc#1", "jig")
GLOBE = Piece("globe-hornpipe", "ryansMammoth/GlobeHornpipe.abc#1", "hornpipe")
ULSTER = Piece("the-men-from-ulster", "oneills1850/1701-1780.abc#1701", "hornpipe")
MORNING_AIR = Piece("the-morning-air", "oneills1850/0101-0200.abc#109", "air")
BWV396 = Piece("bwv396-nun-sich-der-tag-geendet-hat", "bach/bwv396.mxl#R240", "chorale")
BWV369 = Piece("bwv369-keinen-hat-gott-verlassen", "bach/bwv369.mxl#R129", "chorale")
BWV324 = Piece("bwv324-meine-seel-erhebet-den-herrn", "bach/bwv324.mxl#R130", "chorale")
BWV330 = Piece("bwv330-herr-ich-habe-missgehandelt", "bach/bwv330.mxl#R33", "chorale")

ABC_SCORES = (BLUE_GARTERS, ALHAMBRA, RAKES, CUSTOM_HOUSE, GLOBE, ULSTER)
MUSICXML_FROM_ABC = (MORNING_AIR,)
CHORALE_SCORES = (BWV396, BWV369, BWV324)
MIDI_FILES = (GREY_PLOVER, BWV330)


@dataclass(frozen=True)
class Rendering:
    piece: Piece
    program: int
    """General MIDI program, 0-based."""
    instrument: str
    tempo: float = 1.0


AUDIO = (
    Rendering(BLUE_GARTERS, 40, "violin"),
    Rendering(CUSTOM_HOUSE, 73, "flute"),
    Rendering(BWV396, 19, "church organ"),
)
QUERY_AUDIO = Rendering(ULSTER, 21, "accordion", tempo=0.9)
QUERY_MIDI = ALHAMBRA
QUERY_MIDI_SEED = 7


@dataclass(frozen=True)
class Drawing:
    name: str
    caption: str


FIDDLE = Drawing("fiddle", "a violin lying on a wooden table")
ORGAN = Drawing("organ-pipes", "the silver pipes of a church organ")
STAFF = Drawing("sheet-music", "a page of sheet music with notes on a five-line staff")


class Sources:
    """The open-data build's test records and the music21 corpus, for the chosen pieces only."""

    def __init__(self, opendata: Path) -> None:
        self.opendata = opendata
        with (opendata / "test.jsonl").open(encoding="utf-8") as lines:
            self.records = {record["id"]: record for record in map(json.loads, lines)}

    def record(self, piece: Piece) -> dict:
        """The test record of ``piece``; raises when it is not one of an allowed collection."""
        record = self.records.get(piece.record)
        if record is None:
            raise SystemExit(f"{piece.record}: not a record of {self.opendata / 'test.jsonl'}")
        if self.collection(piece) not in COLLECTIONS:
            raise SystemExit(f"{piece.record}: collection {self.collection(piece)} may not be used")
        return record

    def collection(self, piece: Piece) -> str:
        return self.records[piece.record]["filepaths"][0].split("/")[1]

    def built(self, piece: Piece, suffix: str) -> Path:
        """The build's ``.abc``, ``.mid`` or ``.mtf`` file of ``piece``."""
        return self.opendata / Path(self.record(piece)["filepaths"][0]).with_suffix(suffix)

    @staticmethod
    def corpus_file(piece: Piece) -> Path:
        return corpus_root() / piece.record.split("#")[0]

    def corpus_tune(self, piece: Piece) -> str:
        """The tune's ABC text as the music21 corpus holds it."""
        file = piece.record.split("#")[0]
        for tune in split_abc_tunes(read_abc(self.corpus_file(piece)), file):
            if tune.id == piece.record:
                return tune.text
        raise SystemExit(f"{piece.record}: tune not found in the music21 corpus")


# --------------------------------------------------------------------------- scores and MIDI


def write_abc(sources: Sources, piece: Piece, folder: Path) -> Path:
    text = sources.corpus_tune(piece)
    if tune_to_interleaved(text, piece.record).text != sources.built(piece, ".abc").read_text("utf-8"):
        raise SystemExit(f"{piece.record}: the corpus tune no longer converts to the build's ABC")
    return _write(folder / f"{piece.name}.abc", text.rstrip("\n").encode("utf-8") + b"\n")


def write_chorale(sources: Sources, piece: Piece, folder: Path) -> Path:
    with zipfile.ZipFile(sources.corpus_file(piece)) as archive:
        [name] = [n for n in archive.namelist() if not n.startswith("META-INF/")]
        data = archive.read(name)
    target = _write(folder / f"{piece.name}.musicxml", data)
    if xml_to_interleaved(target).text != sources.built(piece, ".abc").read_text("utf-8"):
        raise SystemExit(f"{piece.record}: the corpus MusicXML no longer converts to the build's ABC")
    return target


def write_musicxml_from_abc(sources: Sources, piece: Piece, folder: Path) -> Path:
    """music21's MusicXML of the tune, with its two run-dependent fields (date, part ids) made fixed."""
    from music21 import converter
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = converter.parseData(sources.corpus_tune(piece), format="abc")
    score.metadata.composer = "Traditional"
    text = GeneralObjectExporter(score).parse().decode("utf-8")
    text = re.sub(r"<encoding-date>[^<]*</encoding-date>", "<encoding-date>2025-01-01</encoding-date>", text)
    for number, part_id in enumerate(dict.fromkeys(re.findall(r'<score-part id="([^"]+)"', text)), 1):
        text = text.replace(f'"{part_id}"', f'"P{number}"')
    return _write(folder / f"{piece.name}.musicxml", text.encode("utf-8"))


def copy_midi(sources: Sources, piece: Piece, folder: Path) -> Path:
    return _write(folder / f"{piece.name}.mid", sources.built(piece, ".mid").read_bytes())


def write_transcribed_midi(sources: Sources, piece: Piece, folder: Path) -> Path:
    score = mido.MidiFile(file=io.BytesIO(sources.built(piece, ".mid").read_bytes()))
    noisy = transcription_noise(score, np.random.default_rng(QUERY_MIDI_SEED))
    buffer = io.BytesIO()
    noisy.save(file=buffer)
    return _write(folder / f"{piece.name}.transcribed.mid", buffer.getvalue())


def write_audio(sources: Sources, rendering: Rendering, target: Path) -> Path:
    variation = Variation(program=rendering.program, tempo=rendering.tempo, reverb=False)
    midi = vary_midi(sources.built(rendering.piece, ".mid").read_bytes(), variation, SECONDS)
    samples = render(midi, FLUID_R3, SAMPLE_RATE, SECONDS, reverb=False, name=rendering.piece.record)
    samples *= PEAK / np.abs(samples).max()
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format="OGG", subtype="VORBIS")
    return _write(target, with_fixed_ogg_serial(buffer.getvalue()))


def _ogg_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return table


_OGG_CRC = _ogg_crc_table()


def with_fixed_ogg_serial(data: bytes, serial: int = 1) -> bytes:
    """The Ogg stream with serial number ``serial`` on every page (libsndfile draws it at random, the
    only difference between two encodings of the same samples), page checksums recomputed."""
    out = bytearray(data)
    start = 0
    while start < len(out):
        if out[start : start + 4] != b"OggS":
            raise SystemExit(f"not an Ogg page at byte {start}")
        segments = out[start + 26]
        end = start + 27 + segments + sum(out[start + 27 : start + 27 + segments])
        out[start + 14 : start + 18] = serial.to_bytes(4, "little")
        out[start + 22 : start + 26] = bytes(4)
        crc = 0
        for byte in out[start:end]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
        out[start + 22 : start + 26] = crc.to_bytes(4, "little")
        start = end
    return bytes(out)


# --------------------------------------------------------------------------- images


def draw_fiddle(draw: ImageDraw.ImageDraw) -> None:
    for y in range(0, IMAGE_SIZE, 16):  # table boards
        draw.rectangle([0, y, IMAGE_SIZE, y + 15], fill=(150 + y % 32, 100, 55))
        draw.line([0, y + 15, IMAGE_SIZE, y + 15], fill=(110, 70, 35))
    body = (175, 85, 30)
    draw.ellipse([78, 120, 178, 215], fill=body, outline=(90, 40, 10), width=3)  # lower bout
    draw.ellipse([88, 55, 168, 135], fill=body, outline=(90, 40, 10), width=3)  # upper bout
    draw.rectangle([100, 118, 156, 140], fill=body)  # waist
    draw.rectangle([121, 8, 135, 70], fill=(30, 20, 15))  # neck
    draw.ellipse([116, 0, 140, 18], fill=(120, 60, 20))  # scroll
    for x in (108, 148):  # f-holes
        draw.arc([x - 6, 125, x + 6, 175], 250, 110, fill=(30, 15, 5), width=3)
    draw.rectangle([112, 150, 144, 156], fill=(225, 205, 160))  # bridge
    for x in (123, 126, 130, 133):  # strings
        draw.line([x, 10, x, 200], fill=(230, 230, 230), width=1)


def draw_organ(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle([0, 0, IMAGE_SIZE, IMAGE_SIZE], fill=(95, 90, 85))  # stone wall
    draw.rectangle([0, 200, IMAGE_SIZE, IMAGE_SIZE], fill=(100, 60, 30))  # wooden case
    for index in range(13):
        x = 12 + index * 18
        height = 170 - abs(index - 6) * 20
        draw.rectangle([x, 200 - height, x + 12, 200], fill=(200, 200, 210), outline=(120, 120, 130))
        draw.polygon([(x + 2, 185), (x + 10, 185), (x + 6, 178)], fill=(40, 40, 45))  # pipe mouth


def draw_staff(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle([0, 0, IMAGE_SIZE, IMAGE_SIZE], fill=(250, 247, 235))
    notes = ((0, 4), (1, 3), (2, 2), (3, 5), (4, 6), (5, 4), (6, 3), (7, 1), (8, 2), (9, 0))
    for top in (50, 150):
        for line in range(5):
            draw.line([16, top + line * 10, 240, top + line * 10], fill=(20, 20, 20), width=1)
        draw.arc([18, top - 8, 38, top + 48], 0, 360, fill=(20, 20, 20), width=3)  # clef-like sign
        for column, step in notes:
            x, y = 56 + column * 18, top + 40 - step * 5
            draw.ellipse([x - 5, y - 4, x + 5, y + 4], fill=(20, 20, 20))
            draw.line([x + 4, y, x + 4, y - 28], fill=(20, 20, 20), width=2)


DRAWERS = {FIDDLE: draw_fiddle, ORGAN: draw_organ, STAFF: draw_staff}


def write_image(drawing: Drawing, folder: Path) -> tuple[Path, Path]:
    """The drawing's PNG and its caption file."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    DRAWERS[drawing](ImageDraw.Draw(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return (
        _write(folder / f"{drawing.name}.png", buffer.getvalue()),
        _write(folder / f"{drawing.name}.caption.txt", f"{drawing.caption}\n".encode()),
    )


# --------------------------------------------------------------------------- README


def _book(sources: Sources, piece: Piece) -> str:
    if sources.collection(piece) == CHORALES:
        return "J. S. Bach chorale (public domain)"
    book = collection(sources.collection(piece)).book
    return f"{book.title}, {book.year} (public-domain book); transcriber in the file's Z: line"


def _source(sources: Sources, piece: Piece) -> str:
    file, number = piece.record.split("#")
    return f"music21 corpus `{file}` {number if number.startswith('R') else 'X:' + number}"


def readme(sources: Sources, rows: list[tuple[Path, str, str, str]], queries: list[tuple]) -> str:
    def table(entries) -> list[str]:
        lines = ["| file | content | source | licence |", "| --- | --- | --- | --- |"]
        return lines + [
            f"| `{path}` | {what} | {source} | {licence} |" for path, what, source, licence in entries
        ]

    return "\n".join(
        [
            "# Example library",
            "",
            "The files `clamp3 demo` (`make demo`) searches and classifies. They were made by",
            "`examples/build_library.py` (which documents their provenance; the demo does not run it) from",
            "held-out test records of the open-data build (`test.jsonl`, record ids below) of the",
            "public-domain collections of the music21 corpus. Audio is rendered by FluidSynth with the",
            "MIT-licensed FluidR3_GM sound font (first 10 s, mono, 22,050 Hz). Images are drawn by the",
            "script; their captions are the `<stem>.caption.txt` files beside them, which clamp3 reads",
            "instead of running an image captioner.",
            "",
            *table(rows),
            "",
            "## Queries (`../queries/`, not part of the library)",
            "",
            *table(queries),
            "",
        ]
    )


def _piece_row(sources: Sources, path: Path, piece: Piece, how: str) -> tuple[Path, str, str, str]:
    title = sources.record(piece)["title"]
    source = f"{_source(sources, piece)}{how} (record `{piece.record}`)"
    return path, f"{title} ({piece.form})", source, _book(sources, piece)


# --------------------------------------------------------------------------- main


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def build(opendata: Path, out: Path) -> None:
    sources = Sources(opendata)
    library, queries = out / "library", out / "queries"
    rows: list[tuple[Path, str, str, str]] = []

    def add(path: Path, piece: Piece, how: str = "") -> None:
        rows.append(_piece_row(sources, path.relative_to(library), piece, how))

    for piece in ABC_SCORES:
        add(write_abc(sources, piece, library / "scores"), piece)
    for piece in MUSICXML_FROM_ABC:
        add(write_musicxml_from_abc(sources, piece, library / "scores"), piece, ", converted by music21")
    for piece in CHORALE_SCORES:
        add(write_chorale(sources, piece, library / "scores"), piece, ", MusicXML inside the .mxl")
    for piece in MIDI_FILES:
        add(copy_midi(sources, piece, library / "midi"), piece, ", the build's MIDI")
    for rendering in AUDIO:
        path = write_audio(sources, rendering, library / "audio" / f"{rendering.piece.name}.ogg")
        add(path, rendering.piece, f", rendered on {rendering.instrument} (GM {rendering.program + 1})")
    for drawing in DRAWERS:
        image, caption = (p.relative_to(library) for p in write_image(drawing, library / "images"))
        rows.append((image, "drawing", "drawn for clamp3", "CC0"))
        rows.append((caption, f'its caption: "{drawing.caption}"', "written for clamp3", "CC0"))
    query_rows = [
        _piece_row(
            sources,
            write_transcribed_midi(sources, QUERY_MIDI, queries).relative_to(out),
            QUERY_MIDI,
            f", the build's MIDI with transcription-like noise (seed {QUERY_MIDI_SEED})",
        ),
        _piece_row(
            sources,
            write_audio(
                sources, QUERY_AUDIO, queries / f"{QUERY_AUDIO.piece.name}.{QUERY_AUDIO.instrument}.ogg"
            ).relative_to(out),
            QUERY_AUDIO.piece,
            f", rendered on {QUERY_AUDIO.instrument} (GM {QUERY_AUDIO.program + 1}) at "
            f"{QUERY_AUDIO.tempo:g}x tempo",
        ),
    ]
    _write(library / "README.md", readme(sources, rows, query_rows).encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--opendata", type=Path, default=OPENDATA, help="the open-data build folder")
    parser.add_argument("--out", type=Path, default=DEMO_DATA, help="where library/ and queries/ go")
    args = parser.parse_args()
    build(args.opendata, args.out)


if __name__ == "__main__":
    main()
