"""LoRA adapters for the CLaMP 3 towers (through ``peft``).

Adapters are injected into the :class:`~clamp3.model.towers.CLaMP3Model` in place, so the object
keeps its methods and :class:`clamp3.CLaMP3` can wrap it for ``encode_*``. While adapters are in,
the adapted linear layers' weights appear in ``state_dict`` as ``<layer>.base_layer.*`` next to the
``<layer>.lora_A/B.*`` tensors; :func:`merge_adapter` turns the model back into the plain layout.

Typical use::

    model = add_lora(CLaMP3.from_pretrained("saas").model, LoraSettings(towers=("text", "symbolic")))
    ...train the parameters that require grad...
    save_adapter(model, "my-adapter")
    tuned = CLaMP3(load_adapter(CLaMP3.from_pretrained("saas").model, "my-adapter"))
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from clamp3.errors import CheckpointError, Clamp3Error
from clamp3.extras import require
from clamp3.fileio import atomic_write
from clamp3.model.towers import TOWERS, CLaMP3Model, Tower

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"
FORMAT_NAME = "clamp3-lora"
FORMAT_VERSION = 1

# Where each tower's transformer layers live, and the linear layers of one transformer layer.
_TOWER_LAYERS = {"text": r"text_model", "symbolic": r"symbolic_model\.base", "audio": r"audio_model"}
LINEAR_LAYERS = {
    "query": r"attention\.self\.query",
    "key": r"attention\.self\.key",
    "value": r"attention\.self\.value",
    "attention_output": r"attention\.output\.dense",
    "intermediate": r"intermediate\.dense",
    "output": r"output\.dense",
}


@dataclass(frozen=True)
class LoraSettings:
    """Which layers get adapters, and their size. ``layers`` name linear layers of every transformer
    layer of the chosen towers (keys of :data:`LINEAR_LAYERS`); ``train_projections`` also trains
    (and saves) the chosen towers' projection layers."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    towers: tuple[Tower, ...] = TOWERS
    layers: tuple[str, ...] = ("query", "value")
    train_projections: bool = False

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise Clamp3Error(f"LoRA rank must be positive, got {self.r}")
        if not self.towers or set(self.towers) - set(TOWERS):
            raise Clamp3Error(f"LoRA towers must be a non-empty subset of {TOWERS}, got {self.towers}")
        if not self.layers or set(self.layers) - set(LINEAR_LAYERS):
            raise Clamp3Error(
                f"LoRA layers must be a non-empty subset of {tuple(LINEAR_LAYERS)}, got {self.layers}"
            )

    @property
    def target_modules(self) -> str:
        """The regular expression (matched against full module names) of the adapted layers."""
        towers = "|".join(_TOWER_LAYERS[t] for t in self.towers)
        layers = "|".join(LINEAR_LAYERS[name] for name in self.layers)
        return rf"({towers})\.encoder\.layer\.\d+\.({layers})"

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraSettings:
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f'not a clamp3 LoRA adapter (missing "format": "{FORMAT_NAME}")')
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"adapter format_version {data['format_version']} is newer than this clamp3")
        fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
        return cls(**{**fields, "towers": tuple(fields["towers"]), "layers": tuple(fields["layers"])})


def require_peft() -> None:
    """Stop with one line naming the ``train`` extra unless peft is installed (imported on use only,
    so that models and recipes without LoRA never need it)."""
    require("LoRA", "peft")


def _settings_of(model: nn.Module) -> LoraSettings:
    settings = getattr(model, "lora_settings", None)
    if not isinstance(settings, LoraSettings):
        raise Clamp3Error("the model has no LoRA adapters (use add_lora or load_adapter first)")
    return settings


def add_lora(model: CLaMP3Model, settings: LoraSettings) -> CLaMP3Model:
    """Inject fresh adapters into ``model`` in place and return it.

    Afterwards only the adapter weights (and, with ``train_projections``, the chosen projections)
    require grad; ``model.lora_settings`` records ``settings``. Adapter ``A`` matrices are drawn from
    the torch global RNG, ``B`` starts at zero, so the model's outputs are unchanged at first.
    """
    if getattr(model, "lora_settings", None) is not None:
        raise Clamp3Error("the model already has LoRA adapters (merge_adapter folds them in first)")
    require_peft()
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
    )
    inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)
    if settings.train_projections:
        for tower in settings.towers:
            _projection(model, tower).requires_grad_(True)
    model.lora_settings = settings
    return model


