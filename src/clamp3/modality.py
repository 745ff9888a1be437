"""What kind of input each file is, and which model tower embeds it.

Every file is judged on its own (mixed folders are normal), unlike the reference, which lets the
first file of a directory walk decide for the whole directory. The extension (any case) decides,
unless the content is positively recognised as another kind: a ``.txt`` that is really a PNG, a
``.xml`` holding ABC. Content without a recognised signature never overrides a known extension
(the loader of that kind then reports the file). Files with no extension, or one clamp3 does not
know, are judged by content alone; plain text then counts only when the name has no extension.
"""

from __future__ import annotations

import codecs
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from clamp3.errors import InputError

if TYPE_CHECKING:
    from clamp3.model.towers import Tower

SNIFF_BYTES = 16384
"""How much of a file's beginning content sniffing reads."""


class FileKind(str, Enum):
    """The kinds of input file clamp3 understands."""

    TEXT = "text"
    ABC = "abc"
    MTF = "mtf"
    MUSICXML = "musicxml"
    MIDI = "midi"
    AUDIO = "audio"
    IMAGE = "image"
    FEATURES = "features"

    @property
    def tower(self) -> Tower:
        """The model tower that embeds this kind (images through their captions, by the text tower)."""
        return KIND_TOWERS[self]


KIND_TOWERS: Mapping[FileKind, Tower] = MappingProxyType(
    {
        FileKind.TEXT: "text",
        FileKind.IMAGE: "text",
        FileKind.ABC: "symbolic",
        FileKind.MTF: "symbolic",
        FileKind.MUSICXML: "symbolic",
        FileKind.MIDI: "symbolic",
        FileKind.AUDIO: "audio",
        FileKind.FEATURES: "audio",
    }
)

TOWER_KINDS: Mapping[str, frozenset[FileKind]] = MappingProxyType(
    {
        tower: frozenset(kind for kind, name in KIND_TOWERS.items() if name == tower)
        for tower in ("text", "symbolic", "audio")
    }
)
"""The kinds each tower embeds, so that a filter can name a tower instead of kinds."""


def kinds_from_names(names: Iterable[str]) -> set[FileKind]:
    """Towers (text, symbolic, audio) and kinds (abc, midi, ...) by name; :class:`ValueError` names an
    unknown one and the choices."""
    kinds: set[FileKind] = set()
    for name in (str(part).strip().lower() for part in names if str(part).strip()):
        if name in TOWER_KINDS:
            kinds |= TOWER_KINDS[name]
        elif name in {kind.value for kind in FileKind}:
            kinds.add(FileKind(name))
        else:
            choices = [*TOWER_KINDS, *(kind.value for kind in FileKind if kind.value not in TOWER_KINDS)]
            raise ValueError(f"unknown modality {name!r}; choose from {', '.join(choices)}")
    return kinds


EXTENSION_KINDS: Mapping[str, FileKind] = MappingProxyType(
    {
        ".txt": FileKind.TEXT,
        ".abc": FileKind.ABC,
        ".mtf": FileKind.MTF,
        ".xml": FileKind.MUSICXML,
        ".musicxml": FileKind.MUSICXML,
        ".mxl": FileKind.MUSICXML,
        ".mid": FileKind.MIDI,
        ".midi": FileKind.MIDI,
        ".wav": FileKind.AUDIO,
        ".mp3": FileKind.AUDIO,
        ".flac": FileKind.AUDIO,
        ".ogg": FileKind.AUDIO,
        ".m4a": FileKind.AUDIO,
        ".png": FileKind.IMAGE,
        ".jpg": FileKind.IMAGE,
        ".jpeg": FileKind.IMAGE,
        ".webp": FileKind.IMAGE,
        ".npy": FileKind.FEATURES,
    }
)

CAPTION_SUFFIX = ".caption.txt"
"""Ending of an image's caption file: ``harp.jpg`` is described by ``harp.caption.txt`` beside it."""

_EXTENSION = re.compile(r"\.[A-Za-z0-9]+")
_SCORE_ROOT = re.compile(r"<(?:!DOCTYPE\s+)?score-(?:partwise|timewise)\b")
_MTF_HEADER = re.compile(r"ticks_per_beat \d+")
_ABC_REFERENCE = re.compile(r"X:\s*\d*")
_ABC_KEY = re.compile(r"^K:", re.MULTILINE)
_ABC_HEADER = re.compile(r"^[XTMLQVC]:", re.MULTILINE)
_TEXT_CONTROLS = frozenset(range(32)) - {0x09, 0x0A, 0x0C, 0x0D}
_BOUNDED_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
_MPEG_SAMPLE_RATES = (44100, 48000, 32000)
"""MPEG-1 sample rates by index; MPEG-2 halves them and MPEG-2.5 quarters them."""
_MPEG_BITRATES: Mapping[tuple[bool, int], tuple[int, ...]] = MappingProxyType(
    {  # kbit/s for bitrate indices 1-14, by (MPEG-1, layer bits: 0b11 I, 0b10 II, 0b01 III)
        (True, 0b11): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
        (True, 0b10): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
        (True, 0b01): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
        (False, 0b11): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
        (False, 0b10): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
        (False, 0b01): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    }
)
_TEXT_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
"""Byte-order marks and the codec of text that starts with one (UTF-32 LE before UTF-16 LE, its prefix)."""


