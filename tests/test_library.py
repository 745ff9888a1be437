"""The persistent library (LanceDB, embedded): incremental add, search, ANN, export, model checks, CLI."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import clamp3
from clamp3.cli import main
from clamp3.errors import Clamp3Error
from clamp3.hub.identity import model_identity
from clamp3.library import Library, LibrarySettings
from clamp3.modality import FileKind
from clamp3.pipeline import PipelineOptions
from tests.tiny import tiny_model_with_tokenizer

THREE_TUNES = """X:1
T:First Tune
C:Anon
M:4/4
L:1/8
K:D
DEFG ABcd|dcBA GFED|DEFG ABcd|d4 D4|]

X:2
T:Second Tune
R:jig
M:6/8
L:1/8
K:G
GAB cde|dcB AGF|GAB cde|g3 G3|]

X:3
T:Third Tune
M:3/4
L:1/8
K:A
A2 B2 c2|e4 c2|B2 A2 F2|A6|]
"""


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny-library-model"))


@pytest.fixture(scope="module")
def model(model_dir):
    return clamp3.load_model(str(model_dir))


def mixed_music(reference_dir, root):
    """A small mixed folder: a three-tune ABC file, MIDI, audio, texts and a broken MIDI file."""
    (root / "scores").mkdir(parents=True)
    (root / "scores" / "three.abc").write_text(THREE_TUNES)
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", root / "bwv66.mid")
    shutil.copy(reference_dir / "mert" / "audio" / "main_24k_mono.wav", root / "mono.wav")
    (root / "calm.txt").write_text("a calm chorale for four voices\n")
    (root / "reel.txt").write_text("an irish reel\n")
    (root / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06")
    return root


@pytest.fixture()
def music(reference_dir, tmp_path):
    return mixed_music(reference_dir, tmp_path / "music")


@pytest.fixture()
def options(reference_dir):
    return PipelineOptions(mert=str(reference_dir / "mert" / "model"))


def _rows(library: Library) -> dict[str, tuple[str, np.ndarray]]:
    table = library._store.query(["id", "path", "vector"])
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)), "duplicate ids"
    vectors = np.stack(table["vector"].to_numpy(zero_copy_only=False)) if ids else np.zeros((0, 24))
    return {i: (p, v) for i, p, v in zip(ids, table["path"].to_pylist(), vectors, strict=True)}


def test_model_identity_matches_the_loaded_model_without_loading_it(model_dir, model):
    identity = model_identity(str(model_dir))
    assert (identity.fingerprint, identity.dim) == (model.fingerprint, 24)
    official = model_identity("saas")  # weights not on this machine: known dimension, no fingerprint yet
    assert (official.fingerprint, official.dim) == (None, 768)


def test_incremental_add_change_move_and_prune(model_dir, model, music, options, tmp_path):
    library = Library.create(tmp_path / "lib", model=str(model_dir))
    report = library.add([music], options=options)
    assert [f.path for f in report.failures] == [str(music / "broken.mid")]
    assert library.errors() == {str(music / "broken.mid"): report.failures[0].reason}
    assert report.embedded == 7 and report.unchanged == 0  # 3 tunes, midi, audio, 2 texts
    stats = library.stats()
    assert stats["rows"] == 7 and stats["dim"] == 24 and stats["fingerprint"] == model.fingerprint
    assert stats["by_kind"] == {"abc": 3, "midi": 1, "audio": 1, "text": 2}
    tunes = {
        row["path"]: row
        for row in library._store.query(["path", "title", "composer", "tags", "bars"]).to_pylist()
    }
    first = tunes[f"{music / 'scores' / 'three.abc'}#1"]
    assert (first["title"], first["composer"], first["bars"]) == ("First Tune", "Anon", 4)
    assert json.loads(tunes[f"{music / 'scores' / 'three.abc'}#2"]["tags"])["rhythm"] == "jig"
    # the vectors are the pipeline's, unit length
    direct = model.encode_text(["an irish reel"])[0]
    (hit,) = library.search(vector=direct, k=1)
    assert hit.path == str(music / "reel.txt") and hit.score == pytest.approx(1.0, abs=1e-5)
    before = _rows(library)

    again = library.add([music], options=options)
    assert (again.embedded, again.reused, again.unchanged, again.removed) == (0, 0, 5, 0)
    assert _rows(library).keys() == before.keys()

    (music / "calm.txt").write_text("a calm reel\n")  # changed: embedded again
    os.replace(music / "bwv66.mid", music / "scores" / "moved.mid")  # moved: vector reused
    (music / "scores" / "three.abc").write_text(THREE_TUNES.split("\nX:3")[0])  # one tune fewer
    report = library.add([music], options=options)
    assert (report.embedded, report.reused, report.removed) == (3, 1, 1)
    rows = _rows(library)
    paths = {path: vector for path, vector in rows.values()}
    assert str(music / "bwv66.mid") not in paths
    old_midi = next(v for p, v in before.values() if p == str(music / "bwv66.mid"))
    np.testing.assert_allclose(paths[str(music / "scores" / "moved.mid")], old_midi, atol=1e-6)
    expected = model.encode_text(["a calm reel"])[0]
    np.testing.assert_allclose(paths[str(music / "calm.txt")], expected / np.linalg.norm(expected), atol=1e-5)
    assert len(rows) == 6

    (music / "broken.mid").write_bytes((music / "scores" / "moved.mid").read_bytes() + b"\0")  # fixed
    library.add([music], options=options)
    assert library.errors() == {}
    (music / "broken.mid").unlink()
    library.add([music], options=options, prune=True)
    (music / "reel.txt").unlink()
    kept = library.add([music], options=options)
    assert kept.removed == 0 and len(library) == 6  # without --prune a vanished file stays
    pruned = library.add([music], prune=True, options=options)
    assert pruned.removed == 1 and len(library) == 5
    assert str(music / "reel.txt") not in {p for p, _ in _rows(library).values()}


def test_another_model_is_refused_with_both_names(model_dir, tmp_path):
    Library.create(tmp_path / "lib", model=str(model_dir))
    with pytest.raises(Clamp3Error) as caught:
        Library.open(tmp_path / "lib", model="default")
    message = str(caught.value)
    assert "'default'" in message and str(model_dir) in message and "\n" not in message
    assert Library.open(tmp_path / "lib", model=str(model_dir)).model_name == str(model_dir)


def test_a_library_of_a_model_without_local_weights_takes_vectors(tmp_path):
    library = clamp3.Library.create(tmp_path / "lib", model="saas")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20, 768)).astype(np.float32)
    library.add_vectors([f"v{i}" for i in range(20)], vectors, kinds=["audio"] * 10 + ["midi"] * 10)
    hits = library.search(vector=vectors[3], k=3)
    assert hits[0].id == "v3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score
    assert all(h.kind == "midi" for h in library.search(vector=vectors[3], k=5, kinds={FileKind.MIDI}))
    with pytest.raises(Clamp3Error, match="dimension 768"):
        library.add_vectors(["bad"], np.zeros((1, 10)))


def test_search_filters_like_and_bad_filters(model_dir, music, options, tmp_path):
    library = Library.create(tmp_path / "lib", model=str(model_dir))
    library.add([music], options=options)
    abc = library.search(text="an irish reel", k=10, kinds={FileKind.ABC})
    assert len(abc) == 3 and {h.kind for h in abc} == {"abc"}
    jig = library.search(text="an irish reel", k=10, where="tags LIKE '%jig%'")
    assert [h.title for h in jig] == ["Second Tune"]
    seed = abc[0].id
    similar = library.search(like=seed, k=10)
    assert seed not in {h.id for h in similar} and len(similar) == 6
    exact = [np.dot(library.vector(seed), library.vector(h.id)) for h in similar]
    np.testing.assert_allclose([h.score for h in similar], exact, atol=1e-5)
    assert exact == sorted(exact, reverse=True)
    with pytest.raises(Clamp3Error, match="the search failed") as caught:
        library.search(text="x", where="no_such_column = 1")
    assert "\n" not in str(caught.value)
    with pytest.raises(Clamp3Error, match="no item with id"):
        library.search(like="0000")


def test_ann_index_recall_on_a_clustered_set(model_dir, tmp_path):
    library = Library.create(
        tmp_path / "lib", model=str(model_dir), settings=LibrarySettings(ann_threshold=3000)
    )
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((60, 24))
    labels = rng.integers(0, 60, 4000)
    vectors = centres[labels] + 0.35 * rng.standard_normal((4000, 24))
    library.add_vectors([f"v{i}" for i in range(2000)], vectors[:2000])
    assert library.stats()["index"] is None  # below the threshold: exact search
    library.add_vectors([f"v{i}" for i in range(2000, 4000)], vectors[2000:])  # passes it: index built
    assert Library.open(tmp_path / "lib").configure(nprobes=4).nprobes == 4
    assert Library.open(tmp_path / "lib").settings.nprobes == 4
    with pytest.raises(Clamp3Error, match="unknown library setting"):
        library.configure(probes=3)
    index = library.stats()["index"]
    assert index["type"] == "IVF_RQ" and index["indexed_rows"] == 4000 and index["recall@10"] >= 0.95
    queries = centres[rng.integers(0, 60, 40)] + 0.35 * rng.standard_normal((40, 24))
    recall = np.mean(
        [
            len(
                {h.id for h in library.search(vector=q)}
                & {h.id for h in library.search(vector=q, exact=True)}
            )
            / 10
            for q in queries
        ]
    )
    assert recall >= 0.95


def test_export_round_trips_through_search(model_dir, music, options, tmp_path):
    library = Library.create(tmp_path / "lib", model=str(model_dir))
    library.add([music], options=options)
    assert library.export(tmp_path / "out.parquet") == 7
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names[:4] == ["id", "path", "kind", "vector"]
    rows = _rows(library)
    for id_, vector in zip(table["id"].to_pylist(), table["vector"].to_pylist(), strict=True):
        np.testing.assert_allclose(vector, rows[id_][1], atol=1e-7)
    assert library.export(tmp_path / "npy", format="npy") == 7
    assert (tmp_path / "npy" / "scores" / "three.2.npy").is_file() and (
        tmp_path / "npy" / "bwv66.npy"
    ).is_file()
    query = tmp_path / "query.npy"
    np.save(query, rows[next(iter(rows))][1][None])
    from_files = clamp3.search(query, [tmp_path / "npy"], k=7)
    from_library = library.search(vector=np.load(query)[0], k=7)
    np.testing.assert_allclose([h.score for h in from_files.hits], [h.score for h in from_library], atol=1e-5)


def test_cli_end_to_end(model_dir, music, reference_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    lib = str(tmp_path / "lib")
    monkeypatch.setenv("CLAMP3_LIBRARY", lib)
    model = ["--model", str(model_dir), "--mert", str(reference_dir / "mert" / "model"), "--quiet"]

    def run(*args: str, code: int = 0):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    run("library", "init", lib, "--model", str(model_dir))
    added = run("library", "add", music, *model, code=1)  # broken.mid fails, the rest is indexed
    assert f"failed: {music / 'broken.mid'}: " in added.output
    stats = json.loads(run("library", "stats", "--json").stdout)
    assert stats["rows"] == 7 and stats["by_kind"]["abc"] == 3 and stats["model"] == str(model_dir)
    hits = [
        json.loads(line)
        for line in run("library", "search", "--text", "an irish reel", "--json", *model).stdout.splitlines()
    ]
    plain = [
        json.loads(line)
        for line in run(
            "search", "--text", "an irish reel", "--library", lib, "--json", *model
        ).stdout.splitlines()
    ]
    folder = [
        json.loads(line)
        for line in run(
            "search", "--text", "an irish reel", music, "--json", *model, code=1
        ).stdout.splitlines()
    ]
    assert hits == plain and len(hits) == 7
    assert set(hits[0]) == set(folder[0])  # the same JSON lines as searching the folder
    assert [h["path"] for h in hits] == [h["path"] for h in folder]
    np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in folder], atol=1e-5)
    wrong = run("library", "search", "--text", "x", "--model", "default", code=1)
    assert "cannot be used with 'default'" in wrong.output
    removed = run("library", "remove", hits[0]["id"], "nope", code=1)
    assert "removed 1 of 2" in removed.output
    assert json.loads(run("library", "stats", "--json").stdout)["rows"] == 6
    assert "too few rows" in run("library", "optimize").output
    from_python = clamp3.search(None, [], text="an irish reel", library=lib, model=str(model_dir), k=3)
    assert [h.id for h in from_python.hits] == [h["id"] for h in hits[1:4]] and from_python.candidates == 6
    run("library", "export", tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 6
    bad = run("library", "search", "--text", "x", "--where", "nonsense ===", *model, code=1)
    assert bad.output.startswith("Error: the search failed")
