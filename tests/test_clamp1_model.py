"""CLaMP 1 through the public API: the tiny reference checkpoint, features, errors, our save format."""

import json
import random
import shutil

import numpy as np
import pytest
import torch
from tokenizers import ByteLevelBPETokenizer

from clamp3.clamp1 import CLaMP1, Clamp1Config, normalize
from clamp3.errors import CheckpointError, Clamp3Error, UnsupportedModalityError
from clamp3.hub import REGISTRY
from tests.tiny import tiny_tokenizer

ATOL, RTOL = 1e-5, 1e-4
METHODS = {"music": "encode_symbolic", "text": "encode_text_ids"}


@pytest.fixture(scope="module")
def tiny(clamp1_dir):
    return clamp1_dir / "tiny_model"


@pytest.fixture(scope="module")
def index(tiny):
    return json.loads((tiny / "index.json").read_text())


@pytest.fixture(scope="module")
def model(tiny):
    return CLaMP1.from_pretrained(tiny, device="cpu")


def _inputs(tiny, cases):
    return [
        (tiny / c["input"]).read_text(encoding="utf-8")
        if c["modality"] == "music"
        else json.loads((tiny / c["input"]).read_text())
        for c in cases
    ]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize("modality", ["music", "text"])
def test_public_api_matches_reference(tiny, index, attn, batch_size, modality):
    model = CLaMP1.from_pretrained(tiny, device="cpu", attn_implementation=attn)
    cases = [c for c in index if c["modality"] == modality]
    random.Random(batch_size).shuffle(cases)
    encode = getattr(model, METHODS[modality])
    vectors = encode(_inputs(tiny, cases), batch_size=batch_size)
    hidden = encode(_inputs(tiny, cases), batch_size=batch_size, global_features=False)
    assert vectors.shape == (len(cases), 32) and vectors.dtype == np.float32
    normalized = normalize(vectors)
    for case, vector, unit, local in zip(cases, vectors, normalized, hidden, strict=True):
        files = {name: tiny / out["file"] for name, out in case["outputs"].items()}
        np.testing.assert_allclose(
            vector, np.load(files["feature"])[0], atol=ATOL, rtol=RTOL, err_msg=case["case"]
        )
        expected_unit = np.load(files["feature_normalized"])[0]
        np.testing.assert_allclose(unit, expected_unit, atol=ATOL, rtol=RTOL, err_msg=case["case"])
        expected_local = np.load(files["last_hidden_state"])[0]
        assert local.dtype == np.float32 and local.shape == expected_local.shape, case["case"]
        np.testing.assert_allclose(local, expected_local, atol=ATOL, rtol=RTOL, err_msg=case["case"])


def test_music_patches_and_truncation_follow_the_config(tiny, index, model):
    assert model.family == "clamp1" and model.embedding_dim == 32
    assert model.config.music_length == 16 and model.config.max_text_tokens == 32
    for case in (c for c in index if c["modality"] == "music"):
        hidden = model.encode_symbolic(_inputs(tiny, [case]), global_features=False)[0]
        assert len(hidden) == case["num_patches"] == len(np.load(tiny / case["patches"])), case["case"]


def test_unsupported_modalities_name_the_models_that_have_them(model):
    clamp3_names = [n for n, e in REGISTRY.items() if e.kind == "clamp3"]
    assert clamp3_names == ["default", "saas", "c2"]
    with pytest.raises(UnsupportedModalityError) as audio:
        model.encode_audio_features([np.zeros((3, 768), dtype=np.float32)])
    assert str(audio.value) == "CLaMP 1 has no audio encoder; audio needs a CLaMP 3 model (default, saas, c2)"
    with pytest.raises(UnsupportedModalityError, match=r"input 1 is MIDI \(MTF\).*\(default, saas, c2\)$"):
        model.encode_symbolic(["X:1\nK:C\nabc|\n", "ticks_per_beat 480\nnote_on 0 0 60 64\n"])


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"text ids 1: token ids must lie in \[0, 1000\)"):
        model.encode_text_ids([[0, 5, 2], [0, 1000, 2]])
    with pytest.raises(ValueError, match="text ids 0: 33 tokens, the model takes at most 32"):
        model.encode_text_ids([[0] * 33])
    with pytest.raises(ValueError, match="symbolic input 0: the music body is a lone barline"):
        model.encode_symbolic(["K:C\n|\n"])
    with pytest.raises(TypeError, match="must be a list"):
        model.encode_symbolic("X:1\n")
    with pytest.raises(Clamp3Error, match="has no text tokenizer; use encode_text_ids"):
        model.encode_text(["a tune"])
    assert model.encode_symbolic([]).shape == (0, 32)
    assert model.encode_text_ids([], global_features=False) == []


