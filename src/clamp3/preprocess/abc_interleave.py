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
as warnings, in the order the reference prints them. Where abctoolkit's bar splitter fails on empty bars at
the ends of a voice, they are trimmed (:func:`trim_end_runs`) and the tune converted, with a first warning
``route: end bars trimmed (...)``.
"""

from __future__ import annotations

import io
import itertools
import re

from abctoolkit.rotate import rotate_abc
from abctoolkit.utils import (
    Barline_regexPattern,
    Barlines,
    Quote_re,
    remove_bar_no_annotations,
    remove_information_field,
)

from clamp3.errors import InputError
from clamp3.preprocess.abc_convert import Conversion
from clamp3.preprocess.abc_modules import fresh_module, one_line, print_to

INFORMATION_FIELDS = ("X:", "T:", "C:", "W:", "w:", "Z:", "%%MIDI")
"""Lines starting with these are removed: tune number, titles, composer, lyrics, transcriber, MIDI."""

_FIELD_LINE = re.compile(r"^[A-Za-z]:")
_QUOTED = re.compile(Quote_re)
_BARLINE = re.compile(Barline_regexPattern)  # abctoolkit's own, to find barlines as its splitter does


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
    try:
        stripped = _strip_empty_bars(lines, messages)
    except Exception as exc:
        failure = f"Error in stripping empty bars: {one_line(exc)}"
        trimmed = trim_end_runs(lines)
        if trimmed == lines:
            raise InputError(source, failure + _empty_bar_hint(lines)) from exc
        messages = [f"route: end bars trimmed ({failure}; the empty bars at the ends of voices were dropped)"]
        try:
            stripped = _strip_empty_bars(trimmed, messages)
        except Exception as again:
            raise InputError(source, failure + _empty_bar_hint(trimmed)) from again
        lines = trimmed
    if stripped is None:  # strip_empty_bars printed why: "Unequal bar numbers." or "Empty piece."
        raise InputError(source, messages[-1])

    try:
        same_bar_numbers, same_durations = _check_alignment(stripped, messages)
    except Exception as exc:
        raise InputError(source, one_line(exc) + _empty_bar_hint(lines)) from exc
    if not same_bar_numbers:
        messages.append("Unequal bar number")
    if not same_durations:
        messages.append("Unequal bar duration (unaligned)")
    try:
        rotated = rotate_abc(stripped)
    except Exception as exc:
        raise InputError(source, f"Error in rotating: {one_line(exc)}") from exc
    return Conversion("".join(rotated), tuple(messages))


def trim_end_runs(lines: list[str]) -> list[str]:
    """``lines`` with each voice's leading and trailing runs of barlines cut to one barline.

    A run of barlines with nothing between them (``|| |]``) holds empty bars, which abctoolkit's bar
    splitter cannot take apart (xml2abc writes them for measures without notes or rests, as abc2xml makes
    from an invisible barline ``[|]``). At the ends of a voice they are the empty bars the pipeline strips
    anyway: a leading run keeps its first barline and a trailing run its last, as stripping would.
    """
    body = _body_start(lines)
    if body is None:
        return lines
    trimmed = list(lines)
    starts = [i for i in range(body, len(lines)) if lines[i].startswith("V:")]
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        if end - start >= 2:
            trimmed[start + 1] = _trim_run(trimmed[start + 1], leading=True)
            trimmed[end - 1] = _trim_run(trimmed[end - 1], leading=False)
    return trimmed


def _trim_run(line: str, leading: bool) -> str:
    """``line`` with the run of barlines at its start (or end) cut to its first (or last) barline."""
    barlines = list(_BARLINE.finditer(line))  # the barlines abctoolkit's splitter finds
    if not leading:
        barlines.reverse()
    run = []
    edge = 0 if leading else len(line)
    for barline in barlines:
        gap = line[edge : barline.start()] if leading else line[barline.end() : edge]
        if gap.strip():
            break
        run.append(barline)
        edge = barline.end() if leading else barline.start()
    if len(run) < 2:
        return line
    if leading:
        return line[: run[0].end()] + line[run[-1].end() :]
    return line[: run[-1].start()] + line[run[0].start() :]


def _body_start(lines: list[str]) -> int | None:
    """Where the pipeline takes the tune body to start: the last line that is exactly ``V:1``."""
    return next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "V:1"), None)


def _empty_bar_hint(lines: list[str]) -> str:
    """Why the bar splitter failed, where a voice holds an empty bar (barlines with only spaces between)."""
    body = _body_start(lines) or 0
    for line in lines[body:]:
        barlines = [] if line.startswith("V:") else list(_BARLINE.finditer(line))
        for left, right in itertools.pairwise(barlines):
            if not line[left.end() : right.start()].strip():
                empty = line[left.start() : right.end()]
                return (
                    f" (an empty bar {empty!r} inside the music, which abctoolkit's bar splitter cannot take)"
                )
    return ""


def _strip_empty_bars(lines: list[str], messages: list[str]) -> list[str] | None:
    """abctoolkit's ``strip_empty_bars``, printing into ``messages``; ``None`` where it refuses the tune."""
    utils = fresh_module("utils")
    utils.print = print_to(messages)
    return utils.strip_empty_bars(lines)[0]


def _check_alignment(lines: list[str], messages: list[str]) -> tuple[bool, bool]:
    """abctoolkit's ``check_alignment_unrotated`` (bar counts, bar durations), printing into ``messages``."""
    duration = fresh_module("duration")
    duration.print = print_to(messages)
    check = fresh_module("check")
    check.print = print_to(messages)
    check.calculate_bartext_duration = duration.calculate_bartext_duration
    _, same_bar_numbers, same_durations = check.check_alignment_unrotated(lines)
    return same_bar_numbers, same_durations
