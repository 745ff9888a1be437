"""Sheet music preprocessing against the reference's xml2abc / interleaving outputs (fixtures xml2abc/)."""

import importlib.metadata
import io
import json
import re
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import abctoolkit.xml2abc as shared_xml2abc
import numpy as np
import pytest

from clamp3.errors import InputError
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.preprocess.abc_convert import (
    Xml2AbcOptions,
    abc_to_musicxml,
    musicxml_to_abc,
    read_musicxml,
    xml_to_abc,
)
from clamp3.preprocess.abc_interleave import abc_to_interleaved, clean_quotes
from clamp3.preprocess.abc_modules import ABCTOOLKIT_VERSION
from clamp3.preprocess.abc_tunes import decode_abc, is_interleaved, is_xml2abc_shaped, split_abc_tunes
from clamp3.preprocess.sheet import (
    SymbolicItem,
    abc_file_tunes,
    is_sheet_path,
    sheet_to_interleaved,
    tune_to_interleaved,
)
from tests.conftest import FIXTURES


def _index(reference_dir):
    return json.loads((reference_dir / "xml2abc" / "index.json").read_text(encoding="utf-8"))


def _xml_cases():
    return _index(FIXTURES / "reference")["xml"]


def _folk_cases():
    return _index(FIXTURES / "reference")["folk"]


def _messages(printed: str, name: str = "") -> list[str]:
    """The reference's printed messages as a list, without the file-name prefix."""
    return [line.removeprefix(f"{name} ") for line in printed.split("\n") if line]


def _prefixed(stage: str, messages: list[str]) -> tuple[str, ...]:
    return tuple(f"{stage}: {message}" for message in messages)


def _normalised_xml(xml: str) -> str:
    """abc2xml output with the run date and converter version blanked, as in the fixtures."""
    xml = re.sub(r"<encoding-date>[^<]*</encoding-date>", "<encoding-date>NORMALIZED</encoding-date>", xml)
    return re.sub(r"<encoder>abc2xml version \d+</encoder>", "<encoder>abc2xml</encoder>", xml)


def test_pinned_abctoolkit_is_installed():
    assert importlib.metadata.version("abctoolkit") == ABCTOOLKIT_VERSION


def test_index_lists_every_fixture(reference_dir):
    index = _index(reference_dir)
    assert len(index["xml"]) == len(list((reference_dir / "xml2abc" / "xml").iterdir())) == 12
    assert len(index["folk"]) == len(list((reference_dir / "xml2abc" / "folk_abc").iterdir())) == 5


@pytest.mark.parametrize("case", _xml_cases(), ids=lambda case: case["input"])
def test_musicxml_to_standard_and_interleaved_abc(reference_dir, case):
    root = reference_dir / "xml2abc"
    source = root / case["input"]
    standard = xml_to_abc(source)
    assert standard.text.encode("utf-8") == (root / case["std_abc"]).read_bytes()
    xml2abc_warnings = [line[3:] for line in case["xml2abc_stderr"].split("\n") if line.startswith("-- ")]
    assert list(standard.warnings) == xml2abc_warnings

    std_text = (root / case["std_abc"]).read_text(encoding="utf-8")
    interleaved = abc_to_interleaved(std_text, source="x.abc")
    expected = (root / case["int_abc"]).read_bytes()
    assert interleaved.text.encode("utf-8") == expected
    assert list(interleaved.warnings) == _messages(case["interleave_messages"])

    assert sheet_to_interleaved(source) == [
        SymbolicItem(
            str(source),
            expected.decode("utf-8"),
            _prefixed("xml2abc", xml2abc_warnings) + interleaved.warnings,
        )
    ]
    # The reference's standard ABC file is xml2abc-shaped: it takes the direct route, tune id X:1.
    assert is_xml2abc_shaped(std_text)
    [from_std] = sheet_to_interleaved(root / case["std_abc"])
    assert (from_std.id, from_std.text.encode("utf-8")) == (f"{root / case['std_abc']}#1", expected)
    # An interleaved file is used as it is.
    assert is_interleaved(expected.decode("utf-8"))
    assert sheet_to_interleaved(root / case["int_abc"]) == [
        SymbolicItem(str(root / case["int_abc"]), expected.decode("utf-8"))
    ]


