"""Small file helpers shared by the packages that write to disk."""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


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


def npy_name(item_path: str) -> Path:
    """Where an item's ``.npy`` goes: ``dir/tune.abc#3`` -> ``dir/tune.3.npy``, ``dir/a.mid`` -> ``a.npy``.

    The reference's layout: one ``(1, D)`` file per item, named after its source file.
    """
    name, _, tune = item_path.partition("#")
    stem = Path(name).with_suffix("")
    return stem.with_name(f"{stem.name}.{tune}.npy" if tune else f"{stem.name}.npy")


def save_npy(target: Path, array: np.ndarray) -> None:
    """Write ``array`` as float32 ``.npy``, atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    atomic_write(target, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def embeddings_schema(fingerprint: str, name: str | None) -> pa.Schema:
    """The columns of ``clamp3 embed --format parquet`` (``--ray`` too): id, path, modality, vector,
    with the model's fingerprint (``model``) and name (``model_name``) in the metadata."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("path", pa.string()),
            pa.field("modality", pa.string()),
            pa.field("vector", pa.list_(pa.float32())),
        ],
        metadata={"model": fingerprint, "model_name": name or ""},
    )
