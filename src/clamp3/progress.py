"""One progress-bar style for the whole package (rich, written to stderr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


class _NullProgress:
    def advance(self, n: int = 1) -> None:
        """Do nothing: progress display is switched off."""


class _Bar:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task_id, n)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[_Bar | _NullProgress]:
    """Yield an object with ``advance(n)``; shows a rich bar on stderr when ``enabled``."""
    if not enabled:
        yield _NullProgress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        task_id = progress.add_task(description, total=total)
        yield _Bar(progress, task_id)
