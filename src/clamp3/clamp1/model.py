"""The CLaMP 1 network: a RoBERTa text encoder and a bar-patch BERT music encoder, each with a projection.

Module names follow the reference (``text_enc``, ``text_proj``, ``music_enc.patch_embedding``,
``music_enc.enc``, ``music_proj``), so its checkpoints load with unchanged keys.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import RobertaConfig, RobertaModel

from clamp3.clamp1.config import Clamp1Config
from clamp3.clamp1.patchilizer import PATCH_CLASSES
from clamp3.config import EncoderConfig
from clamp3.model.towers import AttentionImpl, build_bert, masked_mean

Clamp1Tower = Literal["text", "music"]


def build_roberta(encoder: EncoderConfig, attn_implementation: AttentionImpl) -> RobertaModel:
    """A ``RobertaModel`` with its pooler (as ``AutoModel`` builds distilroberta-base)."""
    config = RobertaConfig(
        vocab_size=encoder.vocab_size,
        hidden_size=encoder.hidden_size,
        num_hidden_layers=encoder.num_layers,
        num_attention_heads=encoder.num_heads,
        intermediate_size=encoder.intermediate_size,
        hidden_act=encoder.hidden_act,
        max_position_embeddings=encoder.max_positions,
        type_vocab_size=encoder.type_vocab_size,
        layer_norm_eps=encoder.layer_norm_eps,
        pad_token_id=encoder.pad_token_id,
        bos_token_id=0,
        eos_token_id=2,
        attn_implementation=attn_implementation,
    )
    return RobertaModel(config)


class MusicEncoder(nn.Module):
    """One-hot bar patches (``patch_length`` x 98 classes) -> ``patch_embedding`` -> BERT (``enc``).

    The one-hot product is computed as a sum of the selected weight columns (``embedding_bag``), the
    same numbers without materialising a ``[B, L, patch_length * 98]`` tensor.
    """

    def __init__(self, config: Clamp1Config, attn_implementation: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.patch_length = config.patch_length
        self.patch_embedding = nn.Linear(config.patch_length * PATCH_CLASSES, config.music.hidden_size)
        self.enc = build_bert(config.music, attn_implementation)
        self.register_buffer(
            "column_offsets", torch.arange(config.patch_length) * PATCH_CLASSES, persistent=False
        )

    def forward(self, patches: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, L, patch_length]`` ids in ``[0, 98)`` -> last hidden states ``[B, L, hidden]``."""
        batch, length, _ = patches.shape
        columns = (patches + self.column_offsets).reshape(-1, self.patch_length)
        summed = F.embedding_bag(columns, self.patch_embedding.weight.t(), mode="sum")
        embeds = (summed + self.patch_embedding.bias).view(batch, length, -1)
        return self.enc(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state


class Clamp1Model(nn.Module):
    """Text and music encoders with linear projections into one ``projection_dim`` space."""

    def __init__(self, config: Clamp1Config, attn_implementation: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.text_enc = build_roberta(config.text, attn_implementation)
        self.text_proj = nn.Linear(config.text.hidden_size, config.projection_dim)
        self.music_enc = MusicEncoder(config, attn_implementation)
        self.music_proj = nn.Linear(config.music.hidden_size, config.projection_dim)

    def hidden_states(self, tower: Clamp1Tower, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``[B, L, H]``: token ids ``[B, L]`` (text) or patch ids ``[B, L, 64]`` (music);
        ``mask`` ``[B, L]`` is 1 for real positions."""
        if tower == "text":
            return self.text_enc(input_ids=inputs, attention_mask=mask).last_hidden_state
        if tower == "music":
            return self.music_enc(inputs, mask)
        raise ValueError(f"unknown tower {tower!r}; expected 'text' or 'music'")

    def project(self, tower: Clamp1Tower, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean over positions, then the tower's projection: ``[B, projection_dim]``."""
        return (self.text_proj if tower == "text" else self.music_proj)(masked_mean(hidden, mask))
