"""Small file helpers shared by the packages that write to disk."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


@functools.cache
def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file under this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


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
        tmp.chmod(_file_mode())  # mkstemp files are private (0600); outputs should look like any file
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
