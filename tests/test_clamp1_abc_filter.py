"""CLaMP 1's MusicXML route: xml2abc -m 2 -c 6 -x, then the reference's abc_filter, quirks included."""

import json
import shutil

import pytest

from clamp3.clamp1.abc_filter import filter_abc, prepare_xml2abc_output
from clamp3.clamp1.musicxml import load_music, xml2abc_output
from clamp3.clamp1.patchilizer import encode_music
from clamp3.errors import InputError
from clamp3.preprocess.abc_convert import xml_to_abc


@pytest.fixture(scope="module")
def entries(clamp1_dir):
    return json.loads((clamp1_dir / "abc_filter" / "index.json").read_text(encoding="utf-8"))


def _read(path) -> str:
    return path.read_bytes().decode("utf-8")


def test_xml2abc_output_and_filtered_text_of_every_mxl(clamp1_dir, entries):
    folder = clamp1_dir / "abc_filter"
    converted = [e for e in entries if e["kind"] == "mxl" and e["raw_bytes"] > 0]
    assert len(converted) == 8
    for entry in converted:
        raw = xml2abc_output(folder / entry["input"])
        assert raw.text.encode("utf-8") == (folder / entry["raw"]).read_bytes(), entry["name"]
        filtered = load_music(folder / entry["input"])
        assert filtered == _read(folder / entry["filtered"]), entry["name"]
        assert len(filtered) == entry["filtered_chars"]
        assert len(encode_music(filtered, 10**9)) == entry["num_patches_add_eos_untruncated"]


def test_filter_of_every_raw_output(clamp1_dir, entries):
    folder = clamp1_dir / "abc_filter"
    for entry in entries:
        assert prepare_xml2abc_output(_read(folder / entry["raw"])) == _read(folder / entry["filtered"])


def test_an_archive_without_an_xml_entry_is_an_error_not_an_empty_score(clamp1_dir, entries, tmp_path):
    entry = next(e for e in entries if e["name"] == "aloha_oe_fails")
    path = clamp1_dir / "abc_filter" / entry["input"]
    with pytest.raises(InputError, match=r"aloha_oe_fails\.mxl: the \.mxl archive holds no \.xml score"):
        load_music(path)
    # the reference encodes xml2abc's empty output; that text is what the filter makes of it
    assert entry["raw_bytes"] == 0
    assert prepare_xml2abc_output("") == _read(clamp1_dir / "abc_filter" / entry["filtered"]) == "\n"
    # CLaMP 3's route reads the .musicxml entry: the two routes are separate
    assert xml_to_abc(shutil.copy(path, tmp_path / "aloha.mxl")).text.startswith("X:1\n")


def test_filter_rules():
    text = "X:1\nT:t\nG\nG:x\nGABc|\n% c\n%%score 1 %\nabc|%5\n\nL:1/8 %x\n"
    assert filter_abc(text) == "G:x\nGABc|\n%%score 1 %\nabc\n\nL:1/8\n\n"


def test_clamp3_defaults_of_xml2abc_are_unchanged(clamp1_dir):
    path = clamp1_dir / "abc_filter" / "inputs" / "triad_exercise.mxl"
    clamp3_text = xml_to_abc(path).text
    clamp1_text = xml2abc_output(path).text
    assert "L:1/8" in clamp3_text and "%%MIDI" not in clamp3_text
    assert "%%MIDI" in clamp1_text
