"""The user-facing encoder: ``CLaMP3.from_pretrained(...)`` and its ``encode_*`` methods.

All inputs of one call are cut into segments (see :mod:`clamp3.model.segments`); the segments of
every input are sorted by length and batched together (:func:`~clamp3.model.segments.plan_batches`),
each batch padded only to its longest member, and the results are put back together in input order.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from clamp3.config import CLaMP3Config
from clamp3.errors import Clamp3Error
from clamp3.hub import REGISTRY, fetch, get_entry
from clamp3.hub.backbones import backbone_dir, backbone_state_dict
from clamp3.model.checkpoint import (
    TOKENIZER_DIR,
    LoadedWeights,
    read_official_checkpoint,
    read_weights,
    save_weights,
)
from clamp3.model.engine import EncoderBase, checked_token_ids, require_list
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.model.segments import split_segments
from clamp3.model.towers import AttentionImpl, CLaMP3Model, Tower, masked_mean
from clamp3.precision import (
    INT8,
    activation_maxima,
    calibration_texts,
    quantize_linears,
    quantize_text_encoder,
)
from clamp3.preprocess.features import with_edge_windows
from clamp3.preprocess.text import join_lines

if TYPE_CHECKING:
    from clamp3.preprocess.sheet import SymbolicItem


def _load_weights(name_or_path: str | Path) -> LoadedWeights:
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = get_entry(name_or_path)
        if entry.config is None and not entry.bundled:
            raise Clamp3Error(f"{name_or_path!r} is a {entry.kind}, not a CLaMP 3 model")
        path = fetch(entry, entry.files[0])
        if entry.bundled:
            return read_weights(path.parent)
        return LoadedWeights(entry.config(), read_official_checkpoint(path), path)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(n for n, e in REGISTRY.items() if e.kind == "clamp3")
        raise Clamp3Error(f"{name_or_path}: neither an existing path nor a known model name ({known})")
    return read_weights(path)


class CLaMP3(EncoderBase):
    """A loaded CLaMP 3 model that turns texts, symbolic music and audio features into vectors.

    >>> model = CLaMP3.from_pretrained("saas")                       # doctest: +SKIP
    >>> vectors = model.encode_text(["a calm piano piece"])          # doctest: +SKIP
    """

    family = "clamp3"
    float32_modules = (
        "text_proj",
        "symbolic_model.patch_embedding",
        "symbolic_proj",
        "audio_proj",
    )
    """Under int8: the patch embedding (read as an embedding-bag table) and the three projections. The
    text tower is quantized its own way (:func:`~clamp3.precision.quantize_text_encoder`, calibrated on
    :func:`~clamp3.precision.calibration_texts`): plain dynamic int8 gave the bundled model's text
    vectors down to cosine 0.71 of float32."""
    config: CLaMP3Config

    def __init__(self, model: CLaMP3Model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.patchilizer = M3Patchilizer(self.config.symbolic.patch_size, self.config.symbolic.max_patches)

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

        ``dtype`` (``"bf16"``/``"fp16"``) turns on autocast; ``"int8"`` quantizes the towers' linear
        layers for CPU inference (see :attr:`float32_modules`). The default is float32, which matches
        the reference implementation.
        """
        weights = _load_weights(name_or_path)
        model = CLaMP3Model(weights.config, attn_implementation=attn_implementation)
        backbone = weights.config.text.backbone
        if backbone is not None:  # the text encoder's weights are not in our file: add them back
            text = {f"text_model.{k}": v for k, v in backbone_state_dict(backbone).items()}
            weights = dataclasses.replace(weights, state_dict={**weights.state_dict, **text})
        return cls.from_weights(weights, model, device=device, dtype=dtype)

    @classmethod
    def new(
        cls,
        config: CLaMP3Config,
        device: str | torch.device | None = None,
        *,
        attn_implementation: AttentionImpl = "sdpa",
    ) -> CLaMP3:
        """A model to train: random weights, except an external text backbone's, which are loaded."""
        model = CLaMP3Model(config, attn_implementation=attn_implementation)
        if config.text.backbone is not None:
            model.text_model.load_state_dict(backbone_state_dict(config.text.backbone))
        return cls(model, device=device)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write our format: ``model.safetensors``, ``config.json`` and the tokenizer if one is loaded."""
        if self.precision == INT8:
            raise Clamp3Error("an int8 model cannot be saved; save the float32 model it was loaded from")
        directory = Path(directory)
        external = ("text_model.",) if self.config.text.backbone is not None else ()
        save_weights(self.model, self.config, directory, exclude=external)
        if self.config.text.backbone is None:
            self.save_tokenizer(directory / TOKENIZER_DIR)

    int8_recipe = "text-smoothquant"

    def _quantize(self) -> None:
        """int8: every tower's linear layers now, but the text tower's on its first use (:meth:`_int8_text`):
        its calibration needs the tokenizer and a second, so models that embed no text never pay it."""
        quantize_linears(self.model, keep=(*(self.float32_modules or ()), "text_model"))
        self._text_lock: threading.Lock | None = threading.Lock()

    def _int8_text(self) -> None:
        """Quantize the text tower (int8 models, once): smoothed with the channel ranges it shows on
        :func:`calibration_texts` (random token ids when the model has no tokenizer)."""
        lock = getattr(self, "_text_lock", None)
        if lock is None:  # float32, or done
            return
        with lock:
            if self._text_lock is None:  # another thread did it meanwhile
                return
            text_model = self.model.text_model
            ids = self._calibration_ids()

            def calibrate() -> None:
                for row in ids:  # one text at a time: no padding positions among the ranges
                    batch = torch.tensor([row], device=self.device)
                    text_model(input_ids=batch, attention_mask=torch.ones_like(batch))

            quantize_text_encoder(text_model, activation_maxima(text_model, calibrate))
            self._text_lock = None

    def _calibration_ids(self) -> list[list[int]]:
        """Token ids of :func:`calibration_texts`, or ``<s> random ids </s>`` without a tokenizer."""
        vocab, limit = self.config.text.encoder.vocab_size, self.config.text.max_length
        texts = calibration_texts()
        try:
            rows = self.tokenize(texts)
        except (Clamp3Error, OSError):  # no tokenizer: a model used through encode_text_ids only
            generator = torch.Generator().manual_seed(0)
            longest = min(64, limit - 2)
            lengths = torch.randint(min(8, longest), longest + 1, (len(texts),), generator=generator)
            return [[0, *torch.randint(3, vocab, (n,), generator=generator).tolist(), 2] for n in lengths]
        unknown = self.tokenizer.unk_token_id
        return [[i if i < vocab else unknown for i in row[:limit]] for row in rows]

    def _tokenizer_source(self) -> str | Path | None:
        if self.config.text.backbone is not None:
            return backbone_dir(self.config.text.backbone)
        return self.config.text.tokenizer

    # ------------------------------------------------------------------ public encoders

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (lines joined with the separator token, no truncation)."""
        require_list(texts, "texts")
        tokenizer = self.tokenizer
        joined = []
        for i, text in enumerate(texts):
            try:
                joined.append(join_lines(text, tokenizer.sep_token))
            except ValueError as exc:
                raise ValueError(f"text {i}: {exc}") from None
        if not joined:
            return []
        prefix = self.config.text.prefix
        return tokenizer([prefix + text for text in joined], add_special_tokens=True, verbose=False)[
            "input_ids"
        ]

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
        items = checked_token_ids(ids, self.config.text.encoder.vocab_size)
        self._int8_text()
        vectors = self._encode("text", items, global_features, batch_size, show_progress)
        return self._output(vectors, normalize, convert_to_tensor)

    def pooled_text_features(self, texts: Sequence[str], batch_size: int = 32, layer: int = -1) -> np.ndarray:
        """``[N, text hidden size]``: the masked mean of the text encoder's last hidden states, before the
        projection, of each text cut to ``max_length`` tokens (what a frozen backbone contributes).

        ``layer`` picks other hidden states instead, indexed as transformers' ``hidden_states``: 0 is the
        embedding output, ``num_hidden_layers`` (or -1) the last layer (the only one under int8, whose
        smoothing divides the others per channel).
        """
        if self.precision == INT8 and layer not in (-1, self.config.text.encoder.num_layers):
            raise Clamp3Error("under int8 only the last layer's text features are available; load float32")
        self._int8_text()
        out = np.zeros((len(texts), self.config.text.encoder.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for chosen, batch, mask in self._text_batches(texts, batch_size):
                if layer == -1:
                    hidden = self.model.hidden_states("text", batch, mask)
                else:
                    states = self.model.text_model(
                        input_ids=batch, attention_mask=mask, output_hidden_states=True
                    )
                    hidden = states.hidden_states[layer]
                out[chosen] = masked_mean(hidden, mask).float().cpu().numpy()
        return out

    def _text_batches(
        self, texts: Sequence[str], batch_size: int
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """``(indices, token ids, mask)`` batches of ``texts`` cut to ``max_length`` tokens, shortest first,
        each padded to its own longest text."""
        ids = [row[: self.config.text.max_length] for row in self.tokenize(texts)]
        order = np.argsort([len(row) for row in ids], kind="stable")
        pad = self.config.text.encoder.pad_token_id
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            yield (chosen, *self._collate([np.asarray(ids[i], dtype=np.int64) for i in chosen], pad))

    def encode_symbolic(
        self,
        texts: Sequence[str] | Sequence[SymbolicItem],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        normalize: bool = False,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embed symbolic music given as interleaved ABC or MTF text, or as the items
        :func:`~clamp3.preprocess.sheet.sheet_to_interleaved` returns (anything with a ``text``)."""
        require_list(texts, "texts")
        items = []
        for i, text in enumerate(texts):
            text = getattr(text, "text", text)
            try:
                items.append(self.patchilizer.encode(text, add_special_patches=True))
            except ValueError as exc:
                raise ValueError(f"symbolic input {i}: {exc}") from None
        vectors = self._encode("symbolic", items, global_features, batch_size, show_progress)
        return self._output(vectors, normalize, convert_to_tensor)

    def encode_audio_features(
        self,
        features: Sequence[np.ndarray],
        *,
        global_features: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        normalize: bool = False,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embed per-window audio features, each ``[n_windows, D]`` or ``[1, n_windows, D]``.

        As in the reference, a zero vector is added before and after the windows.
        """
        require_list(features, "features")
        dim = self.config.audio.feature_size
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
            items.append(with_edge_windows(array))
        vectors = self._encode("audio", items, global_features, batch_size, show_progress)
        return self._output(vectors, normalize, convert_to_tensor)

    # ------------------------------------------------------------------ segments

    def _segment_length(self, tower: Tower) -> int:
        if tower == "text":
            return self.config.text.max_length
        if tower == "symbolic":
            return self.config.symbolic.max_patches
        return self.config.audio.max_frames

    def _encode(
        self,
        tower: Tower,
        items: list[np.ndarray],
        global_features: bool,
        batch_size: int,
        show_progress: bool,
    ) -> np.ndarray | list[np.ndarray]:
        """Segment every item, run all segments together, and recombine them per item."""
        segments = [split_segments(len(item), self._segment_length(tower)) for item in items]
        pieces = [item[s.start : s.stop] for item, parts in zip(items, segments, strict=True) for s in parts]
        pad = self.config.text.encoder.pad_token_id if tower == "text" else 0
        outputs = iter(self.run_pieces(tower, pieces, pad, global_features, batch_size, show_progress))
        if not global_features:
            return [
                np.concatenate([next(outputs)[s.length - s.keep :] for s in parts]).astype(np.float32)
                for parts in segments
            ]
        result = np.empty((len(items), self.embedding_dim), dtype=np.float32)
        for row, parts in enumerate(segments):
            weights = np.array([s.weight for s in parts], dtype=np.float32)
            vectors = np.stack([next(outputs) for _ in parts])
            result[row] = (vectors * weights[:, None]).sum(axis=0) / weights.sum()
        return result
