"""CLaMP 1 retrieval: order, probabilities and printout of the reference's clamp.py runs."""

import json
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch

from clamp3.clamp1 import CLaMP1, format_results, load_music, rank
from clamp3.clamp1.retrieval import Match
from clamp3.errors import InputError

ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def model(clamp1_dir):
    return CLaMP1.from_pretrained(clamp1_dir / "tiny_model", device="cpu")


def _run(clamp1_dir, name):
    return json.loads((clamp1_dir / "tiny_model" / "retrieval" / f"{name}.json").read_text(encoding="utf-8"))


def _check(run, query, keys, labels, query_text=None):
    matches = rank(query, keys, run["top_n"])
    assert [m.index for m in reversed(matches)] == run["printed_indices_in_print_order"]
    for match in matches:
        assert match.probability == pytest.approx(run["values_softmax"][match.index], abs=1e-6)
        assert match.similarity == pytest.approx(run["sims_cosine_similarity"][match.index], abs=1e-5)
    assert format_results(matches, labels, query_text) == run["printed_result_block"]
    full = rank(query, keys)
    assert [m.index for m in reversed(full)] == run["argsort_ascending"]


def test_music_query_against_text_keys(clamp1_dir, model):
    run = _run(clamp1_dir, "music_query_vs_text_keys")
    query_text = load_music(clamp1_dir / run["query"]["mxl"])
    assert query_text == run["query_string_encoded"]
    query = model.encode_symbolic([query_text])[0]
    np.testing.assert_allclose(query, run["query_feature"], atol=ATOL, rtol=RTOL)
    keys = model.encode_text_ids([key["ids"] for key in run["keys"]], batch_size=4)
    np.testing.assert_allclose(keys, run["key_features"], atol=ATOL, rtol=RTOL)
    _check(run, query, keys, run["printed_content"])
    stdout = (clamp1_dir / "tiny_model" / run["stdout_file"]).read_text(encoding="utf-8")
    assert stdout.endswith(format_results(rank(query, keys, run["top_n"]), run["printed_content"]))


def test_text_query_against_music_keys(clamp1_dir, model):
    run = _run(clamp1_dir, "text_query_vs_music_keys")
    query = model.encode_text_ids([run["query"]["ids"]])[0]
    inputs = clamp1_dir / "abc_filter" / "inputs"
    texts = [load_music(inputs / PurePosixPath(key["filename"]).name) for key in run["keys"]]
    with pytest.raises(InputError):  # the key the reference skips ("not successfully loaded")
        load_music(inputs / "aloha_oe_fails.mxl")
    keys = model.encode_symbolic(texts, batch_size=5)
    np.testing.assert_allclose(keys, run["key_features"], atol=ATOL, rtol=RTOL)
    _check(run, query, keys, run["printed_content"], run["query_string_encoded"])
    stdout = (clamp1_dir / "tiny_model" / run["stdout_file"]).read_text(encoding="utf-8")
    assert stdout.endswith(run["printed_result_block"])


@pytest.mark.parametrize(
    ("name", "modal"), [("music_query_vs_text_keys", "text"), ("text_query_vs_music_keys", "music")]
)
def test_key_caches_written_by_the_reference(clamp1_dir, model, name, modal):
    run = _run(clamp1_dir, name)
    cache = torch.load(clamp1_dir / "tiny_model" / run["key_cache_file"], weights_only=True)
    assert cache["filenames" if modal == "music" else "keys"] == run["key_cache_order"]
    if modal == "text":
        ids = {key["text"]: key["ids"] for key in run["keys"]}
        ours = model.encode_text_ids([ids[key] for key in cache["keys"]])
    else:
        ours = model.encode_symbolic(cache["keys"], batch_size=3)
        folder = clamp1_dir / "abc_filter" / "inputs"
        assert cache["keys"] == [load_music(folder / PurePosixPath(f).name) for f in cache["filenames"]]
    np.testing.assert_allclose(ours, cache["features"].numpy(), atol=ATOL, rtol=RTOL)


def _reference_order(query: np.ndarray, keys: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The reference's formula in float64: softmax over keys of cos * e, ascending order."""
    q = query / np.linalg.norm(query)
    k = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    logits = (k @ q) * np.e
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    return np.argsort(probabilities, kind="stable").tolist(), probabilities


@pytest.mark.parametrize("size", [512, 1024])
def test_real_cache_rankings(clamp1_dir, size):
    folder = clamp1_dir / "real_cache"
    text_keys = json.loads((folder / "text_keys.json").read_text())
    texts = np.load(folder / text_keys[f"features_{size}"])
    music = np.load(folder / json.loads((folder / "music_keys.json").read_text())[f"features_{size}"])
    assert texts.shape == (5, 768) and music.shape == (10, 768)
    pairs = [(q, texts) for q in music] + [(q, music) for q in texts]
    for query, keys in pairs:
        expected_order, probabilities = _reference_order(query.astype(np.float64), keys.astype(np.float64))
        matches = rank(query, keys)
        assert [m.index for m in reversed(matches)] == expected_order
        np.testing.assert_allclose(
            [m.probability for m in matches], probabilities[expected_order[::-1]], atol=1e-6
        )
        assert sum(m.probability for m in matches) == pytest.approx(1.0, abs=1e-5)
    printed = format_results(rank(music[0], texts, 2), text_keys["keys"])
    best = rank(music[0], texts, 1)[0]
    assert printed.endswith(f"Sim: {best.similarity:.4f}:\n{text_keys['keys'][best.index]}\n\n")


def test_rank_checks_its_inputs():
    keys = np.eye(3, dtype=np.float32)
    matches = rank(np.array([0.0, 2.0, 1.0]), keys, 2)
    assert [m.index for m in matches] == [1, 2]
    assert matches[0].similarity == pytest.approx(2 / 5**0.5, abs=1e-6)
    assert isinstance(matches[0], Match) and matches[0].probability > matches[1].probability
    with pytest.raises(ValueError, match=r"keys must be a non-empty \[n, 3\] matrix"):
        rank(np.ones(3), np.ones((2, 4)))
    with pytest.raises(ValueError, match="top_n must be >= 0"):
        rank(np.ones(3), keys, -1)
