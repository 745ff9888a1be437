"""Reading and writing model weights.

Two layouts are understood:

* **official** - ``torch.save({"model": state_dict, "epoch": ..., ...})`` as written by the
  reference training scripts (extra keys such as ``optimizer`` or ``modality`` are ignored); a
  directory holding such a ``.pth`` may carry a reference-format ``config.json`` describing its sizes;
* **ours** - a directory with ``model.safetensors`` and our ``config.json``
  (:meth:`clamp3.config.CLaMP3Config.to_dict`), plus an optional ``tokenizer/`` folder.

Every load goes through a strict key/shape check whose error names every offending key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from clamp3.config import (
    AudioConfig,
    CLaMP3Config,
    EncoderConfig,
    SymbolicConfig,
    TextConfig,
    config_from_reference_json,
    is_reference_json,
)
from clamp3.errors import CheckpointError
from clamp3.fileio import atomic_write

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_DIR = "tokenizer"

# Buffers that some transformers versions store and others do not; never part of the weights.
_VOLATILE_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


@dataclass(frozen=True)
class LoadedWeights:
    """Weights found on disk, with the config that describes them (a CLaMP 3 or CLaMP 1 config)."""

    config: Any
    state_dict: dict[str, torch.Tensor]
    source: Path
    tokenizer_dir: Path | None = None


def _drop_volatile(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if not k.endswith(_VOLATILE_BUFFERS)}


def read_official_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an official-layout ``.pth`` (or of a plain saved ``state_dict``)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from exc
    except Exception as exc:  # torch.load raises many types (IndexError, UnpicklingError, ...) on garbage
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({reason})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a CLaMP 3 checkpoint (expected a dict with a 'model' state_dict)")
    return _drop_volatile(obj)


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or mis-shaped key."""
    expected = {k: tuple(v.shape) for k, v in _drop_volatile(model.state_dict()).items()}
    given = {k: tuple(v.shape) for k, v in _drop_volatile(state_dict).items()}
    problems = []
    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    wrong = sorted(
        f"{k} (checkpoint {list(given[k])}, model {list(expected[k])})"
        for k in expected.keys() & given.keys()
        if expected[k] != given[k]
    )
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if wrong:
        problems.append("wrong shapes: " + ", ".join(wrong))
    if problems:
        raise CheckpointError(f"{source}: checkpoint does not fit the model; " + "; ".join(problems))


def load_weights_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str) -> None:
    check_state_dict(model, state_dict, source)
    model.load_state_dict(_drop_volatile(state_dict), strict=False)


def infer_config(state_dict: dict[str, torch.Tensor], source: Path) -> CLaMP3Config:
    """Sizes of an official-layout checkpoint read from its tensor shapes.

    Attention heads cannot be read from shapes; like the reference, ``hidden // 64`` is used.
    The text tower is XLM-R with the reference's 128-token segments.
    """

    def shape(key: str) -> tuple[int, ...]:
        if key not in state_dict:
            raise CheckpointError(f"{source}: not a CLaMP 3 checkpoint (no key {key})")
        return tuple(state_dict[key].shape)

    def encoder(prefix: str, **fixed) -> EncoderConfig:
        positions, hidden = shape(f"{prefix}embeddings.position_embeddings.weight")
        layer_key = re.compile(rf"{re.escape(prefix)}encoder\.layer\.(\d+)\.")
        layers = {int(m.group(1)) for k in state_dict if (m := layer_key.match(k))}
        if hidden < 64:
            raise CheckpointError(
                f"{source}: cannot infer attention heads for hidden size {hidden}; "
                "put a config.json describing the checkpoint next to it"
            )
        return EncoderConfig(
            hidden_size=hidden,
            num_layers=len(layers),
            num_heads=hidden // 64,
            intermediate_size=shape(f"{prefix}encoder.layer.0.intermediate.dense.weight")[0],
            max_positions=positions,
            vocab_size=shape(f"{prefix}embeddings.word_embeddings.weight")[0],
            type_vocab_size=shape(f"{prefix}embeddings.token_type_embeddings.weight")[0],
            **fixed,
        )

    text = encoder("text_model.", layer_norm_eps=1e-5, pad_token_id=1)
    symbolic = encoder("symbolic_model.base.")
    audio = encoder("audio_model.")
    patch_inputs = shape("symbolic_model.patch_embedding.weight")[1]
    return CLaMP3Config(
        text=TextConfig(
            encoder=text,
            max_length=min(128, text.max_positions - 2),
            tokenizer="FacebookAI/xlm-roberta-base" if text.vocab_size == 250002 else None,
        ),
        symbolic=SymbolicConfig(
            encoder=symbolic, patch_size=patch_inputs // 128, max_patches=symbolic.max_positions
        ),
        audio=AudioConfig(encoder=audio, max_frames=audio.max_positions),
        projection_dim=shape("text_proj.weight")[0],
        name=source.stem,
    )


