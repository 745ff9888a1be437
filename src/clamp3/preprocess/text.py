"""Text input: how a description (a string or a ``.txt`` file) becomes one text for the tokenizer.

A text holds one description per line. Lines are NFC-normalised, empty lines dropped and repeated
lines removed keeping the first occurrence (the reference uses ``set()``, whose order changes from
run to run), then joined with the tokenizer's separator token.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from clamp3.errors import InputError


def text_lines(text: str) -> list[str]:
    """The distinct non-empty lines of ``text`` in first-occurrence order, NFC-normalised."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return list(dict.fromkeys(line for line in text.split("\n") if line))


def join_lines(text: str, separator: str) -> str:
    """``text`` as one tokenizer input: its lines (see :func:`text_lines`) joined by ``separator``."""
    lines = text_lines(text)
    if not lines:
        raise ValueError("the text is empty")
    return separator.join(lines)


def read_text_file(path: str | Path) -> str:
    """The content of a UTF-8 ``.txt`` file (a byte-order mark is dropped)."""
    try:
        content = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc
    if not text_lines(content):
        raise InputError(path, "the text file is empty")
    return content
