"""``clamp3 train contrastive --config train.toml``: a training run described in one TOML file.

```toml
[model]
init = "c2"                 # weights to start from: a registry name, a .pth or a model folder
# config = "config.json"    # ... or a new model of these sizes (random weights), with
# tokenizer = "tokenizer/"  # its tokenizer folder

[data]
train = "train.jsonl"        # the reference's layout or {"path": ..., "texts": [...]} per line
validation = "valid.jsonl"   # optional; else a seeded split of validation_fraction
validation_fraction = 0.1

[contrastive]                # clamp3.train.contrastive.ContrastiveSettings
tower = "symbolic"
batch_size = 32

[train]                      # clamp3.train.loop.TrainSettings
output = "runs/first"
epochs = 10
learning_rate = 1e-5
warmup_steps = 100
```

Relative paths are relative to the TOML file. ``torchrun --nproc_per_node N -m clamp3 train
contrastive --config train.toml`` runs the same recipe on N processes.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clamp3.cache import FeatureCache
from clamp3.config import CLaMP3Config
from clamp3.encoder import CLaMP3
from clamp3.errors import Clamp3Error, InputError
from clamp3.model.towers import CLaMP3Model
from clamp3.pipeline import Pipeline, PipelineOptions
from clamp3.train.contrastive import ContrastiveSettings, ContrastiveTask
from clamp3.train.data import Example, load_examples, read_jsonl
from clamp3.train.distributed import init_from_environment, shutdown
from clamp3.train.loop import Trainer, TrainSettings, TrainState


@dataclass(frozen=True)
class ModelSection:
    init: str | None = None
    config: Path | None = None
    tokenizer: Path | None = None
    attention: str = "sdpa"
    device: str | None = None


@dataclass(frozen=True)
class DataSection:
    train: Path
    validation: Path | None = None
    validation_fraction: float = 0.1
    cache: bool = True
    mert: str = "mert-v1-95m"


@dataclass(frozen=True)
class Recipe:
    model: ModelSection
    data: DataSection
    contrastive: ContrastiveSettings = field(default_factory=ContrastiveSettings)
    train: TrainSettings = field(default_factory=lambda: TrainSettings(output=Path("runs/clamp3")))


def _section(cls: type, values: dict[str, Any], name: str, base: Path, paths: tuple[str, ...]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise Clamp3Error(
            f"[{name}]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values = {
        key: (
            base / value
            if key in paths and value is not None
            else tuple(value)
            if isinstance(value, list)
            else value
        )
        for key, value in values.items()
    }
    try:
        return cls(**values)
    except TypeError as exc:
        raise Clamp3Error(f"[{name}]: {exc}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read a training TOML file; unknown or missing settings are reported by section."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, f"not a readable TOML file ({exc})") from exc
    base = path.parent
    unknown = sorted(set(data) - {"model", "data", "contrastive", "train"})
    if unknown:
        raise InputError(path, f"unknown section(s) {', '.join(unknown)}")
    if "data" not in data or "train" not in data.get("data", {}):
        raise InputError(path, '[data] train = "...jsonl" is required')
    return Recipe(
        model=_section(ModelSection, data.get("model", {}), "model", base, ("config", "tokenizer")),
        data=_section(DataSection, data["data"], "data", base, ("train", "validation")),
        contrastive=_section(ContrastiveSettings, data.get("contrastive", {}), "contrastive", base, ()),
        train=_section(
            TrainSettings, {"output": "runs/clamp3", **data.get("train", {})}, "train", base, ("output",)
        ),
    )


def build_encoder(section: ModelSection, device: torch.device) -> CLaMP3:
    """The model to train: loaded weights (``init``), or a new model from a config file."""
    if (section.init is None) == (section.config is None):
        raise Clamp3Error("[model]: give exactly one of init (weights to start from) or config (a new model)")
    if section.init is not None:
        encoder = CLaMP3.from_pretrained(section.init, device=device, attn_implementation=section.attention)
    else:
        model = CLaMP3Model(CLaMP3Config.load(section.config), attn_implementation=section.attention)
        encoder = CLaMP3(model, device=device)
    if section.tokenizer is not None:
        from transformers import AutoTokenizer

        encoder._tokenizer = AutoTokenizer.from_pretrained(str(section.tokenizer))
    return encoder


def split_examples(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded split, the same on every process (the reference's per-rank split leaked validation data)."""
    order = np.random.default_rng(seed).permutation(len(examples))
    count = max(1, round(fraction * len(examples))) if fraction > 0 else 0
    held = set(order[:count].tolist())
    return [e for i, e in enumerate(examples) if i not in held], [
        e for i, e in enumerate(examples) if i in held
    ]


def run_contrastive(recipe: Recipe) -> TrainState:
    """Train, resuming from ``output/checkpoint.pt`` when present; the best model goes to ``output/best``."""
    device = torch.device(recipe.model.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    group = init_from_environment(device)
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
    try:
        torch.manual_seed(recipe.train.seed)  # a new model's random weights are the same on every process
        encoder = build_encoder(recipe.model, device)
        cache = FeatureCache() if recipe.data.cache else None
        pipeline = Pipeline(
            encoder, cache, PipelineOptions(mert=recipe.data.mert, show_progress=group.is_main)
        )
        tower = recipe.contrastive.tower
        train, failures = load_examples(read_jsonl(recipe.data.train), pipeline, tower)
        if recipe.data.validation is not None:
            validation, failed = load_examples(read_jsonl(recipe.data.validation), pipeline, tower)
            failures += failed
        else:
            train, validation = split_examples(
                train, recipe.data.validation_fraction, recipe.contrastive.seed
            )
        if group.is_main:
            for failure in failures:
                print(f"skipped: {failure}", file=sys.stderr)
        task = ContrastiveTask(encoder, train, validation, recipe.contrastive, group)
        return Trainer(task, recipe.train, group, device).fit()
    finally:
        shutdown(group)
