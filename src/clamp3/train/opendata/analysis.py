"""Cheap music21 analysis of one piece, and its MIDI file as music21 writes it.

Everything here needs music21 (imported on first use). music21 prints its warnings straight to stderr;
callers that want them use :func:`quiet`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clamp3.preprocess.abc_convert import abc_to_musicxml
from clamp3.train.opendata.corpus import Piece

if TYPE_CHECKING:
    from music21.stream import Score

_PENTATONIC = (0, 2, 4, 7, 9)
_DIATONIC = (0, 2, 4, 5, 7, 9, 11)
_CHURCH_MODES = frozenset({"dorian", "phrygian", "lydian", "mixolydian", "locrian"})
_SHARED_CLASSES = ("TimeSignature", "KeySignature", "Clef")
_VOICE_FIELD = re.compile(r"^\s*V:|\[V:", re.MULTILINE)


@dataclass(frozen=True)
class Analysis:
    """Facts music21 finds in a piece. Pitch names are written ``F#4``, ``Bb3``."""

    key_tonic: str
    """The tonic of ``analyze('key')`` (Krumhansl-Schmuckler), e.g. ``F#``."""
    key_mode: str
    """``major`` or ``minor``."""
    key_confidence: float
    """The correlation coefficient of the key estimate (about 0.85 for a typical folk tune)."""
    written_mode: str | None
    """A church mode the notation names (ABC ``K:A dorian``), else ``None``."""
    written_tonic: str | None
    meter: str | None
    """The first time signature, e.g. ``6/8``."""
    quarter_bpm: float | None
    """The first printed metronome mark in quarter notes per minute."""
    lowest: str
    highest: str
    semitones: int
    interval: str
    """The ambitus as music21 names it, e.g. ``Perfect Twelfth``."""
    notes: int
    """Notes and chords (a chord counts once), summed over the parts."""
    bars: int
    """Measures of the first part, a pickup counted as one."""
    parts: int
    chords: int
    """Chords inside the parts (chord symbols excluded)."""
    part_names: tuple[str, ...]
    pitch_classes: tuple[int, ...]
    scale: str | None
    """``pentatonic`` (the five pitch classes of a pentatonic scale) or ``hexatonic`` (six pitch classes
    inside one diatonic scale); ``None`` otherwise."""
    quarter_length: float

    @property
    def texture(self) -> str:
        """``monophonic``, ``chords`` (one part with some chords) or ``voices`` (several parts)."""
        if self.parts > 1:
            return "voices"
        return "chords" if self.chords else "monophonic"


@contextlib.contextmanager
def quiet() -> Iterator[list[str]]:
    """Collect music21's stderr output and Python warnings (one string per line) instead of printing them;
    the list is filled when the block ends, also when it raises."""
    stderr = io.StringIO()
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
        warnings.simplefilter("always")
        try:
            yield messages
        finally:
            messages += [" ".join(str(w.message).split()) for w in caught]
            messages += [line.strip() for line in stderr.getvalue().splitlines() if line.strip()]


def load_score(piece: Piece) -> Score:
    """The piece parsed by music21: a chorale from its file; a single-voice ABC tune by music21's ABC
    reader; a tune with voices (``V:``) from the MusicXML abc2xml makes of it, because music21's ABC
    reader turns every voice block into a part of its own that starts at the beginning."""
    from music21 import converter, stream

    if piece.abc is not None and _VOICE_FIELD.search(piece.abc):
        parsed = converter.parseData(abc_to_musicxml(piece.abc, source=piece.id).text, format="musicxml")
    elif piece.abc is not None:
        parsed = converter.parseData(piece.abc, format="abc")
    else:
        parsed = converter.parse(piece.musicxml, forceSource=True)
    if isinstance(parsed, stream.Opus):
        parsed = parsed.scores[0]
    if not isinstance(parsed, stream.Score):
        parsed = stream.Score([parsed])
    return parsed


