"""``CLaMP1.from_pretrained(...)``: the CLaMP 1 models behind the same interface as :class:`clamp3.CLaMP3`.

CLaMP 1 embeds English text and ABC notation only. There is no segmentation: a piece is cut to the
model's ``music_length`` patches and a text to 128 tokens, as in the reference. Inputs of one call are
sorted by length and batched (:func:`~clamp3.model.segments.plan_batches`), each batch padded to its
longest member, and the results are returned in input order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from clamp3.clamp1.checkpoint import (
    TOKENIZER_DIR,
    Clamp1Weights,
    read_clamp1_weights,
    save_clamp1_weights,
)
from clamp3.clamp1.config import Clamp1Config
from clamp3.clamp1.model import Clamp1Model, Clamp1Tower
from clamp3.clamp1.patchilizer import encode_music
from clamp3.clamp1.text import ascii_text
from clamp3.errors import Clamp3Error, UnsupportedModalityError
from clamp3.hub import REGISTRY, get_entry, snapshot_dir
from clamp3.model.checkpoint import load_weights_into
from clamp3.model.segments import plan_batches
from clamp3.model.towers import AttentionImpl
from clamp3.progress import progress_bar

_AUTOCAST_DTYPES = MappingProxyType(
    {
        "fp32": None,
        "float32": None,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
)
_MTF_FIRST_LINE = re.compile(r"ticks_per_beat \d+\s*(\n|$)")


def _autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    try:
        return _AUTOCAST_DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(_AUTOCAST_DTYPES)}") from None


def _clamp3_models() -> str:
    return ", ".join(name for name, entry in REGISTRY.items() if entry.kind == "clamp3")


def _load(name_or_path: str | Path) -> Clamp1Weights:
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = get_entry(name_or_path)
        if entry.kind != "clamp1":
            raise Clamp3Error(f"{name_or_path!r} is a {entry.kind} model, not a CLaMP 1 model")
        return read_clamp1_weights(snapshot_dir(entry), name=entry.name)
    if not Path(name_or_path).exists():
        known = ", ".join(n for n, e in REGISTRY.items() if e.kind == "clamp1")
        raise Clamp3Error(f"{name_or_path}: neither an existing path nor a known CLaMP 1 model ({known})")
    return read_clamp1_weights(name_or_path)


class CLaMP1:
    """A loaded CLaMP 1 model that turns English texts and ABC notation into vectors.

    >>> model = CLaMP1.from_pretrained("clamp1-s512")                    # doctest: +SKIP
    >>> vectors = model.encode_text(["This is a lively Irish jig."])     # doctest: +SKIP
    """

    family = "clamp1"

    def __init__(
        self,
        model: Clamp1Model,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        tokenizer: Any = None,
        tokenizer_dir: Path | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.autocast_dtype = _autocast_dtype(dtype)
        self.model = model.to(self.device).eval()
        self.config: Clamp1Config = model.config
        self._tokenizer = tokenizer
        self._tokenizer_dir = tokenizer_dir

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        attn_implementation: AttentionImpl = "sdpa",
    ) -> CLaMP1:
        """Load a registered model (``"clamp1-s512"``, ``"clamp1-s1024"``) or a model directory.

        A directory holds either the hub files (``config.json`` + ``pytorch_model.bin``) or what
        :meth:`save_pretrained` wrote. ``dtype`` (``"bf16"``/``"fp16"``) turns on autocast.
        """
        weights = _load(name_or_path)
        model = Clamp1Model(weights.config, attn_implementation=attn_implementation)
        load_weights_into(model, weights.state_dict, weights.source)
        return cls(model, device=device, dtype=dtype, tokenizer_dir=weights.tokenizer_dir)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write our format: ``model.safetensors``, ``config.json`` and the tokenizer if one is loaded."""
        directory = Path(directory)
        save_clamp1_weights(self.model, self.config, directory)
        if self._tokenizer is not None or self._tokenizer_dir is not None:
            self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)

    @property
    def embedding_dim(self) -> int:
        return self.config.projection_dim

    @property
    def tokenizer(self) -> Any:
        """The distilroberta-base tokenizer, loaded on first use (from the model folder or the hub cache)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            if self._tokenizer_dir is not None:
                source: str | Path = self._tokenizer_dir
            elif self.config.tokenizer is not None:
                name = self.config.tokenizer
                entry = next((e for e in REGISTRY.values() if e.repo == name and e.kind == "tokenizer"), None)
                source = snapshot_dir(entry) if entry is not None else name
            else:
                raise Clamp3Error(
                    f"model {self.config.name or '(unnamed)'} has no text tokenizer; use encode_text_ids"
                )
            self._tokenizer = AutoTokenizer.from_pretrained(str(source))
        return self._tokenizer

    # ------------------------------------------------------------------ public encoders

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, transliterated to ASCII as the reference does and cut to 128 tokens.

        Each string is one text, taken whole (not split into lines, not stripped); see
        :func:`clamp3.clamp1.text.text_keys` for the reference's reading of a key file.
        """
        _require_list(texts, "texts")
        if not texts:
            return []
        ascii_texts = [ascii_text(text) for text in texts]
        encoded = self.tokenizer(
            ascii_texts, truncation=True, max_length=self.config.max_text_tokens, verbose=False
        )
        return encoded["input_ids"]

    def encode_text(
        self,
        texts: Sequence[str],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Embed English texts (see :meth:`tokenize`)."""
        return self.encode_text_ids(
            self.tokenize(texts),
            global_features=global_features,
            batch_size=batch_size,
            show_progress=show_progress,
        )

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
        vocab = self.config.text.vocab_size
        limit = self.config.max_text_tokens
        items = []
        for i, seq in enumerate(ids):
            array = np.asarray(seq, dtype=np.int64)
            if array.ndim != 1 or array.size == 0:
                raise ValueError(f"text ids {i}: expected a non-empty list of token ids")
            if array.min() < 0 or array.max() >= vocab:
                raise ValueError(f"text ids {i}: token ids must lie in [0, {vocab})")
            if array.size > limit:
                raise ValueError(f"text ids {i}: {array.size} tokens, the model takes at most {limit}")
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
        """Embed ABC notation, cut to ``config.music_length`` patches (the last one the eos patch if it fits).

        Give the text the model should see: for MusicXML that is
        :func:`clamp3.clamp1.musicxml.load_music`, which applies the reference's filter; text given here is
        not filtered, as the reference encodes its queries and keys.
        """
        _require_list(texts, "texts")
        config = self.config
        items = []
        for i, text in enumerate(texts):
            if _MTF_FIRST_LINE.match(text):
                raise UnsupportedModalityError(
                    f"symbolic input {i} is MIDI (MTF); CLaMP 1 reads ABC notation only, "
                    f"MIDI needs a CLaMP 3 model ({_clamp3_models()})"
                )
            try:
                items.append(encode_music(text, config.music_length, patch_length=config.patch_length))
            except ValueError as exc:
                raise ValueError(f"symbolic input {i}: {exc}") from None
        return self._encode("music", items, global_features, batch_size, show_progress)

    def encode_audio_features(
        self,
        features: Sequence[np.ndarray],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Not available: CLaMP 1 has no audio encoder (raises :class:`UnsupportedModalityError`)."""
        raise UnsupportedModalityError(
            f"CLaMP 1 has no audio encoder; audio needs a CLaMP 3 model ({_clamp3_models()})"
        )

    # ------------------------------------------------------------------ engine

    def _collate(self, tower: Clamp1Tower, pieces: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(p) for p in pieces)
        pad = self.config.text.pad_token_id if tower == "text" else 0
        batch = np.full((len(pieces), longest, *pieces[0].shape[1:]), pad, dtype=np.int64)
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
        tower: Clamp1Tower,
        items: list[np.ndarray],
        global_features: bool,
        batch_size: int,
        show_progress: bool,
    ) -> np.ndarray | list[np.ndarray]:
        outputs: dict[int, np.ndarray] = {}
        with (
            progress_bar(len(items), f"encoding {tower}", show_progress) as bar,
            torch.inference_mode(),
            self._autocast(),
        ):
            for batch in plan_batches([len(item) for item in items], batch_size):
                inputs, mask = self._collate(tower, [items[i] for i in batch])
                hidden = self.model.hidden_states(tower, inputs, mask)
                if global_features:
                    rows = self.model.project(tower, hidden, mask).float().cpu().numpy()
                else:
                    rows = hidden.float().cpu().numpy()
                for row, i in zip(rows, batch, strict=True):
                    outputs[i] = row if global_features else row[: len(items[i])].copy()
                bar.advance(len(batch))
        ordered = [outputs[i] for i in range(len(items))]
        if not global_features:
            return ordered
        return np.stack(ordered) if ordered else np.empty((0, self.embedding_dim), dtype=np.float32)


def _require_list(values: object, name: str) -> None:
    if isinstance(values, (str, bytes, np.ndarray)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list (one entry per input), got {type(values).__name__}")
