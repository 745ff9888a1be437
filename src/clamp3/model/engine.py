"""What every model family's encoder shares: device and dtype, the lazily loaded tokenizer, the
model fingerprint, and the batched, length-sorted forward loop.

A family (:class:`clamp3.CLaMP3`, :class:`clamp3.clamp1.CLaMP1`) turns its inputs into id/feature
arrays ("pieces"), calls :meth:`EncoderBase.run_pieces`, and combines the outputs its own way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from clamp3.errors import Clamp3Error
from clamp3.model.checkpoint import LoadedWeights, load_weights_into
from clamp3.model.segments import plan_batches
from clamp3.precision import INT8, autocast_dtype, precision_name, quantize_linears
from clamp3.progress import progress_bar

_Encoder = TypeVar("_Encoder", bound="EncoderBase")


def require_list(values: object, name: str) -> None:
    if isinstance(values, (str, bytes, np.ndarray)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list (one entry per input), got {type(values).__name__}")


def checked_token_ids(
    ids: Sequence[Sequence[int]], vocab_size: int, limit: int | None = None
) -> list[np.ndarray]:
    """Token id lists as arrays; a one-line ``ValueError`` naming the first bad one."""
    require_list(ids, "ids")
    arrays = []
    for i, seq in enumerate(ids):
        array = np.asarray(seq, dtype=np.int64)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"text ids {i}: expected a non-empty list of token ids")
        if array.min() < 0 or array.max() >= vocab_size:
            raise ValueError(f"text ids {i}: token ids must lie in [0, {vocab_size})")
        if limit is not None and array.size > limit:
            raise ValueError(f"text ids {i}: {array.size} tokens, the model takes at most {limit}")
        arrays.append(array)
    return arrays


def _rows(vectors: Any) -> torch.Tensor:
    """Vectors (an array, a tensor or a list) as a float32 CPU tensor of rows."""
    if isinstance(vectors, torch.Tensor):
        return torch.atleast_2d(vectors.detach().cpu().float())
    return torch.atleast_2d(torch.as_tensor(np.asarray(vectors, dtype=np.float32)))


class EncoderBase:
    """A loaded model with its device, precision and tokenizer. Subclasses set ``family`` and, to run
    in int8, ``float32_modules``; ``dtype="int8"`` quantizes the given model in place."""

    family = ""
    float32_modules: tuple[str, ...] | None = None
    """Submodules that stay float32 under ``dtype="int8"`` (``None``: the family has no int8 path)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        tokenizer: Any = None,
        tokenizer_dir: Path | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = precision_name(dtype)
        """What the vectors are computed at: float32, bfloat16, float16 or int8 (recorded with them)."""
        self.autocast_dtype = None if self.precision == INT8 else autocast_dtype(dtype)
        if self.precision == INT8:
            self._check_int8()
        self.model = model.to(self.device).eval()
        self.config = model.config
        self._tokenizer = tokenizer
        self._tokenizer_dir = tokenizer_dir
        self._fingerprint = fingerprint
        if self.precision == INT8:  # the fingerprint stays the float32 weights': it is taken first
            _ = self.fingerprint
            self._quantize()

    int8_recipe = ""
    """Names how :meth:`_quantize` quantized this model (a family's own steps); part of the vector keys."""

    def _quantize(self) -> None:
        """``dtype="int8"``: every linear layer outside :attr:`float32_modules` as a dynamic int8 layer."""
        quantize_linears(self.model, keep=self.float32_modules)

    def _check_int8(self) -> None:
        if self.float32_modules is None:
            raise Clamp3Error(f"dtype int8 is not available for {self.family} models")
        if self.device.type != "cpu":
            raise Clamp3Error(f"dtype int8 runs on the CPU only, not on {self.device}")

    @property
    def embedding_dim(self) -> int:
        return self.config.projection_dim

    @property
    def fingerprint(self) -> str:
        """Identifies these weights (cache keys, probes): config and a digest of the weights file.
        The same at every precision: :attr:`vector_identity` tells vectors of different precisions apart.

        A model built in memory is fingerprinted from its parameters, once.
        """
        if self._fingerprint is None:
            hasher = hashlib.sha256(self.family.encode())
            hasher.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                hasher.update(name.encode())
                hasher.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = hasher.hexdigest()
        return self._fingerprint

    @property
    def vector_identity(self) -> str:
        """What this model's vectors are keyed by: the fingerprint, with the precision unless float32
        (and, for int8, the modules kept float32 and :attr:`int8_recipe`, so a changed recipe does not
        reuse old vectors)."""
        if self.precision == "float32":
            return self.fingerprint
        if self.precision == INT8:
            recipe = f":{self.int8_recipe}" if self.int8_recipe else ""
            return f"{self.fingerprint}:{INT8}:{','.join(self.float32_modules or ())}{recipe}"
        return f"{self.fingerprint}:{self.precision}"

    @classmethod
    def from_weights(
        cls: type[_Encoder],
        weights: LoadedWeights,
        model: nn.Module,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> _Encoder:
        """Load ``weights`` into ``model`` (strict key/shape check) and wrap it; the fingerprint is the
        config plus a digest of the weights file."""
        from clamp3.cache import digest, sampled_file_digest

        load_weights_into(model, weights.state_dict, weights.source)
        config = json.dumps(weights.config.to_dict(), sort_keys=True)
        fingerprint = digest(cls.family, config, sampled_file_digest(weights.source))
        return cls(
            model, device=device, dtype=dtype, tokenizer_dir=weights.tokenizer_dir, fingerprint=fingerprint
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.embedding_dim}, device='{self.device}', "
            f"dtype={self.precision}, fingerprint='{self.fingerprint[:12]}')"
        )

    @staticmethod
    def similarity(first: Any, second: Any) -> Any:
        """Cosine similarity of every row of ``first`` (``[N, D]``) with every row of ``second`` (``[M, D]``):
        an ``[N, M]`` array, or a tensor when ``first`` is one. A single vector counts as one row."""
        as_tensor = isinstance(first, torch.Tensor)
        a = torch.as_tensor(np.asarray(first.cpu() if as_tensor else first, dtype=np.float32))
        b = (
            first.new_tensor(second).cpu().float()
            if as_tensor
            else torch.as_tensor(np.asarray(second, np.float32))
        )
        a, b = torch.atleast_2d(a), torch.atleast_2d(b)
        if a.shape[-1] != b.shape[-1]:
            raise ValueError(f"vectors of {a.shape[-1]} and {b.shape[-1]} dimensions cannot be compared")
        scores = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T
        return scores if isinstance(first, torch.Tensor) else scores.numpy()

    @staticmethod
    def _output(result: Any, normalize: bool, convert_to_tensor: bool) -> Any:
        """An encoder's result as asked: unit-length vectors (each position of local features) and/or
        torch tensors instead of numpy arrays."""
        arrays = [result] if isinstance(result, np.ndarray) else list(result)
        if normalize:
            arrays = [a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12) for a in arrays]
        if convert_to_tensor:
            arrays = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        return arrays[0] if isinstance(result, np.ndarray) else arrays

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def encode_text_ids(self, ids: Sequence[Sequence[int]], **options: Any) -> np.ndarray | list[np.ndarray]:
        raise NotImplementedError

    def encode_text(
        self,
        texts: Sequence[str],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        normalize: bool = False,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embed texts: :meth:`tokenize`, then :meth:`encode_text_ids`.

        Every ``encode_*`` method returns ``[N, D]`` numpy vectors in input order (or, with
        ``global_features=False``, one ``[L, H]`` array per input); ``normalize`` gives unit-length
        vectors (the reference's are not) and ``convert_to_tensor`` torch tensors.
        """
        return self.encode_text_ids(
            self.tokenize(texts),
            global_features=global_features,
            batch_size=batch_size,
            show_progress=show_progress,
            normalize=normalize,
            convert_to_tensor=convert_to_tensor,
        )

    def _tokenizer_source(self) -> str | Path | None:
        """Where the text tokenizer comes from when the model folder does not carry one: a hub name
        (resolved through the registry) or a folder."""
        raise NotImplementedError

    @property
    def tokenizer(self) -> Any:
        """The text tokenizer, loaded on first use (from the model folder or the hub cache)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from clamp3.hub import REGISTRY, snapshot_dir

            name = self._tokenizer_source()
            if self._tokenizer_dir is not None:
                source: str | Path = self._tokenizer_dir
            elif isinstance(name, Path):
                source = name
            elif name is not None:
                entry = next((e for e in REGISTRY.values() if e.repo == name and e.kind == "tokenizer"), None)
                source = snapshot_dir(entry) if entry is not None else name
            else:
                raise Clamp3Error(
                    f"model {self.config.name or '(unnamed)'} has no text tokenizer; use encode_text_ids"
                )
            self._tokenizer = AutoTokenizer.from_pretrained(str(source))
        return self._tokenizer

    def save_tokenizer(self, directory: Path) -> None:
        if self._tokenizer is not None or self._tokenizer_dir is not None:
            self.tokenizer.save_pretrained(directory)

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _attention_kernels(self):
        """On CUDA, attention without cuDNN's kernel: it builds a plan for every new batch shape, and with
        batches padded to their own longest piece nearly every batch is new. Measured on an H100 (300
        pieces, bf16, ``benchmarks/encode_throughput.py``): 103 files/s with it, 924 without."""
        if self.device.type != "cuda":
            return nullcontext()
        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])

    def _collate(self, pieces: list[np.ndarray], pad: int | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad ``pieces`` to the longest one; returns the batch and its 0/1 float mask."""
        longest = max(len(p) for p in pieces)
        batch = np.full((len(pieces), longest, *pieces[0].shape[1:]), pad, dtype=pieces[0].dtype)
        mask = np.zeros((len(pieces), longest), dtype=np.float32)
        for row, piece in enumerate(pieces):
            batch[row, : len(piece)] = piece
            mask[row, : len(piece)] = 1.0
        return torch.from_numpy(batch).to(self.device), torch.from_numpy(mask).to(self.device)

    def run_pieces(
        self,
        tower: str,
        pieces: list[np.ndarray],
        pad: int | float,
        global_features: bool,
        batch_size: int,
        show_progress: bool,
    ) -> list[np.ndarray]:
        """One output per piece, in order: its projected pooled vector, or its hidden states ``[len, H]``.

        Pieces are sorted by length and batched (:func:`~clamp3.model.segments.plan_batches`), each
        batch padded only to its longest member.
        """
        outputs: list[np.ndarray] = [np.empty(0)] * len(pieces)
        with (
            progress_bar(len(pieces), f"encoding {tower}", show_progress) as bar,
            torch.inference_mode(),
            self._autocast(),
            self._attention_kernels(),
        ):
            for batch in plan_batches([len(piece) for piece in pieces], batch_size):
                inputs, mask = self._collate([pieces[i] for i in batch], pad)
                hidden = self.model.hidden_states(tower, inputs, mask)
                if global_features:
                    rows = self.model.project(tower, hidden, mask).float().cpu().numpy()
                else:
                    rows = hidden.float().cpu().numpy()
                for row, i in zip(rows, batch, strict=True):
                    outputs[i] = row if global_features else row[: len(pieces[i])].copy()
                bar.advance(len(batch))
        return outputs
