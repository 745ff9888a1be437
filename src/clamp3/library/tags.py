"""Descriptive metadata ("tags") of music files, for the library index: titles, composers, durations.

:func:`read_tags` gives the tags of every item of a file under the id the clamp3 pipeline gives that item
(the path, or ``path#<X>`` for each tune of an ABC file). Tags are best effort: a file that cannot be read,
or a hostile one, gives no tags and never an exception; each reader bounds what it reads. Every value is
stripped, its whitespace runs collapsed to one space, and cut to :data:`MAX_CHARS` characters; several
values of one field are joined with ``" | "``. The length in bars of sheet music is not read here: the
caller counts it with :func:`interleaved_bars` on the interleaved text the pipeline makes anyway.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import soundfile as sf

from clamp3.modality import FileKind
from clamp3.preprocess.abc_convert import MAX_ARCHIVED_SCORE_BYTES, read_musicxml
from clamp3.preprocess.midi import read_midi
from clamp3.preprocess.sheet import abc_file_tunes

MAX_CHARS = 300
"""The longest value kept; longer ones are cut."""

MAX_ABC_BYTES = 64 << 20
"""ABC files larger than this are not read for tags."""

MAX_ABC_HEADER_COPIES = 256 << 20
"""ABC files whose file header, copied in front of each tune, would take more characters are not read."""

MAX_MIDI_BYTES = 4 << 20
"""MIDI files larger than this are not read: mido takes about 250 bytes and 12 µs per message."""

MAX_LENGTH_MESSAGES = 1_000_000
"""MIDI files with more messages get no duration (mido's ``length`` takes about 15 µs per message)."""

MAX_XML_HEADER_BYTES = 16 << 20
"""How much of a MusicXML document is parsed at most while looking for its header."""

_SEPARATOR = " | "

ABC_FIELD_NAMES: Mapping[str, str] = {
    "C": "composer",
    "O": "origin",
    "R": "rhythm",
    "A": "area",
    "B": "book",
    "S": "source",
    "Z": "transcription",
    "N": "notes",
    "H": "history",
    "D": "discography",
    "G": "group",
    "M": "meter",
    "K": "key",
}
"""ABC header fields kept besides ``T:`` (title, then ``subtitle``), by their names in :attr:`Tags.extra`."""

AUDIO_TAG_KEYS = ("title", "composer", "artist", "album", "genre", "date", "tracknumber")
"""The audio tags kept, as mutagen's easy interfaces name them."""

_ID3_FRAMES = {
    "TIT2": "title",
    "TCOM": "composer",
    "TPE1": "artist",
    "TALB": "album",
    "TCON": "genre",
    "TDRC": "date",
    "TRCK": "tracknumber",
}
"""ID3 frames for :data:`AUDIO_TAG_KEYS`, for WAV files, whose ID3 tags mutagen has no easy interface for."""

_ABC_TUNE_START = re.compile(rb"^\s*X:", re.MULTILINE)  # where split_abc_tunes starts a tune
_ABC_FIELD = re.compile(r"([A-Za-z+]):(.*)")
_ABC_COMMENT = re.compile(r"(?<!\\)%.*")
_XML_FIELDS = {
    ("work", "work-title"): "title",
    ("movement-title",): "movement",
    ("identification", "creator"): "creator",
    ("identification", "rights"): "rights",
}
"""Where the MusicXML header fields read here sit, below the root element."""
_XML_DEPTH = 1 + max(len(where) for where in _XML_FIELDS)
_XML_MUSIC = frozenset({"part-list", "part", "measure"})
"""Elements that end the MusicXML header: parsing stops at the first of them."""
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Tags:
    """The descriptive metadata of one item; ``None`` or absent where the file does not say."""

    title: str | None = None
    composer: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    """Other tags: artist, album, genre, date, origin, rhythm, track names..."""
    duration_s: float | None = None
    """Audio and MIDI: the length in seconds."""
    bars: int | None = None
    """Sheet music: the length in bars (see :func:`interleaved_bars`)."""


def read_tags(path: Path, kind: FileKind) -> dict[str, Tags]:
    """Tags of each item of a file, keyed by the item id the clamp3 pipeline gives it.

    That is ``str(path)`` for a whole-file item and ``path#<X>`` for each tune of an ABC file. Kinds without
    tags (text, MTF, images, features) give one item with empty :class:`Tags`. Never raises: a file that
    cannot be read gives ``{}``, or items with empty tags.
    """
    reader = _READERS.get(kind)
    if reader is None:
        return {str(path): Tags()}
    try:
        return reader(Path(path))
    except Exception:  # tags are best effort: a broken or hostile file has none
        return {}


def interleaved_bars(text: str) -> int:
    """The number of bars of an interleaved ABC text, as ``sheet_to_interleaved`` writes it.

    Each body line of that text holds one bar of every voice (``[V:1]<bar>|[V:2]<bar>|``), so this counts
    the lines starting with ``[V:``. Every measure of the score counts, partial ones too: a pickup (an
    anacrusis, a bar most scores number 0) and the partial bars around repeats each count as one bar.
    """
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("[V:"))


