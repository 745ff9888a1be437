"""Write a small text-music corpus and a small model description to fine-tune on, offline.

    python examples/finetune/prepare.py runs/toy
    clamp3 train contrastive --config runs/toy/train.toml
    clamp3 search --text "a jig" runs/toy/tunes --model runs/toy/run/best -k 3

The corpus: tunes of eight dance/air styles (``tunes/*.abc``) described in ``corpus.jsonl``
(``{"path": ..., "texts": [...]}`` per line). The model: CLaMP 3's architecture at toy size with a
word-level tokenizer, so the whole run takes seconds on a CPU. For real data, replace
``[model] config/tokenizer`` by ``init = "c2"`` (or any model folder) and point ``[data] train`` at your
JSONL file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

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

TRAIN_TOML = """\
[model]
config = "config.json"
tokenizer = "tokenizer"

[data]
train = "corpus.jsonl"
validation_fraction = 0.25

[contrastive]
tower = "symbolic"
batch_size = 8

[train]
output = "run"
epochs = 15
learning_rate = 5e-3
warmup_steps = 3
"""


def toy_tune(style: str, rng: np.random.Generator) -> str:
    meter, key, motif = STYLES[style]
    bars = "".join(f"[V:1]{motif} {'abcdefg'[rng.integers(7)]}|\n" for _ in range(int(rng.integers(4, 9))))
    return f"X:1\nL:1/8\nM:{meter}\nK:{key}\nV:1 treble\n{bars}"


def write_corpus(directory: Path, per_style: int = 4, seed: int = 0) -> Path:
    """``per_style`` tunes of each style under ``tunes/`` and ``corpus.jsonl`` describing them."""
    rng = np.random.default_rng(seed)
    (directory / "tunes").mkdir(parents=True, exist_ok=True)
    lines = []
    for style in STYLES:
        for i in range(per_style):
            name = f"tunes/{style}_{i}.abc"
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


def build_tokenizer(words: list[str] | dict[str, int]):
    """A word-level tokenizer shaped like XLM-R's (ids 0-3: <s>, <pad>, </s>, <unk>); ``words`` get the
    next free ids, or the ids a mapping gives them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    if isinstance(words, dict):
        vocab.update(words)
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


def toy_config(dropout: float = 0.1):
    """CLaMP 3's architecture at toy size (hidden 32, 2 layers)."""
    from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig

    def encoder(**sizes) -> EncoderConfig:
        return EncoderConfig(
            hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, dropout=dropout, **sizes
        )

    text = encoder(max_positions=34, vocab_size=64, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)
    return CLaMP3Config(
        text=TextConfig(encoder=text, max_length=16, tokenizer=None),
        symbolic=SymbolicConfig(encoder=encoder(max_positions=32), max_patches=32),
        audio=AudioConfig(encoder=encoder(max_positions=8), max_frames=8),
        projection_dim=24,
        name="toy",
    )


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_corpus(directory)
    build_tokenizer(WORDS).save_pretrained(directory / "tokenizer")
    toy_config().save(directory / "config.json")
    (directory / "train.toml").write_text(TRAIN_TOML)
    print(f"wrote {directory}/corpus.jsonl, tunes/, config.json, tokenizer/ and train.toml")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/toy"))