def analyse(score: Score) -> Analysis:
    """The facts of :class:`Analysis`. Raises ``ValueError`` for a score without notes."""
    from music21 import harmony, interval, key, meter, stream, tempo

    notes = [n for n in score.recurse().notes if not isinstance(n, harmony.ChordSymbol)]
    pitches = [p for n in notes for p in n.pitches]
    if not pitches:
        raise ValueError("no notes")
    estimate = score.analyze("key")
    lowest = min(pitches, key=lambda p: p.ps)
    highest = max(pitches, key=lambda p: p.ps)
    span = interval.Interval(lowest, highest)
    parts = list(score.parts) or [score]
    written = next(iter(score.recurse().getElementsByClass(key.KeySignature)), None)
    written_mode = getattr(written, "mode", None)
    signatures = score.recurse().getElementsByClass(meter.TimeSignature)
    first_meter = next(iter(signatures), None)
    marks = [m for m in score.recurse().getElementsByClass(tempo.MetronomeMark) if m.number is not None]
    classes = tuple(sorted({p.pitchClass for p in pitches}))
    return Analysis(
        key_tonic=_name(estimate.tonic.name),
        key_mode=estimate.mode,
        key_confidence=round(float(estimate.correlationCoefficient), 3),
        written_mode=written_mode if written_mode in _CHURCH_MODES else None,
        written_tonic=_name(written.tonic.name) if written_mode in _CHURCH_MODES else None,
        meter=first_meter.ratioString if first_meter is not None else None,
        quarter_bpm=round(float(marks[0].getQuarterBPM()), 2) if marks else None,
        lowest=_name(lowest.nameWithOctave),
        highest=_name(highest.nameWithOctave),
        semitones=round(span.semitones),
        interval=span.niceName,
        notes=len(notes),
        bars=len(parts[0].getElementsByClass(stream.Measure)),
        parts=len(parts),
        chords=sum(1 for n in notes if n.isChord),
        part_names=tuple(p.partName or "" for p in parts) if len(parts) > 1 else (),
        pitch_classes=classes,
        scale=scale_name(classes),
        quarter_length=round(float(score.highestTime), 3),
    )


def scale_name(classes: tuple[int, ...]) -> str | None:
    """``pentatonic``, ``hexatonic`` or ``None`` for a set of pitch classes (see :attr:`Analysis.scale`)."""
    found = set(classes)
    if len(found) == 5 and any(found == {(t + i) % 12 for i in _PENTATONIC} for t in range(12)):
        return "pentatonic"
    if len(found) == 6 and any(found <= {(t + i) % 12 for i in _DIATONIC} for t in range(12)):
        return "hexatonic"
    return None


def without_repeats(score: Score) -> None:
    """Remove repeat signs, voltas and D.C./D.S. marks in place: the score is played once, as written."""
    from music21 import bar, repeat, spanner

    for sign in list(score.recurse().getElementsByClass(bar.Repeat)):
        measure = sign.activeSite
        if measure.leftBarline is sign:
            measure.leftBarline = None
        if measure.rightBarline is sign:
            measure.rightBarline = bar.Barline("regular")
    for expression in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
        expression.activeSite.remove(expression)
    for bracket in list(score.spannerBundle.getByClass(spanner.RepeatBracket)):
        for site in bracket.sites.get():
            if site is not None and bracket in site:
                site.remove(bracket)


def midi_bytes(score: Score) -> tuple[bytes, tuple[str, ...]]:
    """A Standard MIDI File of the score written by music21 (repeats played out), always with a tempo,
    and notes on what had to be changed for it.

    Repairs, made on the score itself: music21's ABC reader sometimes puts one time signature object into
    several measures, which its MIDI writer refuses, so repeats get copies; text-only tempo marks
    (``Q:"Slowly"``) would leave the file without any tempo, so they are dropped and music21 writes its
    default of 120 quarter notes per minute; and when music21 cannot expand the repeats (a segno it does
    not understand, for example), the repeat signs are removed and the music is written once through.
    """
    from music21 import midi, repeat, stream, tempo

    seen: set[int] = set()
    for measure in score.recurse().getElementsByClass(stream.Measure):
        for element in list(measure.getElementsByClass(_SHARED_CLASSES)):
            if id(element) in seen:
                measure.replace(element, copy.deepcopy(element))
            seen.add(id(element))
    for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
        if mark.number is None and mark.numberSounding is None:
            mark.activeSite.remove(mark)
    try:
        return midi.translate.streamToMidiFile(score).writestr(), ()
    except repeat.ExpanderException as exc:
        reason = " ".join(str(exc).split())
    without_repeats(score)
    note = f"MIDI without repeats: music21 could not expand them ({reason})"
    return midi.translate.streamToMidiFile(score).writestr(), (note,)


def _name(name: str) -> str:
    """music21's flat sign ``-`` as ``b`` (``B-4`` -> ``Bb4``)."""
    return name.replace("-", "b")
