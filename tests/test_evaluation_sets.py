"""The evaluation-set builder of the bundled model (evaluation/default_model.py): query texts and labels."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("default_model_eval", REPO / "evaluation" / "default_model.py")
evaluation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluation)


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