@pytest.mark.parametrize("case", _folk_cases(), ids=lambda case: case["input"])
def test_folk_tunes_both_routes(reference_dir, case):
    root = reference_dir / "xml2abc"
    source = root / case["input"]
    raw = source.read_text(encoding="utf-8")
    name = source.name

    # Direct route: what the reference's pipeline does with the raw tune.
    if case["direct_int_abc"] is None:
        with pytest.raises(InputError) as error:
            abc_to_interleaved(raw, source=name)
        assert _messages(case["direct_interleave_messages"], name) == [error.value.reason]
    else:
        direct = abc_to_interleaved(raw, source=name)
        assert direct.text.encode("utf-8") == (root / case["direct_int_abc"]).read_bytes()
        assert list(direct.warnings) == _messages(case["direct_interleave_messages"], name)

    # Via MusicXML: abc2xml, then xml2abc -d 8 -x, then the pipeline.
    xml = abc_to_musicxml(raw, source=name)
    assert _normalised_xml(xml.text) == _normalised_xml(
        (root / case["via_xml_xml"]).read_text(encoding="utf-8")
    )
    assert "<encoder>abc2xml version 238</encoder>" in xml.text
    expected_std = (root / case["via_xml_std_abc"]).read_bytes()
    assert musicxml_to_abc((root / case["via_xml_xml"]).read_bytes()).text.encode("utf-8") == expected_std
    assert musicxml_to_abc(xml.text.encode("utf-8")).text.encode("utf-8") == expected_std
    via = abc_to_interleaved(expected_std.decode("utf-8"))
    expected_int = (root / case["via_xml_int_abc"]).read_bytes()
    assert via.text.encode("utf-8") == expected_int
    assert list(via.warnings) == _messages(case["via_xml_interleave_messages"])

    # The entry point routes every one of these tunes via MusicXML (none is xml2abc-shaped).
    assert not is_xml2abc_shaped(raw)
    number = raw.split("\n", 1)[0].removeprefix("X:").strip()
    [item] = sheet_to_interleaved(source)
    assert item.id == f"{source}#{number}"
    assert item.text.encode("utf-8") == expected_int


def test_multi_tune_file(reference_dir, tmp_path):
    root = reference_dir / "xml2abc"
    folk = {case["input"]: case for case in _index(reference_dir)["folk"]}
    order = ["essen_ballad10_0", "oneills_0002", "americanfife_2voice_x8", "essen_ballad10_0"]
    preamble = "% a collection\nSome free text about the tunes.\n\n"
    tunes = [(root / "folk_abc" / f"{stem}.abc").read_text(encoding="utf-8") for stem in order]
    standard = (root / "std_abc" / "chorale_bwv66_6.abc").read_text(encoding="utf-8")  # X:1, xml2abc-shaped
    path = tmp_path / "book.abc"
    path.write_text(preamble + "\n".join(tunes) + "\n\n" + standard, encoding="utf-8")

    items = sheet_to_interleaved(path)
    assert [item.id for item in items] == [f"{path}#{x}" for x in ("1", "2", "8", "1~2", "1~3")]
    for item, stem in zip(items, order, strict=False):
        expected = (root / folk[f"folk_abc/{stem}.abc"]["via_xml_int_abc"]).read_text(encoding="utf-8")
        assert item.text == expected, item.id
    assert items[-1].text == (root / "int_abc" / "chorale_bwv66_6.abc").read_text(encoding="utf-8")
    assert [tune.id for tune in abc_file_tunes(path)] == [item.id for item in items]


def test_split_abc_tunes_file_header_and_ids():
    header = "%abc-2.1\nM:6/8\nL:1/8\n% comment\nfree text\n%%pagewidth 20cm\n\n"
    tunes = "X:5\nK:G\nGAB|\n\n\nX:\nK:D\nDEF|\n  X: 5 % again\nK:C\nC|\n"
    kept = "M:6/8\nL:1/8\n%%pagewidth 20cm\n"
    assert split_abc_tunes(header + tunes, "f.abc") == [
        ("f.abc#5", kept + "X:5\nK:G\nGAB|\n"),
        ("f.abc#2", kept + "X:\nK:D\nDEF|\n"),
        ("f.abc#5~2", kept + "X: 5 % again\nK:C\nC|\n"),
    ]
    assert split_abc_tunes("T:no number\nK:C\nCDE|\n", "g.abc") == [("g.abc", "T:no number\nK:C\nCDE|\n")]
    assert split_abc_tunes(" \n\n", "h.abc") == []
    assert decode_abc(b"\xef\xbb\xbfX:1\r\nK:C\rC|\r\n") == "X:1\nK:C\nC|\n"
    assert decode_abc("X:1\nT:caf\xe9\n".encode("latin-1")) == "X:1\nT:caf\xe9\n"


