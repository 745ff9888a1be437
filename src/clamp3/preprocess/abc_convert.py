"""MusicXML <-> standard ABC with the converters abctoolkit ships (W. G. Vree's xml2abc 143, abc2xml 238).

:func:`xml_to_abc` gives, byte for byte, the standard ABC the reference's ``batch_xml2abc.py`` writes
(``xml2abc.py -d 8 -x <file>``, stdout as UTF-8, including the empty line xml2abc prints after the tune).
:func:`abc_to_musicxml` gives what ``abc2xml.py <file>`` prints for one tune; it differs from the
reference's copy (abc2xml 245) only in the ``<encoder>`` version string and, like it, carries the date of
the run in ``<encoding-date>``.

Both run in-process on private module instances (:mod:`clamp3.preprocess.abc_modules`); their stderr
messages are returned as warnings. A file that cannot be converted raises :class:`InputError`.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

from clamp3.errors import InputError
from clamp3.preprocess.abc_modules import fresh_module, info_to, one_line
from clamp3.preprocess.musicxml_repair import repair_for_xml2abc, xml2abc_blocker

MUSICXML_SUFFIXES = (".mxl", ".musicxml", ".xml")
"""File name endings taken as MusicXML, compared case-insensitively; ``.mxl`` is the zipped form."""

_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    NotImplementedError,
    OSError,
    EOFError,
    ValueError,  # a damaged directory can give a negative seek offset
)
_BOUNDED_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
"""Compression methods zipfile decompresses piece by piece; it expands bzip2 and LZMA data in one call."""

MAX_ARCHIVED_SCORE_BYTES = 128 << 20
"""The largest uncompressed score read from an ``.mxl`` archive; larger entries are refused unread."""


@dataclass(frozen=True)
class Conversion:
    """The text a conversion produced and the warnings it reported on the way."""

    text: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Xml2AbcOptions:
    """xml2abc settings. The defaults are CLaMP 3's ``-d 8 -x``; other options keep xml2abc's defaults."""

    unit_length: int = 8
    """``-d``: ``L:1/unit_length`` for every voice (a power of two up to 512); 0: xml2abc picks per voice."""
    line_breaks: bool = False
    """Keep the score's system breaks as ``$`` (``-x`` turns them off)."""
    chars_per_line: int = 0
    """``-n``: wrap body lines at this many characters; 0 means 100 unless ``bars_per_line`` is set."""
    bars_per_line: int = 0
    """``-b``: at most this many bars per body line; 0: no limit (ignored when ``chars_per_line`` > 0)."""
    midi: int = 0
    """``-m``: 0 writes no ``%%MIDI`` directives, 1 only programs, 2 all (program, channel, volume, pan)."""
    credit_filter: int = 0
    """``-c``: credit text filter level; higher levels keep more credit lines (6 keeps all, as ``T:``)."""

    def __post_init__(self) -> None:
        if self.unit_length and self.unit_length not in {2**n for n in range(10)}:
            raise ValueError(f"unit_length must be 0 or a power of two up to 512, not {self.unit_length}")
        if self.chars_per_line < 0 or self.bars_per_line < 0:
            raise ValueError("chars_per_line and bars_per_line must be >= 0")
        if self.midi not in (0, 1, 2):
            raise ValueError(f"midi must be 0, 1 or 2, not {self.midi}")
        if self.credit_filter < 0:
            raise ValueError("credit_filter must be >= 0")

    def namespace(self) -> SimpleNamespace:
        """The option object xml2abc's command line would build for these settings."""
        return SimpleNamespace(
            u=False,
            m=self.midi,
            c=self.credit_filter,
            d=self.unit_length,
            n=self.chars_per_line,
            b=self.bars_per_line,
            o="",
            v=0,
            x=not self.line_breaks,
            p=[],
            j=False,
            t=False,
            s=False,
            v1=False,
            ped=True,
            stm=False,
            i=False,
        )


