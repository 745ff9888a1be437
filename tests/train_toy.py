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


def toy_task(
    records: list[dict], seed: int = 0, dropout: float = 0.1, batch_size: int = 8, group=None, device="cpu"
):
    """A symbolic :class:`ContrastiveTask` on the toy corpus: every fourth tune validates."""
    from clamp3.pipeline import Pipeline
    from clamp3.train.contrastive import ContrastiveSettings, ContrastiveTask
    from clamp3.train.data import load_examples

    encoder = tiny_encoder(seed, dropout, device)
    examples, failures = load_examples(records, Pipeline(encoder), "symbolic")
    assert not failures
    train = [e for i, e in enumerate(examples) if i % 4]
    validation = [e for i, e in enumerate(examples) if not i % 4]
    settings = ContrastiveSettings(batch_size=batch_size, seed=3)
    return ContrastiveTask(encoder, train, validation, settings, group)
