"""``-v/--verbose`` on every command: clamp3's log records on stderr, one line each.

The package only logs (to loggers under ``clamp3``); this module is the one place that shows the records.
``-v`` shows INFO (the steps of a run), ``-vv`` DEBUG (per-file detail); without it, WARNING and above
only. The counts given before and after the subcommand add up: ``clamp3 -v embed -v`` is ``-vv``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import click

PACKAGE = "clamp3"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_VERBOSITY = "clamp3.verbosity"
_HANDLER = "clamp3.log_handler"


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record, so that lines land above rich's progress
    bars (which swap ``sys.stderr`` while they draw) and in click's test runner."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """The stream is always the current ``sys.stderr``; ``StreamHandler.__init__`` sets it."""


def level_for(verbosity: int) -> int:
    """The level of clamp3's loggers for a ``-v`` count."""
    return (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG


def _on_verbose(ctx: click.Context, _param: click.Parameter, count: int) -> None:
    """Add this command's ``-v`` count to the run's and set clamp3's level; the first call of a run
    installs the stderr handler, which the run's end removes."""
    meta = ctx.meta
    package = logging.getLogger(PACKAGE)
    if _HANDLER not in meta:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        meta[_HANDLER] = handler
        previous = package.level

        def restore() -> None:
            root.removeHandler(handler)
            package.setLevel(previous)

        ctx.find_root().call_on_close(restore)
    meta[_VERBOSITY] = meta.get(_VERBOSITY, 0) + count
    package.setLevel(level_for(meta[_VERBOSITY]))


def add_verbose_option(command: click.Command) -> None:
    """Give ``command`` and all its subcommands ``-v/--verbose``."""
    command.params.append(
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_on_verbose,
            help="Log what clamp3 does to stderr: -v the steps, -vv per-file detail.",
        )
    )
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            add_verbose_option(subcommand)
