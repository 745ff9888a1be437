"""The CLaMP 3 network: text, symbolic and audio towers with their projections.

Module names and nesting follow the reference implementation, so an official ``state_dict`` loads
into :class:`CLaMP3Model` with unchanged keys (``text_model.*``, ``symbolic_model.base.*``, ...).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

from clamp3.config import CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig

Tower = Literal["text", "symbolic", "audio"]
TOWERS: tuple[Tower, ...] = ("text", "symbolic", "audio")
AttentionImpl = Literal["sdpa", "eager"]


def _hf_kwargs(encoder: EncoderConfig, attn_implementation: AttentionImpl) -> dict:
    return {
        "vocab_size": encoder.vocab_size,
        "hidden_size": encoder.hidden_size,
        "num_hidden_layers": encoder.num_layers,
        "num_attention_heads": encoder.num_heads,
        "intermediate_size": encoder.intermediate_size,
        "hidden_act": encoder.hidden_act,
        "max_position_embeddings": encoder.max_positions,
        "type_vocab_size": encoder.type_vocab_size,
        "layer_norm_eps": encoder.layer_norm_eps,
        "pad_token_id": encoder.pad_token_id,
        "hidden_dropout_prob": encoder.dropout,
        "attention_probs_dropout_prob": encoder.dropout,
        "attn_implementation": attn_implementation,
    }


def build_bert(encoder: EncoderConfig, attn_implementation: AttentionImpl) -> BertModel:
    """A ``BertModel`` of the given sizes (with a pooler unless the config says otherwise)."""
    return BertModel(BertConfig(**_hf_kwargs(encoder, attn_implementation)), add_pooling_layer=encoder.pooler)


def build_text_encoder(text: TextConfig, attn_implementation: AttentionImpl) -> nn.Module:
    """XLM-R (positions derived from the ids, pad id 1) or BERT (positions from 0)."""
    kwargs = _hf_kwargs(text.encoder, attn_implementation)
    if text.architecture == "xlm-roberta":
        config = XLMRobertaConfig(bos_token_id=0, eos_token_id=2, **kwargs)
        return XLMRobertaModel(config, add_pooling_layer=text.encoder.pooler)
    return build_bert(text.encoder, attn_implementation)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, L, H]`` hidden states averaged over the positions where ``mask`` (``[B, L]``) is 1."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


class M3PatchEncoder(nn.Module):
    """M3 encoder: each patch of character ids is one-hot encoded, flattened and linearly embedded.

    ``patch_embedding`` keeps the reference's ``Linear(patch_size * num_classes, hidden)`` weights,
    but the one-hot product is computed as a sum of the selected weight columns (``embedding_bag``),
    which gives the same numbers without materialising the one-hot tensor.
    """

    def __init__(self, config: SymbolicConfig, attn_implementation: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.num_classes = config.num_classes
        self.patch_embedding = nn.Linear(config.patch_size * config.num_classes, config.encoder.hidden_size)
        self.base = build_bert(config.encoder, attn_implementation)
        self.register_buffer(
            "column_offsets", torch.arange(config.patch_size) * config.num_classes, persistent=False
        )

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, L, patch_size]`` ids in ``[0, num_classes)`` -> ``[B, L, hidden]``."""
        batch, length, _ = patches.shape
        columns = (patches + self.column_offsets).reshape(-1, self.patch_size)
        # embedding_bag is ~40x slower on the transposed view than on a contiguous copy (a few ms)
        table = self.patch_embedding.weight.t().contiguous()
        summed = F.embedding_bag(columns, table, mode="sum")
        return (summed + self.patch_embedding.bias).view(batch, length, -1)

    def forward(self, patches: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeds = self.embed_patches(patches)
        return self.base(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state


class CLaMP3Model(nn.Module):
    """Three encoders and three linear projections into one ``projection_dim`` space."""

    def __init__(self, config: CLaMP3Config, attn_implementation: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.config = config
        dim = config.projection_dim
        self.text_model = build_text_encoder(config.text, attn_implementation)
        self.text_proj = nn.Linear(config.text.encoder.hidden_size, dim)
        self.symbolic_model = M3PatchEncoder(config.symbolic, attn_implementation)
        self.symbolic_proj = nn.Linear(config.symbolic.encoder.hidden_size, dim)
        if config.audio.input_size is not None:
            self.audio_input = nn.Linear(config.audio.input_size, config.audio.encoder.hidden_size)
        self.audio_model = build_bert(config.audio.encoder, attn_implementation)
        self.audio_proj = nn.Linear(config.audio.encoder.hidden_size, dim)

    def hidden_states(self, tower: Tower, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``[B, L, H]`` of one tower (unprojected, like the reference's local features).

        ``inputs``: token ids ``[B, L]`` (text), patch ids ``[B, L, patch_size]`` (symbolic) or
        feature vectors ``[B, L, H]`` (audio); ``mask``: ``[B, L]`` with 1 for real positions.
        """
        if tower == "text":
            return self.text_model(input_ids=inputs, attention_mask=mask).last_hidden_state
        if tower == "symbolic":
            return self.symbolic_model(inputs, mask)
        if tower == "audio":
            if self.config.audio.input_size is not None:
                inputs = self.audio_input(inputs)
            return self.audio_model(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        raise ValueError(f"unknown tower {tower!r}; expected one of {TOWERS}")

    def project(self, tower: Tower, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean over positions, then the tower's projection: ``[B, projection_dim]``."""
        projection: nn.Linear = getattr(self, f"{tower}_proj")
        return projection(masked_mean(hidden, mask))

    def global_features(self, tower: Tower, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.project(tower, self.hidden_states(tower, inputs, mask), mask)