def is_musicxml_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends in ``.mxl``, ``.musicxml`` or ``.xml`` (any letter case)."""
    return Path(path).suffix.lower() in MUSICXML_SUFFIXES


def read_musicxml(path: str | os.PathLike[str]) -> bytes:
    """The MusicXML document of ``path``: the file itself, or for a zip archive the score inside it.

    A ``.mxl`` file must be a zip archive; an ``.xml``/``.musicxml`` file that is one is read as ``.mxl``.
    The score in an archive must be stored or deflated and at most :data:`MAX_ARCHIVED_SCORE_BYTES` long
    uncompressed; both are checked before anything is decompressed.
    """
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(name, exc.strerror or str(exc)) from exc
    if not data.strip():
        raise InputError(name, "the file is empty")
    if Path(name).suffix.lower() == ".mxl" or data.startswith(_ZIP_MAGIC):
        return score_in_archive(data, name)
    return data


def score_in_archive(data: bytes, name: str, suffixes: tuple[str, ...] = (".xml", ".musicxml")) -> bytes:
    """The score of a compressed MusicXML archive, chosen as xml2abc does.

    xml2abc takes the first entry whose name does not start with ``META`` and ends in ``.xml``. Archives
    holding only a ``.musicxml`` entry, which xml2abc cannot read, fall back to the first such entry
    (unless ``suffixes`` says otherwise).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [entry for entry in archive.namelist() if not entry.startswith("META")]
            for suffix in suffixes:
                for entry in entries:
                    if entry.lower().endswith(suffix):
                        return _read_entry(archive, archive.getinfo(entry), name)
    except _ZIP_ERRORS as exc:
        raise InputError(name, f"not a readable .mxl (zip) archive: {one_line(exc)}") from exc
    raise InputError(name, f"the .mxl archive holds no {' or '.join(suffixes)} score")


def _read_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str) -> bytes:
    """One archive entry, after checking that decompressing it takes bounded memory.

    zipfile stops a stored or deflated entry at the size its header states, so that size is checked first.
    """
    if entry.file_size > MAX_ARCHIVED_SCORE_BYTES:
        raise InputError(
            name,
            f"the score {entry.filename!r} would expand to {entry.file_size >> 20} MiB, more than the "
            f"{MAX_ARCHIVED_SCORE_BYTES >> 20} MiB a score may have (a zip bomb?)",
        )
    if entry.compress_type not in _BOUNDED_ZIP_METHODS:
        raise InputError(
            name,
            f"the score {entry.filename!r} is compressed with zip method {entry.compress_type}; only stored "
            "and deflated scores are read (MusicXML archives use deflate)",
        )
    return archive.read(entry)


def musicxml_to_abc(
    data: bytes, source: str = "<musicxml>", options: Xml2AbcOptions | None = None
) -> Conversion:
    """Standard ABC for one MusicXML document (``score-partwise``), as ``xml2abc.py`` prints it.

    Where xml2abc stops on valid MusicXML it cannot read (:mod:`~clamp3.preprocess.musicxml_repair`), the
    document is repaired and converted again; the warnings then start with ``route: repaired MusicXML``
    and say what was changed. ``source`` names the input in errors. Raises :class:`InputError` when the
    data is not well-formed XML, holds no notes, or xml2abc fails on it (naming the file's fault if known).
    """
    settings = (options or Xml2AbcOptions()).namespace()
    try:
        text, warnings = _run_xml2abc(data, source, settings)
    except ElementTree.ParseError as exc:
        raise InputError(source, f"not well-formed XML: {one_line(exc)}") from exc
    except Exception as exc:  # xml2abc fails in many ways on documents it does not expect
        failure = f"xml2abc failed: {type(exc).__name__}: {one_line(exc)}"
        repaired = repair_for_xml2abc(data)
        if repaired is None:
            raise InputError(source, _not_partwise(data) or xml2abc_blocker(data) or failure) from exc
        try:
            text, warnings = _run_xml2abc(repaired[0], source, settings)
        except Exception as again:
            raise InputError(
                source, xml2abc_blocker(data) or f"xml2abc failed: {type(again).__name__}: {one_line(again)}"
            ) from again
        warnings = (
            f"route: repaired MusicXML ({failure})",
            *(f"repaired: {note}" for note in repaired[1]),
            *warnings,
        )
    if not text:
        raise InputError(source, _not_partwise(data) or "the score has no notes")
    return Conversion(text, warnings)


