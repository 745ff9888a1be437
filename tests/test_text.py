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


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_files_with_a_byte_order_mark_are_decoded(tmp_path, codec):
    bom = "\ufeff" if codec in ("utf-16-le", "utf-16-be") else ""
    path = tmp_path / "desc.txt"
    path.write_bytes((bom + "a calm piano piece\nüber ruhig\n").encode(codec))
    assert read_text_file(path) == "a calm piano piece\nüber ruhig\n"


def test_undecodable_text_names_the_encoding_and_the_absolute_byte(tmp_path):
    odd = tmp_path / "odd.txt"
    odd.write_bytes("ab".encode("utf-16") + b"\x00")
    with pytest.raises(InputError, match=r"odd.txt: not UTF-16 text \(byte 6\)$"):
        read_text_file(odd)
    bom_latin1 = tmp_path / "bom_latin1.txt"
    bom_latin1.write_bytes(b"\xef\xbb\xbfcaf\xe9")
    with pytest.raises(InputError, match=r"bom_latin1.txt: not UTF-8 text \(byte 6\)$"):
        read_text_file(bom_latin1)


@pytest.mark.parametrize("content", [" ", "  \n\t\n", "\u3000\r\n \r\n", "\ufeff \n"])
def test_whitespace_only_text_has_nothing_to_embed(tmp_path, content):
    path = tmp_path / "blank.txt"
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(InputError, match="blank.txt: the text file holds only whitespace: nothing to embed$"):
        read_text_file(path)
