import json
import random

import numpy as np
import pytest
import torch

from clamp3 import CLaMP3
from clamp3.errors import Clamp3Error
from tests.tiny import MODALITY_METHOD, expected_outputs, load_case_input, tiny_dir, tiny_tokenizer

ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def index(reference_dir):
    return json.loads((tiny_dir(reference_dir) / "index.json").read_text())


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("modality", ["text", "symbolic", "audio"])
def test_public_api_matches_reference(reference_dir, index, attn, batch_size, modality):
    directory = tiny_dir(reference_dir)
    model = CLaMP3.from_pretrained(directory, attn_implementation=attn)
    cases = [c for c in index if c["modality"] == modality]
    random.Random(batch_size).shuffle(cases)
    inputs = [load_case_input(directory, c) for c in cases]
    encode = getattr(model, MODALITY_METHOD[modality])
    global_vectors = encode(inputs, batch_size=batch_size)
    local_vectors = encode(inputs, batch_size=batch_size, global_features=False)
    assert global_vectors.shape == (len(cases), 24) and global_vectors.dtype == np.float32
    for case, g, local in zip(cases, global_vectors, local_vectors, strict=True):
        expected_global, expected_local = expected_outputs(directory, case)
        np.testing.assert_allclose(g, expected_global, atol=ATOL, rtol=RTOL, err_msg=case["case"])
        assert local.shape == expected_local.shape, case["case"]
        assert local.dtype == np.float32
        np.testing.assert_allclose(local, expected_local, atol=ATOL, rtol=RTOL, err_msg=case["case"])


def test_audio_accepts_both_shapes_and_rejects_others(reference_dir):
    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    features = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    flat, batched = model.encode_audio_features([features, features[None]])
    np.testing.assert_array_equal(flat, batched)
    with pytest.raises(ValueError, match=r"audio features 0: expected shape \[n_windows, 32\]"):
        model.encode_audio_features([np.zeros((5, 31), dtype=np.float32)])
    with pytest.raises(ValueError, match="audio features 0: no windows"):
        model.encode_audio_features([np.zeros((0, 32), dtype=np.float32)])


def test_bad_inputs_name_the_item(reference_dir):
    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    with pytest.raises(ValueError, match=r"text ids 1: token ids must lie in \[0, 1000\)"):
        model.encode_text_ids([[0, 5, 2], [0, 1000, 2]])
    with pytest.raises(ValueError, match="symbolic input 0: empty"):
        model.encode_symbolic([""])
    with pytest.raises(TypeError, match="must be a list"):
        model.encode_symbolic("X:1\n")
    assert model.encode_symbolic([]).shape == (0, 24)


def test_text_without_tokenizer_is_a_clear_error(reference_dir):
    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    with pytest.raises(Clamp3Error, match="no text tokenizer; use encode_text_ids"):
        model.encode_text(["a calm piano piece"])


def test_encode_text_joins_lines_with_separator(reference_dir, tmp_path):
    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    model._tokenizer = tiny_tokenizer(["a", "calm", "piano", "piece", "with", "brushes", "jazz", "trio"])
    ids = model.tokenize(["a calm piano piece\njazz trio\na calm piano piece\n"])
    vocab = model.tokenizer.get_vocab()
    words = [vocab[w] for w in ("a", "calm", "piano", "piece")]
    assert ids == [[0, *words, 2, vocab["jazz"], vocab["trio"], 2]]
    np.testing.assert_array_equal(
        model.encode_text(["a calm piano piece\njazz trio"]), model.encode_text_ids(ids)
    )
    # saving keeps the tokenizer, loading restores it
    model.save_pretrained(tmp_path / "saved")
    reloaded = CLaMP3.from_pretrained(tmp_path / "saved")
    assert reloaded.tokenize(["jazz trio"]) == model.tokenize(["jazz trio"])


def test_bf16_autocast_stays_close_to_fp32(reference_dir, index):
    directory = tiny_dir(reference_dir)
    cases = [c for c in index if c["modality"] == "symbolic"]
    inputs = [load_case_input(directory, c) for c in cases]
    fp32 = CLaMP3.from_pretrained(directory).encode_symbolic(inputs)
    bf16_model = CLaMP3.from_pretrained(directory, dtype="bf16")
    assert bf16_model.autocast_dtype == torch.bfloat16
    bf16 = bf16_model.encode_symbolic(inputs)
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99
    assert not np.array_equal(fp32, bf16)
    with pytest.raises(ValueError, match="unknown dtype"):
        CLaMP3.from_pretrained(directory, dtype="int3")


def test_pooled_text_features_by_layer(reference_dir):
    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    model._tokenizer = tiny_tokenizer(["a", "calm", "piano", "piece", "jazz", "trio"])
    texts = ["a calm piano piece", "jazz trio", "a piano trio with a calm piece"]
    last = model.pooled_text_features(texts, batch_size=2)
    # the last layer is what the projection reads: the mean of the unprojected local features
    local = model.encode_text(texts, global_features=False)
    np.testing.assert_allclose(last, np.stack([rows.mean(axis=0) for rows in local]), atol=1e-6)
    layers = model.config.text.encoder.num_layers
    np.testing.assert_allclose(model.pooled_text_features(texts, layer=layers), last, atol=1e-6)
    # layer 0: the embedding output, averaged over each text's tokens
    ids = model.tokenize(texts)
    with torch.inference_mode():
        embedded = [model.model.text_model.embeddings(input_ids=torch.tensor([row])) for row in ids]
    expected = np.stack([e[0].mean(dim=0).numpy() for e in embedded])
    first = model.pooled_text_features(texts, layer=0)
    np.testing.assert_allclose(first, expected, atol=1e-5)
    assert not np.allclose(first, last, atol=1e-3)
