"""The user-facing encoder: ``CLaMP3.from_pretrained(...)`` and its ``encode_*`` methods.

All inputs of one call are cut into segments (see :mod:`clamp3.model.segments`); the segments of
every input are sorted by length and batched together (:func:`~clamp3.model.segments.plan_batches`),
each batch padded only to its longest member, and the results are put back together in input order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clamp3.cache import digest, sampled_file_digest
from clamp3.config import CLaMP3Config
from clamp3.errors import Clamp3Error
from clamp3.hub import REGISTRY, fetch, get_entry, snapshot_dir
from clamp3.model.checkpoint import (
    TOKENIZER_DIR,
    LoadedWeights,
    load_weights_into,
    read_official_checkpoint,
    read_weights,
    save_weights,
)
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.model.segments import Segment, plan_batches, split_segments
from clamp3.model.towers import AttentionImpl, CLaMP3Model, Tower
from clamp3.preprocess.text import join_lines
from clamp3.progress import progress_bar

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    try:
        resolved = _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}") from None
    return None if resolved == torch.float32 else resolved


def _load_weights(name_or_path: str | Path) -> LoadedWeights:
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = get_entry(name_or_path)
        if entry.config is None:
            raise Clamp3Error(f"{name_or_path!r} is a {entry.kind}, not a CLaMP 3 model")
        path = fetch(entry, entry.files[0])
        return LoadedWeights(entry.config(), read_official_checkpoint(path), path)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(n for n, e in REGISTRY.items() if e.kind == "clamp3")
        raise Clamp3Error(f"{name_or_path}: neither an existing path nor a known model name ({known})")
    return read_weights(path)


class CLaMP3:
    """A loaded CLaMP 3 model that turns texts, symbolic music and audio features into vectors.

    >>> model = CLaMP3.from_pretrained("saas")                       # doctest: +SKIP
    >>> vectors = model.encode_text(["a calm piano piece"])          # doctest: +SKIP
    """

    def __init__(
        self,
        model: CLaMP3Model,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        tokenizer: Any = None,
        tokenizer_dir: Path | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.autocast_dtype = _resolve_dtype(dtype)
        self.model = model.to(self.device).eval()
        self.config: CLaMP3Config = model.config
        self.patchilizer = M3Patchilizer(self.config.symbolic.patch_size, self.config.symbolic.max_patches)
        self._tokenizer = tokenizer
        self._tokenizer_dir = tokenizer_dir
        self._fingerprint = fingerprint

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        attn_implementation: AttentionImpl = "sdpa",
    ) -> CLaMP3:
        """Load a registered model (``"saas"``, ``"c2"``), a ``.pth`` file, or a model directory.

        ``dtype`` (``"bf16"``/``"fp16"``) turns on autocast; the default is float32, which matches
        the reference implementation.
        """
        weights = _load_weights(name_or_path)
        model = CLaMP3Model(weights.config, attn_implementation=attn_implementation)
        load_weights_into(model, weights.state_dict, weights.source)
        fingerprint = digest(
            "clamp3",
            json.dumps(weights.config.to_dict(), sort_keys=True),
            sampled_file_digest(weights.source),
        )
        return cls(
            model, device=device, dtype=dtype, tokenizer_dir=weights.tokenizer_dir, fingerprint=fingerprint
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write our format: ``model.safetensors``, ``config.json`` and the tokenizer if one is loaded."""
        directory = Path(directory)
        save_weights(self.model, self.config, directory)
        if self._tokenizer is not None or self._tokenizer_dir is not None:
            self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)

    @property
    def fingerprint(self) -> str:
        """Identifies these weights (cache keys, probes): config + a digest of the weights file.

        A model built in memory is fingerprinted from its parameters, computed once.
        """
        if self._fingerprint is None:
            hasher = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                hasher.update(name.encode())
                hasher.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = hasher.hexdigest()
        return self._fingerprint

    @property
    def embedding_dim(self) -> int:
        return self.config.projection_dim

    @property
    def tokenizer(self) -> Any:
        """The text tokenizer, loaded on first use (from the model folder or the hub cache)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            if self._tokenizer_dir is not None:
                source = self._tokenizer_dir
            elif self.config.text.tokenizer is not None:
                name = self.config.text.tokenizer
                entry = next((e for e in REGISTRY.values() if e.repo == name and e.kind == "tokenizer"), None)
                source = snapshot_dir(entry) if entry is not None else name
            else:
                raise Clamp3Error(
                    f"model {self.config.name or '(unnamed)'} has no text tokenizer; use encode_text_ids"
                )
            self._tokenizer = AutoTokenizer.from_pretrained(str(source))
        return self._tokenizer

    # ------------------------------------------------------------------ public encoders

    def encode_text(
        self,
        texts: Sequence[str],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Embed descriptions. Each string is treated like a ``.txt`` file: one description per line."""
        return self.encode_text_ids(
            self.tokenize(texts),
            global_features=global_features,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (lines joined with the separator token, no truncation)."""
        _require_list(texts, "texts")
        tokenizer = self.tokenizer
        joined = []
        for i, text in enumerate(texts):
            try:
                joined.append(join_lines(text, tokenizer.sep_token))
            except ValueError as exc:
                raise ValueError(f"text {i}: {exc}") from None
        if not joined:
            return []
        return tokenizer(joined, add_special_tokens=True, verbose=False)["input_ids"]

    def encode_text_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Embed already-tokenized texts (each a list of ids including ``<s>``/``</s>``)."""
        _require_list(ids, "ids")
        vocab = self.config.text.encoder.vocab_size
        items = []
        for i, seq in enumerate(ids):
            array = np.asarray(seq, dtype=np.int64)
            if array.ndim != 1 or array.size == 0:
                raise ValueError(f"text ids {i}: expected a non-empty list of token ids")
            if array.min() < 0 or array.max() >= vocab:
                raise ValueError(f"text ids {i}: token ids must lie in [0, {vocab})")
            items.append(array)
        return self._encode("text", items, global_features, batch_size, show_progress)

    def encode_symbolic(
        self,
        texts: Sequence[str],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Embed symbolic music given as interleaved ABC or MTF text."""
        _require_list(texts, "texts")
        items = []
        for i, text in enumerate(texts):
            try:
                items.append(self.patchilizer.encode(text, add_special_patches=True))
            except ValueError as exc:
                raise ValueError(f"symbolic input {i}: {exc}") from None
        return self._encode("symbolic", items, global_features, batch_size, show_progress)

    def encode_audio_features(
        self,
        features: Sequence[np.ndarray],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Embed per-window audio features, each ``[n_windows, D]`` or ``[1, n_windows, D]``.

        As in the reference, a zero vector is added before and after the windows.
        """
        _require_list(features, "features")
        dim = self.config.audio.encoder.hidden_size
        items = []
        for i, array in enumerate(features):
            array = np.asarray(array, dtype=np.float32)
            leading_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[0] == 1)
            if not leading_ok or array.shape[-1] != dim:
                raise ValueError(
                    f"audio features {i}: expected shape [n_windows, {dim}] or [1, n_windows, {dim}], "
                    f"got {list(array.shape)}"
                )
            array = array.reshape(-1, dim)
            if len(array) == 0:
                raise ValueError(f"audio features {i}: no windows")
            zero = np.zeros((1, dim), dtype=np.float32)
            items.append(np.concatenate([zero, array, zero]))
        return self._encode("audio", items, global_features, batch_size, show_progress)

    # ------------------------------------------------------------------ engine

    def _segment_length(self, tower: Tower) -> int:
        if tower == "text":
            return self.config.text.max_length
        if tower == "symbolic":
            return self.config.symbolic.max_patches
        return self.config.audio.max_frames

    def _collate(self, tower: Tower, pieces: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(p) for p in pieces)
        if tower == "text":
            pad = self.config.text.encoder.pad_token_id
            batch = np.full((len(pieces), longest), pad, dtype=np.int64)
        else:
            batch = np.zeros((len(pieces), longest, *pieces[0].shape[1:]), dtype=pieces[0].dtype)
        mask = np.zeros((len(pieces), longest), dtype=np.float32)
        for row, piece in enumerate(pieces):
            batch[row, : len(piece)] = piece
            mask[row, : len(piece)] = 1.0
        return torch.from_numpy(batch).to(self.device), torch.from_numpy(mask).to(self.device)

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _encode(
        self,
        tower: Tower,
        items: list[np.ndarray],
        global_features: bool,
        batch_size: int,
        show_progress: bool,
    ) -> np.ndarray | list[np.ndarray]:
        jobs: list[tuple[int, Segment]] = [
            (item, segment)
            for item, array in enumerate(items)
            for segment in split_segments(len(array), self._segment_length(tower))
        ]
        batches = plan_batches([segment.length for _, segment in jobs], batch_size)
        outputs: list[np.ndarray | None] = [None] * len(jobs)
        with (
            progress_bar(len(jobs), f"encoding {tower}", show_progress) as bar,
            torch.inference_mode(),
            self._autocast(),
        ):
            for batch in batches:
                pieces = [items[jobs[j][0]][jobs[j][1].start : jobs[j][1].stop] for j in batch]
                inputs, mask = self._collate(tower, pieces)
                hidden = self.model.hidden_states(tower, inputs, mask)
                if global_features:
                    rows = self.model.project(tower, hidden, mask).float().cpu().numpy()
                else:
                    rows = hidden.float().cpu().numpy()
                for row, j in zip(rows, batch, strict=True):
                    segment = jobs[j][1]
                    local = row[segment.length - segment.keep : segment.length]
                    outputs[j] = row if global_features else local
                bar.advance(len(batch))
        return _assemble(jobs, outputs, len(items), global_features, self.embedding_dim)


def _assemble(
    jobs: list[tuple[int, Segment]],
    outputs: list[np.ndarray | None],
    count: int,
    global_features: bool,
    dim: int,
) -> np.ndarray | list[np.ndarray]:
    per_item: list[list[tuple[Segment, np.ndarray]]] = [[] for _ in range(count)]
    for (item, segment), output in zip(jobs, outputs, strict=True):
        per_item[item].append((segment, output))
    if not global_features:
        return [np.concatenate([out for _, out in parts]).astype(np.float32) for parts in per_item]
    result = np.empty((count, dim), dtype=np.float32)
    for item, parts in enumerate(per_item):
        weights = np.array([segment.weight for segment, _ in parts], dtype=np.float32)
        vectors = np.stack([out for _, out in parts])
        result[item] = (vectors * weights[:, None]).sum(axis=0) / weights.sum()
    return result


def _require_list(values: object, name: str) -> None:
    if isinstance(values, (str, bytes, np.ndarray)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list (one entry per input), got {type(values).__name__}")
