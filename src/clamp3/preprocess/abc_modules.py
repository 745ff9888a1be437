"""Private instances of abctoolkit's modules, whose messages go to a list instead of stdout/stderr.

abctoolkit's converters keep their state in module globals (xml2abc's ``abcOut``, abc2xml's shared
``MusicXml`` object and ``prevloc``) and report through ``print`` or ``sys.stderr``. Rather than patching the
shared modules or swapping ``sys.stdout`` (both visible to every other caller and thread), each conversion
runs the module's code again in a fresh module object that is not registered in ``sys.modules`` and whose
``print``/``info`` write to that conversion's own message list. Nothing is shared between calls.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType

PACKAGE = "abctoolkit"
ABCTOOLKIT_VERSION = "0.0.4"
"""The abctoolkit release the reference used; later ones split barlines differently (``||:``, ``:||``)."""


def fresh_module(name: str) -> ModuleType:
    """A new, unregistered instance of ``abctoolkit.<name>`` (its code run again, its globals its own)."""
    spec = importlib.util.find_spec(f"{PACKAGE}.{name}")
    if spec is None or spec.origin is None:
        raise ImportError(f"{PACKAGE}.{name} is not installed (pip install {PACKAGE}=={ABCTOOLKIT_VERSION})")
    private = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", spec.origin)
    if private is None or private.loader is None:
        raise ImportError(f"cannot load {spec.origin}")
    module = importlib.util.module_from_spec(private)
    private.loader.exec_module(module)
    return module


def print_to(messages: list[str]) -> Callable[..., None]:
    """A stand-in for ``print`` that appends the line it would print to ``messages``."""

    def collect(*values: object, sep: str | None = " ", **_: object) -> None:
        messages.append((" " if sep is None else sep).join(str(value) for value in values))

    return collect


def info_to(messages: list[tuple[str, bool]]) -> Callable[..., None]:
    """A stand-in for the converters' ``info(text, warn=1)``, appending ``(text, is_warning)`` pairs."""

    def collect(text: str, warn: int = 1) -> None:
        messages.append((text, bool(warn)))

    return collect


def one_line(message: object) -> str:
    """``str(message)`` with every run of whitespace, newlines included, turned into one space."""
    return " ".join(str(message).split())
