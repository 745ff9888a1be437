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


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 layer I-III frame header (an mp3 without an ID3 tag)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    bitrate, sample_rate = head[2] >> 4, (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and sample_rate != 0b11


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
    if head.startswith((b"fLaC", b"OggS", b"ID3")) or _is_mpeg_audio_frame(head):
        return FileKind.AUDIO
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        return FileKind.AUDIO
    return None


def _is_score_xml(head: bytes) -> bool:
    """Whether ``head`` begins a MusicXML document (UTF-8, or UTF-16 with a byte-order mark)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    else:
        text = head.decode("utf-8", errors="replace")
    text = text.lstrip("\ufeff \t\r\n")
    return text.startswith("<") and _SCORE_ROOT.search(text) is not None


def _zip_kind(path: Path) -> FileKind | None:
    """MusicXML when a zip archive holds a MusicXML score (an ``.mxl`` file), else ``None``."""
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
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        return None
    return None


def _decode_head(head: bytes, complete: bool) -> str | None:
    """``head`` as UTF-8 (a multi-byte character cut at the end is fine), or ``None`` if it is not."""
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=complete)
    except UnicodeDecodeError:
        return None


def _text_kind(head: bytes, complete: bool) -> FileKind | None:
    """The kind of a text file from its beginning: MusicXML, MTF, ABC, plain text, or ``None``."""
    if _is_score_xml(head):
        return FileKind.MUSICXML
    if b"\x00" in head:
        return None
    loose = head.decode("utf-8", errors="replace").lstrip("\ufeff")
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

    Raises :class:`OSError` when the file cannot be read.
    """
    path = Path(path)
    head, complete = _read_head(path)
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
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
