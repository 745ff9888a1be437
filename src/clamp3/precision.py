"""Reduced precision: the ``dtype`` names that turn on autocast, modules that must stay float32, and
int8 inference (weights quantized to int8, activations quantized per batch, on the CPU)."""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
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
"""The ``dtype`` names that turn on autocast (training and inference)."""

INT8 = "int8"
"""The ``dtype`` of quantized CPU inference: every ``nn.Linear`` (except those kept) as PyTorch's
dynamically quantized int8 ``Linear``."""


def precision_name(dtype: str | torch.dtype | None) -> str:
    """The name that vectors computed at ``dtype`` are recorded under: float32, bfloat16, float16 or int8."""
    if dtype == INT8:
        return INT8
    try:
        chosen = autocast_dtype(dtype)
    except ValueError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join([*DTYPES, INT8])}") from None
    return str(chosen or torch.float32).removeprefix("torch.")


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


def quantize_linears(module: nn.Module, keep: Collection[str] = ()) -> None:
    """Turn every ``nn.Linear`` under ``module``, except the submodules named in ``keep``, into PyTorch's
    dynamically quantized int8 ``Linear`` (in place, CPU only): int8 weights, each batch's activations
    quantized on the fly with their own scale, float32 in and out."""
    from torch.ao.quantization import quantize_dynamic

    chosen = {
        name
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and not any(name == k or name.startswith(f"{k}.") for k in keep)
    }
    with _quiet_deprecation():
        quantize_dynamic(module, chosen, dtype=torch.qint8, inplace=True)


@contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """Quantizing warns that ``torch.ao.quantization`` and quantized tensors are deprecated (in favour of
    the separate torchao package); they work in this torch, and users cannot act on the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization", category=DeprecationWarning)
        yield


class Int8Conv1d(nn.Module):
    """A ``Conv1d`` (one group, no padding or dilation) computed as an int8 dynamically quantized linear
    layer over the input's strided windows, which the int8 matrix kernels run faster than float32
    convolution kernels run the convolution."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        if conv.groups != 1 or conv.padding != (0,) or conv.dilation != (1,):
            raise ValueError("only Conv1d layers with one group, no padding and no dilation")
        (self.kernel,), (self.stride,) = conv.kernel_size, conv.stride
        linear = nn.Linear(conv.in_channels * self.kernel, conv.out_channels, bias=conv.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        linear.qconfig = torch.ao.quantization.default_dynamic_qconfig
        with _quiet_deprecation():
            self.linear = DynamicLinear.from_float(linear)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T]`` -> ``[B, C_out, T_out]``."""
        windows = hidden.unfold(2, self.kernel, self.stride).transpose(1, 2).flatten(2)
        return self.linear(windows).transpose(1, 2)
