"""Parity with the reference's clamp3_eval.py / clamp3_score.py on every run of fixtures/reference/metrics."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from clamp3.retrieval import (
    UnmatchedKeysError,
    evaluate,
    group_score,
    load_features,
    pairwise_score,
    score,
    write_pairs_csv,
    write_ranks_jsonl,
)
from tests.conftest import FIXTURES

METRICS = FIXTURES / "reference" / "metrics"
EXPECTED = json.loads((METRICS / "expected.json").read_text(encoding="utf-8"))
RUNS = [(case, run) for case, runs in EXPECTED.items() for run in runs if run != "layout"]


def _load(reference_dir, case, expected, monkeypatch):
    """Load both folders the way the reference saw them (``../cache/<name>`` seen from the case), so the
    paths in our results are the reference's strings."""
    monkeypatch.chdir(reference_dir / "metrics" / case / "cache")
    words = expected["command"].split()
    script, query_dir, ref_dir = words[1], words[2], words[3]
    return script, load_features(query_dir), load_features(ref_dir), "--group" in words[4:]


def _unmatched(expected):
    records = expected["output_files"]["unmatched_files.jsonl"]
    queries = [path for record in records for path in record.get("unmatched_query", [])]
    references = [path for record in records for path in record.get("unmatched_reference", [])]
    return sorted(queries), sorted(references)


def _check_unmatched_error(error: UnmatchedKeysError, expected) -> None:
    assert (sorted(error.unmatched_queries), sorted(error.unmatched_references)) == _unmatched(expected)
    for path in error.unmatched_queries + error.unmatched_references:
        assert path in str(error)


def _check_eval(queries, references, expected, tmp_path):
    result = evaluate(queries, references)
    forward = result.forward
    printed = expected["printed_values"]
    assert forward.n_queries == printed["Total query features"]
    assert forward.n_references == printed["Total reference features"]
    for name, value in forward.summary().items():
        assert round(value, 4) == printed[name], name
        assert value == pytest.approx(expected["exact_values_from_ranks"][name], abs=1e-9), name
    written = write_ranks_jsonl(forward, tmp_path / "ranks.jsonl")
    lines = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert [line["rank"] for line in lines] == sorted(line["rank"] for line in lines)
    as_tuples = Counter((line["query"], line["reference"], line["rank"]) for line in lines)
    reference_lines = expected["output_files"]["retrieval_ranks.jsonl"]
    assert as_tuples == Counter((line["query"], line["reference"], line["rank"]) for line in reference_lines)


def _check_pairs(result, expected, tmp_path):
    printed = expected["printed_values"]
    assert result.n_queries == printed["Total query features"]
    assert result.n_references == printed["Total reference features"]
    assert round(result.mean_similarity, 4) == printed["Avg. pairwise similarity"]
    assert result.mean_similarity == pytest.approx(
        expected["exact_values_from_pairs"]["avg_similarity"], abs=1e-6
    )
    reference_pairs = expected["output_files"]["pairwise_similarities.jsonl"]
    similarity_of = {(p["query"], p["reference"]): p["similarity"] for p in reference_pairs}
    assert len(result.pairs) == len(reference_pairs)
    # same order as the reference up to exact ties: position i holds a pair whose reference similarity
    # equals the reference's i-th similarity
    for ours, theirs in zip(result.pairs, reference_pairs, strict=True):
        assert ours.similarity == pytest.approx(similarity_of[(ours.query, ours.reference)], abs=1e-6)
        assert similarity_of[(ours.query, ours.reference)] == pytest.approx(theirs["similarity"], abs=1e-6)
    with write_pairs_csv(result, tmp_path / "pairs.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["query", "reference", "similarity"]
    assert [(q, r, float(s)) for q, r, s in rows[1:]] == [
        (p.query, p.reference, p.similarity) for p in result.pairs
    ]


@pytest.mark.parametrize(("case", "run"), RUNS)
def test_run_matches_reference(reference_dir, case, run, monkeypatch, tmp_path):
    expected = EXPECTED[case][run]
    script, queries, references, group = _load(reference_dir, case, expected, monkeypatch)
    answer = expected["stdin"].strip()
    if script == "clamp3_eval.py" and expected["returncode"] == 0:
        _check_eval(queries, references, expected, tmp_path)
    elif script == "clamp3_eval.py":
        assert "unmatched" in expected["error_last_line"]
        with pytest.raises(UnmatchedKeysError) as caught:
            evaluate(queries, references)
        _check_unmatched_error(caught.value, expected)
        relaxed = evaluate(queries, references, allow_unmatched=True)
        n_common = len(queries.groups.keys() & references.groups.keys())
        assert relaxed.forward.n_references == n_common == len(relaxed.common_keys)
    elif group:
        result = group_score(queries, references)
        printed = expected["printed_values"]
        assert (result.n_queries, result.n_references) == (
            printed["Total query features"],
            printed["Total reference features"],
        )
        assert round(result.similarity, 4) == printed["Group similarity"]
        assert score(queries, references, mode="group") == result.similarity
    elif expected["returncode"] != 0:  # the user answered "n" to the unmatched-files prompt
        assert answer == "n"
        with pytest.raises(UnmatchedKeysError) as caught:
            pairwise_score(queries, references)
        _check_unmatched_error(caught.value, expected)
    else:
        allow = answer == "y"
        if allow:
            with pytest.raises(UnmatchedKeysError) as caught:
                pairwise_score(queries, references)
            _check_unmatched_error(caught.value, expected)
        result = pairwise_score(queries, references, allow_unmatched=allow)
        _check_pairs(result, expected, tmp_path)
        assert score(queries, references, allow_unmatched=allow) == result.mean_similarity


def test_every_fixture_run_is_covered():
    kinds = {(EXPECTED[c][r]["command"].split()[1], EXPECTED[c][r]["returncode"]) for c, r in RUNS}
    assert kinds == {
        ("clamp3_eval.py", 0),
        ("clamp3_eval.py", 1),
        ("clamp3_score.py", 0),
        ("clamp3_score.py", 1),
    }
    assert len(RUNS) == 10


def test_both_directions_swap_the_folders(reference_dir, monkeypatch):
    expected = EXPECTED["case1_multi_query"]["eval"]
    _, queries, references, _ = _load(reference_dir, "case1_multi_query", expected, monkeypatch)
    both = evaluate(queries, references, both=True)
    swapped = evaluate(references, queries)
    assert both.forward.summary() == evaluate(queries, references).forward.summary()
    assert both.backward is not None
    assert both.backward.summary() == swapped.forward.summary()
    assert both.backward.n_queries == 14  # one reference file per key, each retrieving its key's first query
    assert both.backward.ranks == swapped.forward.ranks
