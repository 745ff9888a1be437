"""Sizes of a CLaMP 1 model, saved next to its weights.

A :class:`Clamp1Config` comes from one of:

* the hub layout of ``sander-wood/clamp-small-512`` / ``-1024``: a ``config.json`` that is the music
  encoder's ``BertConfig`` (``max_length`` = patches per piece), the text encoder being distilroberta-base,
  or the RoBERTa ``config.json`` given as ``text_model_config.json`` beside it (:meth:`from_hub_json`);
* our own ``config.json`` (``"format": "clamp1"``, :meth:`to_dict` / :meth:`from_dict`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clamp3.config import EncoderConfig

FORMAT_NAME = "clamp1"
FORMAT_VERSION = 1
DISTILROBERTA_REPO = "distilbert/distilroberta-base"

DISTILROBERTA_BASE = EncoderConfig(
    hidden_size=768,
    num_layers=6,
    num_heads=12,
    intermediate_size=3072,
    max_positions=514,
    layer_norm_eps=1e-5,
    vocab_size=50265,
    type_vocab_size=1,
    pad_token_id=1,
)
"""The text encoder of the released CLaMP 1 models (distilroberta-base's ``config.json``)."""


_HF_SIZE_KEYS = (  # what a transformers config.json must give
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "vocab_size",
)


@dataclass(frozen=True)
class Clamp1Config:
    """All sizes of a CLaMP 1 model; both towers project to ``music.hidden_size`` dimensions."""

    text: EncoderConfig
    music: EncoderConfig
    music_length: int = 512
    """Patches per piece (the hub config's ``max_length``); longer pieces are cut (no segmentation)."""
    text_max_length: int = 128
    """Tokens per text (the reference tokenizes with ``truncation=True, max_length=128``)."""
    patch_length: int = 64
    tokenizer: str | None = DISTILROBERTA_REPO
    name: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.music_length <= self.music.max_positions:
            raise ValueError(
                f"music_length {self.music_length} must lie in [1, {self.music.max_positions}] "
                "(the music encoder's position table)"
            )
        if self.text_max_length < 1:
            raise ValueError("text_max_length must be at least 1")

    @property
    def projection_dim(self) -> int:
        return self.music.hidden_size

    @property
    def max_text_tokens(self) -> int:
        """Longest token sequence the model takes: ``text_max_length``, or fewer if the text encoder's
        position table (RoBERTa reserves 2 positions) is shorter."""
        return min(self.text_max_length, self.text.max_positions - self.text.pad_token_id - 1)

    @classmethod
    def from_hub_json(
        cls, music: dict[str, Any], text: dict[str, Any] | None = None, name: str = ""
    ) -> Clamp1Config:
        """From the hub ``config.json`` (music ``BertConfig``) and, if given, the text model's RoBERTa config.

        Without ``text``, the text encoder is distilroberta-base. A text model of another vocabulary size
        has no known tokenizer (``tokenizer`` is ``None``: use ``encode_text_ids``).
        """
        text_encoder = DISTILROBERTA_BASE if text is None else _encoder_from_hf(text, DISTILROBERTA_BASE)
        music_encoder = _encoder_from_hf(music, EncoderConfig())
        vocab_matches = text_encoder.vocab_size == DISTILROBERTA_BASE.vocab_size
        return cls(
            text=text_encoder,
            music=music_encoder,
            music_length=int(music.get("max_length", music_encoder.max_positions)),
            tokenizer=DISTILROBERTA_REPO if vocab_matches else None,
            name=name,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Clamp1Config:
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f'not a CLaMP 1 config (missing "format": "{FORMAT_NAME}")')
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"config format_version {data['format_version']} is newer than this clamp3 "
                f"({FORMAT_VERSION}); upgrade clamp3"
            )
        fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
        return cls(
            **{**fields, "text": EncoderConfig(**data["text"]), "music": EncoderConfig(**data["music"])}
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def is_our_config(data: dict[str, Any]) -> bool:
    return data.get("format") == FORMAT_NAME


def missing_hf_keys(hf: dict[str, Any]) -> list[str]:
    """The sizes :meth:`Clamp1Config.from_hub_json` needs that a transformers ``config.json`` lacks."""
    return [key for key in _HF_SIZE_KEYS if key not in hf]


def _encoder_from_hf(hf: dict[str, Any], defaults: EncoderConfig) -> EncoderConfig:
    """An :class:`EncoderConfig` from a transformers ``config.json`` (BERT or RoBERTa).

    The sizes must be present (see :func:`missing_hf_keys`); the rest falls back to ``defaults``.
    """

    def optional(key: str, default: Any) -> Any:
        return default if hf.get(key) is None else hf[key]

    return EncoderConfig(
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_positions=hf["max_position_embeddings"],
        vocab_size=hf["vocab_size"],
        layer_norm_eps=optional("layer_norm_eps", defaults.layer_norm_eps),
        type_vocab_size=optional("type_vocab_size", defaults.type_vocab_size),
        pad_token_id=optional("pad_token_id", defaults.pad_token_id),
        hidden_act=optional("hidden_act", defaults.hidden_act),
    )
