"""Every case of the reference metrics fixtures through ``clamp3 eval`` and ``clamp3 score``."""

import json
import subprocess
import sys

import pytest

CASES = {
    "case1_multi_query": ("txt-queries", "xml-refs"),
    "case2_large": ("audio-queries", "mid-refs"),
    "case3_unmatched": ("txt-queries", "audio-refs"),
}


def _clamp3(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clamp3", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def expected(reference_dir):
    return json.loads((reference_dir / "metrics" / "expected.json").read_text())


def _dirs(reference_dir, case):
    queries, refs = CASES[case]
    cache = reference_dir / "metrics" / case / "cache"
    return str(cache / queries), str(cache / refs)


@pytest.mark.parametrize("case", ["case1_multi_query", "case2_large"])
def test_eval_matches_the_reference(reference_dir, expected, case, tmp_path):
    printed = expected[case]["eval"]["printed_values"]
    result = _clamp3("eval", *_dirs(reference_dir, case), "--json", "--ranks", str(tmp_path / "ranks.jsonl"))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert round(values["mrr"], 4) == printed["MRR"]
    for k in (1, 10, 100):
        assert round(values[f"hit@{k}"], 4) == printed[f"Hit@{k}"]
    assert values["queries"] == printed["Total query features"]
    assert values["references"] == printed["Total reference features"]
    reference_ranks = sorted(
        r["rank"] for r in expected[case]["eval"]["output_files"]["retrieval_ranks.jsonl"]
    )
    ours = [json.loads(line)["rank"] for line in (tmp_path / "ranks.jsonl").read_text().splitlines()]
    assert ours == reference_ranks
    exact = expected[case]["eval"]["exact_values_from_ranks"]
    assert abs(values["mrr"] - exact["MRR"]) < 1e-9


@pytest.mark.parametrize("case", ["case1_multi_query", "case2_large", "case3_unmatched"])
def test_group_score_matches_the_reference(reference_dir, expected, case):
    result = _clamp3("score", *_dirs(reference_dir, case), "--group", "--json")
    assert result.returncode == 0, result.stderr
    assert (
        round(json.loads(result.stdout)["score"], 4)
        == expected[case]["score_group"]["printed_values"]["Group similarity"]
    )


@pytest.mark.parametrize(
    ("case", "run"),
    [
        ("case1_multi_query", "score_pairwise"),
        ("case2_large", "score_pairwise"),
        ("case3_unmatched", "score_pairwise_answer_y"),
    ],
)
def test_pairwise_score_matches_the_reference(reference_dir, expected, case, run, tmp_path):
    args = ["--allow-unmatched"] if case == "case3_unmatched" else []
    result = _clamp3(
        "score", *_dirs(reference_dir, case), "--json", "--csv", str(tmp_path / "pairs.csv"), *args
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    printed = expected[case][run]["printed_values"]
    assert round(values["score"], 4) == printed["Avg. pairwise similarity"]
    assert values["pairs"] == printed["Total query features"]
    rows = (tmp_path / "pairs.csv").read_text().splitlines()
    assert len(rows) == 1 + printed["Total query features"]


def test_unmatched_keys_fail_clearly_without_the_flag(reference_dir):
    for command in ("eval", "score"):
        result = _clamp3(command, *_dirs(reference_dir, "case3_unmatched"))
        assert result.returncode == 1
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith("Error: ") and "unmatched" in message


def test_eval_plot_and_both_directions(reference_dir, tmp_path):
    result = _clamp3(
        "eval", *_dirs(reference_dir, "case2_large"), "--both", "--plot", str(tmp_path / "r.png")
    )
    assert result.returncode == 0, result.stderr
    assert "reverse MRR:" in result.stdout
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_path_is_one_clear_error(tmp_path):
    result = _clamp3("eval", str(tmp_path / "nope"), str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'nope'}: no such file or directory"
