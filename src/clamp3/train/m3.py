"""M3 pretraining: corrupt some patches of each tune, reconstruct their characters.

Randomness: every data-side draw (epoch order, truncation, which patches, mask/shuffle/keep) comes
from numpy generators seeded by ``(seed, epoch, batch index)``, so batches are the same on any
number of processes and after a resume, and validation is the same at every epoch and on every
process. The torch global RNG (which the trainer seeds) is used only by dropout inside the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from clamp3.errors import Clamp3Error
from clamp3.model.checkpoint import save_official
from clamp3.model.m3 import M3Model
from clamp3.model.patchilizer import EOS, MASK, PAD, M3Patchilizer

MaskMode = Literal["mask", "shuffle", "keep"]
MASK_MODES: tuple[MaskMode, ...] = ("mask", "shuffle", "keep")
_TRAIN_STREAM, _VALIDATION_STREAM = 0, 1


@dataclass(frozen=True)
class MaskedPatches:
    """One corrupted sequence."""

    patches: np.ndarray
    """``[n, patch_size]`` encoder input."""
    selected: np.ndarray
    """``[k]`` selected positions, ascending."""
    targets: np.ndarray
    """``[k, patch_size]`` the original patches at ``selected``."""
    mode: MaskMode


def mask_patches(
    patches: np.ndarray,
    rng: np.random.Generator,
    ratio: float = 0.45,
    weights: tuple[float, float, float] = (0.8, 0.1, 0.1),
    decoded: int | None = None,
) -> MaskedPatches:
    """Select ``ceil(ratio * n)`` patches (BOS/EOS patches included) and corrupt them all one way.

    One mode per sequence, drawn with probabilities ``weights`` for (mask, shuffle, keep): "mask" sets
    every id of a selected patch to MASK; "shuffle" permutes the ids between position 1 and the
    patch's single EOS id (positions 1.. to the end when it has no EOS or several); "keep" leaves the
    patch as it is (validation uses ``weights=(0, 0, 1)``). ``decoded`` keeps only that many of the
    corrupted patches (a random subset) as reconstruction targets, which cuts the decoder's cost.
    """
    count = math.ceil(ratio * len(patches))
    selected = np.sort(rng.choice(len(patches), size=count, replace=False))
    mode = MASK_MODES[rng.choice(len(MASK_MODES), p=np.asarray(weights, dtype=np.float64) / sum(weights))]
    corrupted = patches.copy()
    if mode == "mask":
        corrupted[selected] = MASK
    elif mode == "shuffle":
        for position in selected:
            row = corrupted[position]
            eos = np.flatnonzero(row == EOS)
            stop = eos[0] if len(eos) == 1 else len(row)
            row[1:stop] = rng.permutation(row[1:stop])
    if decoded is not None and decoded < count:
        selected = np.sort(rng.choice(selected, size=decoded, replace=False))
    return MaskedPatches(corrupted, selected, patches[selected].copy(), mode)


def truncate_patches(patches: np.ndarray, limit: int, rng: np.random.Generator | None) -> np.ndarray:
    """At most ``limit`` patches: the head, the tail or a random middle window (equally likely) when
    ``rng`` is given, else the head. Like the reference, a middle window never starts at 0."""
    excess = len(patches) - limit
    if excess <= 0:
        return patches
    if rng is None:
        return patches[:limit]
    where = rng.integers(3)
    start = 0 if where == 0 else excess if where == 1 else int(rng.integers(1, excess + 1))
    return patches[start : start + limit]


@dataclass(frozen=True)
class M3Batch:
    """Padded model inputs of a batch; ``targets`` rows follow ``selected`` in row-major order."""

    patches: torch.Tensor
    """``[B, L, patch_size]`` int64, padded with 0."""
    mask: torch.Tensor
    """``[B, L]`` float, 1 for real patches."""
    selected: torch.Tensor
    """``[B, L]`` bool."""
    targets: torch.Tensor
    """``[K, patch_size]`` int64."""

    def to(self, device: torch.device) -> M3Batch:
        return M3Batch(*(t.to(device) for t in (self.patches, self.mask, self.selected, self.targets)))

    @property
    def predicted_chars(self) -> int:
        """How many characters the loss averages over (non-padding, after the first of each patch)."""
        return int((self.targets[:, 1:] != PAD).sum())


def collate(items: Sequence[MaskedPatches]) -> M3Batch:
    longest = max(len(item.patches) for item in items)
    patch_size = items[0].patches.shape[1]
    patches = np.zeros((len(items), longest, patch_size), dtype=np.int64)
    mask = np.zeros((len(items), longest), dtype=np.float32)
    selected = np.zeros((len(items), longest), dtype=bool)
    for row, item in enumerate(items):
        patches[row, : len(item.patches)] = item.patches
        mask[row, : len(item.patches)] = 1.0
        selected[row, item.selected] = True
    targets = np.concatenate([item.targets for item in items]).astype(np.int64)
    return M3Batch(*(torch.from_numpy(a) for a in (patches, mask, selected, targets)))


def split_texts(texts: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, validation): ``max(1, int(fraction * n))`` texts held out by a seeded shuffle that is the
    same on every process (the reference seeds it per rank and so leaks validation data)."""
    held_out = max(1, int(fraction * len(texts)))
    if len(texts) - held_out < 1:
        raise Clamp3Error(f"{len(texts)} texts are too few to hold out a validation set")
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order[held_out:]], [texts[i] for i in order[:held_out]]


