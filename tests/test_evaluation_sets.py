"""The bundled model's evaluation scripts: the set builder's query texts and labels
(evaluation/default_model.py), the bar ceilings (evaluation/ceilings.py) and the text-transfer
measurements (evaluation/text_transfer.py)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"evaluation_{name}", REPO / "evaluation" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


evaluation = _script("default_model")
ceilings = _script("ceilings")
transfer = _script("text_transfer")


@pytest.mark.parametrize(
    ("tonic", "mode", "lang", "expected"),
    [
        ("F#", "minor", "en", "F-sharp minor"),
        ("Bb", "major", "en", "B-flat major"),
        ("F#", "minor", "sv", "Fiss-moll"),
        ("Bb", "major", "sv", "B-dur"),
        ("B", "minor", "sv", "H-moll"),
        ("Eb", "major", "tr", "Mi bemol majör"),
        ("G", "major", "vi", "Son trưởng"),
        ("C#", "minor", "vi", "Đô thăng thứ"),
    ],
)
def test_key_names(tonic, mode, lang, expected):
    assert evaluation.key_name(tonic, mode, lang) == expected


def test_queries_say_the_same_facts_in_every_language():
    record = {"genres": ["Irish tune", "double jig"]}
    analysis = {"key_tonic": "D", "key_mode": "major", "meter": "6/8"}
    assert evaluation.tune_type(record) == "double jig"
    queries = {lang: evaluation.query(record, analysis, lang) for lang in ("en", "sv", "tr", "vi")}
    assert queries == {
        "en": "A double jig in D major, in 6/8 time.",
        "sv": "En dubbeljigg i D-dur, i 6/8-takt.",
        "tr": "Re majör tonunda, 6/8 ölçülü bir çift jig.",
        "vi": "Một điệu jig đôi ở giọng Rê trưởng, nhịp 6/8.",
    }
    assert evaluation.query({"genres": ["air"]}, analysis, "en").startswith("An air in D major")
    assert (
        evaluation.query(record, analysis, "tr", key_lang="en") == "D major tonunda, 6/8 ölçülü bir çift jig."
    )
    assert evaluation.query(record, analysis, "vi", type_lang="en").startswith("Một double jig ở giọng Rê")
    assert evaluation.tune_type({"genres": ["tune"]}) == "tune"
    assert [evaluation.category(k) for k in ("chorale", "air", "reel")] == ["chorale", "air", "dance tune"]


def test_labelled_only_copies_just_the_labelled_files(tmp_path):
    folder = tmp_path / "abc"
    folder.mkdir()
    for name in ("a.abc", "b.abc", "c.abc"):
        (folder / name).write_text(name, encoding="utf-8")
    truth = tmp_path / "kind.csv"
    with truth.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "label"], ["a.abc", "reel"], ["c.abc", "jig"]])
    target = evaluation.labelled_only(folder, truth)
    assert target == tmp_path / "abc-kind"
    assert sorted(p.name for p in target.iterdir()) == ["a.abc", "c.abc"]
    assert (target / "c.abc").read_text(encoding="utf-8") == "c.abc"


def test_fact_ceiling_is_the_expected_mrr_of_a_ranker_knowing_only_the_facts():
    assert ceilings.fact_ceiling(["a", "a", "b"]) == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert ceilings.fact_ceiling(list(range(5))) == 1.0
    assert ceilings.fact_ceiling([0] * 4) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    rng = np.random.default_rng(0)  # the formula against simulation: random order within each group
    facts = ["x"] * 3 + ["y"] * 2
    simulated = []
    for _ in range(4000):
        order = rng.permutation(len(facts))
        ranks = [1 + sum(facts[j] == facts[i] for j in order[: list(order).index(i)]) for i in range(5)]
        simulated.append(np.mean([1 / r for r in ranks]))
    assert np.mean(simulated) == pytest.approx(ceilings.fact_ceiling(facts), abs=0.01)


def test_query_facts_reads_the_english_short_query():
    analysis = {"key_tonic": "Bb", "key_mode": "minor", "meter": "9/8"}
    english = evaluation.query({"genres": ["slip jig"]}, analysis, "en")
    assert ceilings.query_facts(english) == {"type": "slip jig", "key": "B-flat minor", "meter": "9/8"}
    with pytest.raises(ValueError, match="not a short English query"):
        ceilings.query_facts("Ein Reel in D-Dur.")


def test_nearest_translation_accuracy_counts_distinct_english_queries():
    english = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    same = ["A reel.", "A reel.", "A jig."]
    other = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])  # the second query lands on the jig
    assert ceilings.nearest_translation_accuracy(english, other, same) == pytest.approx(2 / 3)


def test_difference_directions_are_the_orthonormal_directions_where_translations_move():
    rng = np.random.default_rng(0)
    english = rng.normal(size=(200, 6))
    shift = np.zeros(6)
    shift[2] = 1.0
    translated = english + rng.normal(size=(200, 1)) * 3 * shift + 0.01 * rng.normal(size=(200, 6))
    directions = transfer.difference_directions(english, translated, 2)
    np.testing.assert_allclose(directions @ directions.T, np.eye(2), atol=1e-9)
    assert abs(directions[0, 2]) > 0.999


def test_code_switching_renames_the_key_in_the_texts_language():
    from clamp3.train.opendata.describe import Templates

    templates = Templates.load()
    text = "Un morceau de type reel, en mi mineur.\nDe Ryan (1883), en mi mineur."
    assert transfer.code_switched(text, "E", "minor", "fr", "en", templates) == (
        "Un morceau de type reel, en E minor.\nDe Ryan (1883), en E minor."
    )
    german = transfer.code_switched("Stücktyp: Hornpipe; Tonart: G-Dur.", "G", "major", "de", "it", templates)
    assert german == "Stücktyp: Hornpipe; Tonart: sol maggiore."
    assert transfer.code_switched("A reel.", "G", "major", "en", "de", templates) == "A reel."


def test_a_retrained_head_finds_fixed_targets_and_drops_removed_directions():
    rng = np.random.default_rng(1)
    targets = rng.normal(size=(512, 8)).astype(np.float32)
    mixing = rng.normal(size=(8, 12))
    vectors = np.stack([targets @ mixing, targets @ mixing + 0.1 * rng.normal(size=(512, 12))], 1).astype(
        np.float32
    )
    weight, bias = transfer.train_head(vectors, targets, seed=0)
    assert transfer.mrr(vectors[:, 0] @ weight.T + bias, targets) > 0.3  # random: 0.013
    removed = np.eye(12)[:1]
    weight, _ = transfer.train_head(vectors, targets, seed=0, removed=removed)
    np.testing.assert_allclose(weight[:, 0], 0.0, atol=1e-6)


def test_transposed_test_tunes_are_the_score_moved_by_the_drawn_interval(tmp_path, monkeypatch):
    pytest.importorskip("music21")
    import json

    from clamp3.preprocess.performance import notes_of, read_midi
    from clamp3.train.opendata.analysis import load_score, midi_bytes, quiet
    from clamp3.train.opendata.corpus import collection_pieces
    from clamp3.train.opendata.transpose import INTERVALS

    piece = collection_pieces("oneills1850")[0]
    data, out = tmp_path / "data", tmp_path / "test"
    data.mkdir()
    record = {"id": piece.id, "filepaths": ["music/tune.abc", "music/tune.mtf"], "title": "A tune"}
    (data / "test.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    rendered = []
    monkeypatch.setattr(evaluation, "training_pieces", lambda: [piece])  # not the whole corpus
    monkeypatch.setattr(evaluation, "_write_audio", lambda midi, name, targets, label: rendered.append(name))
    evaluation.build_transposed(out, data)
    (midi,) = (out / "midi-transposed").iterdir()
    sidecar = json.loads(next((out / "transposed-sources").glob("*_transposed.json")).read_text())
    step = next(i for i in INTERVALS if i.name == sidecar["transposition"])
    original = tmp_path / "original.mid"
    with quiet():
        original.write_bytes(midi_bytes(load_score(piece))[0])
    played = [
        [n.pitch for n in notes_of(read_midi(path.read_bytes(), str(path)))] for path in (original, midi)
    ]
    assert played[1] == [p + step.semitones for p in played[0]] and played[0]
    assert rendered == [f"{piece.id}@transposed"]
    evaluation.build_transposed(out, data)  # the MIDI exists: only the (skipped) rendering is asked for
    assert len(rendered) == 2 and len(list((out / "transposed-sources").iterdir())) == 4


def test_scored_ceiling_generalises_the_fact_ceiling_and_matches_simulation():
    facts = ["x", "x", "x", "y", "y", "z"]
    same = np.array([[a == b for b in facts] for a in facts], dtype=int)
    assert ceilings.scored_ceiling(same) == pytest.approx(ceilings.fact_ceiling(facts))
    # item 0's query ranks item 1 above its target, tied with nothing: rank 2 exactly
    scores = np.array([[1, 2, 0], [0, 1, 0], [0, 0, 1]])
    assert ceilings.scored_ceiling(scores) == pytest.approx((1 / 2 + 1 + 1) / 3)
    rng = np.random.default_rng(0)  # random tie-breaking, simulated
    scores = np.array([[2, 2, 1, 1], [1, 1, 0, 1], [2, 1, 2, 2], [0, 0, 0, 0]])
    simulated = []
    for _ in range(4000):
        shuffled = scores + rng.random(scores.shape) * 0.5  # below 1: keeps the order of unequal scores
        ranks = [1 + int(np.sum(row > row[i])) for i, row in enumerate(shuffled)]
        simulated.append(np.mean([1 / r for r in ranks]))
    assert np.mean(simulated) == pytest.approx(ceilings.scored_ceiling(scores), abs=0.01)


def test_named_meter_ranker_puts_the_genre_first_then_the_named_meter():
    assert ceilings.named_meter("A Viennese Waltz written in 1932.") == "3/4"
    assert ceilings.named_meter("It is in 3/4 time.") == "3/4"
    assert ceilings.named_meter("A song from 13/45 sessions, recorded in 1934.") is None
    genres = ["Pop", "Pop", "Jazz", "Pop"]
    meters = ["3/4", "4/4", "3/4", "3/4"]
    texts = ["A waltz.", "A ballad.", "A standard.", "A song."]
    scores = ceilings.genre_and_named_meter_scores(genres, meters, texts)
    np.testing.assert_array_equal(scores[0], [3, 2, 1, 3])  # the waltz: same genre and 3/4 first
    np.testing.assert_array_equal(scores[1], [2, 2, 0, 2])  # no named meter: the genre only
    assert ceilings.scored_ceiling(scores) > ceilings.fact_ceiling(genres)
