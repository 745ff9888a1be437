"""Reduced precision: the ``dtype`` names that turn on autocast, modules that must stay float32, and
int8 inference (weights quantized to int8, activations quantized per batch, on the CPU)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
dynamically quantized int8 ``Linear``; a text encoder as :func:`quantize_text_encoder` says."""

SMOOTHING_ALPHA = 0.7
"""How much of an input channel's range :func:`quantize_text_encoder` moves into the weights (SmoothQuant's
alpha): 0 none, 1 all. On the bundled model's test texts 0.6-0.8 gave the same min cosine (0.996)."""


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


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep large freed buffers in the process (``mallopt``: no mmap below 1 GiB, no trimming
    below 2 GiB) instead of unmapping them; returns whether it did (glibc only, once per process).

    Every activation of a CPU forward pass above glibc's mmap threshold (32 MiB at most) is otherwise
    a fresh mapping whose pages fault in on first write: on this project's 2-core CPU filling 393 MB
    (MERT's first convolution, 8 windows) took 105 ms that way and 16 ms in reused memory, and MERT-95M
    on 8 windows took 7.3 s float32 / 3.9 s int8 against 6.1 s / 2.7 s. The results do not change; the
    process keeps its peak memory instead of returning it. int8 CPU models turn this on when they are
    built (float32 models in the same process gain too)."""
    try:
        import ctypes
        import os

        os.confstr("CS_GNU_LIBC_VERSION")  # not glibc (macOS, musl): no such mallopt settings
        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        tuned = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
            libc.mallopt(m_trim_threshold, 1 << 31)
        )
    except (AttributeError, OSError, ValueError):
        return False
    return tuned


def quantize_linears(module: nn.Module, keep: Collection[str] = ()) -> None:
    """Turn every ``nn.Linear`` under ``module``, except the submodules named in ``keep``, into PyTorch's
    dynamically quantized int8 ``Linear`` (in place, CPU only): int8 weights, each batch's activations
    quantized on the fly with their own scale, float32 in and out. Also :func:`keep_freed_memory`."""
    from torch.ao.quantization import quantize_dynamic

    keep_freed_memory()

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


def _reduce_range() -> bool:
    """Whether int8 activations must keep to 7 bits: fbgemm's kernels for CPUs without VNNI add pairs of
    uint8 x int8 products in saturating int16, which full-range activations can overflow."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return not (vnni is not None and vnni())


class Int8Linear(nn.Module):
    """A linear layer with int8 weights (one scale per output feature) and 8-bit activations quantized on
    each call (fbgemm's dynamic kernel): with one scale for the whole input, or with ``per_row``, each row
    first divided by its largest magnitude, which gives every token its own scale (for inputs where a
    few tokens are far larger than the rest). ``split`` cuts the output features into several outputs
    (a fused query/key/value projection)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        per_row: bool = False,
        split: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        weight = weight.detach().float()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.per_row = per_row
        self.split = None if split is None else list(split)
        self.reduce_range = _reduce_range()
        scale = (weight.abs().amax(dim=1).clamp(min=1e-12) / 127).double()
        zero = torch.zeros(len(scale), dtype=torch.int64)
        with _quiet_deprecation():
            quantized = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
            kept_bias = None if bias is None else bias.detach().float().clone()
            self._packed = torch.ops.quantized.linear_prepack(quantized, None if per_row else kept_bias)
        self.register_buffer("bias", kept_bias if per_row else None)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        shape = hidden.shape
        rows = hidden.reshape(-1, shape[-1])
        if self.per_row:  # amax and amin: several times faster than aminmax on this CPU
            scale = torch.maximum(rows.amax(dim=1, keepdim=True), -rows.amin(dim=1, keepdim=True))
            scale = scale.clamp_(min=1e-12)
            out = torch.ops.quantized.linear_dynamic(rows / scale, self._packed, self.reduce_range)
            out = out.mul_(scale) if self.bias is None else torch.addcmul(self.bias, out, scale, out=out)
        else:
            out = torch.ops.quantized.linear_dynamic(rows, self._packed, self.reduce_range)
        if self.split is None:
            return out.view(*shape[:-1], self.out_features)
        return [part.view(*shape[:-1], -1) for part in out.split(self.split, dim=1)]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, per_row={self.per_row}"


class _SharedOutput(nn.Module):
    """One output of a fused :class:`Int8Linear`: the first of its siblings called with an input runs
    the fused layer once, the others take their part of that result (threads calling at once each get
    their own input's result: a sibling finding another input recomputes)."""

    def __init__(self, fused: Int8Linear, index: int, shared: dict) -> None:
        super().__init__()
        self.fused, self.index, self._shared = fused, index, shared

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        entry = self._shared.get("entry")  # one read: another thread may replace it meanwhile
        if entry is None or entry[0] is not hidden:
            entry = (hidden, self.fused(hidden))
            self._shared["entry"] = entry
        outputs = entry[1]
        if self.index == len(outputs) - 1 and self._shared.get("entry") is entry:
            self._shared.pop("entry", None)  # the last sibling (value) drops the references
        return outputs[self.index]


class _ScaledResidual(nn.Module):
    """A BERT sublayer's output (``dense``, then ``LayerNorm`` of it plus the residual) whose residual
    input arrives divided by ``scale`` per channel (its layer norm was scaled to smooth the next linear
    layer's input): the residual is multiplied back on the way."""

    def __init__(self, dense: nn.Module, layer_norm: nn.LayerNorm, scale: torch.Tensor | None) -> None:
        super().__init__()
        self.dense, self.LayerNorm = dense, layer_norm
        self.register_buffer("scale", scale)

    def forward(self, hidden: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden = self.dense(hidden)
        if self.scale is None:
            return self.LayerNorm(hidden + input_tensor)
        return self.LayerNorm(torch.addcmul(hidden, input_tensor, self.scale))


def activation_maxima(
    encoder: nn.Module, run: Callable[[], object]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer of a BERT/XLM-R ``encoder``, the largest magnitude of each channel entering the
    query/key/value projections and the feed-forward block while ``run()`` (a calibration pass) runs."""
    layers = list(encoder.encoder.layer)
    maxima: dict[tuple[int, int], torch.Tensor] = {}

    def record(key: tuple[int, int]) -> Callable:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            seen = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0).float().cpu()
            maxima[key] = seen if key not in maxima else torch.maximum(maxima[key], seen)

        return hook

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.attention.self.query.register_forward_pre_hook(record((i, 0))))
        handles.append(layer.intermediate.dense.register_forward_pre_hook(record((i, 1))))
    try:
        with torch.inference_mode():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return [(maxima[(i, 0)], maxima[(i, 1)]) for i in range(len(layers))]


def _smoothing(maxima: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel divisor: ``max|x_j|^alpha / max|W_:j|^(1 - alpha)``."""
    weight_max = torch.stack([w.detach().abs().amax(dim=0) for w in weights]).amax(dim=0).float().cpu()
    return (maxima.clamp(min=1e-5) ** alpha / weight_max.clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)


def quantize_text_encoder(
    encoder: nn.Module,
    maxima: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    alpha: float = SMOOTHING_ALPHA,
) -> None:
    """int8 linear layers for a BERT or XLM-R ``encoder`` (in place, CPU), with what a text encoder
    needs to stay close to float32.

    Plain dynamic int8 (:func:`quantize_linears`) gave multilingual-e5-small's vectors down to cosine
    0.71: weights with one scale per matrix, 7-bit activations, and a few channels (entering the
    query/key/value and feed-forward layers) and tokens (entering the feed-forward output) with values
    30-70x the median. Here weights get one scale per output feature and activations 8 bits (7 without
    VNNI); query, key and value run as one fused layer; the feed-forward output layer quantizes each
    token with its own scale; and, given the calibration ``maxima`` of :func:`activation_maxima`, the
    channels entering query/key/value and the feed-forward layer are smoothed (SmoothQuant): divided by
    ``s = max|x|^alpha / max|W|^(1-alpha)`` through the layer norm before them, ``W`` multiplied by ``s``,
    and the residual connections that also read that layer norm multiplied back by ``s``. The last
    hidden states are unchanged in scale; the hidden states in between are divided by ``s``.
    """
    layers = list(encoder.encoder.layer)
    if maxima is not None and len(maxima) != len(layers):
        raise ValueError(f"{len(maxima)} calibration entries for {len(layers)} layers")
    smooth_attention: list[torch.Tensor | None] = [None] * len(layers)
    smooth_feed_forward: list[torch.Tensor | None] = [None] * len(layers)
    if maxima is not None:
        for i, layer in enumerate(layers):
            attention = layer.attention.self
            weights = [attention.query.weight, attention.key.weight, attention.value.weight]
            smooth_attention[i] = _smoothing(maxima[i][0], weights, alpha)
            smooth_feed_forward[i] = _smoothing(maxima[i][1], [layer.intermediate.dense.weight], alpha)

    def divide_norm(norm: nn.LayerNorm, scale: torch.Tensor | None) -> None:
        if scale is not None:
            norm.weight.div_(scale.to(norm.weight.device))
            norm.bias.div_(scale.to(norm.bias.device))

    with torch.no_grad():
        divide_norm(encoder.embeddings.LayerNorm, smooth_attention[0])
        for i, layer in enumerate(layers):
            attention = layer.attention.self
            projections = [attention.query, attention.key, attention.value]
            weight = torch.cat([p.weight for p in projections])
            if smooth_attention[i] is not None:
                weight = weight * smooth_attention[i]
            bias = torch.cat([p.bias for p in projections])
            fused = Int8Linear(weight, bias, split=[p.out_features for p in projections])
            shared: dict = {}
            attention.query, attention.key, attention.value = (
                _SharedOutput(fused, j, shared) for j in range(3)
            )
            output = layer.attention.output
            dense = Int8Linear(output.dense.weight, output.dense.bias)
            layer.attention.output = _ScaledResidual(dense, output.LayerNorm, smooth_attention[i])
            divide_norm(layer.attention.output.LayerNorm, smooth_feed_forward[i])
            intermediate = layer.intermediate.dense
            weight = intermediate.weight
            if smooth_feed_forward[i] is not None:
                weight = weight * smooth_feed_forward[i]
            layer.intermediate.dense = Int8Linear(weight, intermediate.bias)
            output = layer.output
            dense = Int8Linear(output.dense.weight, output.dense.bias, per_row=True)
            layer.output = _ScaledResidual(dense, output.LayerNorm, smooth_feed_forward[i])
            if i + 1 < len(layers):
                divide_norm(layer.output.LayerNorm, smooth_attention[i + 1])


CALIBRATION_TEXTS = 48
"""How many texts :func:`calibration_texts` makes by default (24 gave the same accuracy as 240)."""


def calibration_texts(count: int = CALIBRATION_TEXTS, seed: int = 0) -> list[str]:
    """Short music descriptions in the open-data builder's twelve languages, made up deterministically
    (random tune types, keys, meters, ranges, ... through its description templates): the calibration
    inputs of an int8 text encoder, from this package alone (never from evaluation data)."""
    import json
    from importlib import resources

    import numpy as np

    from clamp3.train.opendata.describe import Facts, Templates, describe

    templates = Templates.load()
    raw = resources.files("clamp3.train.opendata").joinpath("templates.json").read_text(encoding="utf-8")
    vocabulary = {kind: sorted(words) for kind, words in json.loads(raw)["vocabulary"].items()}
    rng = np.random.default_rng(seed)

    def pick(options: Sequence[str], chance: float = 1.0) -> str | None:
        return str(options[int(rng.integers(len(options)))]) if rng.random() < chance else None

    pitches = [f"{name}{octave}" for octave in (3, 4, 5) for name in "CDEFGAB"]
    texts = []
    for i in range(count):
        lang = templates.languages[i % len(templates.languages)]
        character, instrument = pick(vocabulary["character"], 0.4), pick(vocabulary["instrument"], 0.3)
        low = int(rng.integers(0, 10))
        facts = Facts(
            tune_type=pick(vocabulary["tune_type"], 0.7),
            genre=pick(vocabulary["genre"], 0.6),
            origin=pick(vocabulary["origin"], 0.4),
            character=(character,) if character else (),
            tempo_class=pick(vocabulary["tempo_class"], 0.3),
            key_tonic=pick(["C", "D", "E", "F", "G", "A", "B", "Bb", "Eb", "F#"], 0.8),
            key_mode=pick(["major", "minor", "dorian", "mixolydian"]),
            meter=pick(["2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "2/2"]),
            texture=pick(["monophonic", "chords", "voices"]),
            parts=int(rng.integers(1, 5)),
            lowest=pitches[low],
            highest=pitches[low + int(rng.integers(4, 11))],
            semitones=int(rng.integers(7, 30)),
            notes=int(rng.integers(40, 600)),
            bars=int(rng.integers(8, 80)),
            instruments=(instrument,) if instrument else (),
        )
        lines = describe(facts, lang, templates, salt=str(i))
        lines = lines[: int(rng.integers(1, len(lines) + 1))]
        texts.append(" ".join(lines) if rng.random() < 0.5 else "\n".join(lines))
    return texts