@dataclass(frozen=True)
class M3TaskSettings:
    batch_size: int = 16
    """Per process."""
    max_patches: int | None = None
    """Patches per training sequence; ``None``: the model's ``symbolic.max_patches``."""
    mask_ratio: float = 0.45
    mask_weights: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Probabilities of mask, shuffle and keep."""
    decoded_per_sequence: int | None = None
    """Reconstruct at most this many of each sequence's corrupted patches (a random subset; the
    decoder's cost grows with them). ``None``: all of them, as the reference does."""
    val_fraction: float = 0.01
    """Held out when no validation texts are given."""
    seed: int = 0


class M3Objective(nn.Module):
    """An :class:`M3Model` whose ``forward(batch)`` is the loss of an :class:`M3Batch` (what the trainer
    and DDP call)."""

    def __init__(self, m3: M3Model) -> None:
        super().__init__()
        self.m3 = m3

    def forward(self, batch: M3Batch) -> torch.Tensor:
        batch = batch.to(next(self.m3.parameters()).device)
        return self.m3(batch.patches, batch.mask, batch.selected, batch.targets)


class M3PretrainTask:
    """The :class:`clamp3.train.task.TrainingTask` of M3 pretraining over symbolic texts
    (interleaved ABC or MTF). ``monitor`` is ``"neg_val_loss"``."""

    monitor = "neg_val_loss"

    def __init__(
        self,
        model: M3Model,
        texts: Sequence[str],
        val_texts: Sequence[str] | None = None,
        settings: M3TaskSettings | None = None,
    ) -> None:
        """``texts`` are the training texts when ``val_texts`` is given, else split by
        :func:`split_texts` with the settings' fraction and seed."""
        self.m3 = model
        self.model = M3Objective(model)
        self.settings = settings or M3TaskSettings()
        symbolic = model.config.symbolic
        self.max_patches = self.settings.max_patches or symbolic.max_patches
        if self.max_patches > symbolic.encoder.max_positions:
            raise Clamp3Error(
                f"max_patches {self.max_patches} exceeds the encoder's "
                f"{symbolic.encoder.max_positions} positions"
            )
        if val_texts is None:
            self.train_texts, self.val_texts = split_texts(
                texts, self.settings.val_fraction, self.settings.seed
            )
        else:
            self.train_texts, self.val_texts = list(texts), list(val_texts)
        if not self.val_texts:
            raise Clamp3Error("no validation texts")
        self.patchilizer = M3Patchilizer(symbolic.patch_size, self.max_patches)

    def _item(
        self, split: str, index: int, rng: np.random.Generator, weights: tuple[float, float, float]
    ) -> MaskedPatches:
        """Encode, truncate (randomly for training, head for validation) and corrupt one text."""
        train = split == "training"
        try:
            patches = self.patchilizer.encode((self.train_texts if train else self.val_texts)[index])
        except ValueError as exc:
            raise Clamp3Error(f"{split} text {index}: {exc}") from None
        patches = truncate_patches(patches, self.max_patches, rng if train else None)
        return mask_patches(
            patches, rng, self.settings.mask_ratio, weights, self.settings.decoded_per_sequence
        )

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[M3Batch]:
        """Whole batches of a seeded permutation (``default_rng(seed + epoch)``); global batch ``j``
        goes to rank ``j % world_size``, and every rank gets the same number of batches."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
        size = self.settings.batch_size
        per_rank = len(self.train_texts) // size // world_size
        if per_rank == 0:
            raise Clamp3Error(
                f"{len(self.train_texts)} training texts do not fill one batch of {size} on each of "
                f"{world_size} processes"
            )
        order = np.random.default_rng(self.settings.seed + epoch).permutation(len(self.train_texts))
        for number in range(rank, per_rank * world_size, world_size):
            rng = np.random.default_rng([self.settings.seed, _TRAIN_STREAM, epoch, number])
            indices = order[number * size : (number + 1) * size]
            yield collate([self._item("training", int(i), rng, self.settings.mask_weights) for i in indices])

    def batches_per_epoch(self, world_size: int) -> int:
        return len(self.train_texts) // self.settings.batch_size // world_size

    def loss(self, batch: M3Batch) -> torch.Tensor:
        return self.model(batch)

    def save_model(self, directory: Path) -> None:
        """``m3.pth`` in the official M3 layout (what ``[model] m3`` of a contrastive recipe reads)."""
        directory.mkdir(parents=True, exist_ok=True)
        save_official(self.m3, directory / "m3.pth")

    def validation_batches(self) -> Iterator[M3Batch]:
        """Unmodified inputs ("keep"), head truncation; the selected positions are seeded per batch."""
        size = self.settings.batch_size
        for number, start in enumerate(range(0, len(self.val_texts), size)):
            rng = np.random.default_rng([self.settings.seed, _VALIDATION_STREAM, number])
            stop = min(start + size, len(self.val_texts))
            yield collate([self._item("validation", i, rng, (0, 0, 1)) for i in range(start, stop)])

    def validate(self) -> dict[str, float]:
        """Mean loss per predicted character over the whole validation set."""
        was_training = self.model.training
        self.model.eval()
        total, chars = 0.0, 0
        with torch.no_grad():
            for batch in self.validation_batches():
                total += float(self.loss(batch)) * batch.predicted_chars
                chars += batch.predicted_chars
        self.model.train(was_training)
        val_loss = total / chars
        return {"val_loss": val_loss, "neg_val_loss": -val_loss}
