"""MERT feature files (``.npy``): what ``clamp3 convert audio2mert`` writes and the audio tower reads.

A feature file holds one floating-point array ``[n_windows, D]``, or ``[1, n_windows, D]`` as the reference
saves it. :func:`load_feature_file` reads the header first and checks it against the file before reading any
data, so pickles (``.npy`` object arrays, bare pickles) are never unpickled and a header that promises more
data than the file holds is refused without allocating it.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import MappingProxyType

import numpy as np

from clamp3.errors import InputError

_NPY_MAGIC = b"\x93NUMPY"
_HEADER_READERS = MappingProxyType(
    {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _not_npy(path: Path, head: bytes) -> InputError:
    """Why a file without the ``.npy`` signature is refused."""
    if head.startswith(b"PK\x03\x04"):
        return InputError(path, "an .npz archive, not a .npy array")
    if len(head) >= 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        return InputError(path, "a pickle, not a .npy array (pickles are never loaded)")
    return InputError(path, "not a .npy file (no NUMPY signature)")


def with_edge_windows(features: np.ndarray) -> np.ndarray:
    """``[n + 2, D]``: a zero vector before and after the windows, as the audio tower reads them (the
    reference adds them to every clip)."""
    zero = np.zeros((1, features.shape[1]), dtype=np.float32)
    return np.concatenate([zero, features, zero])


def load_feature_file(path: str | Path, expected_dim: int | None = None) -> np.ndarray:
    """The ``[n_windows, D]`` float32 features of a ``.npy`` file.

    Raises :class:`InputError` for a missing file, one that is no ``.npy`` array (pickles, ``.npz``
    archives), holds Python objects or non-float values, has another shape than ``[n, D]`` or
    ``[1, n, D]``, no windows, ``D`` other than ``expected_dim`` (the feature size of the audio tower that
    will read it; ``None``: any), less data than its header promises, or NaN or infinite values (checked
    after the conversion to float32, so float64 values beyond its range count as infinite).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_NPY_MAGIC) + 2)
            if not head:
                raise InputError(path, "the file is empty")
            if not head.startswith(_NPY_MAGIC):
                raise _not_npy(path, head)
            handle.seek(0)
            version = np.lib.format.read_magic(handle)
            if version not in _HEADER_READERS:
                raise InputError(path, f".npy format version {version[0]}.{version[1]} is not read")
            shape, fortran_order, dtype = _HEADER_READERS[version](handle)
            _check_header(path, shape, dtype, expected_dim)
            count = math.prod(shape)
            wanted, available = count * dtype.itemsize, path.stat().st_size - handle.tell()
            if available < wanted:
                raise InputError(
                    path, f"truncated: {available} bytes of data where the header promises {wanted}"
                )
            data = np.fromfile(handle, dtype=dtype, count=count)
    except FileNotFoundError as exc:
        raise InputError(path, "no such file") from exc
    except (ValueError, EOFError, OSError) as exc:
        raise InputError(path, f"not a readable .npy file ({_one_line(exc)})") from exc
    features = data.reshape(shape, order="F" if fortran_order else "C").reshape(shape[-2:])
    with np.errstate(over="ignore"):  # float64 beyond the float32 range becomes infinite, refused below
        features = np.ascontiguousarray(features, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(features)))
    if bad:
        raise InputError(path, f"holds NaN or infinite values ({bad} of {features.size}, as float32)")
    return features


def _check_header(path: Path, shape: tuple[int, ...], dtype: np.dtype, expected_dim: int | None) -> None:
    if dtype.hasobject:
        raise InputError(path, "holds Python objects (pickled data is never loaded)")
    if dtype.kind != "f":
        raise InputError(path, f"holds {dtype} values, not floating-point features")
    if min(shape, default=0) < 0 or not (len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)):
        raise InputError(path, f"shape {list(shape)} is neither [n_windows, D] nor [1, n_windows, D]")
    if not shape[-2] or not shape[-1]:
        raise InputError(path, f"shape {list(shape)} holds no features (no windows or D = 0)")
    if expected_dim is not None and shape[-1] != expected_dim:
        raise InputError(
            path,
            f"shape {list(shape)}: features of size {shape[-1]}, but the audio tower reads {expected_dim}",
        )
