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
from clamp3.extras import missing
from clamp3.model.m3 import M3Config, M3DecoderConfig, M3Model, load_m3, load_m3_encoder_into
from clamp3.pipeline import Pipeline, PipelineOptions
from clamp3.train.contrastive import ContrastiveSettings, ContrastiveTask
from clamp3.train.data import Example, load_examples, read_jsonl
from clamp3.train.distributed import ProcessGroup, init_from_environment, shutdown
from clamp3.train.loop import Trainer, TrainSettings, TrainState
from clamp3.train.lora import LoraSettings, add_lora, require_peft
from clamp3.train.m3 import M3PretrainTask, M3TaskSettings


@dataclass(frozen=True)
class ModelSection:
    init: str | None = None
    config: Path | None = None
    tokenizer: Path | None = None
    m3: Path | None = None
    """An M3 checkpoint (official layout, such as ``best/m3.pth`` of ``clamp3 train m3``)."""
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
    lora: LoraSettings | None = None
    """With a ``[lora]`` section only adapters are trained, and ``best/`` holds the adapter alone."""


@dataclass(frozen=True)
class M3ModelSection:
    init: Path | None = None
    """Continue from an M3 checkpoint (official layout)."""
    config: Path | None = None
    """A CLaMP 3 ``config.json`` whose symbolic tower is pretrained (default: the official sizes)."""
    decoder_layers: int = 3
    decoder_heads: int = 12
    decoder_intermediate: int = 3072
    attention: str = "sdpa"
    device: str | None = None


@dataclass(frozen=True)
class M3DataSection:
    train: tuple[Path, ...]
    """Files and folders of sheet music, ABC, MIDI or MTF."""
    validation: tuple[Path, ...] = ()
    cache: bool = True


@dataclass(frozen=True)
class M3Recipe:
    model: M3ModelSection
    data: M3DataSection
    m3: M3TaskSettings = field(default_factory=M3TaskSettings)
    train: TrainSettings = field(default_factory=lambda: TrainSettings(output=Path("runs/m3")))


