"""Classification metrics, labels files and zero-shot classification with a fake text encoder."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error, InputError
from clamp3.retrieval import (
    FeatureSet,
    ZeroShotClassifier,
    classification_report,
    default_templates,
    labels_for,
    labels_from_filenames,
    read_labels_csv,
    template_languages,
)
from clamp3.retrieval.plots import plot_confusion_matrix
from clamp3.retrieval.zero_shot import fill_templates, label_vectors


def test_classification_report_hand_example():
    report = classification_report(list("aaabbc"), list("aabbcc"), labels=["a", "b", "c", "d"])
    assert report.labels == ("a", "b", "c", "d")
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.f1 == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3, "d": 0.0})
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)  # "d" occurs nowhere: not averaged
    np.testing.assert_array_equal(report.confusion, [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert report.n_items == 6


def test_classification_report_counts_wrong_extra_labels():
    report = classification_report(["a", "b"], ["a", "x"])
    assert report.labels == ("a", "b", "x")
    assert report.f1 == {"a": 1.0, "b": 0.0, "x": 0.0}
    assert report.macro_f1 == pytest.approx(1 / 3)
    with pytest.raises(Clamp3Error, match="2 true labels against 1"):
        classification_report(["a", "b"], ["a"])


def test_read_labels_csv(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        '\ufeffpath,label\nsub/song.mp3, jazz\n\nother.npy,rock\n"x,y.mid",folk\n', encoding="utf-8"
    )
    assert read_labels_csv(path) == {"sub/song": "jazz", "other": "rock", "x,y": "folk"}
    features = FeatureSet.from_vectors(["other.npy", "sub/song.npy", "sub/song.take2.npy"], np.eye(3))
    assert labels_for(features, read_labels_csv(path)) == ["rock", "jazz", "jazz"]
    missing = FeatureSet.from_vectors(["unknown.npy"], np.eye(3)[:1])
    with pytest.raises(Clamp3Error, match=r"1 file\(s\) have no label: unknown\.npy"):
        labels_for(missing, read_labels_csv(path))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a.mp3,jazz,extra\n", "line 1: expected 'path,label'"),
        ("a.mp3,jazz\nb.mp3,\n", "line 2: expected 'path,label'"),
        ("a.mp3,jazz\na.npy,rock\n", "line 2: 'a' is labelled both 'jazz' and 'rock'"),
        ("path,label\n", "no labels found"),
    ],
)
def test_bad_labels_files(tmp_path, text, reason):
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_labels_csv(path)
    assert caught.value.reason.startswith(reason)
    assert caught.value.path == str(path)


def test_labels_from_reference_file_names():
    features = FeatureSet.from_vectors(["jazz_001.npy", "sub/rock_a_b.npy"], np.eye(2))
    assert labels_from_filenames(features) == ["jazz", "rock"]
    with pytest.raises(InputError, match="no 'label_' prefix"):
        labels_from_filenames(FeatureSet.from_vectors(["plain.npy"], np.eye(1)))


def test_default_templates_cover_the_model_languages():
    languages = template_languages()
    for code in ("en", "de", "fr", "es", "it", "pt", "zh", "ja", "ko", "ru"):
        assert code in languages
        templates = default_templates(code)
        assert len(templates) >= 3 and all("{label}" in t for t in templates)
    assert default_templates()[0] == "This piece of music is {label}."
    with pytest.raises(Clamp3Error, match="no default templates for language 'xx'"):
        default_templates("xx")


LABELS = ["jazz", "rock"]
TEMPLATES = ["A {label} song.", "{label}"]


def fake_encoder(texts: list[str]) -> np.ndarray:
    """Dimension 0/1: which label the text names; 2/3: which template; scaled to show normalisation."""
    vectors = np.zeros((len(texts), 4), np.float32)
    for row, text in enumerate(texts):
        vectors[row, 0 if "jazz" in text else 1] = 1.0
        vectors[row, 2 if text.startswith("A ") else 3] = 0.5
        vectors[row] *= row + 1
    return vectors


def test_label_vectors_are_means_of_normalised_template_embeddings():
    assert fill_templates(LABELS, TEMPLATES) == ["A jazz song.", "jazz", "A rock song.", "rock"]
    vectors = label_vectors(LABELS, fake_encoder, TEMPLATES)
    expected_jazz = np.array([1.0, 0.0, 0.25, 0.25]) / 1.125**0.5
    np.testing.assert_allclose(vectors[0], expected_jazz, atol=1e-6)
    np.testing.assert_allclose(vectors[1], expected_jazz[[1, 0, 2, 3]], atol=1e-6)


def test_zero_shot_probabilities_top_k_and_metrics(tmp_path):
    classifier = ZeroShotClassifier.from_labels(LABELS, fake_encoder, templates=TEMPLATES, scale=1.0)
    music = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]], np.float32)
    cos = 1 / 1.125**0.5
    np.testing.assert_allclose(classifier.similarities(music)[0], [cos, 0.0], atol=1e-6)
    p_jazz = 1 / (1 + np.exp(-cos))
    np.testing.assert_allclose(classifier.probabilities(music)[0], [p_jazz, 1 - p_jazz], atol=1e-6)
    assert classifier.predict(music) == ["jazz", "rock", "rock"]
    top = classifier.top_k(music, k=5)
    assert [label for label, _ in top[1]] == ["rock", "jazz"]
    assert top[1][0][1] == pytest.approx(p_jazz, abs=1e-6)
    sharp = ZeroShotClassifier(classifier.labels, classifier.label_vectors)  # default scale 100
    assert sharp.probabilities(music)[0, 0] == pytest.approx(1 / (1 + np.exp(-100 * cos)), abs=1e-9)
    report = classifier.evaluate(music, ["jazz", "jazz", "rock"])
    assert report.accuracy == pytest.approx(2 / 3)
    np.testing.assert_array_equal(report.confusion, [[1, 1], [0, 1]])
    assert report.macro_f1 == pytest.approx((2 / 3 + 2 / 3) / 2)
    pytest.importorskip("matplotlib")
    png = plot_confusion_matrix(report, tmp_path / "confusion.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_zero_shot_default_and_custom_templates():
    seen: list[list[str]] = []

    def recording_encoder(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return fake_encoder(texts)

    ZeroShotClassifier.from_labels(LABELS, recording_encoder, language="de")
    assert seen[-1][0] == "Dieses Musikstück ist jazz."
    assert len(seen[-1]) == 2 * len(default_templates("de"))
    ZeroShotClassifier.from_labels(["jazz", "rock", "jazz"], recording_encoder, templates=["Genre: {label}"])
    assert seen[-1] == ["Genre: jazz", "Genre: rock"]
    with pytest.raises(Clamp3Error, match="no {label} placeholder"):
        ZeroShotClassifier.from_labels(LABELS, fake_encoder, templates=["Genre: {}"])
    with pytest.raises(Clamp3Error, match="at least two distinct labels"):
        ZeroShotClassifier.from_labels(["jazz", "jazz"], fake_encoder)
    with pytest.raises(Clamp3Error, match="returned 1 vectors for 8 texts"):
        ZeroShotClassifier.from_labels(LABELS, lambda texts: np.ones((1, 4)))
