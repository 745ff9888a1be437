"""Small file helpers shared by the packages that write to disk."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``target``, then rename it over ``target``.

    Readers see either the old file or the complete new one, never a partial write.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