def _section(cls: type, values: dict[str, Any], name: str, base: Path, paths: tuple[str, ...]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise Clamp3Error(
            f"[{name}]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )

    def resolve(key: str, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(base / v if key in paths else v for v in value)
        return base / value if key in paths and value is not None else value

    try:
        return cls(**{key: resolve(key, value) for key, value in values.items()})
    except TypeError as exc:
        raise Clamp3Error(f"[{name}]: {exc}") from None


def _read_toml(path: Path, sections: set[str]) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, f"not a readable TOML file ({exc})") from exc
    unknown = sorted(set(data) - sections)
    if unknown:
        known = ", ".join(sorted(sections))
        raise InputError(path, f"unknown section(s) {', '.join(unknown)}; known: {known}")
    if "train" not in data.get("data", {}):
        raise InputError(path, "[data] train = ... is required")
    return data


def _train_settings(data: dict[str, Any], base: Path, default_output: str) -> TrainSettings:
    return _section(
        TrainSettings, {"output": default_output, **data.get("train", {})}, "train", base, ("output",)
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read a contrastive training TOML file; unknown or missing settings are reported by section."""
    path = Path(path)
    data = _read_toml(path, {"model", "data", "contrastive", "train", "lora"})
    base = path.parent
    return Recipe(
        model=_section(ModelSection, data.get("model", {}), "model", base, ("config", "tokenizer", "m3")),
        data=_section(DataSection, data["data"], "data", base, ("train", "validation")),
        contrastive=_section(ContrastiveSettings, data.get("contrastive", {}), "contrastive", base, ()),
        train=_train_settings(data, base, "runs/clamp3"),
        lora=_section(LoraSettings, data["lora"], "lora", base, ()) if "lora" in data else None,
    )


def load_m3_recipe(path: str | Path) -> M3Recipe:
    """Read an M3 pretraining TOML file (sections model, data, m3, train)."""
    path = Path(path)
    data = _read_toml(path, {"model", "data", "m3", "train"})
    base = path.parent
    listed = {
        k: [v] if isinstance(v, str) else v for k, v in data["data"].items() if k in ("train", "validation")
    }
    return M3Recipe(
        model=_section(M3ModelSection, data.get("model", {}), "model", base, ("init", "config")),
        data=_section(M3DataSection, {**data["data"], **listed}, "data", base, ("train", "validation")),
        m3=_section(M3TaskSettings, data.get("m3", {}), "m3", base, ()),
        train=_train_settings(data, base, "runs/m3"),
    )


def build_encoder(section: ModelSection, device: torch.device) -> CLaMP3:
    """The model to train: loaded weights (``init``), or a new model from a config file."""
    if (section.init is None) == (section.config is None):
        raise Clamp3Error("[model]: give exactly one of init (weights to start from) or config (a new model)")
    if section.init is not None:
        encoder = CLaMP3.from_pretrained(section.init, device=device, attn_implementation=section.attention)
    else:
        encoder = CLaMP3.new(CLaMP3Config.load(section.config), device, attn_implementation=section.attention)
    if section.tokenizer is not None:
        from transformers import AutoTokenizer

        encoder._tokenizer = AutoTokenizer.from_pretrained(str(section.tokenizer))
    if section.m3 is not None:
        load_m3_encoder_into(encoder.model, section.m3)
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


def _start(device_name: str | None) -> tuple[torch.device, ProcessGroup]:
    """This process's device and its place in the ``torchrun`` group (one GPU per local rank)."""
    device = torch.device(device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
    group = init_from_environment(device)
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
    return device, group


def _check_extras(train: TrainSettings, group: ProcessGroup, lora: LoraSettings | None = None) -> None:
    """Before any work: stop when LoRA lacks peft; say once when TensorBoard logs cannot be written."""
    if lora is not None:
        require_peft()
    reason = missing("tensorboard") if train.tensorboard and group.is_main else None
    if reason is not None:
        print(
            f"warning: TensorBoard logging {reason}; training goes on without TensorBoard logs "
            "(tensorboard = false in [train] turns them off)",
            file=sys.stderr,
        )


def run_contrastive(recipe: Recipe) -> TrainState:
    """Train, resuming from ``output/checkpoint.pt`` when present; the best model goes to ``output/best``."""
    device, group = _start(recipe.model.device)
    try:
        _check_extras(recipe.train, group, recipe.lora)
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
        if recipe.lora is not None:
            add_lora(encoder.model, recipe.lora)
        task = ContrastiveTask(encoder, train, validation, recipe.contrastive, group)
        return Trainer(task, recipe.train, group, device).fit()
    finally:
        shutdown(group)


def _symbolic_texts(paths: tuple[Path, ...], cache: FeatureCache | None) -> list[str]:
    """Model-input texts (interleaved ABC, MTF) of every symbolic file under ``paths``."""
    from clamp3.modality import FileKind

    symbolic_kinds = (FileKind.ABC, FileKind.MUSICXML, FileKind.MIDI, FileKind.MTF)
    pipeline = Pipeline(None, cache)
    files, _ = pipeline.collect(paths)
    items, failures = pipeline.items_from_files([(p, k) for p, k in files if k in symbolic_kinds])
    for failure in failures:
        print(f"skipped: {failure}", file=sys.stderr)
    return [item.data for item in items]


def run_m3(recipe: M3Recipe) -> TrainState:
    """M3 pretraining, resuming from ``output/checkpoint.pt``; the best model goes to ``best/m3.pth``."""
    device, group = _start(recipe.model.device)
    try:
        _check_extras(recipe.train, group)
        torch.manual_seed(recipe.train.seed)
        section = recipe.model
        symbolic = (
            CLaMP3Config.load(section.config).symbolic if section.config else M3Config.official().symbolic
        )
        decoder = M3DecoderConfig(section.decoder_layers, section.decoder_heads, section.decoder_intermediate)
        config = M3Config(symbolic, decoder)
        model = (
            load_m3(section.init, config, section.attention)
            if section.init
            else M3Model(config, section.attention)
        )
        cache = FeatureCache() if recipe.data.cache else None
        texts = _symbolic_texts(recipe.data.train, cache)
        validation = _symbolic_texts(recipe.data.validation, cache) if recipe.data.validation else None
        task = M3PretrainTask(model.to(device), texts, validation, recipe.m3)
        return Trainer(task, recipe.train, group, device).fit()
    finally:
        shutdown(group)
