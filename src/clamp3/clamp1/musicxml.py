"""MusicXML -> the ABC text CLaMP 1 sees: xml2abc ``-m 2 -c 6 -x``, then :func:`prepare_xml2abc_output`.

This route is CLaMP 1's own and is never mixed with CLaMP 3's (``-d 8 -x``): ``-m 2`` writes every
``%%MIDI`` directive, ``-c 6`` keeps all credit lines (as ``T:`` lines, later filtered out), and no ``-d``
lets xml2abc choose ``L:``. xml2abc runs in-process (:func:`clamp3.preprocess.abc_convert.musicxml_to_abc`).

Like xml2abc 143, which the reference calls, only an archive entry ending in ``.xml`` is read from an
``.mxl``; archives holding only a ``.musicxml`` entry give an :class:`InputError` here, where the
reference silently encodes them as an empty score.
"""

from __future__ import annotations

import os
from pathlib import Path

from clamp3.clamp1.abc_filter import prepare_xml2abc_output
from clamp3.errors import InputError
from clamp3.preprocess.abc_convert import Conversion, Xml2AbcOptions, musicxml_to_abc, score_in_archive

CLAMP1_XML2ABC = Xml2AbcOptions(unit_length=0, midi=2, credit_filter=6)
"""``xml2abc.py -m 2 -c 6 -x``, as the reference's ``load_music`` runs it."""


def read_score(path: str | os.PathLike[str]) -> bytes:
    """The MusicXML xml2abc 143 reads for ``path``: the file itself, or an archive's first ``.xml`` entry."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(name, exc.strerror or str(exc)) from exc
    if Path(name).suffix.lower() != ".mxl" and not data.startswith(b"PK\x03\x04"):
        return data
    return score_in_archive(data, name, suffixes=(".xml",))


def xml2abc_output(path: str | os.PathLike[str]) -> Conversion:
    """What ``xml2abc.py -m 2 -c 6 -x <path>`` prints, and its warnings."""
    return musicxml_to_abc(read_score(path), os.fspath(path), CLAMP1_XML2ABC)


def load_music(path: str | os.PathLike[str]) -> str:
    """The ABC text CLaMP 1 encodes for a MusicXML file (the reference's ``load_music``)."""
    return prepare_xml2abc_output(xml2abc_output(path).text)
