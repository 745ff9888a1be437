"""Sheet music -> interleaved ABC, the text CLaMP 3's symbolic (M3) tower reads for scores.

Routes, per file kind:

* ``.mxl``, ``.musicxml``, ``.xml``: xml2abc ``-d 8 -x`` then the interleaving pipeline, byte for byte what
  the reference's ``batch_xml2abc.py`` + ``batch_interleaved_abc.py`` write. One item, id = the path.
* ``.abc``: split into tunes (:func:`~clamp3.preprocess.abc_tunes.split_abc_tunes`; ids ``path#<X>``, or
  ``path`` for a file without ``X:`` lines), then per tune:

  - text that is already interleaved (what the pipeline writes: no ``X:`` line, ``[V:n]`` body lines) is
    used as it is, as the reference's feature extraction uses such files;
  - a tune laid out as xml2abc writes it (exactly one ``V:1`` line, one block per voice; for example the
    reference's own standard-ABC files) goes straight through the pipeline, which is what the reference does
    with it;
  - any other tune (single-voice folk tunes without ``V:``, voices in several blocks, inline ``[V:]``
    voices) goes ABC -> MusicXML (abc2xml) -> xml2abc -> pipeline. The reference drops tunes without a
    ``V:1`` line ("tunebody index not found.") and garbles tunes written in several voice blocks (the body
    starts at the last ``V:1``, so earlier blocks end up in the header); the detour through MusicXML
    handles both and yields xml2abc's layout (``L:1/8``, normalised spacing), the one the model was
    trained on. It is not used for xml2abc-shaped tunes because the round trip is not exact for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clamp3.errors import InputError
from clamp3.modality import FileKind, kind_from_extension, text_encoding
from clamp3.preprocess.abc_convert import (
    MUSICXML_SUFFIXES,
    Conversion,
    abc_to_musicxml,
    musicxml_to_abc,
    read_musicxml,
)
from clamp3.preprocess.abc_interleave import abc_to_interleaved
from clamp3.preprocess.abc_tunes import (
    AbcTune,
    decode_abc,
    is_interleaved,
    is_xml2abc_shaped,
    split_abc_tunes,
    stray_header_line,
)
from clamp3.preprocess.text import decode_text

SHEET_SUFFIXES = (*MUSICXML_SUFFIXES, ".abc")
"""File name endings taken as sheet music, compared case-insensitively."""

_ABC2XML_NOISE = "skipped header: (field X,"  # abc2xml says this for every tune: X: is not copied to XML


@dataclass(frozen=True)
class SymbolicItem:
    """One piece of symbolic input: its id (a path, or ``path#<X>`` for a tune), its text and warnings."""

    id: str
    text: str
    warnings: tuple[str, ...] = ()


def is_sheet_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends in ``.abc``, ``.mxl``, ``.musicxml`` or ``.xml`` (any letter case)."""
    return Path(path).suffix.lower() in SHEET_SUFFIXES


def xml_to_interleaved(path: str | os.PathLike[str]) -> Conversion:
    """Interleaved ABC for a MusicXML file: xml2abc ``-d 8 -x``, then the interleaving pipeline."""
    return musicxml_to_interleaved(read_musicxml(path), source=os.fspath(path))


def musicxml_to_interleaved(data: bytes, source: str = "<musicxml>") -> Conversion:
    """Interleaved ABC for one MusicXML document (:func:`xml_to_interleaved` without the file)."""
    standard = musicxml_to_abc(data, source=source)
    interleaved = abc_to_interleaved(standard.text, source=source)
    return Conversion(interleaved.text, _prefixed("xml2abc", standard.warnings) + interleaved.warnings)


def tune_to_interleaved(tune: str, source: str = "<abc>") -> Conversion:
    """Interleaved ABC for one ABC tune, by the route the module docstring describes.

    Text that is already interleaved is returned unchanged.
    """
    if is_interleaved(tune):
        return Conversion(tune)
    if is_xml2abc_shaped(tune):
        return abc_to_interleaved(tune, source=source)
    xml = abc_to_musicxml(tune, source=source)
    interleaved = musicxml_to_interleaved(xml.text.encode("utf-8"), source=source)
    warnings = [w for w in xml.warnings if not w.startswith(_ABC2XML_NOISE)]
    stray = stray_header_line(tune)
    if stray is not None:
        warnings.append(f"the header has a line that is no field, {stray!r}; the music is read from there on")
    return Conversion(interleaved.text, _prefixed("abc2xml", warnings) + interleaved.warnings)


def read_abc(path: str | os.PathLike[str]) -> str:
    """The text of an ABC file (see :func:`~clamp3.preprocess.abc_tunes.decode_abc`); refuses binary data."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc
    if not data.strip():
        raise InputError(path, "the file is empty")
    if text_encoding(data) not in ("utf-8-sig", "utf-8"):  # UTF-16 or UTF-32 with a byte-order mark
        try:
            data = decode_text(data).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(path, f"not {text_encoding(data)} text (byte {exc.start})") from exc
    if b"\x00" in data:  # abc2xml would read binary data decoded as Latin-1 as notes
        raise InputError(path, f"binary data, not ABC text (a NUL byte at offset {data.index(0)})")
    return decode_abc(data)


def abc_file_tunes(path: str | os.PathLike[str]) -> list[AbcTune]:
    """The tunes of an ABC file (see :func:`~clamp3.preprocess.abc_tunes.split_abc_tunes`)."""
    tunes = split_abc_tunes(read_abc(path), os.fspath(path))
    if not tunes:
        raise InputError(path, "no ABC tune found")
    return tunes


def sheet_file_items(
    path: str | os.PathLike[str],
    kind: FileKind | None = None,
    check_tune: Callable[[str, str], None] | None = None,
) -> list[SymbolicItem | InputError]:
    """The interleaved-ABC items of a sheet music file, each tune converted on its own.

    ``kind`` (ABC or MusicXML) chooses the route; by default the file name's extension does. A tune
    that cannot be converted is an :class:`InputError` (named ``path#<X>``) in its place, so the other
    tunes of a file still count; a file that cannot be read at all raises :class:`InputError`.
    ``check_tune(id, text)`` may refuse a tune before it is converted (size limits).
    """
    name = os.fspath(path)
    kind = kind or kind_from_extension(name)
    if kind is FileKind.MUSICXML:
        return [_item(name, xml_to_interleaved(name))]
    if kind is not FileKind.ABC:
        raise InputError(name, f"not a sheet music file (expected one of {', '.join(SHEET_SUFFIXES)})")
    results: list[SymbolicItem | InputError] = []
    for tune in abc_file_tunes(name):
        try:
            if check_tune is not None:
                check_tune(tune.id, tune.text)
            results.append(_item(tune.id, tune_to_interleaved(tune.text, source=tune.id)))
        except InputError as error:
            results.append(error)
        except Exception as exc:  # one tune must never take the others of its file with it
            results.append(InputError.unexpected(tune.id, exc))
    return results


def sheet_to_interleaved(path: str | os.PathLike[str], kind: FileKind | None = None) -> list[SymbolicItem]:
    """The interleaved-ABC items of a sheet music file (``.abc``, ``.mxl``, ``.musicxml``, ``.xml``).

    Raises :class:`InputError` for a file (or the first of its tunes, named ``path#<X>``) that cannot be
    converted; :func:`sheet_file_items` goes on past failing tunes.
    """
    items = sheet_file_items(path, kind)
    for item in items:
        if isinstance(item, InputError):
            raise item
    return items  # type: ignore[return-value]


def _item(item_id: str, conversion: Conversion) -> SymbolicItem:
    return SymbolicItem(item_id, conversion.text, conversion.warnings)


def _prefixed(stage: str, warnings: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(f"{stage}: {warning}" for warning in warnings)