def test_tune_without_number_converts(reference_dir, tmp_path):
    root = reference_dir / "xml2abc"
    raw = (root / "folk_abc" / "nottingham_reel_81.abc").read_text(encoding="utf-8")
    path = tmp_path / "reel.abc"
    path.write_text(raw.split("\n", 1)[1], encoding="utf-8")  # without its X: line
    [item] = sheet_to_interleaved(path)
    assert item.id == str(path)
    assert item.text == (root / "folk_via_xml" / "int_abc" / "nottingham_reel_81.abc").read_text(
        encoding="utf-8"
    )


def test_clean_quotes_reproduces_the_reference_quirk():
    assert clean_quotes('C "^a|b" D|\n') == "C  D|\n"
    assert clean_quotes('C \\"D|\n') == "C D|\n"
    # A quoted barline removed: the escaped-quote removal of the same line is lost.
    assert clean_quotes('C "^a|b" D \\" E|\n') == 'C  D \\" E|\n'
    assert clean_quotes('K:G "a|b"\n') == 'K:G "a|b"\n'
    assert clean_quotes('%%text "a|b"\n') == '%%text "a|b"\n'


def test_alignment_messages_are_warnings(capsys):
    tune = "X:1\nL:1/8\nM:4/4\nK:C\nV:1 treble\nV:2 bass\nV:1\nC8 | D8 | (3:0:2 E8 |]\nV:2\nC8 | D4 | E8 |]\n"
    result = abc_to_interleaved(tune)
    header = "L:1/8\nM:4/4\nK:C\nV:1 treble\nV:2 bass\n"
    assert result.text == header + "[V:1]C8|[V:2]C8|\n[V:1]D8|[V:2]D4|\n[V:1](3:0:2 E8|][V:2]E8|]\n"
    assert result.warnings == (
        "Odd bar duration  V:2  bar  1",
        "(3:0:2 E8 Illegal (p:q:r (3:0:2",
        "Unequal bar duration (unaligned)",
    )
    assert capsys.readouterr() == ("", "")


def test_interleaved_output_patchifies_like_the_reference(reference_dir):
    root = reference_dir / "xml2abc"
    by_int_abc = {f"xml2abc/{case['int_abc']}": case["input"] for case in _index(reference_dir)["xml"]}
    cases = json.loads((reference_dir / "patchilizer" / "cases.json").read_text(encoding="utf-8"))
    checked = 0
    for case in cases:
        if case.get("source") not in by_int_abc:
            continue
        [item] = sheet_to_interleaved(root / by_int_abc[case["source"]])
        assert item.text == case["input"]
        patches = M3Patchilizer().encode(
            item.text, add_special_patches=case["options"]["add_special_patches"]
        )
        np.testing.assert_array_equal(
            patches, np.array(case["patches"], dtype=np.int64), err_msg=case["name"]
        )
        checked += 1
    assert checked == 3


def test_mxl_archives(reference_dir, tmp_path):
    root = reference_dir / "xml2abc"
    document = read_musicxml(root / "xml" / "chorale_bwv66_6.mxl")
    assert document.lstrip().startswith(b"<?xml")
    expected = (root / "std_abc" / "chorale_bwv66_6.abc").read_bytes()

    # An archive whose score is a .musicxml entry (xml2abc itself only looks for .xml entries).
    renamed = tmp_path / "renamed.mxl"
    with zipfile.ZipFile(renamed, "w") as archive:
        archive.writestr("META-INF/container.xml", "<container/>")
        archive.writestr("score.musicxml", document)
    assert xml_to_abc(renamed).text.encode("utf-8") == expected

    # A zipped score saved under the .xml name is still read.
    disguised = tmp_path / "zipped.xml"
    disguised.write_bytes(renamed.read_bytes())
    assert xml_to_abc(disguised).text.encode("utf-8") == expected


def test_xml2abc_options():
    source = b"""<?xml version="1.0"?><score-partwise><part-list><score-part id="P1"><part-name>A</part-name>
    </score-part></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions>
    <key><fifths>0</fifths></key><time><beats>2</beats><beat-type>4</beat-type></time></attributes><note><pitch><step>C</step>
    <octave>4</octave></pitch><duration>2</duration><type>half</type></note></measure></part></score-partwise>"""
    assert (
        musicxml_to_abc(source).text
        == 'X:1\nT:Title\nL:1/8\nM:2/4\nK:C\nV:1 treble nm="A"\nV:1\n C4 | %1\n\n'
    )
    quarter = musicxml_to_abc(source, options=Xml2AbcOptions(unit_length=4)).text
    assert "L:1/4\n" in quarter and "\n C2 | %1\n" in quarter
    with pytest.raises(ValueError, match="power of two"):
        Xml2AbcOptions(unit_length=3)
    with pytest.raises(ValueError, match=">= 0"):
        Xml2AbcOptions(chars_per_line=-1)


