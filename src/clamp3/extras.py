"""Optional packages (the ``clamp3[extra]`` installs): checked before the work that needs them starts.

An option that needs an optional package (``--plot``, ``--ray``, a ``[lora]`` recipe ...) calls
:func:`require` first, so a missing package stops the command at once, with one line naming the
extra, instead of after minutes of embedding or training.
"""

from __future__ import annotations

import importlib

from clamp3.errors import MissingDependencyError, missing_package_reason


def missing(*modules: str) -> str | None:
    """Why the first of ``modules`` that cannot be imported is missing (one line), or ``None``."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            return missing_package_reason(exc)
    return None


def require(purpose: str, *modules: str) -> None:
    """Raise :class:`MissingDependencyError` ("<purpose> needs the X package: pip install ...") unless
    every one of ``modules`` imports."""
    reason = missing(*modules)
    if reason is not None:
        raise MissingDependencyError(f"{purpose} {reason}")
