"""A toy text-music corpus and a tiny model for training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig
from clamp3.encoder import CLaMP3
from clamp3.model.towers import CLaMP3Model
from tests.tiny import tiny_tokenizer

STYLES = {
    "reel": ("4/4", "D", "dAFA dAFA"),
    "jig": ("6/8", "G", "GAB dBG"),
    "waltz": ("3/4", "F", "F2 A2 c2"),
    "march": ("2/4", "C", "C2 E2"),
    "air": ("3/4", "Am", "A3 c BA"),
    "hornpipe": ("4/4", "Bb", "B,DF B,DF"),
    "polka": ("2/4", "E", "EG Bc"),
    "slide": ("12/8", "Em", "E2G B2e"),
}
WORDS = ["a", "lively", "slow", "tune", "in", "the", "style", "of", *STYLES]


def tiny_config(dropout: float = 0.1) -> CLaMP3Config:
    def encoder(**kw) -> EncoderConfig:
        return EncoderConfig(
            hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, dropout=dropout, **kw
        )

    return CLaMP3Config(
        text=TextConfig(
            encoder=encoder(
                max_positions=34, vocab_size=64, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5
            ),
            max_length=16,
            tokenizer=None,
        ),
        symbolic=SymbolicConfig(encoder=encoder(max_positions=32), max_patches=32),
        audio=AudioConfig(encoder=encoder(max_positions=8), max_frames=8),
        projection_dim=24,
        name="toy",
    )


def tiny_encoder(seed: int = 0, dropout: float = 0.1) -> CLaMP3:
    import torch

    torch.manual_seed(seed)
    return CLaMP3(CLaMP3Model(tiny_config(dropout)), device="cpu", tokenizer=tiny_tokenizer(WORDS))


def toy_tune(style: str, rng: np.random.Generator) -> str:
    meter, key, motif = STYLES[style]
    bars = "".join(f"[V:1]{motif} {'abcdefg'[rng.integers(7)]}|\n" for _ in range(int(rng.integers(4, 9))))
    return f"X:1\nL:1/8\nM:{meter}\nK:{key}\nV:1 treble\n{bars}"


def write_toy_corpus(directory: Path, per_style: int, seed: int = 0) -> Path:
    """``per_style`` tunes of each style as ``.abc`` files and a simple-format JSONL describing them."""
    rng = np.random.default_rng(seed)
    lines = []
    for style in STYLES:
        for i in range(per_style):
            name = f"{style}_{i}.abc"
            (directory / name).write_text(toy_tune(style, rng))
            texts = [
                f"a {style}",
                f"a tune in the style of a {style}",
                "a lively tune" if i % 2 else "a slow tune",
            ]
            lines.append(json.dumps({"path": name, "texts": texts}))
    path = directory / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
