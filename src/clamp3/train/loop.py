"""The training loop: AdamW with warm-up + cosine, accumulation, clipping, mixed precision, validation,
early stopping, and checkpoints that resume exactly.

Unlike the reference scripts, the optimizer is built before its scheduler and both are restored on
resume, so the warm-up happens and a resumed run continues where it stopped: with the same model,
optimizer, scheduler and random-number states, an interrupted run ends with parameters bit-identical to
an uninterrupted one (on CPU; data augmentation is seeded per item, see :mod:`clamp3.train.data`).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from clamp3.errors import Clamp3Error
from clamp3.fileio import atomic_write
from clamp3.precision import autocast_dtype
from clamp3.progress import progress_bar
from clamp3.train.distributed import ProcessGroup, barrier
from clamp3.train.schedule import warmup_cosine
from clamp3.train.task import TrainingTask

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
RUN_DEFINING = (
    "learning_rate",
    "lr_scales",
    "weight_decay",
    "warmup_steps",
    "min_lr_ratio",
    "accumulation",
    "seed",
)
"""The :class:`TrainSettings` a resumed run must share with its checkpoint: they shape the optimizer,
its schedule and the data order, so a change would silently mix two runs (or fail inside torch)."""
Precision = Literal["fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class TrainSettings:
    output: Path
    epochs: int = 10
    learning_rate: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    accumulation: int = 1
    """Micro-batches per optimizer step."""
    lr_scales: Mapping[str, float] = field(default_factory=dict)
    """Learning-rate factors by parameter-name prefix of the task's model (the longest matching prefix
    wins; the rest trains at ``learning_rate``), e.g. ``{"clamp3.text_model.": 0.1}`` for a pretrained
    tower that should move less than the new parts."""
    max_grad_norm: float | None = 1.0
    precision: Precision = "fp32"
    """bf16/fp16 autocast (fp16 with loss scaling on CUDA); fp32 otherwise."""
    seed: int = 42
    patience: int | None = None
    """Stop after this many validations without a better ``monitor`` value."""
    checkpoint_every: int = 0
    """Also checkpoint every this many optimizer steps (0: at the end of each epoch only)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps in total (the run can be resumed past it later)."""
    tensorboard: bool = True
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.accumulation < 1:
            raise Clamp3Error("epochs and accumulation must be at least 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise Clamp3Error(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")
        if any(not scale > 0 for scale in self.lr_scales.values()):
            raise Clamp3Error(f"lr_scales must be positive: {dict(self.lr_scales)}")


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    batch: int = 0
    """Micro-batches of ``epoch`` already done."""
    step: int = 0
    best: float = -math.inf
    stale: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    finished: bool = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parameter_groups(
    model: torch.nn.Module, learning_rate: float, scales: Mapping[str, float]
) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` as optimizer groups, one per learning rate (see
    :attr:`TrainSettings.lr_scales`), in a fixed order so that checkpoints restore into them."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    matched: set[str] = set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        prefixes = [prefix for prefix in scales if name.startswith(prefix)]
        matched.update(prefixes)
        scale = scales[max(prefixes, key=len)] if prefixes else 1.0
        groups.setdefault(scale, []).append(parameter)
    if not groups:
        raise Clamp3Error("nothing to train: every parameter is frozen")
    if unmatched := sorted(set(scales) - matched):
        raise Clamp3Error(f"lr_scales: no trainable parameter name starts with {', '.join(unmatched)}")
    return [{"params": params, "lr": learning_rate * scale} for scale, params in groups.items()]


def _settings_text(settings: TrainSettings) -> dict[str, str]:
    """Each setting as text (mappings sorted by key), as checkpoints record them."""
    return {
        k: str(dict(sorted(v.items())) if isinstance(v, Mapping) else v) for k, v in asdict(settings).items()
    }


class Trainer:
    """Runs a :class:`~clamp3.train.task.TrainingTask`; ``fit()`` resumes from ``output/checkpoint.pt``."""

    def __init__(
        self,
        task: TrainingTask,
        settings: TrainSettings,
        group: ProcessGroup | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.task = task
        self.settings = settings
        self.group = group or ProcessGroup()
        devices = sorted({str(p.device) for p in task.model.parameters()})
        if len(devices) > 1:
            raise Clamp3Error(
                f"the model to train lies on several devices ({', '.join(devices)}); move it to one"
            )
        self.device = device or next(task.model.parameters()).device
        self.output = Path(settings.output)
        self.optimizer = torch.optim.AdamW(
            parameter_groups(task.model, settings.learning_rate, settings.lr_scales),
            lr=settings.learning_rate,
            weight_decay=settings.weight_decay,
        )
        self.steps_per_epoch = math.ceil(
            task.batches_per_epoch(self.group.world_size) / settings.accumulation
        )
        total = settings.epochs * self.steps_per_epoch
        self.scheduler = warmup_cosine(self.optimizer, settings.warmup_steps, total, settings.min_lr_ratio)
        use_scaler = settings.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.forward = (
            DistributedDataParallel(
                task.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.group.distributed
            else task.model
        )
        self.state = TrainState()
        self._writer = None

    # ---------------------------------------------------------------------------- checkpoints

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "state": asdict(self.state),
            "settings": _settings_text(self.settings),
        }

    def save_checkpoint(self) -> None:
        if not self.group.is_main:
            return
        buffer = io.BytesIO()
        torch.save(self._checkpoint_state(), buffer)
        atomic_write(self.output / CHECKPOINT, lambda tmp: tmp.write_bytes(buffer.getvalue()))

    def load_checkpoint(self) -> bool:
        path = self.output / CHECKPOINT
        if not path.exists():
            return False
        # our own file: it holds Python and numpy random states, which weights_only cannot read
        data = torch.load(path, map_location="cpu", weights_only=False)
        self._check_same_run(path, data["settings"])
        self.task.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        self.scaler.load_state_dict(data["scaler"])
        random.setstate(data["rng"]["python"])
        np.random.set_state(data["rng"]["numpy"])
        torch.set_rng_state(data["rng"]["torch"])
        if data["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(data["rng"]["cuda"])
        self.state = TrainState(**data["state"])
        return True

    def _check_same_run(self, path: Path, saved: dict[str, str]) -> None:
        now = _settings_text(self.settings)
        changed = [f"{k} {saved[k]} -> {now[k]}" for k in RUN_DEFINING if k in saved and saved[k] != now[k]]
        if changed:
            raise Clamp3Error(
                f"{path}: written with other training settings ({'; '.join(changed)}); resume with the "
                "same settings or train into a new folder"
            )

    # ---------------------------------------------------------------------------- logging

    def _log(self, row: dict[str, float]) -> None:
        self.state.history.append(row)
        if not self.group.is_main:
            return
        names = list(dict.fromkeys(key for entry in self.state.history for key in entry))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names)
        writer.writeheader()
        writer.writerows(self.state.history)
        atomic_write(self.output / METRICS, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))
        if self._writer is not None:
            for name, value in row.items():
                if name not in ("epoch", "step"):
                    self._writer.add_scalar(name, value, int(row["step"]))
            self._writer.flush()

    def _open_tensorboard(self):
        if not (self.settings.tensorboard and self.group.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.output / "tensorboard"))

    # ---------------------------------------------------------------------------- training

    def _autocast(self):
        dtype = autocast_dtype(self.settings.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _optimizer_step(self) -> None:
        if self.settings.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.task.model.parameters(), self.settings.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1

    def _validate(self) -> dict[str, float]:
        self.task.model.eval()
        with torch.no_grad():
            metrics = self.task.validate()
        self.task.model.train()
        return metrics

    def fit(self, resume: bool = True) -> TrainState:
        """Train until the epochs, ``max_steps`` or the patience run out; returns the final state."""
        self.output.mkdir(parents=True, exist_ok=True)
        if not (resume and self.load_checkpoint()):
            seed_everything(self.settings.seed)
        self._writer = self._open_tensorboard()
        self.task.model.train()
        settings = self.settings
        try:
            while not self.state.finished and self.state.epoch < settings.epochs:
                if self._run_epoch():
                    break
            self.state.finished = self.state.finished or self.state.epoch >= settings.epochs
            self.save_checkpoint()
        finally:
            if self._writer is not None:
                self._writer.close()
        barrier(self.group)
        return self.state

    def _run_epoch(self) -> bool:
        """One epoch (or its rest after a resume); True when training must stop now."""
        settings, state = self.settings, self.state
        batches = self.task.train_batches(state.epoch, self.group.rank, self.group.world_size)
        total = self.task.batches_per_epoch(self.group.world_size)
        losses: list[float] = []
        with progress_bar(
            total, f"epoch {state.epoch + 1}", settings.show_progress and self.group.is_main
        ) as bar:
            bar.advance(state.batch)
            for index, batch in enumerate(batches):
                if index < state.batch:
                    continue
                with self._autocast():
                    loss = self.forward(batch)
                self.scaler.scale(loss / settings.accumulation).backward()
                losses.append(float(loss.detach()))
                state.batch = index + 1
                bar.advance()
                if state.batch % settings.accumulation and state.batch < total:
                    continue
                self._optimizer_step()
                if settings.checkpoint_every and state.step % settings.checkpoint_every == 0:
                    self.save_checkpoint()
                if settings.max_steps is not None and state.step >= settings.max_steps:
                    return True
        row = {"epoch": state.epoch + 1, "step": state.step, "lr": self.scheduler.get_last_lr()[0]}
        if losses:
            row["train_loss"] = float(np.mean(losses))
        metrics = self._validate()
        row.update(metrics)
        self._log(row)
        state.epoch += 1
        state.batch = 0
        score = metrics[self.task.monitor]
        if score > state.best:
            state.best, state.stale = score, 0
            if self.group.is_main:
                self.task.save_model(self.output / "best")
        else:
            state.stale += 1
        self.save_checkpoint()
        if settings.patience is not None and state.stale >= settings.patience:
            state.finished = True
            return True
        return False
