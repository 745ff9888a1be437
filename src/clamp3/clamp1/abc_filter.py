"""The text CLaMP 1 makes of xml2abc's output (reference ``load_music`` + ``abc_filter``), quirks included.

xml2abc's stdout has ``\\r`` removed, is transliterated to ASCII (Unidecode 1.3.4), split on ``\\n`` and
filtered line by line:

* a line is dropped when its first two characters are one of ``A: B: C: D: F: H: N: O: R: r: S: T: W: w:
  X: Z:``, or when it is exactly ``G`` (the reference lists ``'G'`` where ``'G:'`` was probably meant);
* a line starting with ``%`` is dropped, except ``%%score`` lines;
* in any other line containing ``%``, the text after the last ``%`` and the one character before that
  ``%`` are removed (meant for xml2abc's `` %N`` bar numbers; it also eats the barline of ``abc|%5``);
* blank lines are **kept** (the reference meant to drop them, but its test could never be true);
* every kept line ends in ``\\n``, so an empty input becomes ``"\\n"``.
"""

from __future__ import annotations

from clamp3.clamp1.text import ascii_text

DROPPED_PREFIXES = frozenset(
    {"A:", "B:", "C:", "D:", "F:", "G", "H:", "N:", "O:", "R:", "r:", "S:", "T:", "W:", "w:", "X:", "Z:"}
)
"""Compared with ``line[:2]``, so ``"G"`` matches only a line that is exactly ``G``."""


def filter_abc(text: str) -> str:
    """Apply the reference's ``abc_filter`` to the lines of ``text`` (split on ``\\n``)."""
    kept = []
    for line in text.split("\n"):
        if line[:2] in DROPPED_PREFIXES or (line.startswith("%") and not line.startswith("%%score")):
            continue
        if "%" in line and not line.startswith("%%score"):
            line = "%".join(line.split("%")[:-1])[:-1]
        kept.append(line + "\n")
    return "".join(kept)


def prepare_xml2abc_output(raw: str) -> str:
    """What the reference's ``load_music`` returns for xml2abc's stdout ``raw``: the text the model sees."""
    return filter_abc(ascii_text(raw.replace("\r", "")))
