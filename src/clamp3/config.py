"""Model configuration: every size of a CLaMP 3 model, saved next to its weights.

Nothing in the package reads module-level constants to build a model; a :class:`CLaMP3Config`
travels with each checkpoint (``config.json``). Three ways to obtain one:

* :meth:`CLaMP3Config.official` - the sizes of the released SAAS / C2 checkpoints;
* :meth:`CLaMP3Config.from_dict` - our own ``config.json``;
* :func:`config_from_reference_json` - the ``config.json`` format that describes a checkpoint
  trained with the reference scripts at other sizes (``config_py_overrides`` etc.).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from clamp3.errors import CheckpointError

FORMAT_NAME = "clamp3"
FORMAT_VERSION = 1

TextArchitecture = Literal["xlm-roberta", "bert"]


@dataclass(frozen=True)
class EncoderConfig:
    """A post-LayerNorm BERT-style transformer encoder (the three CLaMP 3 towers are all of this kind)."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 512
    layer_norm_eps: float = 1e-12
    vocab_size: int = 1
    type_vocab_size: int = 2
    pad_token_id: int = 0
    hidden_act: str = "gelu"
    dropout: float = 0.1
    """Hidden and attention dropout during training (the transformers default)."""
    pooler: bool = True
    """Whether the encoder has BERT's (unused) pooler layer, as the official checkpoints do."""

    def __post_init__(self) -> None:
        if self.num_heads <= 0 or self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible into {self.num_heads} attention heads"
            )


@dataclass(frozen=True)
class TextConfig:
    """Text tower: a multilingual transformer over token ids, segmented into ``max_length`` tokens.

    ``backbone`` names an external, frozen source of the encoder's weights and tokenizer (see
    :mod:`clamp3.hub.backbones`): such weights are never saved with the model nor trained.
    ``prefix`` is put before every text (multilingual-e5 expects ``"query: "``).
    """

    encoder: EncoderConfig
    architecture: TextArchitecture = "xlm-roberta"
    max_length: int = 128
    tokenizer: str | None = "FacebookAI/xlm-roberta-base"
    backbone: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class SymbolicConfig:
    """Symbolic tower: the M3 patch encoder over ``patch_size``-character patches."""

    encoder: EncoderConfig
    patch_size: int = 64
    max_patches: int = 512
    num_classes: int = 128


@dataclass(frozen=True)
class AudioConfig:
    """Audio tower: a transformer over per-window audio feature vectors (MERT for the official model).

    ``features`` names the front end (``mert-v1-95m`` or one of :mod:`clamp3.preprocess.frontends`);
    ``input_size`` is the size of its vectors when it differs from the encoder's hidden size, in which
    case a linear layer (``audio_input``) maps them to it.
    """

    encoder: EncoderConfig
    max_frames: int = 128
    features: str = "mert-v1-95m"
    input_size: int | None = None

    @property
    def feature_size(self) -> int:
        """The size of one input vector."""
        return self.input_size or self.encoder.hidden_size


