"""Reduced precision: the ``dtype`` names that turn on autocast, and modules that must stay float32."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import nn

DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
)
"""The ``dtype`` names that encoders and extractors accept."""


def autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype for ``dtype``; ``None`` means plain float32 (no autocast)."""
    if dtype is not None and not isinstance(dtype, torch.dtype):
        try:
            dtype = DTYPES[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}") from None
    return None if dtype in (None, torch.float32) else dtype


def run_in_float32(module: nn.Module) -> None:
    """Make ``module`` compute in float32 with autocast off, whatever its caller's autocast says.

    Its single tensor input is cast to float32 and its output stays float32. Calling this twice on one
    module changes nothing more.
    """
    if getattr(module, "_clamp3_float32", False):
        return
    forward = module.forward

    def float32_forward(hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return forward(hidden.float())

    module.forward = float32_forward
    module._clamp3_float32 = True