def _abc_tags(path: Path) -> dict[str, Tags]:
    _check_size(path, MAX_ABC_BYTES)
    data = path.read_bytes()
    first_tune = _ABC_TUNE_START.search(data)
    if first_tune and first_tune.start() * data.count(b"X:") > MAX_ABC_HEADER_COPIES:
        raise ValueError(f"{path}: a file header of {first_tune.start()} bytes in front of every tune")
    return {tune.id: _abc_header_tags(tune.text) for tune in abc_file_tunes(path)}


def _abc_header_tags(text: str) -> Tags:
    """The tags of one ABC tune from its header fields, up to and including its ``K:`` line.

    The first ``T:`` is the title, later ones go to ``extra["subtitle"]``; ``+:`` lines continue the field
    before them; ``%`` comments are dropped. Fields before the ``X:`` line come from the file header, which
    :func:`~clamp3.preprocess.abc_tunes.split_abc_tunes` puts in front of every tune: they are defaults that
    the tune's own fields of the same letter replace, and their ``T:`` (a collection's title) is not kept.
    """
    defaults: dict[str, list[str]] = {}
    fields: dict[str, list[str]] = {}
    last = ""
    for line in text.splitlines():
        match = _ABC_FIELD.match(line)
        if match is None:
            continue
        letter, value = match[1], _ABC_COMMENT.sub("", match[2]).strip()
        if letter == "X":
            defaults, fields = fields, {}
            defaults.pop("T", None)
        elif letter == "+" and last in fields:
            fields[last][-1] = f"{fields[last][-1]} {value}"
        elif letter == "T" or letter in ABC_FIELD_NAMES:
            fields.setdefault(letter, []).append(value)
        if letter == "K":
            break
        if letter != "+":
            last = letter
    fields = {**defaults, **fields}
    titles = [title for title in (_clean(value) for value in fields.pop("T", [])) if title]
    extra = {ABC_FIELD_NAMES[letter]: values for letter, values in fields.items()}
    composer = extra.pop("composer", [])
    return _tags(titles[:1], composer, {"subtitle": titles[1:], **extra})


def _musicxml_tags(path: Path) -> dict[str, Tags]:
    return {str(path): _musicxml_header_tags(_xml_chunks(path))}


def _xml_chunks(path: Path, size: int = 1 << 16) -> Iterator[bytes]:
    """The bytes of a MusicXML file in pieces, streamed from disk; an archive through ``read_musicxml``."""
    with path.open("rb") as stream:
        if path.suffix.lower() == ".mxl" or stream.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
            _check_size(path, MAX_ARCHIVED_SCORE_BYTES)
            data = read_musicxml(path)
            yield from (data[start : start + size] for start in range(0, len(data), size))
            return
        stream.seek(0)
        while chunk := stream.read(size):
            yield chunk


class _HeaderRead(Exception):
    """Raised from the parser's callbacks to stop it where the music begins."""


def _musicxml_header_tags(chunks: Iterable[bytes]) -> Tags:
    """The tags of a MusicXML document given in pieces, read from its header with expat.

    ``work-title`` (else ``movement-title``) is the title, ``movement-title`` also goes to
    ``extra["movement"]`` when it differs. ``<creator type="composer">`` is the composer, other creators go
    to ``extra`` under their type (``"creator"`` without one), ``<rights>`` to ``extra["rights"]``. Parsing
    stops at the first ``part-list``, ``part`` or ``measure`` element, or after
    :data:`MAX_XML_HEADER_BYTES`; documents declaring entities are refused, nothing external is loaded.
    """
    fields: dict[str, list[str]] = {}
    path: list[str] = []  # element names from the root down, kept to _XML_DEPTH levels
    depth = 0
    text: list[str] | None = None  # the text of the header field being read

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth, text
        if name in _XML_MUSIC:
            raise _HeaderRead
        depth += 1
        if depth <= _XML_DEPTH:
            path.append(name)
            key = _XML_FIELDS.get(tuple(path[1:]))
            if key == "creator":
                key = attributes.get("type", "").strip().lower() or key
            if key is not None:
                text = fields.setdefault(key, [])
                text.append("")

    def end(name: str) -> None:
        nonlocal depth, text
        if depth <= _XML_DEPTH:
            path.pop()
            text = None
        depth -= 1

    def characters(data: str) -> None:
        if text is not None and len(text[-1]) <= MAX_CHARS:
            text[-1] += data[: MAX_CHARS + 1]

    def refuse_entities(*_: object) -> None:
        raise ValueError("entity declarations are not read")

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.EntityDeclHandler = refuse_entities
    parsed = 0
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
            parsed += len(chunk)
            if parsed >= MAX_XML_HEADER_BYTES:
                break
        else:
            parser.Parse(b"", True)
    except _HeaderRead:
        pass
    title = [value for value in map(_clean, fields.pop("title", [])) if value]
    movements = [value for value in map(_clean, fields.pop("movement", [])) if value]
    title = title or movements
    movement = [value for value in movements if value not in title]
    return _tags(title, fields.pop("composer", []), {"movement": movement, **fields})


