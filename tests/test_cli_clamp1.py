"""CLaMP 1 through the ``clamp3`` command: the reference's text -> music retrieval, end to end."""

import json
import shutil

import numpy as np
from click.testing import CliRunner

from clamp3.clamp1 import CLaMP1
from clamp3.cli import main
from tests.tiny import tiny_tokenizer


def test_text_query_ranks_music_keys_like_the_reference(clamp1_dir, tmp_path):
    case = json.loads((clamp1_dir / "tiny_model" / "retrieval" / "text_query_vs_music_keys.json").read_text())
    # the reference replaced the tokenizer with these ids; a word-level tokenizer reproduces them
    ids = case["query"]["ids"]
    words = case["query"]["text_query_txt"].split()
    model = CLaMP1.from_pretrained(clamp1_dir / "tiny_model")
    model._tokenizer = tiny_tokenizer(dict(zip(words, ids[1:-1], strict=True)))
    assert model.tokenize([case["query"]["text_query_txt"]]) == [ids]
    model.save_pretrained(tmp_path / "model")

    keys = tmp_path / "music_keys"
    keys.mkdir()
    for name in [*case["printed_content"], "inference/music_keys/aloha_oe_fails.mxl"]:
        shutil.copy(clamp1_dir / "abc_filter" / "inputs" / name.rsplit("/", 1)[-1], keys)
    result = CliRunner().invoke(
        main,
        [
            "search",
            "--text",
            case["query"]["text_query_txt"],
            str(keys),
            "-k",
            "10",
            "--json",
            "--model",
            str(tmp_path / "model"),
            "--no-cache",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1  # aloha_oe_fails.mxl cannot be loaded, as in the reference
    assert "aloha_oe_fails.mxl: the .mxl archive holds no .xml score" in result.output
    hits = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    expected_order = [case["printed_content"][i] for i in reversed(case["argsort_ascending"])]
    assert [h["path"].rsplit("/", 1)[-1] for h in hits] == [p.rsplit("/", 1)[-1] for p in expected_order]
    similarity = dict(
        zip(
            (p.rsplit("/", 1)[-1] for p in case["printed_content"]),
            case["sims_cosine_similarity"],
            strict=True,
        )
    )
    for hit in hits:
        assert abs(hit["score"] - similarity[hit["path"].rsplit("/", 1)[-1]]) < 1e-5


def test_clamp1_embed_equals_the_reference_features(clamp1_dir, tmp_path):
    source = clamp1_dir / "abc_filter" / "inputs" / "bach_bwv66_6.mxl"
    result = CliRunner().invoke(
        main,
        [
            "embed",
            str(source),
            "-o",
            str(tmp_path),
            "--model",
            str(clamp1_dir / "tiny_model"),
            "--no-cache",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    expected = np.load(clamp1_dir / "tiny_model" / "outputs" / "music_06_xml_bach.feature.npy")
    np.testing.assert_allclose(np.load(tmp_path / "bach_bwv66_6.npy"), expected, atol=1e-5, rtol=1e-4)
