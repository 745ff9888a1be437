"""Helpers for tests that use the tiny reference checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
    PreTrainedTokenizerFast,
)

BLIP_WORDS = [
    "a",
    "picture",
    "of",
    "cat",
    "dog",
    "red",
    "blue",
    "the",
    "on",
    "with",
    "music",
    "piano",
    "score",
]
_BLIP_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
MODALITY_METHOD = {"text": "encode_text_ids", "symbolic": "encode_symbolic", "audio": "encode_audio_features"}


def tiny_dir(reference_dir: Path) -> Path:
    return reference_dir / "tiny_model"


def load_case_input(directory: Path, case: dict):
    path = directory / case["input"]
    if case["modality"] == "text":
        return json.loads(path.read_text())
    if case["modality"] == "symbolic":
        return path.read_text(encoding="utf-8")
    return np.load(path)


def expected_outputs(directory: Path, case: dict) -> tuple[np.ndarray, np.ndarray]:
    outputs = case["outputs"]
    return (
        np.load(directory / outputs["get_global_true"]["file"])[0],
        np.load(directory / outputs["get_global_false"]["file"])[0],
    )


def tiny_tokenizer(words: list[str] | dict[str, int]) -> PreTrainedTokenizerFast:
    """A RoBERTa-shaped word-level tokenizer (ids 0-3 = <s>, <pad>, </s>, <unk>) for the tiny models."""
    from tests.train_toy import example

    return example.build_tokenizer(words)


def build_tiny_blip(directory: Path) -> Path:
    """A two-layer BLIP (vision 32x32 pixels, text vocab of 19 WordPiece tokens) and its processor.

    Special tokens are made unreachable for the decoder: a random model would often stop at once.
    """
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(_BLIP_SPECIAL + BLIP_WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]")
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = BlipConfig(
        vision_config={**small, "image_size": 32, "patch_size": 8, "initializer_range": 0.2},
        text_config={
            **small,
            "vocab_size": len(_BLIP_SPECIAL) + len(BLIP_WORDS),
            "encoder_hidden_size": 32,
            "max_position_embeddings": 64,
            "pad_token_id": _BLIP_SPECIAL.index("[PAD]"),
            "bos_token_id": _BLIP_SPECIAL.index("[DEC]"),
            "sep_token_id": _BLIP_SPECIAL.index("[SEP]"),
            "eos_token_id": _BLIP_SPECIAL.index("[SEP]"),
            "initializer_range": 0.2,
        },
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():  # never generate a special token, so every caption runs to max_length
        model.text_decoder.cls.predictions.bias[: len(_BLIP_SPECIAL)] = -1e4
    model.save_pretrained(directory)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def tiny_model_with_tokenizer(reference_dir: Path, directory: Path) -> Path:
    """The tiny reference model saved in our format with a small word-level tokenizer."""
    from clamp3 import CLaMP3

    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    words = ["a", "calm", "chorale", "for", "four", "voices", "an", "irish", "reel"]
    model._tokenizer = tiny_tokenizer(words)
    model.save_pretrained(directory)
    return directory
