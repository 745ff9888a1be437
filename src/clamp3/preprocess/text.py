"""Text input: how a description (a string or a ``.txt`` file) becomes one text for the tokenizer.

A text holds one description per line. Lines are NFC-normalised, empty lines dropped and repeated
lines removed keeping the first occurrence (the reference uses ``set()``, whose order changes from
run to run), then joined with the tokenizer's separator token.
"""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

from clamp3.errors import InputError
from clamp3.modality import text_encoding


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


def decode_text(data: bytes) -> str:
    """``data`` as text: UTF-8, or UTF-8, UTF-16 or UTF-32 as its byte-order mark says (the mark dropped).

    Raises ``UnicodeDecodeError`` whose ``start`` counts bytes from the start of ``data``.
    """
    codec = text_encoding(data)
    if codec != "utf-8-sig":
        return data.decode(codec)
    try:
        return data[len(codecs.BOM_UTF8) :].decode("utf-8")
    except UnicodeDecodeError as exc:
        exc.start += len(codecs.BOM_UTF8)
        raise


def read_text_file(path: str | Path) -> str:
    """The content of a ``.txt`` file (see :func:`decode_text`).

    Raises :class:`InputError` for a file that cannot be read or decoded, and for one with nothing to
    embed: no lines, or only whitespace.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc
    try:
        content = decode_text(data)
    except UnicodeDecodeError as exc:
        codec = text_encoding(data).removesuffix("-sig").upper()
        raise InputError(path, f"not {codec} text (byte {exc.start})") from exc
    if not text_lines(content):
        raise InputError(path, "the text file is empty")
    if not content.strip():
        raise InputError(path, "the text file holds only whitespace: nothing to embed")
    return content
