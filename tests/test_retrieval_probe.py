"""Linear probe: learns a separable problem, is deterministic, saves/loads, refuses foreign vectors."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error, InputError
from clamp3.retrieval import DimensionMismatchError, FeatureSet, LinearProbe, ModelMismatchError, ProbeConfig
from clamp3.retrieval.probe import stratified_split

MODEL = "clamp3-saas"


def separable(n_per_class: int = 40, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = 4.0 * np.eye(3, dim)
    vectors = np.concatenate([c + 0.5 * rng.standard_normal((n_per_class, dim)) for c in centres])
    labels = [name for name in ("jazz", "rock", "folk") for _ in range(n_per_class)]
    return vectors.astype(np.float32), labels


@pytest.fixture(scope="module")
def trained():
    vectors, labels = separable()
    return LinearProbe.fit(vectors, labels, embedding_model=MODEL, config=ProbeConfig(max_epochs=60))


def test_learns_a_separable_problem(trained):
    probe, report = trained
    assert probe.labels == ("folk", "jazz", "rock")
    assert probe.input_dim == 32 and probe.embedding_model == MODEL
    assert report.validation is not None
    assert report.validation.accuracy == 1.0 and report.validation.macro_f1 == 1.0
    assert report.validation.n_items == 24  # ceil(0.2 * 40) = 8 per class
    assert report.train.accuracy == 1.0 and report.train.n_items == 96
    assert 1 <= report.best_epoch <= report.epochs_run <= 60
    test_vectors, test_labels = separable(seed=1)
    assert probe.evaluate(test_vectors, test_labels, MODEL).accuracy == 1.0
    probabilities = probe.probabilities(test_vectors, MODEL)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert [probe.labels[i] for i in probabilities.argmax(axis=1)] == probe.predict(test_vectors, MODEL)


def test_training_is_deterministic(trained):
    probe, _ = trained
    vectors, labels = separable()
    again, _ = LinearProbe.fit(vectors, labels, embedding_model=MODEL, config=ProbeConfig(max_epochs=60))
    np.testing.assert_array_equal(again.weight, probe.weight)
    np.testing.assert_array_equal(again.bias, probe.bias)


def test_refuses_vectors_of_another_model_or_dimension(trained):
    probe, _ = trained
    vectors, _ = separable()
    with pytest.raises(ModelMismatchError, match="'clamp3-c2' but this probe was trained on 'clamp3-saas'"):
        probe.predict(vectors, "clamp3-c2")
    with pytest.raises(ModelMismatchError, match="name the embedding model"):
        probe.predict(vectors)
    with pytest.raises(DimensionMismatchError, match="dimension 16; this probe expects 32"):
        probe.predict(vectors[:, :16], MODEL)
    tagged = FeatureSet.from_vectors([f"{i}.npy" for i in range(len(vectors))], vectors, model=MODEL)
    assert probe.predict(tagged) == probe.predict(vectors, MODEL)
    foreign = FeatureSet.from_vectors(tagged.ids, vectors, model="clamp3-c2")
    with pytest.raises(ModelMismatchError):
        probe.predict(foreign)


def test_save_load_round_trip(trained, tmp_path):
    probe, _ = trained
    path = probe.save(tmp_path / "probe.safetensors")
    loaded = LinearProbe.load(path)
    assert (loaded.labels, loaded.input_dim, loaded.embedding_model) == (probe.labels, 32, MODEL)
    vectors, _ = separable(seed=2)
    assert loaded.predict(vectors, MODEL) == probe.predict(vectors, MODEL)
    np.testing.assert_array_equal(loaded.probabilities(vectors, MODEL), probe.probabilities(vectors, MODEL))


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read the probe"):
        LinearProbe.load(bad)
    with pytest.raises(InputError, match="cannot read the probe"):
        LinearProbe.load(tmp_path / "missing.safetensors")
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros((2, 3), np.float32)}, str(bad))
    with pytest.raises(InputError, match="not a clamp3 linear probe"):
        LinearProbe.load(bad)


def test_stratified_split():
    labels = ["a"] * 10 + ["b"] * 5 + ["c"]
    train, validation = stratified_split(labels, 0.2, seed=7)
    assert sorted([*train, *validation]) == list(range(16))
    assert [labels[i] for i in validation].count("a") == 2
    assert [labels[i] for i in validation].count("b") == 1
    assert "c" not in [labels[i] for i in validation]  # a single item stays in training
    again = stratified_split(labels, 0.2, seed=7)
    np.testing.assert_array_equal(again[1], validation)
    with pytest.raises(Clamp3Error, match="validation fraction"):
        stratified_split(labels, 1.0, seed=0)


def test_explicit_validation_and_label_checks():
    vectors, labels = separable(n_per_class=10)
    probe, report = LinearProbe.fit(
        vectors,
        labels,
        embedding_model=MODEL,
        config=ProbeConfig(max_epochs=5),
        validation=(vectors[:3], labels[:3]),
    )
    assert report.validation is not None and report.validation.n_items == 3
    assert report.train.n_items == 30
    with pytest.raises(Clamp3Error, match="not seen in training: pop"):
        LinearProbe.fit(vectors, labels, embedding_model=MODEL, validation=(vectors[:1], ["pop"]))
    with pytest.raises(Clamp3Error, match="two distinct labels"):
        LinearProbe.fit(vectors, ["x"] * len(vectors), embedding_model=MODEL)
    _, no_validation = LinearProbe.fit(
        vectors, labels, embedding_model=MODEL, config=ProbeConfig(max_epochs=3, validation_fraction=0.0)
    )
    assert no_validation.validation is None and no_validation.train.n_items == 30
    assert probe.predict(vectors[:1], MODEL) == ["jazz"]
