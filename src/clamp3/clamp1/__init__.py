"""CLaMP 1 (microsoft/muzic ``clamp/``): English text and ABC notation in one embedding space.

``CLaMP1`` has the interface of :class:`clamp3.CLaMP3`; it is imported (with torch) on first use.

>>> from clamp3.clamp1 import CLaMP1, load_music, rank        # doctest: +SKIP
>>> model = CLaMP1.from_pretrained("clamp1-s512")             # doctest: +SKIP
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from clamp3.clamp1.abc_filter import filter_abc, prepare_xml2abc_output
from clamp3.clamp1.config import Clamp1Config
from clamp3.clamp1.musicxml import load_music, xml2abc_output
from clamp3.clamp1.patchilizer import encode_music
from clamp3.clamp1.text import ascii_text, text_keys

if TYPE_CHECKING:
    from clamp3.clamp1.encoder import CLaMP1
    from clamp3.clamp1.retrieval import Match, format_results, normalize, rank

__all__ = [
    "CLaMP1",
    "Clamp1Config",
    "Match",
    "ascii_text",
    "encode_music",
    "filter_abc",
    "format_results",
    "load_music",
    "normalize",
    "prepare_xml2abc_output",
    "rank",
    "text_keys",
    "xml2abc_output",
]

_LAZY = MappingProxyType(
    {
        "CLaMP1": "encoder",
        "Match": "retrieval",
        "format_results": "retrieval",
        "normalize": "retrieval",
        "rank": "retrieval",
    }
)


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"clamp3.clamp1.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'clamp3.clamp1' has no attribute {name!r}")
