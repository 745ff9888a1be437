"""Exceptions raised by clamp3. Every message is one line that names the file or key at fault."""

from __future__ import annotations

from pathlib import Path


class Clamp3Error(Exception):
    """Base class of every error clamp3 raises on purpose."""


class CheckpointError(Clamp3Error):
    """A checkpoint file is missing, unreadable, or does not fit the model it is loaded into."""


class UnsupportedModalityError(Clamp3Error):
    """The loaded model has no encoder for this kind of input (for example audio with CLaMP 1)."""


class ModelNotAvailableError(Clamp3Error):
    """A model file is neither on disk nor downloadable (for example offline)."""


class UnknownItemError(Clamp3Error):
    """A library has no item with the given id."""


class MissingDependencyError(Clamp3Error):
    """An optional package is needed for this feature (the message says which extra to install)."""


class InputError(Clamp3Error):
    """One input file (or item) cannot be turned into model input.

    ``str(error)`` is ``"<path>: <reason>"`` so batch jobs can report it on one line.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    @classmethod
    def unexpected(cls, path: str | Path, exc: BaseException) -> InputError:
        """For a failure no converter anticipated: still one line, naming the exception type."""
        detail = " ".join(str(exc).split())[:200]
        return cls(
            path,
            f"unexpected {type(exc).__name__}: {detail}" if detail else f"unexpected {type(exc).__name__}",
        )

    def __reduce__(self):
        # rebuilt from (path, reason), so errors survive the trip back from worker processes
        return (type(self), (self.path, self.reason))


OPTIONAL_EXTRAS = {
    "PIL": "image",
    "av": "m4a",
    "matplotlib": "plot",
    "pyarrow": "parquet",
    "tensorboard": "train",
    "peft": "train",
    "music21": "opendata",
    "onnxruntime": "transcribe",
    "fastapi": "server",
    "uvicorn": "server",
    "multipart": "server",
    "verovio": "server",
    "ray": "ray",
}
"""Top-level module -> the ``clamp3[extra]`` that installs it."""


def missing_package_reason(exc: ModuleNotFoundError) -> str:
    """What to install for a missing optional package, as one line."""
    module = (exc.name or "").split(".")[0]
    extra = OPTIONAL_EXTRAS.get(module)
    if extra is None:
        return f"needs the Python package {module or exc}"
    return f"needs the {module} package: pip install 'clamp3[{extra}]'"


def as_input_error(source: str | Path, exc: BaseException) -> InputError:
    """Any exception met while reading or converting ``source`` as its one-line failure."""
    if isinstance(exc, InputError):
        return exc
    if isinstance(exc, ModuleNotFoundError):
        return InputError(source, missing_package_reason(exc))
    if isinstance(exc, Clamp3Error):
        return InputError(source, " ".join(str(exc).split()))
    if isinstance(exc, MemoryError):
        return InputError(source, "out of memory while reading it")
    if isinstance(exc, OSError) and exc.strerror:
        return InputError(source, exc.strerror)
    return InputError.unexpected(source, exc)
