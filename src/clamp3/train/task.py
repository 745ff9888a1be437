"""What the trainer needs from a training objective (contrastive alignment, M3 pretraining, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from torch import nn


class TrainingTask(Protocol):
    """A training objective over a model.

    ``model(batch)`` returns the scalar loss of a batch: the trainer calls it through
    ``DistributedDataParallel`` when several processes train, so the loss must be computed in the
    model's ``forward``. The trainer optimises the parameters of ``model`` that require gradients,
    saves and restores ``model``'s full state in its checkpoints, and early-stops on
    ``validate()[monitor]`` (higher is better; use a negated loss for losses).
    """

    model: nn.Module
    monitor: str

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[Any]:
        """This process's batches of one epoch, in a deterministic order derived from the epoch."""
        ...

    def batches_per_epoch(self, world_size: int) -> int:
        """How many batches ``train_batches`` yields on each process."""
        ...

    def save_model(self, directory: Path) -> None:
        """Write the model in its usable form (called on the main process at each new best)."""
        ...

    def validate(self) -> dict[str, float]:
        """Validation metrics (computed without gradients, identical on every process)."""
        ...