def _midi_tags(path: Path) -> dict[str, Tags]:
    _check_size(path, MAX_MIDI_BYTES)
    midi = read_midi(path)
    names = [[_midi_text(msg.name) for msg in track if msg.type == "track_name"] for track in midi.tracks]
    extra: dict[str, list[str]] = {"tracks": [name for track in names for name in track]}
    for kind in ("text", "copyright"):
        extra[kind] = [_midi_text(msg.text) for track in midi.tracks for msg in track if msg.type == kind]
    first_names = [name for name in (_clean(name) for name in names[0]) if name] if names else []
    title = first_names if len(first_names) == 1 else []  # the sequence name (SMF: track 0's name)
    duration = None
    if midi.type != 2 and sum(len(track) for track in midi.tracks) <= MAX_LENGTH_MESSAGES:
        duration = _duration(midi.length)
    return {str(path): _tags(title, [], extra, duration)}


def _midi_text(text: str) -> str:
    """Meta text as mido decodes it (Latin-1), re-read as UTF-8 where it is valid UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _audio_tags(path: Path) -> dict[str, Tags]:
    fields: dict[str, object] = {}
    duration = None
    try:
        import mutagen
        from mutagen.id3 import ID3

        audio = mutagen.File(str(path), easy=True)
    except Exception:  # mutagen is not installed, or cannot read this file
        audio = None
    if audio is not None:
        duration = _duration(getattr(audio.info, "length", None))
        tags = audio.tags
        if isinstance(tags, ID3):
            fields = {key: tags[frame].text for frame, key in _ID3_FRAMES.items() if frame in tags}
        elif tags is not None:
            fields = {key: tags.get(key) for key in AUDIO_TAG_KEYS}
    if duration is None:
        try:
            duration = _duration(sf.info(str(path)).duration)
        except Exception:  # libsndfile cannot read it either: no duration
            duration = None
    values = {key: _values(value) for key, value in fields.items()}
    return {str(path): _tags(values.pop("title", []), values.pop("composer", []), values, duration)}


def _values(value: object) -> list[object]:
    """A tag value as mutagen gives it (a list of values, one value, or ``None``) as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _duration(seconds: object) -> float | None:
    """A positive, finite length in seconds, or ``None``."""
    if isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0:
        return float(seconds)
    return None


def _check_size(path: Path, limit: int) -> None:
    if path.stat().st_size > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")


def _clean(value: object) -> str:
    """``value`` as text, whitespace runs collapsed to one space, cut to :data:`MAX_CHARS` characters."""
    text = str(value).strip()[: 4 * MAX_CHARS]  # bounds the split below
    return " ".join(text.split())[:MAX_CHARS].strip()


def _joined(values: Iterable[object]) -> str | None:
    """Distinct non-empty cleaned values joined with ``" | "`` (cut to :data:`MAX_CHARS`), or ``None``."""
    kept = dict.fromkeys(text for text in map(_clean, values) if text)
    return _clean(_SEPARATOR.join(kept)) or None


def _tags(
    title: Iterable[object],
    composer: Iterable[object],
    extra: Mapping[str, Iterable[object]],
    duration_s: float | None = None,
) -> Tags:
    joined = {key: _joined(values) for key, values in extra.items()}
    return Tags(
        title=_joined(title),
        composer=_joined(composer),
        extra={key: value for key, value in joined.items() if value},
        duration_s=duration_s,
    )


_READERS: Mapping[FileKind, Callable[[Path], dict[str, Tags]]] = {
    FileKind.ABC: _abc_tags,
    FileKind.MUSICXML: _musicxml_tags,
    FileKind.MIDI: _midi_tags,
    FileKind.AUDIO: _audio_tags,
}
