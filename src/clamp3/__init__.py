"""clamp3: universal music information retrieval with CLaMP 3.

The encoder (and with it torch) is imported on first use, so light commands start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clamp3.config import CLaMP3Config
from clamp3.errors import CheckpointError, Clamp3Error, InputError, ModelNotAvailableError

if TYPE_CHECKING:
    from clamp3.encoder import CLaMP3

__version__ = "0.1.0"

__all__ = [
    "CLaMP3",
    "CLaMP3Config",
    "CheckpointError",
    "Clamp3Error",
    "InputError",
    "ModelNotAvailableError",
    "__version__",
]


def __getattr__(name: str):
    if name == "CLaMP3":
        from clamp3.encoder import CLaMP3

        return CLaMP3
    raise AttributeError(f"module 'clamp3' has no attribute {name!r}")
