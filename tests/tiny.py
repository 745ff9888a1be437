"""Helpers for tests that use the tiny reference checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

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


def tiny_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """An XLM-R-shaped word-level tokenizer (ids 0-3 = <s>, <pad>, </s>, <unk>) for the tiny model."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