def _projection(model: CLaMP3Model, tower: Tower) -> nn.Linear:
    return getattr(model, f"{tower}_proj")


def _projection_state(model: CLaMP3Model, settings: LoraSettings) -> dict[str, torch.Tensor]:
    if not settings.train_projections:
        return {}
    return {
        f"{tower}_proj.{key}": value
        for tower in settings.towers
        for key, value in _projection(model, tower).state_dict().items()
    }


def adapter_state_dict(model: CLaMP3Model) -> dict[str, torch.Tensor]:
    """The tensors :func:`save_adapter` writes: peft's adapter keys (``<layer>.lora_A.weight``, ...)
    plus the projections when they are trained."""
    from peft import get_peft_model_state_dict

    settings = _settings_of(model)
    return {**get_peft_model_state_dict(model), **_projection_state(model, settings)}


def save_adapter(model: CLaMP3Model, directory: str | Path) -> None:
    """Write ``adapter.safetensors`` (adapter tensors only) and ``adapter.json`` (the settings)."""
    directory = Path(directory)
    settings = _settings_of(model)
    state = {k: v.detach().contiguous().cpu() for k, v in adapter_state_dict(model).items()}
    atomic_write(
        directory / ADAPTER_WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"})
    )
    text = json.dumps(settings.to_dict(), indent=2) + "\n"
    atomic_write(directory / ADAPTER_CONFIG, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _read_adapter(directory: Path) -> tuple[LoraSettings, dict[str, torch.Tensor]]:
    config_path, weights_path = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    try:
        settings = LoraSettings.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CheckpointError(f"{config_path}: missing (not a LoRA adapter directory)") from None
    except (OSError, ValueError, KeyError, TypeError, Clamp3Error) as exc:
        raise CheckpointError(f"{config_path}: not a valid adapter config ({exc})") from exc
    try:
        state = load_file(weights_path)
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path}: missing") from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    return settings, state


def _mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    problems = []
    if missing := sorted(expected.keys() - given.keys()):
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected := sorted(given.keys() - expected.keys()):
        problems.append("unexpected keys: " + ", ".join(unexpected))
    wrong = sorted(
        f"{k} (adapter {list(given[k].shape)}, model {list(expected[k].shape)})"
        for k in expected.keys() & given.keys()
        if given[k].shape != expected[k].shape
    )
    if wrong:
        problems.append("wrong shapes: " + ", ".join(wrong))
    return problems


def load_adapter(base: CLaMP3Model, directory: str | Path) -> CLaMP3Model:
    """Apply a saved adapter to ``base`` in place (strict key/shape check) and return it.

    To encode with it, wrap the result anew (``CLaMP3(load_adapter(encoder.model, path))``): the
    old wrapper's fingerprint, which keys feature caches, still describes the base weights.
    """
    require_peft()
    from peft import set_peft_model_state_dict

    directory = Path(directory)
    settings, state = _read_adapter(directory)
    flags = [(parameter, parameter.requires_grad) for parameter in base.parameters()]
    add_lora(base, settings)
    problems = _mismatches(adapter_state_dict(base), state)
    if problems:
        _unwrap(base, merge=False)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        raise CheckpointError(f"{directory}: adapter does not fit the model; " + "; ".join(problems))
    projections = _projection_state(base, settings)
    set_peft_model_state_dict(base, {k: v for k, v in state.items() if k not in projections})
    if settings.train_projections:
        for tower in settings.towers:
            prefix = f"{tower}_proj."
            weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            _projection(base, tower).load_state_dict(weights)
    return base


def _unwrap(model: CLaMP3Model, merge: bool) -> None:
    """Put the plain linear layers back (after adding the adapters' products when ``merge``)."""
    _settings_of(model)
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            if merge:
                module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    del model.lora_settings
    if hasattr(model, "peft_config"):
        del model.peft_config


def merge_adapter(model: CLaMP3Model) -> CLaMP3Model:
    """Fold the adapters into the weights, in place: the result is a plain :class:`CLaMP3Model` with
    the official key layout (for ``save_weights`` or an official-layout export), every parameter
    requiring grad again as in a freshly built model."""
    _unwrap(model, merge=True)
    model.requires_grad_(True)
    return model
