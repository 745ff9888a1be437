"""The task commands end to end on a small mixed folder with the tiny model, a tiny MERT and a tiny BLIP."""

import itertools
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from clamp3.model.engine import EncoderBase
from clamp3.preprocess.mert import MertExtractor
from tests.tiny import build_tiny_blip, tiny_model_with_tokenizer


@pytest.fixture(scope="module")
def setup(reference_dir, tmp_path_factory):
    """A mixed library and the model options pointing at tiny local models."""
    ref = reference_dir
    root = tmp_path_factory.mktemp("cli")
    library = root / "library"
    (library / "scores").mkdir(parents=True)
    shutil.copy(ref / "xml2abc" / "xml" / "chorale_bwv66_6.mxl", library / "scores" / "bwv66.mxl")
    folk = ref / "xml2abc" / "folk_abc"
    (library / "scores" / "tunes.abc").write_text(
        (folk / "oneills_0002.abc").read_text() + "\n" + (folk / "essen_ballad10_0.abc").read_text()
    )
    shutil.copy(ref / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", library / "bwv66.mid")
    shutil.copy(ref / "mert" / "audio" / "main_24k_mono.wav", library / "mono.wav")
    (library / "about.txt").write_text("a calm chorale for four voices\n")
    Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8)).save(library / "cover.png")
    (library / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06")
    options = [
        "--model",
        str(tiny_model_with_tokenizer(ref, root / "model")),
        "--mert",
        str(ref / "mert" / "model"),
        "--captioner",
        str(build_tiny_blip(root / "blip")),
        "--quiet",
    ]
    return library, options


@pytest.fixture()
def model_calls(monkeypatch):
    """Counts encoder forward loops and MERT runs."""
    calls = {"encoder": 0, "mert": 0}
    run_pieces, iter_extract = EncoderBase.run_pieces, MertExtractor.iter_extract

    def counting_run(self, *args, **kwargs):
        calls["encoder"] += 1
        return run_pieces(self, *args, **kwargs)

    def counting_extract(self, *args, **kwargs):
        calls["mert"] += 1
        return iter_extract(self, *args, **kwargs)

    monkeypatch.setattr(EncoderBase, "run_pieces", counting_run)
    monkeypatch.setattr(MertExtractor, "iter_extract", counting_extract)
    return calls


def test_embed_mirrors_the_tree_reports_failures_and_caches(setup, run, model_calls, tmp_path):
    library, options = setup
    first = run("embed", library, "-o", tmp_path / "out", *options)
    assert first.exit_code == 1  # broken.mid
    assert "failed: " in first.output and "broken.mid: " in first.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.npy"))
    assert written == [
        "about.npy",
        "bwv66.npy",
        "cover.npy",
        "mono.npy",
        "scores/bwv66.npy",
        "scores/tunes.1.npy",
        "scores/tunes.2.npy",
    ]
    assert all(np.load(tmp_path / "out" / name).shape == (1, 24) for name in written)
    assert model_calls == {"encoder": 3, "mert": 1}
    second = run("embed", library, "-o", tmp_path / "again", *options)
    assert second.exit_code == 1
    assert model_calls == {"encoder": 3, "mert": 1}  # nothing new: every vector came from the cache
    for name in written:
        np.testing.assert_array_equal(np.load(tmp_path / "again" / name), np.load(tmp_path / "out" / name))


def test_embed_local_and_npz(setup, run, tmp_path):
    library, options = setup
    local = run("embed", library / "bwv66.mid", "-o", tmp_path / "local", "--local", *options)
    assert local.exit_code == 0, local.output
    assert np.load(tmp_path / "local" / "bwv66.npy").shape == (1, 338, 32)  # the MTF fixture has 338 patches
    npz = run("embed", library / "scores", "-o", tmp_path / "all.npz", "--format", "npz", *options)
    assert npz.exit_code == 0, npz.output
    data = np.load(tmp_path / "all.npz")
    assert list(data["ids"]) == ["bwv66.mxl", "tunes.abc#2", "tunes.abc#1"]
    assert data["vectors"].shape == (3, 24) and list(data["modality"]) == ["musicxml", "abc", "abc"]


def test_search_by_text_and_by_file(setup, run):
    library, options = setup
    by_text = run("search", "--text", "a calm chorale", library, "-k", "3", "--json", *options)
    hits = [json.loads(line) for line in by_text.stdout.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(hits))
    assert by_text.exit_code == 1  # the broken file is reported after the results
    by_file = run("search", library / "about.txt", library, "--modality", "symbolic", "--json", *options)
    kinds = {json.loads(line)["modality"] for line in by_file.stdout.splitlines()}
    assert kinds == {"musicxml", "abc", "midi"}
    images = run("search", "--text", "a picture", library, "--modality", "image", "--json", *options)
    (hit,) = [json.loads(line) for line in images.stdout.splitlines()]
    assert hit["path"].endswith("cover.png") and hit["caption"]


def test_score_and_eval_between_two_folders_of_files(setup, run, tmp_path):
    library, options = setup
    generated = tmp_path / "generated"
    generated.mkdir()
    shutil.copy(library / "bwv66.mid", generated / "bwv66.1.mid")
    shutil.copy(library / "scores" / "bwv66.mxl", generated / "bwv66.2.mxl")
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy(library / "bwv66.mid", reference / "bwv66.mid")
    result = run("score", generated, reference, "--json", *options)
    assert result.exit_code == 0, result.output
    values = json.loads(result.stdout)
    assert (
        values["pairs"] == 2 and 0.0 < values["score"] < 1.0
    )  # one identical file (1.0), one other rendering
    evaluation = run("eval", generated, reference, "--json", *options)
    assert json.loads(evaluation.stdout)["mrr"] == 1.0


def test_classify_and_probe(setup, run, tmp_path):
    library, options = setup
    result = run("classify", library / "scores", "--labels", "chorale,reel", "--json", *options)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3 and all(abs(sum(t["probability"] for t in r["top"]) - 1) < 1e-6 for r in rows)
    features = tmp_path / "features"
    collided = run("embed", library / "scores", library / "bwv66.mid", "-o", features, *options)
    assert collided.exit_code == 1 and "bwv66.mid: its output" in collided.output  # bwv66.npy is taken
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nbwv66,chorale\ntunes,folk\n")
    trained = run(
        "probe", "train", features, "--labels", labels, "-o", tmp_path / "probe.safetensors", "--epochs", "30"
    )
    assert trained.exit_code == 0, trained.output
    predicted = run("probe", "predict", tmp_path / "probe.safetensors", features, "--json")
    labels_out = {json.loads(line)["id"]: json.loads(line)["label"] for line in predicted.stdout.splitlines()}
    assert labels_out == {"bwv66.npy": "chorale", "tunes.1.npy": "folk", "tunes.2.npy": "folk"}
    wrong = run("probe", "predict", tmp_path / "probe.safetensors", features, "--features-model", "other")
    assert wrong.exit_code == 1 and "trained on 'precomputed' vectors" in wrong.output


def test_clear_errors(setup, run, tmp_path):
    library, options = setup
    (tmp_path / "empty").mkdir()
    empty = run("embed", tmp_path / "empty", "-o", tmp_path / "o", *options)
    assert empty.exit_code == 1 and "no input files found in" in empty.output
    missing = run("search", "--text", "x", tmp_path / "nope", *options)
    assert missing.exit_code == 1 and "nope: no such file or directory" in missing.output
    unknown = run("embed", library / "about.txt", "-o", tmp_path / "o", "--model", "no-such-model")
    assert unknown.exit_code == 1 and "neither an existing path nor a known model name" in unknown.output
    info = run("cache", "info")
    assert "feature cache:" in info.output
    cleared = run("cache", "clear")
    assert cleared.exit_code == 0 and "removed" in cleared.output


def test_classify_with_ground_truth_csv_and_confusion_matrix(setup, run, tmp_path):
    library, options = setup
    truth = tmp_path / "truth.csv"
    truth.write_text("id,label\nbwv66,chorale\ntunes,reel\n")
    result = run(
        "classify",
        library / "scores",
        "--labels",
        "chorale,reel",
        "--template",
        "A {label}.",
        "--truth",
        truth,
        "--confusion",
        tmp_path / "cm.png",
        "--csv",
        tmp_path / "out.csv",
        *options,
    )
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == "id,prediction,chorale,reel" and len(rows) == 4
    predictions = {row.split(",")[0]: row.split(",")[1] for row in rows[1:]}
    truth_of = {"bwv66.mxl": "chorale", "tunes.abc#2": "reel", "tunes.abc#1": "reel"}
    accuracy = sum(predictions[i] == truth_of[i] for i in truth_of) / 3
    assert f"accuracy: {accuracy:.4f}" in result.output
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_embed_parquet(setup, run, tmp_path):
    import pyarrow.parquet as pq

    library, options = setup
    result = run("embed", library / "scores", "-o", tmp_path / "v.parquet", "--format", "parquet", *options)
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.column("id").to_pylist() == ["bwv66.mxl", "tunes.abc#2", "tunes.abc#1"]
    assert np.asarray(table.column("vector").to_pylist()).shape == (3, 24)
    assert table.schema.metadata[b"model"]
