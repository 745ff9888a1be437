"""Reading and writing CLaMP 1 weights.

Two directory layouts are understood:

* **hub** - ``config.json`` (the music encoder's ``BertConfig``, as in ``sander-wood/clamp-small-512``)
  and ``pytorch_model.bin`` (the whole model's ``state_dict``, as ``save_pretrained`` wrote it), plus an
  optional ``text_model_config.json`` (a RoBERTa config) when the text encoder is not distilroberta-base;
* **ours** - ``config.json`` with ``"format": "clamp1"``, ``model.safetensors`` and an optional
  ``tokenizer/`` folder.

Old transformers saved ``*.embeddings.position_ids`` buffers that newer ones do not register; they are
accepted and ignored. Everything else goes through the strict key/shape check, which names every bad key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from clamp3.clamp1.config import Clamp1Config, is_our_config, missing_hf_keys
from clamp3.errors import CheckpointError
from clamp3.fileio import atomic_write
from clamp3.model.checkpoint import LoadedWeights

CONFIG_FILE = "config.json"
HUB_WEIGHTS_FILE = "pytorch_model.bin"
TEXT_CONFIG_FILE = "text_model_config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


def read_clamp1_weights(path: str | Path, name: str = "") -> LoadedWeights:
    """Weights and config of a model directory (either layout), or of a weights file inside one."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    config_path = directory / CONFIG_FILE
    data = _read_json(config_path)
    if is_our_config(data):
        weights = path if path.is_file() else directory / WEIGHTS_FILE
        return _read_ours(data, config_path, weights)
    weights = path if path.is_file() else directory / HUB_WEIGHTS_FILE
    text_path = directory / TEXT_CONFIG_FILE
    text = _read_json(text_path) if text_path.exists() else None
    for source, hf in ((config_path, data), (text_path, text)):
        if hf is not None and (missing := missing_hf_keys(hf)):
            raise CheckpointError(f"{source}: not a transformers model config (missing {', '.join(missing)})")
    try:
        config = Clamp1Config.from_hub_json(data, text, name=name or directory.name)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{config_path}: not a valid CLaMP 1 config ({exc})") from exc
    return LoadedWeights(config, read_state_dict(weights), weights)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` saved in a ``pytorch_model.bin`` (``torch.save`` of a dict of tensors)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: file not found") from exc
    except Exception as exc:  # torch.load raises many types (UnpicklingError, RuntimeError, ...) on garbage
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({reason})") from exc
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a CLaMP 1 checkpoint (expected a state_dict of tensors)")
    return obj


def save_clamp1_weights(model: nn.Module, config: Clamp1Config, directory: Path) -> None:
    """Write ``model.safetensors`` and our ``config.json`` into ``directory``, each file atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write(directory / CONFIG_FILE, config.save)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing (a CLaMP 1 model directory needs it)") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable config ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: unreadable config (not a JSON object)")
    return data


def _read_ours(data: dict[str, Any], config_path: Path, weights: Path) -> LoadedWeights:
    try:
        config = Clamp1Config.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path}: not a valid CLaMP 1 config ({exc})") from exc
    try:
        state = load_file(weights)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{weights}: file not found") from exc
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    tokenizer_dir = config_path.parent / TOKENIZER_DIR
    return LoadedWeights(config, state, weights, tokenizer_dir if tokenizer_dir.is_dir() else None)
