"""The open-data builder: corpus enumeration, licence guard, analysis, descriptions, build and split."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("music21")

from clamp3.preprocess.midi import midi_to_mtf
from clamp3.preprocess.performance import notes_of, read_midi
from clamp3.train.opendata.analysis import analyse, load_score, midi_bytes, quiet, scale_name
from clamp3.train.opendata.build import BuildSettings, assign_splits, build, original_id
from clamp3.train.opendata.corpus import (
    TRAINING_COLLECTIONS,
    EvaluationOnlyError,
    Metronome,
    check_training,
    collection_pieces,
    count_tunes,
    evaluation_pieces,
    tune_keys,
)
from clamp3.train.opendata.describe import TEMPO_FACTS, Templates, describe, describe_facts, facts_for
from clamp3.train.opendata.transpose import INTERVALS

DOC_COUNTS = {"ryansMammoth": 1059, "oneills1850": 2009, "airdsAirs": 1180, "miscFolk": 185, "chorales": 371}
"""Tune counts of docs/open-data.md section 1.1 (X: headers) and the chorale iterator."""
LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "zh", "ja", "ko")


@pytest.fixture(scope="module")
def corpus():
    return {name: collection_pieces(name) for name in TRAINING_COLLECTIONS}


@pytest.fixture(scope="module")
def templates():
    return Templates.load()


def piece(corpus, collection, file_part, number=None):
    return next(
        p for p in corpus[collection] if file_part in p.file and (number is None or p.number == number)
    )


def test_counts_match_the_open_data_doc(corpus):
    for name, expected in DOC_COUNTS.items():
        assert count_tunes(name) == expected
        assert len(corpus[name]) == expected
    assert len(evaluation_pieces()) == 8514
    ids = [p.id for pieces in corpus.values() for p in pieces]
    assert len(ids) == len(set(ids))


def test_metadata_of_named_tunes(corpus):
    banish = piece(corpus, "ryansMammoth", "BanishMisfortune")
    assert banish.id == "ryansMammoth/BanishMisfortune.abc#10"
    assert banish.metadata.titles == ("The Bag of Meal", "Banish Misfortune")
    assert (banish.metadata.rhythm, banish.metadata.meter, banish.metadata.source) == (
        "jig",
        "6/8",
        "Coles pg 75.2",
    )
    oneill = piece(corpus, "oneills1850", "0301-0350", "301")
    assert oneill.metadata.markings == ("With spirit",)  # "Collected by F.O'Neill" is not a tempo word
    assert oneill.metadata.collector == "F.O'Neill"
    aird = piece(corpus, "airdsAirs", "book1", "0001")
    assert aird.metadata.metronome == Metronome("1/2", 112)
    flute = piece(corpus, "airdsAirs", "book2", "0234")
    assert flute.metadata.titles == ("A Trip to Clumber",) and flute.metadata.instruments == ("flute",)
    chorale = corpus["chorales"][4]
    assert chorale.id == "bach/bwv267.mxl#R5" and chorale.musicxml.endswith("bwv267.mxl")
    assert chorale.metadata.titles[0] == "An Wasserflüssen Babylon" and chorale.metadata.bwv == "267"


def test_guard_refuses_evaluation_only_pieces(tmp_path):
    essen = evaluation_pieces()[:1]
    with pytest.raises(EvaluationOnlyError, match="essenFolksong.*evaluation-only"):
        check_training(essen)
    with pytest.raises(EvaluationOnlyError):
        build(tmp_path / "out", training=essen, evaluation=[], settings=BuildSettings(progress=False))
    assert not (tmp_path / "out").exists()


def test_analysis_of_a_jig_and_a_chorale(corpus):
    with quiet():
        jig = analyse(load_score(piece(corpus, "ryansMammoth", "BanishMisfortune")))
        chorale = analyse(load_score(corpus["chorales"][0]))
    assert (jig.key_tonic, jig.key_mode, jig.meter) == ("D", "major", "6/8")
    assert (jig.lowest, jig.highest, jig.semitones, jig.interval) == ("D4", "A5", 19, "Perfect Twelfth")
    assert (jig.notes, jig.parts, jig.texture) == (83, 1, "monophonic")
    assert (chorale.key_tonic, chorale.key_mode, chorale.meter, chorale.parts) == ("G", "major", "3/4", 4)
    assert chorale.part_names == ("Soprano", "Alto", "Tenor", "Bass") and chorale.texture == "voices"


def test_scale_names():
    assert scale_name((1, 3, 6, 8, 10)) == "pentatonic"
    assert scale_name((0, 2, 4, 7, 9, 11)) == "hexatonic"
    assert scale_name((0, 1, 2, 3, 4)) is None
    assert scale_name((0, 2, 4, 5, 7, 9, 11)) is None


def test_midi_always_has_a_tempo_and_survives_a_segno(corpus):
    slowly = piece(corpus, "miscFolk", "northumbrian", "3")  # Q:"Slowly and Smoothly": text only
    segno = piece(corpus, "ryansMammoth", "BoyInTheGap")  # a D.S. music21 cannot expand
    with quiet():
        data, notes = midi_bytes(load_score(slowly))
        segno_data, segno_notes = midi_bytes(load_score(segno))
    assert notes == () and "set_tempo 500000" in midi_to_mtf(data)
    assert segno_notes and "MIDI without repeats" in segno_notes[0]
    assert "note_on" in midi_to_mtf(segno_data)


def test_tunes_with_voices_are_read_through_musicxml(corpus):
    duet = piece(corpus, "miscFolk", "americanfife", "8")  # V:1 and V:2 in alternating blocks
    with quiet():
        score = load_score(duet)
        analysis = analyse(score)
        data, _ = midi_bytes(score)
    assert (analysis.parts, analysis.texture, analysis.meter) == (2, "voices", "2/2")
    assert midi_to_mtf(data).count("note_on") > analysis.notes  # repeats played out


def test_templates_cover_twelve_languages(templates):
    data = templates.data
    assert set(LANGUAGES) <= set(templates.languages) and templates.languages[0] == "en"
    facts = set(data["sentences"]["en"])
    for lang in templates.languages:
        assert set(data["sentences"][lang]) == facts, lang
        assert all(len(options) >= 2 for options in data["sentences"][lang].values()), lang
        tonics = data["keys"][lang]["tonic"]
        assert len(tonics) == 21 and set(data["keys"][lang]["modes"]) >= {"major", "minor", "dorian"}
    for kind, entries in data["vocabulary"].items():
        for key, words in entries.items():
            assert set(words) == set(templates.languages), (kind, key)
    for kind, aliases in data["aliases"].items():
        assert set(aliases.values()) <= set(data["vocabulary"][kind]), kind


def test_descriptions_use_each_languages_words(corpus, templates):
    banish = piece(corpus, "ryansMammoth", "BanishMisfortune")
    with quiet():
        facts = facts_for(banish, analyse(load_score(banish)), templates)
    assert (facts.tune_type, facts.key_tonic, facts.key_mode) == ("jig", "D", "major")
    for lang in LANGUAGES:
        text = "\n".join(describe(facts, lang, templates, salt=banish.id))
        assert templates.word("tune_type", "jig", lang).lower() in text.lower(), lang
        assert templates.key_name("D", "major", lang) in text, lang
        assert "6/8" in text and "D4" in text and "A5" in text, lang
        assert "None" not in text and "{" not in text, lang
    assert describe(facts, "de", templates, salt="x") == describe(facts, "de", templates, salt="x")


def test_tempo_sentences_only_with_tempo_facts(corpus, templates):
    banish = piece(corpus, "ryansMammoth", "BanishMisfortune")  # no Q:, no markings
    aird = piece(corpus, "airdsAirs", "book1", "0001")  # Q:1/2=112
    oneill = piece(corpus, "oneills1850", "0301-0350", "301")  # N:"With spirit"
    with quiet():
        analyses = {p.id: analyse(load_score(p)) for p in (banish, aird, oneill)}
    for lang in LANGUAGES:
        facts = {p.id: facts_for(p, analyses[p.id], templates) for p in (banish, aird, oneill)}
        named = {
            pid: {fact for fact, _ in describe_facts(f, lang, templates, pid)} for pid, f in facts.items()
        }
        assert not named[banish.id] & TEMPO_FACTS, lang
        assert {"metronome", "tempo_class"} <= named[aird.id], lang
        assert "character" in named[oneill.id] and "metronome" not in named[oneill.id], lang
        line = dict(describe_facts(facts[oneill.id], lang, templates, oneill.id))["character"]
        assert templates.word("character", "with spirit", lang) in line, lang
    # a marking outside the vocabulary says nothing, in no language
    unknown = replace(oneill, metadata=replace(oneill.metadata, markings=("2nd Setting", "Segno")))
    facts = facts_for(unknown, analyses[oneill.id], templates)
    assert facts.character == () and "character" not in dict(describe_facts(facts, "fr", templates))


def test_builder_writes_a_subset_and_resumes(tmp_path, corpus):
    chorales = corpus["chorales"]
    training = [
        piece(corpus, "ryansMammoth", "BanishMisfortune"),
        piece(corpus, "ryansMammoth", "BoyInTheGap"),
        piece(corpus, "oneills1850", "0301-0350", "301"),
        corpus["oneills1850"][0],
        piece(corpus, "airdsAirs", "book1", "0001"),
        piece(corpus, "airdsAirs", "book1", "0002"),
        piece(corpus, "miscFolk", "americanfife", "1"),
        piece(corpus, "miscFolk", "northumbrian", "3"),
        chorales[4],
        chorales[308],  # music21 lists the same file (bwv267) under Riemenschneider 5 and 309
    ]
    evaluation = evaluation_pieces()[:1]
    out = tmp_path / "data"
    settings = BuildSettings(workers=2, progress=False)
    summary = build(out, training, evaluation, settings)
    assert (summary.written, summary.failures) == (10 + 9, ())  # the 9 training pieces get a copy each
    assert summary.duplicates == (("bach/bwv267.mxl#R309", "bach/bwv267.mxl#R5"),)

    records = [
        json.loads(line)
        for name in ("train", "validation", "test")
        for line in (out / f"{name}.jsonl").open()
    ]
    assert len(records) == 9 and sum(summary.records[s] for s in ("train", "validation", "test")) == 9
    for record in records:
        assert set(record) >= {"id", "filepaths", "genres", "description", "analysis", "translations"}
        abc, mtf = record["filepaths"]
        assert abc.endswith(".abc") and mtf.endswith(".mtf")
        assert (out / abc).read_text().startswith(("%", "X:", "L:", "M:", "K:", "T:", "V:", "Q:", "I:", "C:"))
        assert (out / mtf).read_text().startswith("ticks_per_beat") and "set_tempo" in (out / mtf).read_text()
        assert (out / abc).with_suffix(".mid").read_bytes()[:4] == b"MThd"
        assert record["translations"]["language"] in Templates.load().data["languages"].values()
        assert record["translations"]["language"] != "English" and record["translations"]["description"]
        assert record["analysis"] == " ".join(record["description"].split("\n"))
    lines = [json.loads(line) for line in (out / "descriptions.jsonl").open()]
    assert all(set(entry["lines"]) >= set(LANGUAGES) for entry in lines)
    essen = [json.loads(line) for line in (out / "evaluation" / "essen.jsonl").open()]
    assert len(essen) == 1 and (out / "evaluation" / essen[0]["filepaths"][1]).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["music21"] and manifest["collections"]["chorales"]["duplicates"] == 1
    assert manifest["collections"]["essenFolksong"]["use"] == "evaluation only"
    split_ids = [
        i
        for name in ("train", "validation", "test")
        for i in (out / "splits" / f"{name}.txt").read_text().split()
    ]
    assert sorted(split_ids) == sorted(p.id for p in training)

    check_transposed_copies(out, records)

    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    again = build(out, training, evaluation, settings)
    assert (again.written, again.skipped) == (0, 19)
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before


def test_builder_without_copies_writes_no_transposed_files(tmp_path, corpus):
    training = [
        piece(corpus, "ryansMammoth", "BanishMisfortune"),
        piece(corpus, "airdsAirs", "book1", "0001"),
    ]
    out = tmp_path / "data"
    summary = build(out, training, [], BuildSettings(transposed=False, progress=False))
    assert (summary.written, summary.failures) == (2, ())
    assert set(summary.records) == {"train", "validation", "test"} and sum(summary.records.values()) == 2
    assert not (out / "transposed.jsonl").exists() and not list(out.rglob("*_transposed.*"))
    assert "transposed" not in json.loads((out / "manifest.json").read_text())
    assert json.loads((out / "summary.json").read_text())["records"] == summary.records


def midi_notes(abc: Path, shift: int) -> list[tuple[float, int]]:
    """``(onset, pitch + shift)`` of the notes of the MIDI file beside ``abc``, sorted."""
    midi = read_midi(abc.with_suffix(".mid").read_bytes(), str(abc))
    return sorted((round(n.start, 4), n.pitch + shift) for n in notes_of(midi))


def check_transposed_copies(out: Path, records: list[dict]) -> None:
    """Every training piece has a copy whose MIDI is its own moved by the copy's interval, whose key and
    range follow, and whose other facts stay."""
    from music21 import pitch

    copies = [json.loads(line) for line in (out / "transposed.jsonl").open()]
    originals = {r["id"]: r for r in records}
    assert sorted(original_id(c["id"]) for c in copies) == sorted(originals)
    assert json.loads((out / "manifest.json").read_text())["transposed"] == {"built": 9, "failed": 0}
    for copy in copies:
        name = copy["id"].rsplit("@", 1)[1]
        step = next(i for i in INTERVALS if i.name == name)
        original = originals[original_id(copy["id"])]
        before, after = (
            json.loads((out / r["filepaths"][0]).with_suffix(".json").read_text())["analysis"]
            for r in (original, copy)
        )
        assert copy["filepaths"][0].endswith("_transposed.abc") and "abc" in copy["filepaths"][0]
        moved, played = (
            midi_notes(out / r["filepaths"][0], shift) for r, shift in ((copy, 0), (original, step.semitones))
        )
        assert moved == played and moved, copy["id"]
        assert (after["notes"], after["bars"], after["semitones"]) == (
            before["notes"],
            before["bars"],
            before["semitones"],
        )
        assert (pitch.Pitch(after["lowest"]).midi - pitch.Pitch(before["lowest"]).midi) == step.semitones
        shifted = pitch.Pitch(before["key_tonic"]).transpose(step.name).name.replace("-", "b")
        assert after["key_tonic"] == shifted or after["written_tonic"], copy["id"]
        assert copy["title"] == original.get("title") and copy["genres"] == original["genres"]
        abc = (out / copy["filepaths"][0]).read_text()
        assert abc != (out / original["filepaths"][0]).read_text() and "\nK:" in abc


def test_split_is_by_tune_and_deterministic(corpus):
    pieces = [p for name in TRAINING_COLLECTIONS for p in corpus[name]]
    splits = assign_splits(pieces, 42, (0.90, 0.05, 0.05))
    assert splits == assign_splits(list(pieces), 42, (0.90, 0.05, 0.05))
    assert splits != assign_splits(pieces, 7, (0.90, 0.05, 0.05))
    shares = {
        name: sum(s == name for s in splits.values()) / len(pieces)
        for name in ("train", "validation", "test")
    }
    assert abs(shares["train"] - 0.90) < 0.01 and abs(shares["test"] - 0.05) < 0.01
    by_key: dict[str, set[str]] = {}
    for p in pieces:
        for key in tune_keys(p):
            by_key.setdefault(key, set()).add(splits[p.id])
    assert all(len(found) == 1 for found in by_key.values())
    # O'Neill's prints no. 732 in two files (two transcribers): one tune, one split
    twins = [
        p for p in corpus["oneills1850"] if re.search(r"0732-0758_(bs|mh)", p.file) and p.number == "732"
    ]
    assert len(twins) == 2 and splits[twins[0].id] == splits[twins[1].id]


def test_the_committed_split_is_what_the_builder_assigns():
    pytest.importorskip("music21")
    from clamp3.train.opendata.build import assign_splits
    from clamp3.train.opendata.corpus import training_pieces

    folder = Path(__file__).resolve().parents[1] / "data" / "opendata-splits"
    committed = {
        line: split
        for split in ("train", "validation", "test")
        for line in (folder / f"{split}.txt").read_text().splitlines()
    }
    assigned = assign_splits(training_pieces(), 42, (0.9, 0.05, 0.05))
    assert assigned == committed
