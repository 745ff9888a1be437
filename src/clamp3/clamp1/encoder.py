"""``CLaMP1.from_pretrained(...)``: the CLaMP 1 models behind the same interface as :class:`clamp3.CLaMP3`.

CLaMP 1 embeds English text and ABC notation only. There is no segmentation: a piece is cut to the
model's ``music_length`` patches and a text to 128 tokens, as in the reference. Inputs of one call are
sorted by length and batched (:func:`~clamp3.model.segments.plan_batches`), each batch padded to its
longest member, and the results are returned in input order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clamp3.clamp1.checkpoint import (
    TOKENIZER_DIR,
    read_clamp1_weights,
    save_clamp1_weights,
)
from clamp3.clamp1.config import Clamp1Config
from clamp3.clamp1.model import Clamp1Model, Clamp1Tower
from clamp3.clamp1.patchilizer import encode_music
from clamp3.clamp1.text import ascii_text
from clamp3.errors import Clamp3Error, UnsupportedModalityError
from clamp3.hub import REGISTRY, get_entry, snapshot_dir
from clamp3.model.checkpoint import LoadedWeights
from clamp3.model.engine import EncoderBase, checked_token_ids, require_list
from clamp3.model.towers import AttentionImpl

_MTF_FIRST_LINE = re.compile(r"ticks_per_beat \d+\s*(\n|$)")


def _clamp3_models() -> str:
    return ", ".join(name for name, entry in REGISTRY.items() if entry.kind == "clamp3")


def _load(name_or_path: str | Path) -> LoadedWeights:
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = get_entry(name_or_path)
        if entry.kind != "clamp1":
            raise Clamp3Error(f"{name_or_path!r} is a {entry.kind} model, not a CLaMP 1 model")
        return read_clamp1_weights(snapshot_dir(entry), name=entry.name)
    if not Path(name_or_path).exists():
        known = ", ".join(n for n, e in REGISTRY.items() if e.kind == "clamp1")
        raise Clamp3Error(f"{name_or_path}: neither an existing path nor a known CLaMP 1 model ({known})")
    return read_clamp1_weights(name_or_path)


class CLaMP1(EncoderBase):
    """A loaded CLaMP 1 model that turns English texts and ABC notation into vectors.

    >>> model = CLaMP1.from_pretrained("clamp1-s512")                    # doctest: +SKIP
    >>> vectors = model.encode_text(["This is a lively Irish jig."])     # doctest: +SKIP
    """

    family = "clamp1"
    config: Clamp1Config

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
        return cls.from_weights(weights, model, device=device, dtype=dtype)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write our format: ``model.safetensors``, ``config.json`` and the tokenizer if one is loaded."""
        directory = Path(directory)
        save_clamp1_weights(self.model, self.config, directory)
        self.save_tokenizer(directory / TOKENIZER_DIR)

    def _tokenizer_source(self) -> str | None:
        return self.config.tokenizer

    # ------------------------------------------------------------------ public encoders

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, transliterated to ASCII as the reference does and cut to 128 tokens.

        Each string is one text, taken whole (not split into lines, not stripped); see
        :func:`clamp3.clamp1.text.text_keys` for the reference's reading of a key file.
        """
        require_list(texts, "texts")
        if not texts:
            return []
        ascii_texts = [ascii_text(text) for text in texts]
        encoded = self.tokenizer(
            ascii_texts, truncation=True, max_length=self.config.max_text_tokens, verbose=False
        )
        return encoded["input_ids"]

    def encode_text_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        normalize: bool = False,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embed already-tokenized texts (each a list of ids including ``<s>``/``</s>``)."""
        items = checked_token_ids(ids, self.config.text.vocab_size, self.config.max_text_tokens)
        vectors = self._encode("text", items, global_features, batch_size, show_progress)
        return self._output(vectors, normalize, convert_to_tensor)

    def encode_symbolic(
        self,
        texts: Sequence[str],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        normalize: bool = False,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embed ABC notation, cut to ``config.music_length`` patches (the last one the eos patch if it fits).

        Give the text the model should see: for MusicXML that is
        :func:`clamp3.clamp1.musicxml.load_music`, which applies the reference's filter; text given here is
        not filtered, as the reference encodes its queries and keys.
        """
        require_list(texts, "texts")
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
        vectors = self._encode("music", items, global_features, batch_size, show_progress)
        return self._output(vectors, normalize, convert_to_tensor)

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

    def _encode(
        self,
        tower: Clamp1Tower,
        items: list[np.ndarray],
        global_features: bool,
        batch_size: int,
        show_progress: bool,
    ) -> np.ndarray | list[np.ndarray]:
        pad = self.config.text.pad_token_id if tower == "text" else 0
        outputs = self.run_pieces(tower, items, pad, global_features, batch_size, show_progress)
        if not global_features:
            return outputs
        return np.stack(outputs) if outputs else np.empty((0, self.embedding_dim), dtype=np.float32)
