"""MERT audio features, as CLaMP 3's audio tower reads them: one vector per 5-second window.

A MERT-v1 checkpoint directory (``config.json`` with ``model_type: mert_model`` and
``model.safetensors`` or ``pytorch_model.bin``) is loaded into transformers' own ``HubertModel``: for
the configurations MERT-v1-95M uses, MERT's remote code is HuBERT with the same parameter names.

For each window the model returns its hidden states (the encoder input and the output of every
layer); each is averaged over time and the results are averaged over the layers, giving a
``[n_windows, hidden_size]`` float32 array per file (the reference saves it as ``[1, n_windows, D]``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import HubertConfig, HubertModel

from clamp3.errors import CheckpointError, Clamp3Error, InputError, as_input_error
from clamp3.precision import (
    INT8,
    Int8Conv1d,
    autocast_dtype,
    precision_name,
    quantize_linears,
    run_in_float32,
)
from clamp3.preprocess.audio import (
    DEFAULT_BLOCK_FRAMES,
    WindowSpec,
    check_finite,
    check_length,
    iter_windows,
    normalize,
    resample,
    scan_audio,
    split_windows,
    window_lengths,
)
from clamp3.progress import progress_bar

HUBERT_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "feat_extract_norm",
    "feat_extract_activation",
    "conv_dim",
    "conv_stride",
    "conv_kernel",
    "conv_bias",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "conv_pos_batch_norm",
    "do_stable_layer_norm",
    "feat_proj_layer_norm",
    "apply_spec_augment",
    "mask_time_prob",
    "mask_feature_prob",
)
"""The fields of a MERT ``config.json`` that shape the network (copied into a ``HubertConfig``)."""

TOP_LEVEL_MODULES = ("feature_extractor.", "feature_projection.", "encoder.", "masked_spec_embed")
"""Where every ``HubertModel`` parameter name starts; anything before one of these is a wrapper prefix."""


def hubert_config(mert_config: dict[str, Any], *, path: str | Path = "config.json") -> HubertConfig:
    """A ``HubertConfig`` for the network a MERT ``config.json`` describes.

    The MERT ``sample_rate`` (24000 when absent) is kept as ``config.sample_rate``. Raises
    :class:`CheckpointError` for MERT options HuBERT does not have (the CQT front end, deepnorm).
    """
    if mert_config.get("feature_extractor_cqt", False):
        raise CheckpointError(f"{path}: feature_extractor_cqt is true; the CQT front end is not supported")
    if mert_config.get("deepnorm", False):
        raise CheckpointError(f"{path}: deepnorm is true; deepnorm encoders are not supported")
    model_type = mert_config.get("model_type")
    if model_type not in ("mert_model", "music_hubert"):
        raise CheckpointError(f"{path}: model_type {model_type!r} is not a MERT model (mert_model)")
    fields = {key: mert_config[key] for key in HUBERT_FIELDS if key in mert_config}
    sample_rate = int(mert_config.get("sample_rate", 24000))
    return HubertConfig(**fields, sample_rate=sample_rate, attn_implementation="sdpa")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        weights = model_dir / name
        if not weights.is_file():
            continue
        try:
            if weights.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(weights)
            return torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # whatever the reader raises, the file is not a usable checkpoint
            raise CheckpointError(f"{weights}: cannot read the weights ({_one_line(exc)})") from exc
    raise CheckpointError(f"{model_dir}: neither model.safetensors nor pytorch_model.bin")


def hubert_key(key: str) -> str:
    """The ``HubertModel`` name of a MERT checkpoint key: wrapper prefix dropped, weight norm renamed.

    Old checkpoints (MERT was saved with transformers 4.2x) store the positional convolution's weight
    norm as ``conv.weight_g`` / ``conv.weight_v``; torch's parametrization names them
    ``conv.parametrizations.weight.original0`` / ``original1``.
    """
    for name in TOP_LEVEL_MODULES:
        if key.startswith(name):
            break
        cut = key.find("." + name)
        if cut >= 0:
            key = key[cut + 1 :]
            break
    return key.replace(".conv.weight_g", ".conv.parametrizations.weight.original0").replace(
        ".conv.weight_v", ".conv.parametrizations.weight.original1"
    )


def load_mert(model_dir: str | Path) -> HubertModel:
    """A MERT checkpoint directory as a float32 ``HubertModel`` in eval mode on the CPU.

    Every model parameter must be in the checkpoint; extra tensors (pretraining heads) are ignored.
    """
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    try:
        mert_config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_file}: cannot read the MERT config ({_one_line(exc)})") from exc
    model = HubertModel(hubert_config(mert_config, path=config_file))
    expected = model.state_dict()
    state = {hubert_key(key): value for key, value in _read_tensors(model_dir).items()}
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
    if missing or wrong:
        raise CheckpointError(
            f"{model_dir}: the weights do not fit config.json (missing: {', '.join(missing[:3]) or '-'}; "
            f"wrong shape: {', '.join(wrong[:3]) or '-'})"
        )
    model.load_state_dict({key: state[key] for key in expected})
    return model.eval().requires_grad_(False)


def quantize_mert(model: HubertModel) -> None:
    """int8 MERT: the linear layers, and the convolutions of the feature extractor after the first (a
    third of MERT's work at 5 s windows), as int8 matrix products over their input windows.

    The first convolution (one input channel) and the grouped positional convolution stay float32.
    Measured on this project's 2-core CPU (random MERT-v1-95M weights, two 5 s windows): 1.91 s float32,
    1.26 s with int8 linear layers only, 0.90 s with the convolutions too.
    """
    quantize_linears(model)
    for layer in model.feature_extractor.conv_layers:
        if layer.conv.in_channels > 1:
            layer.conv = Int8Conv1d(layer.conv)


@dataclass
class MertResult:
    """The outcome for one input file: ``features`` ``[n_windows, D]`` float32, or the ``error``."""

    path: Path
    features: np.ndarray | None = None
    error: InputError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Job:
    """One file in flight: its window vectors so far and how many are still missing."""

    result: MertResult
    window_vectors: np.ndarray
    missing: int

    def fill(self, index: int, vector: np.ndarray) -> None:
        self.window_vectors[index] = vector
        self.missing -= 1
        if not self.missing and self.result.ok:
            self.result.features = self.window_vectors

    @property
    def done(self) -> bool:
        return not self.result.ok or not self.missing


@dataclass
class _Batcher:
    """Windows waiting for a forward pass: full windows together, shorter ones grouped by length."""

    limit: int
    groups: dict[int, list[tuple[_Job, int, np.ndarray]]] = field(default_factory=dict)

    def add(self, job: _Job, index: int, window: np.ndarray) -> None:
        self.groups.setdefault(len(window), []).append((job, index, window))

    def ready(self) -> list[list[tuple[_Job, int, np.ndarray]]]:
        """The groups to run now: those of ``limit`` windows, or all of them once ``limit`` windows wait."""
        lengths = [length for length, group in self.groups.items() if len(group) >= self.limit]
        if not lengths and sum(map(len, self.groups.values())) >= self.limit:
            lengths = list(self.groups)
        return [self.groups.pop(length) for length in lengths]

    def drain(self) -> list[list[tuple[_Job, int, np.ndarray]]]:
        """Every waiting group (at the end of the input)."""
        groups, self.groups = list(self.groups.values()), {}
        return groups


class MertExtractor:
    """MERT window features for audio files (or waveforms) with a loaded model (``dtype="int8"``
    quantizes that model in place, see :func:`quantize_mert`).

    >>> mert = MertExtractor.from_pretrained("path/to/MERT-v1-95M")       # doctest: +SKIP
    >>> [r.features.shape for r in mert.extract(["a.wav", "b.mp3"])]       # doctest: +SKIP
    [(3, 768), (36, 768)]
    """

    def __init__(
        self,
        model: HubertModel,
        *,
        spec: WindowSpec | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = precision_name(dtype)
        if self.precision == INT8 and self.device.type != "cpu":
            raise Clamp3Error(f"dtype int8 runs on the CPU only, not on {self.device}")
        self.model = model.to(self.device)
        # The positional convolution (grouped, kernel 128) stays float32: under CPU bf16 autocast on a
        # Xeon with AMX (torch 2.11) its output had a relative error of 1.03 against float32, while the
        # layers before it stayed near 0.01; it does a few per cent of MERT's work.
        run_in_float32(self.model.encoder.pos_conv_embed)
        self.spec = spec or WindowSpec(sample_rate=getattr(model.config, "sample_rate", 24000))
        self.autocast_dtype = None if self.precision == INT8 else autocast_dtype(dtype)
        if self.precision == INT8:
            quantize_mert(self.model)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> MertExtractor:
        """Load a MERT checkpoint directory; ``dtype`` ``"bf16"``/``"fp16"`` runs the model under autocast,
        ``"int8"`` with int8 linear layers (CPU)."""
        return cls(load_mert(model_dir), device=device, dtype=dtype)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def layer_features(self, windows: np.ndarray | torch.Tensor) -> np.ndarray:
        """``[B, T]`` normalised windows of one length -> ``[num_layers + 1, B, D]`` time-averaged states."""
        batch = torch.as_tensor(windows, dtype=torch.float32, device=self.device)
        low_precision = self.autocast_dtype is not None
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=low_precision)
        with torch.inference_mode(), autocast:
            states = self.model(batch, output_hidden_states=True).hidden_states
            means = torch.stack([state.float().mean(dim=1) for state in states])
        return means.cpu().numpy()

    def window_features(self, windows: np.ndarray | torch.Tensor) -> np.ndarray:
        """``[B, T]`` normalised windows -> ``[B, D]``: :meth:`layer_features` averaged over the layers."""
        return self.layer_features(windows).mean(axis=0)

    def features(self, samples: np.ndarray, sample_rate: int, path: str | Path = "<waveform>") -> np.ndarray:
        """``[n_windows, D]`` features of an in-memory mono float32 waveform at ``sample_rate``."""
        check_finite(path, np.asarray(samples), sample_rate)
        samples = resample(samples, sample_rate, self.spec.sample_rate)
        check_length(path, len(samples), self.spec)
        windows = split_windows(normalize(samples), self.spec)
        return np.concatenate([self.window_features(window[None]) for window in windows])

    def iter_extract(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 8,
        show_progress: bool = False,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        *,
        max_seconds: float | None = None,
    ) -> Iterator[MertResult]:
        """Yield one :class:`MertResult` per path, in input order, as soon as each is complete.

        Files are decoded in two streamed passes (statistics, then windows), so memory does not grow with
        a file's length. Up to ``batch_size`` windows of equal length, from any files, share a forward
        pass. A file that cannot be read, or is longer than ``max_seconds`` (``None``: no limit), gets a
        result with ``error`` set; the others go on.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        waiting: deque[_Job] = deque()
        batcher = _Batcher(batch_size)
        with progress_bar(len(paths), "MERT features", enabled=show_progress) as bar:
            for path in paths:
                waiting.append(self._start(Path(path), batcher, block_frames, max_seconds))
                while waiting and waiting[0].done:
                    yield waiting.popleft().result
                    bar.advance()
            for group in batcher.drain():
                self._run(group)
            for job in waiting:
                yield job.result
                bar.advance()

    def extract(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 8,
        show_progress: bool = False,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        *,
        max_seconds: float | None = None,
    ) -> list[MertResult]:
        """One :class:`MertResult` per path, in input order (see :meth:`iter_extract`)."""
        return list(
            self.iter_extract(paths, batch_size, show_progress, block_frames, max_seconds=max_seconds)
        )

    def _start(self, path: Path, batcher: _Batcher, block_frames: int, max_seconds: float | None) -> _Job:
        """Decode ``path`` and queue its windows, running the batches that fill up on the way."""
        job = _Job(MertResult(path), np.empty((0, self.hidden_size), np.float32), 0)
        try:
            stats = scan_audio(path, self.spec, block_frames, max_seconds=max_seconds)
            job.missing = len(window_lengths(stats.num_samples, self.spec))
            job.window_vectors = np.empty((job.missing, self.hidden_size), np.float32)
            for index, window in enumerate(iter_windows(path, self.spec, stats, block_frames)):
                batcher.add(job, index, window)
                for group in batcher.ready():
                    self._run(group)
        except Exception as exc:  # one file must never stop a batch
            job.result.error = as_input_error(path, exc)
        return job

    def _run(self, group: list[tuple[_Job, int, np.ndarray]]) -> None:
        group = [entry for entry in group if entry[0].result.ok]
        if not group:
            return
        vectors = self.window_features(np.stack([window for _, _, window in group]))
        for (job, index, _), vector in zip(group, vectors, strict=True):
            job.fill(index, vector)