def test_text_is_transliterated_and_truncated(tiny):
    tokenizer = tiny_tokenizer(["a", "cheerful", "piano", "rag", "1/2", "Cafe"])
    model = CLaMP1(CLaMP1.from_pretrained(tiny).model, device="cpu", tokenizer=tokenizer)
    ids = model.tokenize(["a cheerful piano rag\n", "½ Café", "rag " * 40])
    assert ids[0] == tokenizer(["a cheerful piano rag"])["input_ids"][0]
    assert ids[1] == tokenizer(["1/2 Cafe"])["input_ids"][0]
    assert len(ids[2]) == 32 and ids[2][-1] == 2
    np.testing.assert_array_equal(model.encode_text(["½ Café"]), model.encode_text_ids([ids[1]]))


def test_tokenizer_from_the_registry_files(tiny, tmp_path):
    """A folder with the files the distilroberta-base entry fetches (no tokenizer_config.json) loads."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        ["a cheerful piano rag"] * 5, vocab_size=280, special_tokens=["<s>", "<pad>", "</s>"]
    )
    bpe.save_model(str(tmp_path))
    bpe.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "pad_token_id": 1}))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REGISTRY["distilroberta-base"].files)
    weights = torch.load(tiny / "pytorch_model.bin", weights_only=True)
    model = CLaMP1(CLaMP1.from_pretrained(tiny).model, device="cpu", tokenizer_dir=tmp_path)
    ids = model.tokenize(["a cheerful piano rag\n"])[0]
    assert (
        ids[0] == 0
        and ids[-1] == 2
        and max(ids) < weights["text_enc.embeddings.word_embeddings.weight"].shape[0]
    )
    assert model.encode_text(["a cheerful piano rag\n"]).shape == (1, 32)


def test_save_and_reload_in_our_format(tiny, model, tmp_path):
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["format"] == "clamp1" and saved["music_length"] == 16 and saved["tokenizer"] is None
    again = CLaMP1.from_pretrained(tmp_path / "saved", device="cpu")
    assert again.config == model.config == Clamp1Config.from_dict(saved)
    music = (tiny / "inputs" / "music_02_8patches.abc").read_text(encoding="utf-8")
    np.testing.assert_array_equal(again.encode_symbolic([music]), model.encode_symbolic([music]))


def _copy(tiny, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "pytorch_model.bin", "text_model_config.json"):
        shutil.copy(tiny / name, folder / name)
    return folder


def test_checkpoints_without_position_ids_load_too(tiny, model, tmp_path):
    folder = _copy(tiny, tmp_path)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    assert {k for k in state if k.endswith("position_ids")} == {
        "text_enc.embeddings.position_ids",
        "music_enc.enc.embeddings.position_ids",
    }
    torch.save(
        {k: v for k, v in state.items() if not k.endswith("position_ids")}, folder / "pytorch_model.bin"
    )
    loaded = CLaMP1.from_pretrained(folder, device="cpu")
    np.testing.assert_array_equal(loaded.encode_text_ids([[0, 5, 2]]), model.encode_text_ids([[0, 5, 2]]))


def test_wrong_keys_and_shapes_are_all_named(tiny, tmp_path):
    folder = _copy(tiny, tmp_path)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["music_proj.bias"]
    state["music_enc.extra.weight"] = torch.zeros(1)
    state["text_proj.weight"] = torch.zeros(32, 31)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as error:
        CLaMP1.from_pretrained(folder)
    message = str(error.value)
    assert message.startswith(f"{folder / 'pytorch_model.bin'}: checkpoint does not fit the model; ")
    assert "missing keys: music_proj.bias" in message
    assert "unexpected keys: music_enc.extra.weight" in message
    assert "wrong shapes: text_proj.weight (checkpoint [32, 31], model [32, 32])" in message
    assert "\n" not in message


def test_without_a_text_config_the_text_encoder_is_distilroberta(tiny, tmp_path):
    folder = _copy(tiny, tmp_path)
    (folder / "text_model_config.json").unlink()
    with pytest.raises(
        CheckpointError,
        match=r"text_enc\.embeddings\.word_embeddings\.weight \(checkpoint "
        r"\[1000, 32\], model \[50265, 768\]\)",
    ):
        CLaMP1.from_pretrained(folder)


def test_bad_files_are_named(tiny, tmp_path):
    folder = _copy(tiny, tmp_path)
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: not a PyTorch checkpoint"):
        CLaMP1.from_pretrained(folder)
    torch.save({"model": 3}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: not a CLaMP 1 checkpoint"):
        CLaMP1.from_pretrained(folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: file not found"):
        CLaMP1.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 32, "vocab_size": 1}))
    with pytest.raises(
        CheckpointError,
        match=r"config\.json: not a transformers model config \(missing "
        r"num_hidden_layers, num_attention_heads, intermediate_size, max_position_embeddings\)",
    ):
        CLaMP1.from_pretrained(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"config\.json: unreadable config"):
        CLaMP1.from_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        CLaMP1.from_pretrained(folder)
    with pytest.raises(Clamp3Error, match="neither an existing path nor a known CLaMP 1 model"):
        CLaMP1.from_pretrained(tmp_path / "nowhere")


def test_music_length_must_fit_the_position_table(tiny):
    hub = json.loads((tiny / "config.json").read_text())
    with pytest.raises(ValueError, match=r"music_length 17 must lie in \[1, 16\]"):
        Clamp1Config.from_hub_json({**hub, "max_length": 17})
