"""Joint contrastive alignment of text, ABC, MIDI and audio for the bundled model.

Each training item is one tune seen four ways: a text variant (the frozen backbone's pooled vector, so
only the text projection trains), its interleaved ABC, its MIDI (the score's, a transcription-like
variant or basic-pitch's transcription of the rendering) and a rendering's front-end features. A tune
with a transposed copy takes all four views from the copy instead, at a given share of its draws. The
loss is the mean symmetric CLIP loss over all six pairs of views, on L2-normalised features with a
learned temperature, so every modality is pulled towards every other one (text->audio and MIDI->score
alike).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clamp3.encoder import CLaMP3
from clamp3.preprocess.features import with_edge_windows
from clamp3.retrieval.evaluate import metrics_from_ranks, target_ranks
from clamp3.train.data import item_rng, random_slice, remove_instrument_info
from clamp3.train.distributed import ProcessGroup
from clamp3.train.loss import clip_loss

VIEWS = ("text", "abc", "midi", "audio")
TRAINED_PARTS = ("text_proj", "symbolic_model", "symbolic_proj", "audio_input", "audio_model", "audio_proj")
SYMBOLIC_TOWER = "parts.symbolic_model."
"""The parameter-name prefix of the symbolic tower in :class:`AlignModel` (for ``lr_scales``)."""


@dataclass(frozen=True)
class TuneViews:
    """The inputs of one tune: text vectors ``[variants, D]``, ABC, MIDI variants and audio features."""

    id: str
    text: np.ndarray
    eval_text: str
    """The query text of validation (its backbone vector is ``text[0]`` only for training tunes)."""
    abc: str
    midi: tuple[str, ...]
    """The score's MTF first, then transcription-like variants and (last) basic-pitch's transcription of
    the rendering."""
    audio: np.ndarray


@dataclass
class ViewBatch:
    text: torch.Tensor
    abc: torch.Tensor
    abc_mask: torch.Tensor
    midi: torch.Tensor
    midi_mask: torch.Tensor
    audio: torch.Tensor
    audio_mask: torch.Tensor


class AlignModel(nn.Module):
    """The trained parts of a :class:`~clamp3.model.towers.CLaMP3Model` (shared, not copied) and the
    temperature; the frozen text backbone is left out, so checkpoints stay small."""

    def __init__(self, encoder: CLaMP3, group: ProcessGroup) -> None:
        super().__init__()
        self.parts = nn.ModuleDict({name: getattr(encoder.model, name) for name in TRAINED_PARTS})
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=encoder.device))
        self.encoder = [encoder]  # a list keeps the full model out of this module's parameters
        self.group = group
        for base in (self.parts["symbolic_model"].base, self.parts["audio_model"]):
            base.embeddings.word_embeddings.requires_grad_(False)  # inputs_embeds only: never used

    def views(self, batch: ViewBatch) -> dict[str, torch.Tensor]:
        model = self.encoder[0].model
        features = {
            "text": self.parts["text_proj"](batch.text),
            "abc": model.global_features("symbolic", batch.abc, batch.abc_mask),
            "midi": model.global_features("symbolic", batch.midi, batch.midi_mask),
            "audio": model.global_features("audio", batch.audio, batch.audio_mask),
        }
        return {name: F.normalize(value.float(), dim=-1) for name, value in features.items()}

    def forward(self, batch: ViewBatch) -> torch.Tensor:
        views = self.views(batch)
        scale = self.log_logit_scale.clamp(max=math.log(100.0)).exp()
        losses = [clip_loss(views[a], views[b], scale, self.group) for a, b in combinations(VIEWS, 2)]
        return torch.stack(losses).mean()


@dataclass(frozen=True)
class _Encoded:
    """A training tune (or its transposed copy) with its ABC and MIDI variants as patches."""

    tune: TuneViews
    abc: np.ndarray
    midi: list[np.ndarray]


class AlignTask:
    """Four-view tunes for :class:`~clamp3.train.loop.Trainer`.

    ``copies`` maps a training tune's id to its transposed copy; a draw of that tune takes the copy with
    probability ``copy_share`` (tunes without a copy always give their own views).
    """

    monitor = "val_mrr"

    def __init__(
        self,
        encoder: CLaMP3,
        train: Sequence[TuneViews],
        validation: Sequence[TuneViews],
        batch_size: int,
        seed: int,
        group: ProcessGroup | None = None,
        copies: Mapping[str, TuneViews] | None = None,
        copy_share: float = 0.0,
    ) -> None:
        self.group = group or ProcessGroup()
        if batch_size % self.group.world_size:
            raise ValueError(f"batch size {batch_size} does not split over {self.group.world_size} processes")
        if len(train) < batch_size:
            raise ValueError(f"{len(train)} training tunes cannot fill one batch of {batch_size}")
        self.encoder = encoder
        self.train = list(train)
        self.validation = list(validation)
        self.batch_size = batch_size
        self.seed = seed
        self.copy_share = copy_share
        encoder.model.text_model.requires_grad_(False).eval()
        self.model = AlignModel(encoder, self.group)
        copies = copies or {}
        self._tunes = [self._encode(tune) for tune in self.train]
        self._copies = [self._encode(copies[t.id]) if t.id in copies else None for t in self.train]
        # the backbone is frozen: its pooled output for the validation queries never changes
        self._eval_text = encoder.pooled_text_features([t.eval_text for t in self.validation])

    def _encode(self, tune: TuneViews) -> _Encoded:
        patchilizer = self.encoder.patchilizer
        abc = patchilizer.encode(remove_instrument_info(tune.abc), add_special_patches=True)
        return _Encoded(tune, abc, [patchilizer.encode(m, add_special_patches=True) for m in tune.midi])

    def batches_per_epoch(self, world_size: int) -> int:
        return len(self.train) // self.batch_size

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[ViewBatch]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
        share = self.batch_size // world_size
        for start in range(0, self.batches_per_epoch(world_size) * self.batch_size, self.batch_size):
            chosen = order[start + rank * share : start + (rank + 1) * share]
            yield self._batch([int(i) for i in chosen], epoch)

    def _batch(self, indices: list[int], epoch: int) -> ViewBatch:
        config = self.encoder.config
        text, abc, midi, audio = [], [], [], []
        for index in indices:
            rng = item_rng(self.seed, epoch, index)
            chosen, copy = self._tunes[index], self._copies[index]
            if copy is not None and rng.random() < self.copy_share:
                chosen = copy
            tune = chosen.tune
            text.append(tune.text[int(rng.integers(len(tune.text)))])
            abc.append(random_slice(chosen.abc, config.symbolic.max_patches, rng))
            variant = chosen.midi[int(rng.integers(len(chosen.midi)))]
            midi.append(random_slice(variant, config.symbolic.max_patches, rng))
            audio.append(random_slice(with_edge_windows(tune.audio), config.audio.max_frames, rng))
        collate = self.encoder._collate
        return ViewBatch(
            torch.from_numpy(np.stack(text)).to(self.encoder.device),
            *collate(abc, 0),
            *collate(midi, 0),
            *collate(audio, 0.0),
        )

    def validate(self) -> dict[str, float]:
        """Held-out retrieval through the inference path: text->ABC/MIDI/audio, ABC<->MIDI, audio->ABC;
        ``noisy`` is each tune's last MIDI variant (the rendering's transcription)."""
        if not self.validation:
            return {"val_mrr": 0.0}
        encoder, tunes = self.encoder, self.validation
        with torch.inference_mode():
            text = self.model.parts["text_proj"](torch.from_numpy(self._eval_text).to(encoder.device))
        vectors = {
            "text": text.float().cpu().numpy(),
            "abc": encoder.encode_symbolic([t.abc for t in tunes]),
            "midi": encoder.encode_symbolic([t.midi[0] for t in tunes]),
            "noisy": encoder.encode_symbolic([t.midi[-1] for t in tunes]),
            "audio": encoder.encode_audio_features([t.audio for t in tunes]),
        }
        truth = np.arange(len(tunes))
        pairs = {
            "text_abc": ("text", "abc"),
            "text_audio": ("text", "audio"),
            "midi_abc": ("midi", "abc"),
            "noisy_abc": ("noisy", "abc"),
            "audio_abc": ("audio", "abc"),
            "audio_midi": ("audio", "midi"),
        }
        metrics = {}
        for name, (query, target) in pairs.items():
            mrr, _ = metrics_from_ranks(target_ranks(vectors[query], vectors[target], truth), (10,))
            metrics[f"val_{name}_mrr"] = mrr
        metrics["val_mrr"] = float(np.mean(list(metrics.values())))
        return metrics

    def save_model(self, directory: Path) -> None:
        self.encoder.save_pretrained(directory)