def extension(path: str | Path) -> str:
    """The lower-cased final extension (``".mid"``), or ``""`` when the name has none.

    A "suffix" holding anything but letters and digits (``"Op. 2 No. 1"``) is not an extension.
    """
    suffix = Path(path).suffix
    return suffix.lower() if _EXTENSION.fullmatch(suffix) else ""


def kind_from_extension(path: str | Path) -> FileKind | None:
    """The kind that the file name's extension stands for, or ``None``."""
    return EXTENSION_KINDS.get(extension(path))


def caption_sidecar(image: str | Path) -> Path:
    """The caption file that may describe ``image``: ``<image stem>.caption.txt`` in the same folder."""
    image = Path(image)
    return image.with_name(image.stem + CAPTION_SUFFIX)


def _mpeg_frame(head: bytes, offset: int) -> tuple[tuple[int, int, int], int] | None:
    """``(stream, frame length)`` of the MPEG-1/2/2.5 layer I-III frame header at ``offset``, or ``None``.

    ``stream`` is (version, layer, sample rate index), which stay the same from frame to frame; a
    free-format header (no bitrate index) has no computable length and counts as no header.
    """
    if len(head) < offset + 4 or head[offset] != 0xFF or head[offset + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[offset + 1] >> 3) & 0b11, (head[offset + 1] >> 1) & 0b11
    bitrate_index, rate_index = head[offset + 2] >> 4, (head[offset + 2] >> 2) & 0b11
    if version == 0b01 or layer == 0b00 or bitrate_index in (0, 0b1111) or rate_index == 0b11:
        return None
    mpeg1 = version == 0b11
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    sample_rate = _MPEG_SAMPLE_RATES[rate_index] >> {0b11: 0, 0b10: 1, 0b00: 2}[version]
    padding = (head[offset + 2] >> 1) & 1
    if layer == 0b11:  # layer I: slots of 4 bytes
        length = (12 * bitrate // sample_rate + padding) * 4
    else:  # layer III outside MPEG-1 has half as many samples per frame
        length = (144 if mpeg1 or layer == 0b10 else 72) * bitrate // sample_rate + padding
    return (version, layer, rate_index), length


def _is_mpeg_audio(head: bytes) -> bool:
    """An MPEG audio stream without an ID3 tag (a bare mp3): two consecutive frame headers at offset 0.

    One header alone is weak evidence (``FF FE``, a UTF-16 byte-order mark, reads as one).
    """
    first = _mpeg_frame(head, 0)
    if first is None:
        return False
    second = _mpeg_frame(head, first[1])
    return second is not None and second[0] == first[0]


def _binary_kind(head: bytes) -> FileKind | None:
    """The kind told by a binary signature at the start of a file (zip archives excluded)."""
    if head.startswith(b"MThd"):
        return FileKind.MIDI
    if head.startswith(b"\x93NUMPY"):
        return FileKind.FEATURES
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return FileKind.IMAGE
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return FileKind.IMAGE
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return FileKind.AUDIO
    if head.startswith((b"fLaC", b"OggS", b"ID3")) or _is_mpeg_audio(head):
        return FileKind.AUDIO
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        return FileKind.AUDIO
    return None


def text_encoding(head: bytes) -> str:
    """The codec that reads text beginning with ``head``: the one its byte-order mark names, else UTF-8."""
    return next((codec for bom, codec in _TEXT_BOMS if head.startswith(bom)), "utf-8")


def _is_score_xml(head: bytes) -> bool:
    """Whether ``head`` begins a MusicXML document (UTF-8, or UTF-16/32 with a byte-order mark)."""
    text = head.decode(text_encoding(head), errors="replace").lstrip("\ufeff \t\r\n")
    return text.startswith("<") and _SCORE_ROOT.search(text) is not None


def _zip_kind(path: Path) -> FileKind | None:
    """MusicXML when a zip archive holds a MusicXML score (an ``.mxl`` file), else ``None``.

    Never raises: a damaged archive is unrecognised content, so a ``.mxl`` keeps its extension's kind
    and its loader reports the damage.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename
                if name.startswith("META-INF/") or not name.lower().endswith((".xml", ".musicxml")):
                    continue
                if info.compress_type not in _BOUNDED_ZIP_METHODS:  # bzip2/LZMA may expand to GBs in one read
                    continue
                with archive.open(info) as entry:
                    if _is_score_xml(entry.read(SNIFF_BYTES)):
                        return FileKind.MUSICXML
    except Exception:  # damage surfaces as BadZipFile, zlib.error, EOFError, ...: not a readable score
        return None
    return None


def _decode_head(head: bytes, complete: bool) -> str | None:
    """``head`` decoded by :func:`text_encoding` (a character cut at the end is fine), or ``None``."""
    try:
        return codecs.getincrementaldecoder(text_encoding(head))().decode(head, final=complete)
    except UnicodeDecodeError:
        return None


def _text_kind(head: bytes, complete: bool) -> FileKind | None:
    """The kind of a text file from its beginning: MusicXML, MTF, ABC, plain text, or ``None``."""
    if _is_score_xml(head):
        return FileKind.MUSICXML
    loose = head.decode(text_encoding(head), errors="replace").lstrip("\ufeff")
    if "\x00" in loose:
        return None
    first_line = loose.lstrip().split("\n", 1)[0].strip()
    if _MTF_HEADER.fullmatch(first_line):
        return FileKind.MTF
    if (
        first_line.startswith("%abc")
        or _ABC_REFERENCE.fullmatch(first_line)
        or (_ABC_KEY.search(loose) and _ABC_HEADER.search(loose))
    ):
        return FileKind.ABC
    text = _decode_head(head, complete)
    if text is None or not text.strip() or any(ord(char) in _TEXT_CONTROLS for char in text):
        return None
    return FileKind.TEXT


def _read_head(path: Path) -> tuple[bytes, bool]:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES + 1)
    return head[:SNIFF_BYTES], len(head) <= SNIFF_BYTES


def sniff_kind(path: str | Path) -> FileKind | None:
    """The kind that the file's content shows, ignoring its name; ``None`` if unrecognised.

    Raises :class:`OSError` when the file cannot be read, and nothing else.
    Text with a byte-order mark is judged as text first: the UTF-16 mark ``FF FE`` looks like an mp3 frame.
    """
    path = Path(path)
    head, complete = _read_head(path)
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if text_encoding(head) != "utf-8":
        return _text_kind(head, complete) or _binary_kind(head)
    return _binary_kind(head) or _text_kind(head, complete)


def detect_kind(path: str | Path) -> FileKind | None:
    """The kind of one file from its extension and content (see the module docstring); ``None`` if unknown.

    Plain UTF-8 text counts as :attr:`FileKind.TEXT` only for files without an extension, so
    ``README.md`` or ``notes.json`` in a data folder are not mistaken for text descriptions.
    A file that cannot be read keeps its extension's kind; its loader reports the reason.
    """
    named = kind_from_extension(path)
    try:
        content = sniff_kind(path)
    except OSError:
        return named
    if content is None or (content is FileKind.TEXT and named is not None):
        return named
    if content is FileKind.TEXT and extension(path):
        return None
    return content


class CollectedFiles(NamedTuple):
    """The result of :func:`collect_files`."""

    files: list[tuple[Path, FileKind]]
    """Input files and their kinds, in order."""
    skipped: list[Path]
    """Files of unknown kind, non-regular files and unlistable directories: to be reported."""


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(directory: Path, recursive: bool, unlistable: list[Path]) -> list[Path]:
    """The non-hidden entries under ``directory`` other than directories, sorted by relative path.

    Directories that cannot be listed are appended to ``unlistable``.
    """
    found: list[Path] = []
    for root, dirs, names in os.walk(directory, onerror=lambda exc: unlistable.append(Path(exc.filename))):
        dirs[:] = [d for d in dirs if recursive and not _is_hidden(d)]
        found.extend(Path(root, name) for name in names if not _is_hidden(name))
    return sorted(found, key=lambda p: p.relative_to(directory).parts)


def _without_caption_sidecars(
    found: list[tuple[Path, FileKind | None]],
) -> list[tuple[Path, FileKind | None]]:
    """``found`` less the caption files of the images in it (see :func:`caption_sidecar`)."""
    sidecars = {caption_sidecar(path) for path, kind in found if kind is FileKind.IMAGE}
    return [(path, kind) for path, kind in found if path not in sidecars]


def collect_files(
    paths: Iterable[str | Path],
    recursive: bool = True,
    kind_of: Callable[[Path], FileKind | None] | None = None,
) -> CollectedFiles:
    """Expand file and directory arguments into the input files and the kind of each.

    Arguments keep their order; the files of a directory come sorted by relative path, and hidden
    files and directories (names starting with ``.``) inside directories are left out, and so are the
    caption files of images found beside them (``harp.caption.txt`` next to ``harp.jpg``: part of the
    image, not a text input; a caption file named as an argument is a text input). A file met
    twice is listed once. Files of unknown kind, named explicitly or found in a directory, go to
    ``skipped``, and so do sockets, pipes and the like, and directories that cannot be listed.
    Raises :class:`InputError` for an argument that does not exist. ``kind_of`` replaces
    :func:`detect_kind` (a library passes the kinds it already knows of unchanged files).
    """
    kind_of = kind_of or detect_kind
    files: list[tuple[Path, FileKind]] = []
    skipped: list[Path] = []
    seen: set[Path] = set()
    for argument in map(Path, paths):
        if argument.is_dir():
            candidates = _walk(argument, recursive, skipped)
        elif argument.exists():
            candidates = [argument]
        else:
            raise InputError(argument, "no such file or directory")
        found = [(path, kind_of(path) if path.is_file() else None) for path in candidates]
        if argument.is_dir():
            found = _without_caption_sidecars(found)
        for path, kind in found:
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            if kind is None:
                skipped.append(path)
            else:
                files.append((path, kind))
    return CollectedFiles(files, skipped)
