"""Transposition of a MusicXML score by a named interval, for transposed copies of training pieces.

The score is transposed where it is written down, before any conversion: every note's ``<pitch>``,
its notated ``<accidental>``, every ``<key>`` signature and the chord symbols' roots and basses move by the
interval, spelled diatonically (a major second up turns D major into E major, F# into G#). A transposed
copy then runs through the same MusicXML -> ABC, MIDI and analysis path as the original, so it differs
from it in pitch only. Unpitched (drum) notes, rests and instrument transpositions stay as they are.

:func:`choose_interval` draws the interval from a seed and the piece, among those that keep every key
signature within six sharps or flats.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from xml.etree import ElementTree

from clamp3.errors import InputError

_STEPS = "CDEFGAB"
_NATURAL = (0, 2, 4, 5, 7, 9, 11)
_FIFTHS = {"C": 0, "D": 2, "E": 4, "F": -1, "G": 1, "A": 3, "B": 5}
"""Position of each natural note on the line of fifths (C = 0)."""
_CHORD_PARTS = (("root", "root-step", "root-alter"), ("bass", "bass-step", "bass-alter"))
"""Where a chord symbol (``<harmony>``) names pitches: element, its step and its alteration."""
_ACCIDENTALS = {-2: "flat-flat", -1: "flat", 0: "natural", 1: "sharp", 2: "double-sharp"}
MAX_FIFTHS = 6
"""The most sharps or flats a transposed key signature may have."""


@dataclass(frozen=True)
class Interval:
    """A transposition: ``steps`` letter names and ``semitones`` half steps, both signed."""

    name: str
    """music21's name, e.g. ``M2`` (a major second up) or ``-m3`` (a minor third down)."""
    steps: int
    semitones: int

    @property
    def fifths(self) -> int:
        """How far the interval moves a key signature along the line of fifths (``M2``: +2 sharps)."""
        step, _, alter = _move(0, 4, 0, self)
        return _FIFTHS[_STEPS[step]] + 7 * alter


INTERVALS = tuple(
    Interval(f"{sign}{name}", direction * steps, direction * semitones)
    for name, steps, semitones in (("m2", 1, 1), ("M2", 1, 2), ("m3", 2, 3), ("M3", 2, 4), ("P4", 3, 5))
    for sign, direction in (("", 1), ("-", -1))
)
"""The transpositions drawn from: up or down by a minor second to a perfect fourth."""


def _move(step: int, octave: int, alter: float, interval: Interval) -> tuple[int, int, float]:
    """``(step, octave, alter)`` of a pitch moved by ``interval``; steps index ``CDEFGAB``."""
    moved = step + interval.steps
    new_step, new_octave = moved % 7, octave + moved // 7
    semitone = 12 * octave + _NATURAL[step] + alter + interval.semitones
    return new_step, new_octave, semitone - 12 * new_octave - _NATURAL[new_step]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def key_signatures(data: bytes, name: str = "<musicxml>") -> list[int]:
    """The ``<fifths>`` of every key signature in a MusicXML document."""
    root = _parse(data, name)
    return [int(element.text or 0) for element in root.iter("fifths")]


def choose_interval(fifths: list[int], key: str, seed: int) -> Interval | None:
    """A deterministic interval for ``key`` (a piece id) and ``seed`` that keeps every key signature of
    ``fifths`` within :data:`MAX_FIFTHS`; ``None`` when none does."""
    allowed = [i for i in INTERVALS if all(abs(f + i.fifths) <= MAX_FIFTHS for f in fifths or [0])]
    if not allowed:
        return None
    return random.Random(hashlib.sha256(f"{seed}:{key}".encode()).digest()).choice(allowed)


def transpose_musicxml(data: bytes, interval: Interval, name: str = "<musicxml>") -> bytes:
    """The MusicXML document ``data`` transposed by ``interval`` (see the module docstring).

    Raises :class:`InputError` naming ``name`` when the document is not well-formed, or when a note or key
    would need more than a double sharp or flat.
    """
    root = _parse(data, name)
    for key in root.iter("key"):
        fifths = key.find("fifths")
        if fifths is not None:
            moved = int(fifths.text or 0) + interval.fifths
            if abs(moved) > 7:
                reason = f"a key signature transposed by {interval.name} has {abs(moved)} accidentals"
                raise InputError(name, reason)
            fifths.text = str(moved)
    for note in root.iter("note"):
        pitch = note.find("pitch")
        if pitch is None:
            continue
        alter = _transpose_named(pitch, "step", "alter", interval, name, octave=True)
        accidental = note.find("accidental")
        if accidental is not None:
            accidental.text = _ACCIDENTALS[round(alter)]
    for harmony in root.iter("harmony"):
        for part, step_tag, alter_tag in _CHORD_PARTS:
            element = harmony.find(part)
            if element is not None and element.find(step_tag) is not None:
                _transpose_named(element, step_tag, alter_tag, interval, name, octave=False)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _transpose_named(
    parent: ElementTree.Element, step_tag: str, alter_tag: str, interval: Interval, name: str, octave: bool
) -> float:
    """Move the ``step``/``alter`` (and ``octave``) children of ``parent``; returns the new alteration."""
    step_element = parent.find(step_tag)
    letter = (step_element.text or "").strip().upper() if step_element is not None else ""
    if letter not in _FIFTHS:
        raise InputError(name, f"<{step_tag}> holds {letter!r}, not a note name")
    alter_element = parent.find(alter_tag)
    octave_element = parent.find("octave") if octave else None
    try:
        alter = float(alter_element.text or 0) if alter_element is not None else 0.0
        old_octave = int(octave_element.text or 4) if octave_element is not None else 4
    except ValueError as exc:
        raise InputError(name, f"unreadable pitch: {exc}") from None
    step, new_octave, new_alter = _move(_STEPS.index(letter), old_octave, alter, interval)
    if abs(new_alter) > 2:
        raise InputError(name, f"{letter} transposed by {interval.name} needs more than a double accidental")
    step_element.text = _STEPS[step]
    if octave_element is not None:
        octave_element.text = str(new_octave)
    if new_alter == 0:
        if alter_element is not None:
            parent.remove(alter_element)
    else:
        if alter_element is None:
            alter_element = ElementTree.Element(alter_tag)
            parent.insert(list(parent).index(step_element) + 1, alter_element)
        alter_element.text = _number(new_alter)
    return new_alter


def _parse(data: bytes, name: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise InputError(name, f"not well-formed MusicXML ({exc})") from None
