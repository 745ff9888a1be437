"""MusicXML that xml2abc 143 stops on: valid constructs rewritten so that it reads them, invalid ones named.

xml2abc raises an exception, and converts nothing, on some valid MusicXML:

* a lyric line with a name instead of a number (``<lyric number="chorus">``; the schema allows any
  NMTOKEN), because it reads the number with ``int()``;
* a metronome mark without a tempo (``<metronome>`` giving a metric relation such as quarter = dotted
  quarter, with no ``<per-minute>``).

:func:`repair_for_xml2abc` rewrites those: named lyric lines get the numbers after the highest numbered
line of the score, in order of appearance; metronome marks without a tempo are left out (ABC's ``Q:``
field holds a tempo, not a relation between two beat units). It is used only after xml2abc failed, so
documents xml2abc reads are converted untouched. :func:`xml2abc_blocker` names what makes a document
invalid MusicXML where xml2abc fails on exactly that (an ``<accidental>`` without a value).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree import ElementTree

_SIBELIUS_VERSE = re.compile(r"^.*verse")  # xml2abc reads "verse2" (Sibelius) as lyric line 2


def repair_for_xml2abc(data: bytes) -> tuple[bytes, tuple[str, ...]] | None:
    """The document with the constructs of the module docstring rewritten, and what was changed.

    ``None`` when the document is not well-formed or holds none of them.
    """
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError, LookupError):
        return None
    notes = [*_number_lyric_lines(root), *_drop_relative_metronomes(root)]
    if not notes:
        return None
    return ElementTree.tostring(root, encoding="utf-8"), tuple(notes)


def xml2abc_blocker(data: bytes) -> str:
    """Why xml2abc cannot read this invalid MusicXML, or ``""`` if it has none of the known faults."""
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError, LookupError):
        return ""
    for place, note in _in_measures(root, "note"):
        accidental = note.find("accidental")
        if accidental is not None and not (accidental.text or "").strip():
            return (
                f"invalid MusicXML: an <accidental> without a value ({place}); the schema requires one "
                "such as sharp or flat, and xml2abc cannot read the note"
            )
    return ""


def _number_lyric_lines(root: ElementTree.Element) -> list[str]:
    lyrics = list(root.iter("lyric"))
    numbers = [_lyric_number(lyric.get("number", "1")) for lyric in lyrics]
    names: dict[str, int] = {}
    last = max((number for number in numbers if number is not None), default=0)
    for lyric, number in zip(lyrics, numbers, strict=True):
        if number is None:
            name = lyric.get("number", "")
            if name not in names:
                names[name] = last = last + 1
            lyric.set("number", str(names[name]))
    return [
        f"lyric line {name!r} numbered {number} (xml2abc reads only numbered lines)"
        for name, number in names.items()
    ]


def _lyric_number(text: str) -> int | None:
    try:
        return int(_SIBELIUS_VERSE.sub("", text))
    except ValueError:
        return None


def _drop_relative_metronomes(root: ElementTree.Element) -> list[str]:
    notes = []
    for place, direction_type in _in_measures(root, "direction-type"):
        for metronome in direction_type.findall("metronome"):
            if metronome.find("per-minute") is None:
                direction_type.remove(metronome)
                notes.append(f"left out a metronome mark without a tempo ({_beat_units(metronome)}, {place})")
    return notes


def _beat_units(metronome: ElementTree.Element) -> str:
    """A metronome mark's beat units as text, one dot per ``<beat-unit-dot>``: ``quarter = quarter.``."""
    units: list[str] = []
    for child in metronome:
        if child.tag == "beat-unit":
            units.append(child.text or "?")
        elif child.tag == "beat-unit-dot" and units:
            units[-1] += "."
    return " = ".join(units) or "no beat unit"


def _in_measures(root: ElementTree.Element, tag: str) -> Iterator[tuple[str, ElementTree.Element]]:
    """``(where, element)`` for each ``tag`` element in a measure; where: ``part P1, measure 3``."""
    for part in root.iter("part"):
        for measure in part.iter("measure"):
            place = f"part {part.get('id', '?')}, measure {measure.get('number', '?')}"
            for element in measure.iter(tag):
                yield place, element
