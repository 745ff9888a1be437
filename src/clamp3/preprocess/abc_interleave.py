"""Standard ABC -> interleaved ABC, the reference's ``batch_interleaved_abc.py`` pipeline (abctoolkit 0.0.4).

In order: drop blank lines; drop the ``X: T: C: W: w: Z: %%MIDI`` lines; drop the bar-number comments
(``%12``) that xml2abc writes at the end of body lines; remove quoted text that contains a barline (and
``\\"`` on other lines, see :func:`clean_quotes`); strip leading and trailing empty bars; check that the
voices line up (warnings only); rotate, so that each line holds one bar of every voice:
``[V:1]<bar>|[V:2]<bar>|``.

The tune body starts at the last line that is exactly ``V:1`` and each voice must be written as one block
(``V:n`` then its lines), which is the shape xml2abc writes. abctoolkit's messages are collected, not
printed: failures (``tunebody index not found.``, ``Unequal bar numbers.``, ``Empty piece.``) raise
:class:`InputError`, the rest (``Unequal barlines.``, ``Unequal bar duration (unaligned)``, ...) are returned
as warnings, in the order the reference prints them.
"""

from __future__ import annotations

import io
import re

from abctoolkit.rotate import rotate_abc
from abctoolkit.utils import Barlines, Quote_re, remove_bar_no_annotations, remove_information_field

from clamp3.errors import InputError
from clamp3.preprocess.abc_convert import Conversion
from clamp3.preprocess.abc_modules import fresh_module, one_line, print_to

INFORMATION_FIELDS = ("X:", "T:", "C:", "W:", "w:", "Z:", "%%MIDI")
"""Lines starting with these are removed: tune number, titles, composer, lyrics, transcriber, MIDI."""

_FIELD_LINE = re.compile(r"^[A-Za-z]:")
_QUOTED = re.compile(Quote_re)


def abc_lines(text: str) -> list[str]:
    """The lines of ``text`` with their ``\\n``, as a file opened in text mode reads them (CR/CRLF -> LF)."""
    return io.StringIO(text, newline=None).readlines()


def clean_quotes(line: str) -> str:
    """The reference's quote clean-up of one line, quirk included.

    Field lines (``K:``...) and ``%`` lines are kept. On other lines every ``\\"`` is removed, unless the
    line has a quoted string containing a barline: then those strings are removed from the *original*
    line and the ``\\"`` removal is lost.
    """
    if _FIELD_LINE.match(line) or line.startswith("%"):
        return line
    cleaned = line.replace('\\"', "")
    without_barline_quotes = line
    for quoted in _QUOTED.findall(line):
        if any(barline in quoted for barline in Barlines):
            without_barline_quotes = without_barline_quotes.replace(quoted, "")
            cleaned = without_barline_quotes
    return cleaned


def abc_to_interleaved(text: str, source: str = "<abc>") -> Conversion:
    """Interleaved ABC for one standard ABC tune written as xml2abc writes it (see the module docstring).

    ``source`` names the tune in errors. Raises :class:`InputError` where the reference skips the file.
    """
    lines = [line for line in abc_lines(text) if line.strip()]
    try:
        lines = remove_bar_no_annotations(remove_information_field(lines, list(INFORMATION_FIELDS)))
    except Exception as exc:  # abctoolkit raises bare Exceptions, e.g. "tunebody index not found."
        raise InputError(source, one_line(exc)) from exc
    lines = [clean_quotes(line) for line in lines]

    messages: list[str] = []
    utils = fresh_module("utils")
    utils.print = print_to(messages)
    try:
        stripped, _ = utils.strip_empty_bars(lines)
    except Exception as exc:
        raise InputError(source, f"Error in stripping empty bars: {one_line(exc)}") from exc
    if stripped is None:  # strip_empty_bars printed why: "Unequal bar numbers." or "Empty piece."
        raise InputError(source, messages[-1])

    try:
        same_bar_numbers, same_durations = _check_alignment(stripped, messages)
    except Exception as exc:
        raise InputError(source, one_line(exc)) from exc
    if not same_bar_numbers:
        messages.append("Unequal bar number")
    if not same_durations:
        messages.append("Unequal bar duration (unaligned)")
    try:
        rotated = rotate_abc(stripped)
    except Exception as exc:
        raise InputError(source, f"Error in rotating: {one_line(exc)}") from exc
    return Conversion("".join(rotated), tuple(messages))


def _check_alignment(lines: list[str], messages: list[str]) -> tuple[bool, bool]:
    """abctoolkit's ``check_alignment_unrotated`` (bar counts, bar durations), printing into ``messages``."""
    duration = fresh_module("duration")
    duration.print = print_to(messages)
    check = fresh_module("check")
    check.print = print_to(messages)
    check.calculate_bartext_duration = duration.calculate_bartext_duration
    _, same_bar_numbers, same_durations = check.check_alignment_unrotated(lines)
    return same_bar_numbers, same_durations
