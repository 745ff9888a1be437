"""The fine-tuning example's toy corpus and model (examples/finetune/prepare.py) for training tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from clamp3.encoder import CLaMP3
from clamp3.model.towers import CLaMP3Model

_spec = importlib.util.spec_from_file_location(
    "finetune_example", Path(__file__).resolve().parents[1] / "examples" / "finetune" / "prepare.py"
)
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)

WORDS = example.WORDS
tiny_config = example.toy_config


def write_toy_corpus(directory: Path, per_style: int, seed: int = 0) -> Path:
    return example.write_corpus(directory, per_style, seed)


def tiny_encoder(seed: int = 0, dropout: float = 0.1, device: str = "cpu") -> CLaMP3:
    import torch

    torch.manual_seed(seed)
    return CLaMP3(CLaMP3Model(tiny_config(dropout)), device=device, tokenizer=example.build_tokenizer(WORDS))
