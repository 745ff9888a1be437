"""M3: the symbolic patch encoder with the character decoder used to pretrain it.

``M3Model`` keeps the reference's module names, so the state_dict of an official M3 checkpoint
(``encoder.patch_embedding.*``, ``encoder.base.*``, ``decoder.base.transformer.*``,
``decoder.base.lm_head.weight``) loads with unchanged keys. Pretraining reconstructs corrupted
patches: the encoder sees the whole (partly masked or shuffled) sequence, and for each selected patch
a small GPT-2 predicts the patch's original characters from the encoder's output vector for it.

A pretrained M3 starts contrastive training through :func:`load_m3_encoder_into`, which copies the
encoder into :attr:`clamp3.model.towers.CLaMP3Model.symbolic_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from clamp3.config import EncoderConfig, SymbolicConfig
from clamp3.errors import CheckpointError
from clamp3.model.checkpoint import load_weights_into, read_official_checkpoint
from clamp3.model.patchilizer import BOS, EOS, PAD
from clamp3.model.towers import AttentionImpl, CLaMP3Model, M3PatchEncoder

IGNORE_INDEX = -100
"""Label value that cross-entropy skips (padding characters)."""

# Causal-mask buffers that transformers < 4.40 stored in GPT-2 checkpoints; never weights.
_GPT2_MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")


@dataclass(frozen=True)
class M3DecoderConfig:
    """The GPT-2 character decoder. Its width, positions (= patch size) and vocabulary (= character
    classes) come from the symbolic config it decodes for."""

    num_layers: int = 3
    num_heads: int = 12
    intermediate_size: int = 3072


@dataclass(frozen=True)
class M3Config:
    """Sizes of an M3 model: the patch encoder (a CLaMP 3 symbolic tower) and its decoder."""

    symbolic: SymbolicConfig = field(default_factory=lambda: SymbolicConfig(encoder=EncoderConfig()))
    decoder: M3DecoderConfig = field(default_factory=M3DecoderConfig)

    def __post_init__(self) -> None:
        hidden = self.symbolic.encoder.hidden_size
        if hidden % self.decoder.num_heads:
            raise ValueError(
                f"hidden_size {hidden} is not divisible into {self.decoder.num_heads} decoder heads"
            )

    @classmethod
    def official(cls) -> M3Config:
        """The sizes of the released M3 checkpoint (12-layer encoder, 3-layer decoder, width 768)."""
        return cls()


@dataclass(frozen=True)
class DecoderInputs:
    """What GPT-2 is called with for ``K`` selected patches."""

    inputs_embeds: torch.Tensor
    """``[K, patch_size, hidden]``: the patch feature at position 0, then the embedded target characters."""
    attention_mask: torch.Tensor
    """``[K, patch_size]``: 1 where the target character is not padding."""
    labels: torch.Tensor
    """``[K, patch_size]``: the target characters, padding set to ``IGNORE_INDEX``."""


class M3TokenDecoder(nn.Module):
    """GPT-2 that predicts a patch's characters from the encoder's vector for the patch.

    Position 0's input embedding is replaced by the patch feature; GPT-2's internal label shift makes
    position ``i`` predict character ``i + 1``, so characters 1.. of each patch are predicted and the
    leading BOS character never is.
    """

    def __init__(
        self, config: M3DecoderConfig, symbolic: SymbolicConfig, attn_implementation: AttentionImpl = "sdpa"
    ) -> None:
        super().__init__()
        gpt2 = GPT2Config(
            vocab_size=symbolic.num_classes,
            n_positions=symbolic.patch_size,
            n_embd=symbolic.encoder.hidden_size,
            n_layer=config.num_layers,
            n_head=config.num_heads,
            n_inner=config.intermediate_size,
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
            attn_implementation=attn_implementation,
        )
        self.base = GPT2LMHeadModel(gpt2)

    def prepare(self, features: torch.Tensor, targets: torch.Tensor) -> DecoderInputs:
        """Decoder inputs for patch features ``[K, hidden]`` and the original patches ``[K, patch_size]``."""
        embeds = F.embedding(targets, self.base.transformer.wte.weight)
        embeds = torch.cat([features.unsqueeze(1).to(embeds.dtype), embeds[:, 1:]], dim=1)
        not_pad = targets != PAD
        return DecoderInputs(embeds, not_pad.long(), targets.masked_fill(~not_pad, IGNORE_INDEX))

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-character cross-entropy over the non-padding characters of all ``K`` patches."""
        inputs = self.prepare(features, targets)
        return self.base(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            labels=inputs.labels,
            use_cache=False,
        ).loss


class M3Model(nn.Module):
    """Patch encoder plus character decoder; ``forward`` returns the pretraining loss."""

    def __init__(self, config: M3Config, attn_implementation: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.encoder = M3PatchEncoder(config.symbolic, attn_implementation)
        self.decoder = M3TokenDecoder(config.decoder, config.symbolic, attn_implementation)

    def forward(
        self, patches: torch.Tensor, mask: torch.Tensor, selected: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Loss of reconstructing the selected patches.

        ``patches``: corrupted input ``[B, L, patch_size]``; ``mask``: ``[B, L]`` 1 for real patches;
        ``selected``: ``[B, L]`` bool; ``targets``: the original patches at the selected positions,
        ``[K, patch_size]`` in row-major order of ``selected``. The decoder runs on those ``K`` only.
        """
        hidden = self.encoder(patches, mask)
        return self.decoder(hidden[selected], targets)


def _without_mask_buffers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if not k.endswith(_GPT2_MASK_BUFFERS)}


def _m3_state_dict(source: dict[str, torch.Tensor] | str | Path) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(source, dict):
        return source, "M3 state_dict"
    return read_official_checkpoint(Path(source)), str(source)


def load_m3(
    source: dict[str, torch.Tensor] | str | Path,
    config: M3Config | None = None,
    attn_implementation: AttentionImpl = "sdpa",
) -> M3Model:
    """An :class:`M3Model` (``config`` defaults to the official sizes) with the weights of an
    official-layout M3 checkpoint (``.pth`` path or state_dict), after a strict key/shape check."""
    state, name = _m3_state_dict(source)
    model = M3Model(config or M3Config.official(), attn_implementation)
    load_weights_into(model, _without_mask_buffers(state), name)
    return model


def load_m3_encoder_into(model: CLaMP3Model, source: dict[str, torch.Tensor] | str | Path) -> None:
    """Replace ``model.symbolic_model`` with the encoder of an M3 checkpoint (``.pth`` path or
    state_dict); the decoder weights are ignored. Every encoder key must fit (strict check)."""
    state, name = _m3_state_dict(source)
    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    if not encoder:
        raise CheckpointError(f"{name}: not an M3 checkpoint (no encoder.* keys)")
    load_weights_into(model.symbolic_model, encoder, name)
