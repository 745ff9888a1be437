"""clamp3: universal music information retrieval with CLaMP 3.

>>> import clamp3
>>> model = clamp3.CLaMP3.from_pretrained("saas")                         # doctest: +SKIP
>>> hits = clamp3.search(None, ["music/"], text="a calm piano nocturne")   # doctest: +SKIP

Heavy modules (torch, transformers) are imported on first use, so light commands start fast.
"""

from __future__ import annotations

import logging
from importlib import import_module
from types import MappingProxyType
from typing import TYPE_CHECKING

from clamp3.config import CLaMP3Config
from clamp3.errors import CheckpointError, Clamp3Error, InputError, ModelNotAvailableError

if TYPE_CHECKING:
    from clamp3.api import embed, evaluate, load_model, locate, score, search, zero_shot
    from clamp3.clamp1 import CLaMP1
    from clamp3.encoder import CLaMP3
    from clamp3.library import Library
    from clamp3.retrieval import LinearProbe

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())  # the application decides what to show

_LAZY = MappingProxyType(
    {
        "CLaMP3": "clamp3.encoder",
        "CLaMP1": "clamp3.clamp1",
        "LinearProbe": "clamp3.retrieval",
        "Library": "clamp3.library",
        "embed": "clamp3.api",
        "evaluate": "clamp3.api",
        "load_model": "clamp3.api",
        "locate": "clamp3.api",
        "score": "clamp3.api",
        "search": "clamp3.api",
        "zero_shot": "clamp3.api",
    }
)

__all__ = [
    "CLaMP1",
    "CLaMP3",
    "CLaMP3Config",
    "CheckpointError",
    "Clamp3Error",
    "InputError",
    "Library",
    "LinearProbe",
    "ModelNotAvailableError",
    "__version__",
    "embed",
    "evaluate",
    "load_model",
    "locate",
    "score",
    "search",
    "zero_shot",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clamp3' has no attribute {name!r}")
