"""Linear probe: learns a separable problem, is deterministic, saves/loads, refuses foreign vectors;
class-balanced training, per-epoch validation scores, and the CLI's file-name labels."""

from __future__ import annotations

import numpy as np
import pytest

from clamp3.errors import Clamp3Error, InputError
from clamp3.retrieval import DimensionMismatchError, FeatureSet, LinearProbe, ModelMismatchError, ProbeConfig
from clamp3.retrieval.probe import class_weights, stratified_split

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


def overlapping(n_a: int, n_b: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Two overlapping labels, "b" shifted by 1 along the first axis."""
    rng = np.random.default_rng(seed)
    shift = np.eye(1, 8)[0]
    vectors = np.concatenate([rng.standard_normal((n_a, 8)), rng.standard_normal((n_b, 8)) + shift])
    return vectors.astype(np.float32), ["a"] * n_a + ["b"] * n_b


def test_class_weights_give_every_label_the_same_total():
    weights = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    np.testing.assert_allclose(weights, [6 / 12, 6 / 4, 6 / 8, 0.0])


def test_balanced_training_stops_ignoring_the_rare_label():
    vectors, labels = overlapping(180, 20, seed=0)
    test_vectors, test_labels = overlapping(200, 200, seed=1)
    scores = {}
    for balanced in (False, True):
        config = ProbeConfig(max_epochs=50, validation_fraction=0.0, balanced=balanced)
        probe, _ = LinearProbe.fit(vectors, labels, embedding_model=MODEL, config=config)
        scores[balanced] = (
            probe.predict(test_vectors, MODEL).count("b"),
            probe.evaluate(test_vectors, test_labels, MODEL),
        )
    assert scores[False][0] < 100 < scores[True][0]  # of 200 "b" test items
    assert scores[True][1].macro_f1 > scores[False][1].macro_f1 + 0.1


def test_history_scores_every_epoch_and_the_best_is_kept():
    vectors, labels = overlapping(60, 60, seed=2)
    validation = overlapping(30, 30, seed=3)
    probe, report = LinearProbe.fit(
        vectors,
        labels,
        embedding_model=MODEL,
        config=ProbeConfig(max_epochs=15, patience=15),
        validation=validation,
    )
    assert [score.epoch for score in report.history] == list(range(1, 16)) and report.epochs_run == 15
    best = max(report.history, key=lambda s: (s.accuracy, -s.loss))
    assert report.best_epoch == best.epoch
    assert report.validation is not None and report.validation.accuracy == best.accuracy
    assert report.validation.macro_f1 == pytest.approx(best.macro_f1)
    assert probe.evaluate(*validation, MODEL).accuracy == best.accuracy


def test_cli_labels_from_file_names_validation_folder_and_balanced(tmp_path):
    from click.testing import CliRunner

    from clamp3.cli import main

    rng = np.random.default_rng(4)
    centres = {"jazz": 4.0 * np.eye(1, 16)[0], "rock": -4.0 * np.eye(1, 16)[0]}
    for folder, counts in (("train", {"jazz": 12, "rock": 3}), ("val", {"jazz": 4, "rock": 4})):
        (tmp_path / folder).mkdir()
        for label, count in counts.items():
            for i in range(count):
                vector = centres[label] + 0.3 * rng.standard_normal(16)
                np.save(tmp_path / folder / f"{label}_{i:03d}.npy", vector[None].astype(np.float32))
    probe_path = tmp_path / "probe.safetensors"
    args = ["probe", "train", str(tmp_path / "train"), "-o", str(probe_path), "--epochs", "8"]
    result = CliRunner().invoke(main, [*args, "--validation", str(tmp_path / "val"), "--balanced"])
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 8 and epochs[0].startswith("epoch 1: validation accuracy ")
    assert result.stdout.startswith("validation accuracy: 1.0000  macro-F1: 1.0000")
    probe = LinearProbe.load(probe_path)
    assert probe.labels == ("jazz", "rock") and probe.embedding_model == "precomputed"
    predicted = CliRunner().invoke(main, ["probe", "predict", str(probe_path), str(tmp_path / "val")])
    assert [line.split("\t")[1] for line in predicted.stdout.splitlines()] == ["jazz"] * 4 + ["rock"] * 4
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    np.save(unlabelled / "nolabel.npy", np.zeros((1, 16), np.float32))
    refused = CliRunner().invoke(main, ["probe", "train", str(unlabelled), "-o", str(probe_path)])
    assert refused.exit_code == 1 and "file name has no 'label_' prefix" in refused.output
