"""The Python API behaves as sentence-transformers users expect: options on every encoder, a
similarity helper, readable reprs, and a model loaded once for many task calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clamp3
from clamp3 import CLaMP3
from clamp3.preprocess.sheet import sheet_to_interleaved
from tests.tiny import tiny_model_with_tokenizer


@pytest.fixture(scope="module")
def model(reference_dir, tmp_path_factory):
    return CLaMP3.from_pretrained(tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny")))


def test_encoders_normalize_and_convert_to_tensor(model, reference_dir):
    texts = ["an irish reel", "a calm chorale for four voices"]
    plain = model.encode_text(texts)
    unit = model.encode_text(texts, normalize=True)
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain, axis=1, keepdims=True), rtol=1e-6)
    assert not np.allclose(np.linalg.norm(plain, axis=1), 1.0)  # the reference's vectors are not unit length
    tensor = model.encode_text(texts, normalize=True, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), unit, rtol=1e-6)
    local = model.encode_text(texts, global_features=False, normalize=True, convert_to_tensor=True)
    assert [t.shape[1] for t in local] == [model.config.text.encoder.hidden_size] * 2
    np.testing.assert_allclose(torch.linalg.norm(local[0], dim=-1).numpy(), 1.0, rtol=1e-5)
    features = np.random.default_rng(0).normal(size=(3, model.config.audio.feature_size)).astype(np.float32)
    audio = model.encode_audio_features([features], normalize=True)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, rtol=1e-6)


def test_encode_symbolic_takes_what_sheet_to_interleaved_returns(model, reference_dir):
    items = sheet_to_interleaved(reference_dir / "xml2abc" / "xml" / "two_voices.xml")
    np.testing.assert_array_equal(
        model.encode_symbolic(items), model.encode_symbolic([item.text for item in items])
    )


def test_similarity_is_the_cosine_matrix(model):
    a = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    b = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], np.float32)
    expected = np.array([[1, 0, -1], [2**-0.5, 2**-0.5, -(2**-0.5)]], np.float32)
    np.testing.assert_allclose(model.similarity(a, b), expected, rtol=1e-6)
    scores = model.similarity(torch.from_numpy(a), b[0])
    assert isinstance(scores, torch.Tensor) and scores.shape == (2, 1)
    np.testing.assert_allclose(scores.numpy()[:, 0], expected[:, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="vectors of 2 and 3 dimensions"):
        model.similarity(a, np.ones(3))


def test_reprs_say_what_they_hold(model, tmp_path, monkeypatch):
    fingerprint = model.fingerprint[:12]
    assert repr(model) == f"CLaMP3(dim=24, device='cpu', dtype=float32, fingerprint='{fingerprint}')"
    (tmp_path / "reel.txt").write_text("an irish reel\n")
    (tmp_path / "calm.txt").write_text("a calm chorale\n")
    (tmp_path / "bad.txt").write_text("   \n")
    embedded = clamp3.embed([tmp_path], model=model, cache=False)
    assert repr(embedded) == "Embeddings(2 items, vectors (2, 24), 1 failures, 0 skipped)"
    # a model loaded once serves many calls: nothing is loaded again
    monkeypatch.setattr(CLaMP3, "from_pretrained", lambda *a, **k: pytest.fail("loaded again"))
    result = clamp3.search(None, [tmp_path], text="an irish reel", model=model, cache=False)
    assert repr(result).startswith(
        f"SearchResult(query='an irish reel', 2 hits of 2 candidates, best {result.hits[0].path!r} ("
    )
    assert repr(result).endswith(", 1 failures)")
    labels = clamp3.zero_shot([tmp_path], ["reel", "chorale"], model=model, cache=False)
    assert repr(labels) == "ZeroShotResult(2 items, labels=['reel', 'chorale'], 1 failures)"
