import json
import unicodedata

import pytest

from clamp3.errors import InputError
from clamp3.preprocess.text import join_lines, read_text_file, text_lines


def test_reference_text_preprocessing(reference_dir, tmp_path):
    cases = json.loads((reference_dir / "tiny_model" / "text_preprocessing.json").read_text(encoding="utf-8"))
    for i, case in enumerate(cases):
        # The reference reads .txt files in text mode, so "\r\n" arrives as "\n"; the fixture applied
        # its split to the raw string, which is why its lines may end in "\r".
        path = tmp_path / f"{i}.txt"
        path.write_bytes(case["file_content"].encode("utf-8"))
        lines = text_lines(read_text_file(path))
        assert sorted(lines) == sorted(line.rstrip("\r") for line in case["unique_nonempty_lines_sorted"])
        if case["deterministic"]:
            assert join_lines(read_text_file(path), "</s>") == case["joined_with_sep"]


def test_dedupe_keeps_first_occurrence_order():
    assert text_lines("b\na\nb\n\nc\na") == ["b", "a", "c"]
    assert join_lines("b\na\nb\n", "</s>") == "b</s>a"


def test_nfc_normalisation():
    decomposed = unicodedata.normalize("NFD", "Beyoncé")
    assert text_lines(decomposed) == ["Beyoncé"]
    assert text_lines(decomposed)[0] != decomposed


def test_empty_text_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        join_lines("\n\n", "</s>")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty.txt: the text file is empty"):
        read_text_file(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="latin1.txt: not UTF-8"):
        read_text_file(latin1)
