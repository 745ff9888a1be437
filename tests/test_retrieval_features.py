"""Feature folders: keys, deterministic order, shapes, collected errors, key matching."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error, InputError
from clamp3.retrieval import (
    FeatureFolderError,
    FeatureSet,
    UnmatchedKeysError,
    feature_key,
    load_features,
    match_keys,
    read_feature_folder,
)


def _write(root, rel, array):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(array, dtype=np.float32))


@pytest.mark.parametrize(
    ("relative", "key"),
    [
        ("p01.npy", "p01"),
        ("p03.alt1.npy", "p03"),
        ("sub/p12.take1.npy", "sub/p12"),
        ("a/b/c/song.v2.final.npy", "a/b/c/song"),
        ("sub\\deeper\\x.npy", "sub/deeper/x"),
        ("/sub//x.npy", "sub/x"),
        ("./sub/x.wav", "sub/x"),
        ("sub/x", "sub/x"),
    ],
)
def test_feature_key(relative, key):
    assert feature_key(relative) == key


def test_feature_key_of_empty_path_is_an_error():
    with pytest.raises(Clamp3Error, match="empty path"):
        feature_key("//")


def test_folder_is_loaded_recursively_in_a_fixed_order(tmp_path):
    for rel, value in [
        ("b.npy", 2),
        ("p03.alt2.npy", 5),
        ("p03.npy", 3),
        ("p03.alt1.npy", 4),
        ("sub/deep/z.npy", 7),
        ("sub/a.npy", 6),
        (".hidden.npy", 99),
        (".git/x.npy", 99),
    ]:
        _write(tmp_path, rel, [[value, 0.0, 1.0]])
    (tmp_path / "notes.txt").write_text("not a feature")
    _write(tmp_path, "flat.npy", [1.0, 1.0, 1.0])  # (D,) is accepted too
    for spelled in (tmp_path, f"{tmp_path}/", str(tmp_path).replace("/", "/./")):
        features = load_features(spelled)
        assert features.ids == (
            "b.npy",
            "flat.npy",
            "p03.npy",
            "p03.alt1.npy",
            "p03.alt2.npy",
            "sub/a.npy",
            "sub/deep/z.npy",
        )
        assert features.keys == ("b", "flat", "p03", "p03", "p03", "sub/a", "sub/deep/z")
    assert features.vectors.dtype == np.float32
    assert features.vectors.shape == (7, 3)
    np.testing.assert_array_equal(features.vectors[:, 0], [2, 1, 3, 4, 5, 6, 7])
    assert features.groups["p03"] == [2, 3, 4]
    assert features.paths[0] == str(tmp_path / "b.npy")


def test_bad_files_are_all_reported(tmp_path):
    _write(tmp_path, "good1.npy", [[1.0, 2.0, 3.0]])
    _write(tmp_path, "good2.npy", [[1.0, 2.0, 4.0]])
    _write(tmp_path, "sub/temporal.npy", np.ones((1, 5, 3)))
    _write(tmp_path, "batch.npy", np.ones((2, 3)))
    _write(tmp_path, "short.npy", [[1.0, 2.0]])
    _write(tmp_path, "nan.npy", [[1.0, np.nan, 2.0]])
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    (tmp_path / "broken.npy").write_bytes(b"not numpy at all")
    features, errors = read_feature_folder(tmp_path)
    assert features.ids == ("good1.npy", "good2.npy")
    reasons = {error.path.rsplit("/", 1)[-1]: error.reason for error in errors}
    assert set(reasons) == {"temporal.npy", "batch.npy", "short.npy", "nan.npy", "text.npy", "broken.npy"}
    assert "per-position" in reasons["temporal.npy"]
    assert "(2, 3)" in reasons["batch.npy"]
    assert "dimension 2 differs from 3" in reasons["short.npy"]
    assert "NaN" in reasons["nan.npy"]
    assert "not a number type" in reasons["text.npy"]
    assert "not a readable .npy" in reasons["broken.npy"]
    with pytest.raises(FeatureFolderError) as caught:
        load_features(tmp_path)
    assert len(caught.value.errors) == 6
    assert "6 bad feature file(s)" in str(caught.value) and "\n" not in str(caught.value)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        load_features(tmp_path / "nope")
    with pytest.raises(InputError, match="no .npy feature files"):
        load_features(tmp_path)


def test_feature_set_from_fresh_vectors():
    features = FeatureSet.from_vectors(
        ["sub/a.mid", "sub/a.2.mid", "b.wav"], [np.ones((1, 4)), np.zeros(4), np.full(4, 2.0)], model="saas"
    )
    assert features.vectors.shape == (3, 4) and features.dim == 4 and len(features) == 3
    assert features.keys == ("sub/a", "sub/a", "b")
    assert features.paths == features.ids
    assert features.model == "saas"
    with pytest.raises(Clamp3Error, match="counts must agree"):
        FeatureSet.from_vectors(["a"], np.ones((2, 4)))
    with pytest.raises(Clamp3Error, match=r"\(N, D\)"):
        FeatureSet.from_vectors(["a"], np.ones((1, 2, 3, 4)))


def test_match_keys_lists_unmatched_files():
    queries = FeatureSet.from_vectors(["a.npy", "a.x.npy", "b.npy", "lonely.npy", "lonely.2.npy"], np.eye(5))
    references = FeatureSet.from_vectors(["b.npy", "a.npy", "orphan.npy"], np.eye(5)[:3])
    match = match_keys(queries, references)
    assert match.common == ("b", "a")
    assert match.unmatched_queries == ("lonely.npy", "lonely.2.npy")
    assert match.unmatched_references == ("orphan.npy",)
    with pytest.raises(
        UnmatchedKeysError, match=r"3 unmatched file\(s\).*lonely\.npy.*orphan\.npy.*2 common"
    ):
        match.require(allow_unmatched=False)
    match.require(allow_unmatched=True)
    nothing = match_keys(queries, FeatureSet.from_vectors(["z.npy"], np.eye(5)[:1]))
    with pytest.raises(Clamp3Error, match="no key in common"):
        nothing.require(allow_unmatched=True)
