"""clamp3: universal music information retrieval with CLaMP 3."""

from clamp3.config import CLaMP3Config
from clamp3.encoder import CLaMP3
from clamp3.errors import CheckpointError, Clamp3Error, InputError, ModelNotAvailableError

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