def _run_xml2abc(data: bytes, source: str, settings: SimpleNamespace) -> tuple[str, tuple[str, ...]]:
    """xml2abc's output for ``data`` and its warnings; its exceptions pass through."""
    xml2abc = fresh_module("xml2abc")
    messages: list[tuple[str, bool]] = []
    xml2abc.info = info_to(messages)
    output = io.StringIO()
    xml2abc.abcOut = xml2abc.ABCoutput(f"{Path(source).stem}.abc", "", 0, settings)
    xml2abc.abcOut.outfile = output
    xml2abc.Parser(settings).parse(io.BytesIO(data))
    return output.getvalue(), tuple(message for message, warning in messages if warning)


def _not_partwise(data: bytes) -> str:
    """Why well-formed XML is no MusicXML that xml2abc reads, or ``""`` if it is a ``score-partwise``."""
    try:
        root = ElementTree.fromstring(data).tag
    except (ElementTree.ParseError, ValueError, LookupError):  # e.g. an encoding expat cannot read
        return ""
    return "" if root == "score-partwise" else f"not a partwise MusicXML score (the root element is <{root}>)"


def xml_to_abc(path: str | os.PathLike[str], options: Xml2AbcOptions | None = None) -> Conversion:
    """Standard ABC for a ``.mxl``, ``.musicxml`` or ``.xml`` file (see :func:`musicxml_to_abc`)."""
    return musicxml_to_abc(read_musicxml(path), os.fspath(path), options)


def abc_to_musicxml(tune: str, source: str = "<abc>") -> Conversion:
    """MusicXML for one ABC tune, as ``abc2xml.py`` prints it (with today's ``<encoding-date>``).

    Only the first tune of ``tune`` is converted; abc2xml also ends a tune at its first empty line.
    Warnings include the symbols abc2xml skipped (``misplaced symbol: ...``). Raises :class:`InputError`
    with abc2xml's message when it cannot convert the tune.
    """
    abc2xml = fresh_module("abc2xml")
    messages: list[tuple[str, bool]] = []
    abc2xml.info = info_to(messages)
    try:
        documents = abc2xml.getXmlDocs(tune, 0, 1)
    except Exception as exc:  # getXmlDocs reports most failures itself; anything else is a bug of its own
        raise InputError(source, f"abc2xml failed: {type(exc).__name__}: {one_line(exc)}") from exc
    if not documents:
        raise InputError(source, f"abc2xml failed: {_abc2xml_failure(messages)}")
    return Conversion(abc2xml.fixDoctype(documents[0]) + "\n", _abc2xml_warnings(messages))


def _abc2xml_warnings(messages: list[tuple[str, bool]]) -> tuple[str, ...]:
    """abc2xml's warnings, and its ``**misplaced symbol`` notices without the echoed line and caret."""
    return tuple(one_line(text.lstrip("*")) for text, warning in messages if warning or text.startswith("**"))


def _abc2xml_failure(messages: list[tuple[str, bool]]) -> str:
    """Why abc2xml gave no document: a syntax error (with its line) or the exception it caught."""
    for index in range(len(messages) - 1, -1, -1):
        text, warning = messages[index]
        if warning and text.startswith("an exception occurred"):
            return one_line(text.partition("\n")[2])
        if not warning and text.startswith(("Syntax error", "Error:")):
            line = messages[index - 2][0] if index >= 2 else ""
            return f"{one_line(text)} in: {one_line(line)}"
    return "no tune found"
