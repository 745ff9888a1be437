"""Vector files of ``clamp3 embed --format npz|parquet`` as inputs of search, score, eval and probe;
``--modality`` on vector files and on bare ``.npy`` folders; probes that know their vectors' model."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from clamp3.api import search
from clamp3.cli import main
from clamp3.retrieval import ModelMismatchError, read_vector_file
from tests.tiny import tiny_model_with_tokenizer


@pytest.fixture(scope="module")
def setup(reference_dir, tmp_path_factory):
    """Five files of four kinds (labels before the first ``_``), the tiny model, and their vectors
    as an .npz, a .parquet and a folder of bare .npy files."""
    root = tmp_path_factory.mktemp("vectors")
    library = root / "library"
    (library / "scores").mkdir(parents=True)
    folk = reference_dir / "xml2abc" / "folk_abc"
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", library / "chorale_bwv66.mid")
    shutil.copy(
        reference_dir / "xml2abc" / "xml" / "chorale_bwv66_6.mxl", library / "scores" / "chorale_bwv66.mxl"
    )
    shutil.copy(folk / "oneills_0002.abc", library / "scores" / "reel_oneills.abc")
    shutil.copy(folk / "essen_ballad10_0.abc", library / "scores" / "ballad_essen.abc")
    (library / "calm_about.txt").write_text("a calm chorale for four voices\n")
    model = tiny_model_with_tokenizer(reference_dir, root / "model")
    runner = CliRunner()
    for fmt, output in (("npz", root / "v.npz"), ("parquet", root / "v.parquet"), ("npy", root / "npy")):
        result = runner.invoke(
            main, ["embed", str(library), "-o", str(output), "--format", fmt, "-m", str(model), "--quiet"]
        )
        assert result.exit_code == 0, result.output
    return root, library, str(model)


def hits(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_embed_records_the_model_name_and_both_files_read_back_alike(setup):
    root, _, model = setup
    npz, parquet = read_vector_file(root / "v.npz"), read_vector_file(root / "v.parquet")
    assert npz.model_name == parquet.model_name == model
    assert npz.model == parquet.model and len(npz.model) == 64  # the weights fingerprint
    assert npz.ids == parquet.ids and len(npz) == 5
    assert sorted(npz.modalities) == ["abc", "abc", "midi", "musicxml", "text"]
    np.testing.assert_array_equal(npz.vectors, parquet.vectors)


@pytest.mark.parametrize("name", ["v.npz", "v.parquet"])
def test_search_a_vector_file_like_the_files(setup, run, name):
    root, library, model = setup
    from_files = hits(run("search", "--text", "a calm chorale", library, "-m", model, "--json", "--quiet"))
    from_vectors = hits(run("search", "--text", "a calm chorale", root / name, "--json", "--quiet"))
    assert [(h["id"], h["modality"]) for h in from_vectors] == [(h["id"], h["modality"]) for h in from_files]
    assert [h["score"] for h in from_vectors] == pytest.approx([h["score"] for h in from_files], abs=1e-5)
    assert len(from_vectors) == 5


def test_score_and_eval_read_vector_files(setup, run):
    root, library, _model = setup
    both = run("score", root / "v.npz", root / "v.parquet", "--json")
    assert both.exit_code == 0, both.output
    assert json.loads(both.stdout) == {"mode": "pairwise", "score": pytest.approx(1.0), "pairs": 5}
    against_files = run("score", root / "v.parquet", library, "--json", "--quiet")
    assert json.loads(against_files.stdout)["score"] == pytest.approx(1.0, abs=1e-5)
    evaluation = run("eval", root / "v.npz", root / "npy", "--json")
    assert json.loads(evaluation.stdout)["mrr"] == 1.0


def test_vectors_of_another_model_are_refused(setup, run, tmp_path):
    root, _library, model = setup
    data = dict(np.load(root / "v.npz"))
    np.savez(tmp_path / "other.npz", **{**data, "model": np.array("f" * 64), "model_name": np.array("c2")})
    named = run("search", "--text", "a calm chorale", tmp_path / "other.npz", "-m", model, "--quiet")
    assert named.exit_code == 1 and len(named.output.strip().splitlines()) == 1
    assert "vectors of model 'c2' (ffffffffffff), but the model in use is" in named.output
    assert f"'{model}' (" in named.output
    mixed = run("score", tmp_path / "other.npz", root / "v.npz")
    assert mixed.exit_code == 1 and "vectors of different models: 'c2' (ffffffffffff) and" in mixed.output
    with pytest.raises(ModelMismatchError):
        search(root / "npy" / "calm_about.npy", [tmp_path / "other.npz"], model=model)


def test_modality_filters_vector_files(setup, run):
    root, _, _ = setup
    symbolic = hits(
        run("search", "--text", "a calm chorale", root / "v.npz", "--modality", "symbolic", "--json")
    )
    assert sorted(h["modality"] for h in symbolic) == ["abc", "abc", "midi", "musicxml"]
    (text,) = hits(
        run("search", "--text", "a calm chorale", root / "v.parquet", "--modality", "text", "--json")
    )
    assert text["id"] == "calm_about.txt"
    assert hits(run("search", "--text", "x", root / "v.npz", "--modality", "audio", "--json")) == []


def test_modality_is_refused_on_bare_npy_vectors(setup, run):
    root, _, model = setup
    result = run("search", "--text", "a calm chorale", root / "npy", "--modality", "audio", "-m", model)
    assert result.exit_code == 1
    assert "do not record their modality, so they cannot be filtered by it" in result.output
    query = root / "npy" / "calm_about.npy"
    by_vector = run("search", query, root / "npy", "--modality", "text")
    assert by_vector.exit_code == 1 and "cannot be filtered" in by_vector.output


def test_probe_trained_on_vector_files_accepts_its_models_files(setup, run, tmp_path):
    root, library, _model = setup
    probe = tmp_path / "probe.safetensors"
    trained = run("probe", "train", root / "v.npz", "-o", probe, "--epochs", "20")
    assert trained.exit_code == 0, trained.output
    on_vectors = run("probe", "predict", probe, root / "v.parquet", "--json")
    on_files = run("probe", "predict", probe, library, "--json", "--quiet")
    assert on_files.exit_code == 0, on_files.output
    rows = [json.loads(line) for line in on_vectors.stdout.splitlines()]
    assert {r["label"] for r in rows} <= {"ballad", "calm", "chorale", "reel"} and len(rows) == 5
    assert [json.loads(line)["label"] for line in on_files.stdout.splitlines()] == [r["label"] for r in rows]


def test_probe_on_bare_npy_vectors_learns_their_model_from_dash_m(setup, run, tmp_path):
    root, library, model = setup
    declared, undeclared = tmp_path / "declared.safetensors", tmp_path / "undeclared.safetensors"
    assert run("probe", "train", root / "npy", "-o", declared, "-m", model, "--epochs", "5").exit_code == 0
    assert run("probe", "train", root / "npy", "-o", undeclared, "--epochs", "5").exit_code == 0
    accepted = run("probe", "predict", declared, library, "--quiet")
    assert accepted.exit_code == 0, accepted.output
    assert len(accepted.stdout.splitlines()) == 5
    refused = run("probe", "predict", undeclared, library, "-m", model, "--quiet")
    assert refused.exit_code == 1 and "but this probe was trained on 'precomputed' vectors" in refused.output
    both = run("probe", "train", root / "npy", "-o", declared, "-m", model, "--features-model", "x")
    assert both.exit_code == 2 and "not both" in both.output


def test_zero_shot_classify_reads_a_vector_file_with_its_model(setup, run):
    root, library, model = setup
    from_vectors = run("classify", root / "v.npz", "--labels", "chorale,reel", "--json", "--quiet")
    from_files = run("classify", library, "--labels", "chorale,reel", "--json", "-m", model, "--quiet")
    assert from_vectors.exit_code == 0, from_vectors.output
    rows = [json.loads(line) for line in from_vectors.stdout.splitlines()]
    assert rows == [json.loads(line) for line in from_files.stdout.splitlines()] and len(rows) == 5
