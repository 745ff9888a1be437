"""ABC files: decoding, splitting a file into tunes, and telling the shapes of ABC text apart.

A file may hold many tunes, each starting at an ``X:`` line (as abc2xml splits them: ``^\\s*X:``). What
comes before the first ``X:`` is the file header. Following the ABC standard, where the file header holds
defaults for every tune, its field lines (``M:``, ``L:``, ``I:``...) and ``%%`` directives are put in front
of each tune; its comments and free text are dropped. A file without any ``X:`` line is one tune.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from clamp3.preprocess.abc_interleave import abc_lines

_TUNE_START = re.compile(r"^\s*X:", re.MULTILINE)
_FIELD_LINE = re.compile(r"^[A-Za-z+]:")


class AbcTune(NamedTuple):
    """One tune of an ABC file: its item id and its text (file header included)."""

    id: str
    text: str


def decode_abc(data: bytes) -> str:
    """ABC file bytes as text: UTF-8 (a byte-order mark dropped), else Latin-1 as abc2xml falls back to;
    line ends normalised to ``\\n``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return "".join(abc_lines(text))


def split_abc_tunes(text: str, name: str) -> list[AbcTune]:
    """The tunes of an ABC file named ``name``, each with the id ``name#<X number>``.

    A tune number used twice gets ``~2``, ``~3``... appended (``name#4~2``), an empty one its position in
    the file. Text without ``X:`` lines (an interleaved file, or a lone tune without a number) is one
    tune with the id ``name``; blank text gives an empty list.
    """
    pieces = _TUNE_START.split(text)
    preamble, bodies = pieces[0], pieces[1:]
    if not bodies:
        return [AbcTune(name, text)] if text.strip() else []
    header = "".join(line for line in abc_lines(preamble) if _FIELD_LINE.match(line) or line.startswith("%%"))
    tunes: list[AbcTune] = []
    seen: dict[str, int] = {}
    for position, body in enumerate(bodies, start=1):
        number = body.split("\n", 1)[0].split("%", 1)[0].strip() or str(position)
        seen[number] = seen.get(number, 0) + 1
        suffix = f"~{seen[number]}" if seen[number] > 1 else ""
        tunes.append(AbcTune(f"{name}#{number}{suffix}", f"{header}X:{body}"))
    return tunes


def is_interleaved(text: str) -> bool:
    """Whether ``text`` is already interleaved ABC, as the pipeline writes it.

    That is: no ``X:`` line, header lines that are all fields or ``%`` lines, then only lines that start
    with an inline voice field ``[V:``.
    """
    lines = [line for line in abc_lines(text) if line.strip()]
    body = next((i for i, line in enumerate(lines) if line.startswith("[V:")), None)
    if body is None:
        return False
    header = lines[:body]
    return (
        all(line.startswith("[V:") for line in lines[body:])
        and all(_FIELD_LINE.match(line) or line.startswith("%") for line in header)
        and not any(line.startswith("X:") for line in header)
    )


def is_xml2abc_shaped(text: str) -> bool:
    """Whether a standard ABC tune has the layout the interleaving pipeline needs, the one xml2abc writes.

    That is: exactly one line that is ``V:1``, after it every voice as a single block (no ``V:`` symbol
    twice) and no inline voice switches (``[V:``). The pipeline takes the body from the *last* ``V:1`` line
    and keeps one block per voice, so tunes written in several ``V:1``/``V:2`` blocks would lose music.
    """
    lines = abc_lines(text)
    starts = [i for i, line in enumerate(lines) if line.strip() == "V:1"]
    if len(starts) != 1:
        return False
    body = lines[starts[0] :]
    symbols = [line.strip() for line in body if line.startswith("V:")]
    return len(symbols) == len(set(symbols)) and not any("[V:" in line for line in body)


def stray_header_line(tune: str) -> str | None:
    """The first line of a tune's header (from ``X:`` up to ``K:``) that is no field, comment or directive.

    ABC allows none there; abc2xml takes the music to start at such a line, so the fields after it
    (``K:`` included) land in the body.
    """
    for line in abc_lines(tune):
        if line.startswith("K:"):
            return None
        if line.strip() and not (_FIELD_LINE.match(line) or line.startswith("%")):
            return line.strip()
    return None