@dataclass(frozen=True)
class CLaMP3Config:
    """All sizes of a CLaMP 3 model. ``projection_dim`` is the size of the shared embedding space."""

    text: TextConfig
    symbolic: SymbolicConfig
    audio: AudioConfig
    projection_dim: int = 768
    name: str = ""

    @classmethod
    def official(cls, name: str = "") -> CLaMP3Config:
        """The architecture of the released CLaMP 3 checkpoints (SAAS and C2 share it)."""
        return cls(
            text=TextConfig(encoder=_XLM_R_BASE),
            symbolic=SymbolicConfig(encoder=EncoderConfig(max_positions=512)),
            audio=AudioConfig(encoder=EncoderConfig(max_positions=128)),
            projection_dim=768,
            name=name,
        )

    def with_name(self, name: str) -> CLaMP3Config:
        return replace(self, name=name)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CLaMP3Config:
        if data.get("format") != FORMAT_NAME:
            raise ValueError('not a clamp3 config (missing "format": "clamp3")')
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"config format_version {data['format_version']} is newer than this clamp3 "
                f"({FORMAT_VERSION}); upgrade clamp3"
            )
        return cls(
            text=TextConfig(**{**data["text"], "encoder": EncoderConfig(**data["text"]["encoder"])}),
            symbolic=SymbolicConfig(
                **{**data["symbolic"], "encoder": EncoderConfig(**data["symbolic"]["encoder"])}
            ),
            audio=AudioConfig(**{**data["audio"], "encoder": EncoderConfig(**data["audio"]["encoder"])}),
            projection_dim=data["projection_dim"],
            name=data.get("name", ""),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> CLaMP3Config:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


_XLM_R_BASE = EncoderConfig(
    hidden_size=768,
    num_layers=12,
    num_heads=12,
    intermediate_size=3072,
    max_positions=514,
    layer_norm_eps=1e-5,
    vocab_size=250002,
    type_vocab_size=1,
    pad_token_id=1,
)

# The constants of the reference's code/config.py that describe model sizes, at their released values.
_REFERENCE_DEFAULTS: dict[str, Any] = {
    "PATCH_SIZE": 64,
    "PATCH_LENGTH": 512,
    "PATCH_NUM_LAYERS": 12,
    "M3_HIDDEN_SIZE": 768,
    "CLAMP3_HIDDEN_SIZE": 768,
    "TEXT_MODEL_NAME": "FacebookAI/xlm-roberta-base",
    "MAX_TEXT_LENGTH": 128,
    "AUDIO_HIDDEN_SIZE": 768,
    "AUDIO_NUM_LAYERS": 12,
    "MAX_AUDIO_LENGTH": 128,
}


def is_reference_json(data: dict[str, Any]) -> bool:
    """True for the reference-scripts description format (it has ``config_py_overrides``)."""
    return "config_py_overrides" in data


def config_from_reference_json(data: dict[str, Any], directory: Path) -> CLaMP3Config:
    """Build a config from the reference description format.

    ``config_py_overrides`` holds the reference's ``config.py`` constants; per-tower blocks
    (``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``, ``layer_norm_eps``)
    override the reference's derived values (heads = hidden // 64, FFN = 4 * hidden), and the text
    model's sizes come from ``text_model.config_file`` (an XLM-R ``config.json`` next to it) or from
    the standard XLM-R base when the text model is ``FacebookAI/xlm-roberta-base``.
    """
    constants = {**_REFERENCE_DEFAULTS, **data["config_py_overrides"]}

    def tower(key: str, hidden: int, layers: int, positions: int) -> EncoderConfig:
        return EncoderConfig(
            hidden_size=hidden,
            num_layers=layers,
            num_heads=data.get("num_attention_heads", {}).get(key, hidden // 64),
            intermediate_size=data.get("intermediate_size", {}).get(key, 4 * hidden),
            max_positions=data.get("max_position_embeddings", {}).get(key, positions),
            layer_norm_eps=data.get("layer_norm_eps", {}).get(key, 1e-12),
        )

    symbolic = tower(
        "symbolic", constants["M3_HIDDEN_SIZE"], constants["PATCH_NUM_LAYERS"], constants["PATCH_LENGTH"]
    )
    audio = tower(
        "audio", constants["AUDIO_HIDDEN_SIZE"], constants["AUDIO_NUM_LAYERS"], constants["MAX_AUDIO_LENGTH"]
    )
    text_model = data.get("text_model", {})
    tokenizer: str | None = constants["TEXT_MODEL_NAME"]
    if "config_file" in text_model:
        text_encoder = _encoder_from_xlm_r_json(directory / text_model["config_file"])
        if text_model.get("vocab_size", text_encoder.vocab_size) != _XLM_R_BASE.vocab_size:
            tokenizer = None
    elif constants["TEXT_MODEL_NAME"] == _REFERENCE_DEFAULTS["TEXT_MODEL_NAME"]:
        text_encoder = _XLM_R_BASE
    else:
        raise CheckpointError(
            f"{directory / 'config.json'}: text model {constants['TEXT_MODEL_NAME']!r} needs a "
            "text_model.config_file with its sizes"
        )
    return CLaMP3Config(
        text=TextConfig(encoder=text_encoder, max_length=constants["MAX_TEXT_LENGTH"], tokenizer=tokenizer),
        symbolic=SymbolicConfig(
            encoder=symbolic, patch_size=constants["PATCH_SIZE"], max_patches=constants["PATCH_LENGTH"]
        ),
        audio=AudioConfig(encoder=audio, max_frames=constants["MAX_AUDIO_LENGTH"]),
        projection_dim=constants["CLAMP3_HIDDEN_SIZE"],
        name=directory.name,
    )


def _encoder_from_xlm_r_json(path: Path) -> EncoderConfig:
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read text model config ({exc})") from exc
    return EncoderConfig(
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_positions=hf["max_position_embeddings"],
        layer_norm_eps=hf["layer_norm_eps"],
        vocab_size=hf["vocab_size"],
        type_vocab_size=hf["type_vocab_size"],
        pad_token_id=hf.get("pad_token_id", 1),
        hidden_act=hf.get("hidden_act", "gelu"),
    )
