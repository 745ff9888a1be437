"""Contrastive alignment of the text tower with the symbolic or the audio tower (CLaMP 3's stages).

The text of an item is rebuilt every epoch with the reference's text dropout; symbolic inputs lose
their instrument names with probability 0.9 and long inputs are cut to one segment (head, tail or a
random middle), as in the reference's training. Validation embeds the validation texts and the music
with the real inference path (:class:`clamp3.CLaMP3`, every segment) and reports text->music MRR and
Hit@K, the value early stopping watches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clamp3.encoder import CLaMP3
from clamp3.model.towers import CLaMP3Model, Tower
from clamp3.preprocess.features import with_edge_windows
from clamp3.retrieval.evaluate import metrics_from_ranks, target_ranks
from clamp3.train.data import (
    Example,
    item_rng,
    random_slice,
    remove_instrument_info,
    training_text,
)
from clamp3.train.distributed import ProcessGroup
from clamp3.train.loss import clip_loss

MUSIC_TOWERS: tuple[Tower, ...] = ("symbolic", "audio")


@dataclass(frozen=True)
class ContrastiveSettings:
    tower: Tower = "symbolic"
    """The music tower aligned with text in this stage."""
    batch_size: int = 8
    """Global batch: split evenly over the processes; the loss sees all of it."""
    logit_scale: float = 1.0
    learn_logit_scale: bool = False
    normalize: bool = False
    """L2-normalise features before the dot product (the reference does not)."""
    freeze: tuple[Tower, ...] = ()
    """Towers kept fixed (with their projections); the other music tower is always frozen."""
    text_dropout: bool = True
    remove_instruments: float = 0.9
    seed: int = 42
    ks: tuple[int, ...] = (1, 10, 100)


@dataclass
class Batch:
    text: torch.Tensor
    text_mask: torch.Tensor
    music: torch.Tensor
    music_mask: torch.Tensor


class ContrastiveModel(nn.Module):
    """A CLaMP3Model with its contrastive loss in ``forward`` (what DDP needs)."""

    def __init__(self, clamp3: CLaMP3Model, settings: ContrastiveSettings, group: ProcessGroup) -> None:
        super().__init__()
        self.clamp3 = clamp3
        self.settings = settings
        self.group = group
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(settings.logit_scale), device=next(clamp3.parameters()).device),
            requires_grad=settings.learn_logit_scale,
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        text = self.clamp3.global_features("text", batch.text, batch.text_mask)
        music = self.clamp3.global_features(self.settings.tower, batch.music, batch.music_mask)
        if self.settings.normalize:
            text, music = F.normalize(text, dim=-1), F.normalize(music, dim=-1)
        return clip_loss(text, music, self.log_logit_scale.exp(), self.group)


def freeze_towers(model: CLaMP3Model, towers: Sequence[Tower]) -> None:
    """Fix the given towers, and the parameters no loss ever reaches: the three poolers (CLaMP 3 pools
    by averaging) and the unused one-row word embeddings of the symbolic and audio encoders."""
    for tower in towers:
        for part in ("input", "model", "proj"):
            if (module := getattr(model, f"{tower}_{part}", None)) is not None:
                module.requires_grad_(False)
    for encoder in (model.text_model, model.symbolic_model.base, model.audio_model):
        if encoder.pooler is not None:
            encoder.pooler.requires_grad_(False)
    model.symbolic_model.base.embeddings.word_embeddings.requires_grad_(False)
    model.audio_model.embeddings.word_embeddings.requires_grad_(False)


class ContrastiveTask:
    """Text <-> music pairs for :class:`~clamp3.train.loop.Trainer`."""

    monitor = "val_mrr"

    def __init__(
        self,
        encoder: CLaMP3,
        train: Sequence[Example],
        validation: Sequence[Example],
        settings: ContrastiveSettings,
        group: ProcessGroup | None = None,
    ) -> None:
        if settings.tower not in MUSIC_TOWERS:
            raise ValueError(f"tower must be one of {MUSIC_TOWERS}, not {settings.tower!r}")
        self.group = group or ProcessGroup()
        if settings.batch_size % self.group.world_size:
            raise ValueError(
                f"batch size {settings.batch_size} does not split over {self.group.world_size} processes"
            )
        if len(train) < settings.batch_size:
            raise ValueError(f"{len(train)} training items cannot fill one batch of {settings.batch_size}")
        self.encoder = encoder
        self.train = list(train)
        self.validation = list(validation)
        self.settings = settings
        other = next(t for t in MUSIC_TOWERS if t != settings.tower)
        freeze_towers(encoder.model, {other, *settings.freeze})
        if encoder.config.text.backbone is not None:  # external backbones stay as they are (LiT)
            encoder.model.text_model.requires_grad_(False)
        self.model = ContrastiveModel(encoder.model, settings, self.group)

    # ------------------------------------------------------------------ batches

    def batches_per_epoch(self, world_size: int) -> int:
        return len(self.train) // self.settings.batch_size

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[Batch]:
        size = self.settings.batch_size
        order = np.random.default_rng([self.settings.seed, epoch]).permutation(len(self.train))
        share = size // world_size
        for start in range(0, self.batches_per_epoch(world_size) * size, size):
            indices = order[start + rank * share : start + (rank + 1) * share]
            yield self._batch([int(i) for i in indices], epoch)

    def _batch(self, indices: list[int], epoch: int) -> Batch:
        encoder, config = self.encoder, self.encoder.config
        texts, music = [], []
        for index in indices:
            example, rng = self.train[index], item_rng(self.settings.seed, epoch, index)
            lines = training_text(example, rng, self.settings.text_dropout)
            ids = encoder.tokenize([encoder.tokenizer.sep_token.join(lines)])[0]
            texts.append(random_slice(np.asarray(ids, dtype=np.int64), config.text.max_length, rng))
            music.append(self._music_piece(example.music[int(rng.integers(len(example.music)))], rng))
        text, text_mask = encoder._collate(texts, config.text.encoder.pad_token_id)
        music_batch, music_mask = encoder._collate(music, 0)
        return Batch(text, text_mask, music_batch, music_mask)

    def _music_piece(self, data: str | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        config = self.encoder.config
        if self.settings.tower == "symbolic":
            if rng.random() < self.settings.remove_instruments:
                data = remove_instrument_info(data)
            patches = self.encoder.patchilizer.encode(data, add_special_patches=True)
            return random_slice(patches, config.symbolic.max_patches, rng)
        frames = np.asarray(data, dtype=np.float32).reshape(-1, config.audio.feature_size)
        return random_slice(with_edge_windows(frames), config.audio.max_frames, rng)

    # ------------------------------------------------------------------ validation and saving

    def validate(self) -> dict[str, float]:
        if not self.validation:
            return {"val_mrr": 0.0}
        encoder = self.encoder
        text = encoder.encode_text([example.eval_text for example in self.validation])
        first = [example.music[0] for example in self.validation]
        if self.settings.tower == "symbolic":
            music = encoder.encode_symbolic(first)
        else:
            music = encoder.encode_audio_features(first)
        ranks = target_ranks(text, music, np.arange(len(text)))
        mrr, hits = metrics_from_ranks(ranks, self.settings.ks)
        return {"val_mrr": mrr, **{f"val_hit@{k}": value for k, value in hits.items()}}

    def save_model(self, directory: Path) -> None:
        """Our model format, or only the adapter when LoRA adapters are being trained."""
        if hasattr(self.encoder.model, "lora_settings"):
            from clamp3.train.lora import save_adapter

            save_adapter(self.encoder.model, directory)
        else:
            self.encoder.save_pretrained(directory)