def read_weights(path: Path) -> LoadedWeights:
    """Find weights and their config at ``path`` (a ``.pth`` file or a model directory)."""
    path = Path(path)
    if path.is_dir():
        return _read_directory(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.suffix == ".safetensors":
        return _read_ours(path.parent, path)
    state = read_official_checkpoint(path)
    return LoadedWeights(infer_config(state, path), state, path)


def _read_directory(directory: Path) -> LoadedWeights:
    config_path = directory / CONFIG_FILE
    config_data = None
    if config_path.exists():
        try:
            config_data = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{config_path}: unreadable config ({exc})") from exc
    if (directory / WEIGHTS_FILE).exists():
        return _read_ours(directory, directory / WEIGHTS_FILE)
    checkpoints = sorted(directory.glob("*.pth")) + sorted(directory.glob("*.bin"))
    if config_data is not None and is_reference_json(config_data):
        named = config_data.get("checkpoint", {}).get("file")
        checkpoint = directory / named if named else _single(checkpoints, directory)
        state = read_official_checkpoint(checkpoint)
        return LoadedWeights(config_from_reference_json(config_data, directory), state, checkpoint)
    if checkpoints:
        checkpoint = _single(checkpoints, directory)
        state = read_official_checkpoint(checkpoint)
        return LoadedWeights(infer_config(state, checkpoint), state, checkpoint)
    raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} and no .pth checkpoint in this directory")


def _single(checkpoints: list[Path], directory: Path) -> Path:
    if len(checkpoints) != 1:
        found = ", ".join(p.name for p in checkpoints) or "none"
        raise CheckpointError(f"{directory}: expected exactly one .pth checkpoint, found {found}")
    return checkpoints[0]


def _read_ours(directory: Path, weights: Path) -> LoadedWeights:
    config_path = directory / CONFIG_FILE
    try:
        config = CLaMP3Config.load(config_path)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{config_path}: missing (needed next to {weights.name})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path}: not a valid clamp3 config ({exc})") from exc
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    tokenizer_dir = directory / TOKENIZER_DIR
    return LoadedWeights(config, state, weights, tokenizer_dir if tokenizer_dir.is_dir() else None)


def save_official(model: nn.Module, path: Path, epoch: int = 0, min_eval_loss: float = 0.0) -> None:
    """Write the reference's checkpoint layout (``{"model", "epoch", "min_eval_loss"}``), which its
    scripts load with ``strict=True``; volatile buffers are left out as transformers 4.40 does."""
    state = {k: v.detach().contiguous().cpu() for k, v in _drop_volatile(model.state_dict()).items()}
    checkpoint = {"model": state, "epoch": epoch, "min_eval_loss": min_eval_loss}
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def save_weights(
    model: nn.Module, config: CLaMP3Config, directory: Path, exclude: tuple[str, ...] = ()
) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``, each file atomically.

    Keys starting with one of ``exclude`` (an external backbone's) are left out.
    """
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().contiguous().cpu()
        for k, v in _drop_volatile(model.state_dict()).items()
        if not (exclude and k.startswith(exclude))
    }
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write(directory / CONFIG_FILE, config.save)