def _broken_inputs(tmp_path):
    rest = "<measure number='1'><note><rest/><duration>4</duration></note></measure>"
    parts = f"<part-list><score-part id='P1'/></part-list><part id='P1'>{rest}</part>"
    empty_part = f"<score-partwise>{parts}</score-partwise>"
    files = {
        "text.xml": (b"this is not xml", "not well-formed XML: syntax error: line 1, column 0"),
        "broken.mxl": (b"PK\x03\x04 truncated", "not a readable .mxl (zip) archive: File is not a zip file"),
        "empty.musicxml": (b"  \n", "the file is empty"),
        "empty.abc": (b"", "the file is empty"),
        "blank.abc": (b"\n\n   \n", "the file is empty"),
        "page.xml": (b"<html><body/></html>", "not a partwise MusicXML score (the root element is <html>)"),
        "silent.xml": (empty_part.encode(), "the score has no notes"),
        "notes.txt": (
            b"X:1\nK:C\nC|\n",
            "not a sheet music file (expected one of .mxl, .musicxml, .xml, .abc)",
        ),
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("META-INF/container.xml", "<container/>")
        zipped.writestr("readme.txt", "no score here")
    files["noscore.mxl"] = (archive.getvalue(), "the .mxl archive holds no .xml or .musicxml score")
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    return {tmp_path / name: reason for name, (_, reason) in files.items()}


def test_bad_files_raise_one_line_input_errors(tmp_path):
    for path, reason in _broken_inputs(tmp_path).items():
        with pytest.raises(InputError) as error:
            sheet_to_interleaved(path)
        assert (error.value.path, error.value.reason) == (str(path), reason)
        assert str(error.value) == f"{path}: {reason}" and "\n" not in str(error.value)
    missing = tmp_path / "missing.abc"
    with pytest.raises(InputError, match=r"missing\.abc: No such file or directory"):
        sheet_to_interleaved(missing)


def test_failing_tunes_name_the_tune(tmp_path):
    unequal = "X:7\nL:1/8\nM:4/4\nK:C\nV:1 treble\nV:2 bass\nV:1\nC8 | D8 | E8 |]\nV:2\nC8 | D8 |]\n"
    rests = "X:8\nL:1/8\nM:4/4\nK:C\nV:1 treble\nV:1\nz8 | z8 |]\n"
    syntax = "X:9\nK:C\n|%}:}:,C)aA~,2%}'(b:C\"'~<!)!=w\n"
    path = tmp_path / "bad.abc"
    for tune, reason in [
        (unequal, "Unequal bar numbers."),
        (rests, "Empty piece."),
        (syntax, "abc2xml failed: Syntax error at column 1 in: |"),
    ]:
        number = tune.split("\n", 1)[0][2:]
        path.write_text(tune, encoding="utf-8")
        with pytest.raises(InputError) as error:
            sheet_to_interleaved(path)
        assert (error.value.path, error.value.reason) == (f"{path}#{number}", reason)
    with pytest.raises(InputError, match=r"^t: the score has no notes$"):
        tune_to_interleaved("X:1\nT:only a title\nK:C\n", source="t")


def test_nothing_is_printed_and_nothing_is_shared(reference_dir, capsys):
    root = reference_dir / "xml2abc"
    inputs = [root / case["input"] for case in _index(reference_dir)["xml"]]
    stdout = sys.stdout
    sequential = [sheet_to_interleaved(path) for path in inputs]
    assert capsys.readouterr() == ("", "")  # kitchen_sink's "Unequal barlines." is a warning, not a print
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(sheet_to_interleaved, inputs * 2))
    assert concurrent == sequential * 2
    assert not hasattr(shared_xml2abc, "abcOut")  # the importable module is never used or changed
    assert sys.stdout is stdout


def test_is_sheet_path():
    assert all(is_sheet_path(name) for name in ["a.abc", "b.MXL", "c.musicxml", "d.Xml"])
    assert not any(is_sheet_path(name) for name in ["a.txt", "b.mid", "c.abc.bak", "xml"])
