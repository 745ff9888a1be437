import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clamp3.convert import ConvertOptions, convert, plan
from clamp3.preprocess.midi import midi_to_mtf

SERIAL = ConvertOptions(jobs=1)


def _clamp3(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clamp3", *args], capture_output=True, text=True)


def test_xml2interleaved_mirrors_the_tree_and_matches_the_fixtures(reference_dir, tmp_path):
    source = reference_dir / "xml2abc" / "xml"
    report = convert("xml2interleaved", [source], tmp_path, SERIAL)
    assert report.ok and len(report.written) == 12
    for case in json.loads((reference_dir / "xml2abc" / "index.json").read_text())["xml"]:
        name = os.path.splitext(os.path.basename(case["input"]))[0] + ".abc"
        expected = (reference_dir / "xml2abc" / case["int_abc"]).read_bytes()
        assert (tmp_path / name).read_bytes() == expected, name


@pytest.mark.parametrize(("m3", "folder"), [(True, "mtf_m3"), (False, "mtf_full")])
def test_midi2mtf_both_modes(reference_dir, tmp_path, m3, folder):
    report = convert(
        "midi2mtf", [reference_dir / "midi2mtf" / "midi"], tmp_path, ConvertOptions(jobs=1, m3_compatible=m3)
    )
    assert report.ok and len(report.written) == 10
    for output in report.written:
        assert output.read_bytes() == (reference_dir / "midi2mtf" / folder / output.name).read_bytes()


def test_mtf2midi_round_trip(reference_dir, tmp_path):
    report = convert("mtf2midi", [reference_dir / "midi2mtf" / "mtf_full"], tmp_path, SERIAL)
    assert report.ok and len(report.written) == 10
    for output in report.written:
        expected = (reference_dir / "midi2mtf" / "mtf_full" / output.with_suffix(".mtf").name).read_text()
        assert midi_to_mtf(output, m3_compatible=False) == expected


def _two_tune_collection(folk: Path, collection: Path) -> None:
    """An ABC file holding two of the reference's folk tunes."""
    collection.parent.mkdir()
    collection.write_text(
        (folk / "oneills_0002.abc").read_text() + "\n" + (folk / "essen_ballad10_0.abc").read_text()
    )


def test_abc2interleaved_writes_one_output_per_tune(reference_dir, tmp_path):
    folk = reference_dir / "xml2abc" / "folk_abc"
    _two_tune_collection(folk, tmp_path / "in" / "collection.abc")
    report = convert("abc2interleaved", [tmp_path / "in"], tmp_path / "out", SERIAL)
    assert report.ok
    names = sorted(p.name for p in report.written)
    assert len(names) == 2 and all(n.startswith("collection.") and n.endswith(".abc") for n in names)
    expected = {
        (reference_dir / "xml2abc" / "folk_via_xml" / "int_abc" / f).read_bytes()
        for f in ("oneills_0002.abc", "essen_ballad10_0.abc")
    }
    assert {p.read_bytes() for p in report.written} == expected
    again = convert("abc2interleaved", [tmp_path / "in"], tmp_path / "out", SERIAL)
    assert again.written == [] and len(again.existing) == 2


def test_failures_are_reported_and_the_batch_goes_on(reference_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", folder / "good.mid")
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02")
    (folder / "notes.txt").write_text("not music")
    report = convert("midi2mtf", [folder], tmp_path / "out", SERIAL)
    assert [p.name for p in report.written] == ["good.mtf"]
    assert len(report.failures) == 1 and "broken.mid" in str(report.failures[0])
    assert [p.name for p in report.other_kinds] == ["notes.txt"]
    assert not (tmp_path / "out" / "broken.mtf").exists()


def test_outputs_never_overwrite_inputs(reference_dir, tmp_path):
    shutil.copy(reference_dir / "xml2abc" / "folk_abc" / "oneills_0002.abc", tmp_path / "tune.abc")
    tasks, report = plan("abc2interleaved", [tmp_path], tmp_path)
    assert tasks == [] and "would overwrite it" in str(report.failures[0])


def test_cli_on_a_mixed_folder_of_50_files_in_parallel_then_no_work(reference_dir, tmp_path):
    folder = tmp_path / "mixed"
    midis = sorted((reference_dir / "midi2mtf" / "midi").glob("*.mid"))
    for i in range(40):
        target = folder / f"set{i % 4}" / f"{i:02d}_{midis[i % len(midis)].name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(midis[i % len(midis)], target)
    for i, wav in enumerate(sorted((reference_dir / "mert" / "audio").glob("*.wav")) * 3):
        shutil.copy(wav, folder / f"audio{i}.wav")
    (folder / "random.bin").write_bytes(os.urandom(64))
    assert sum(1 for p in folder.rglob("*") if p.is_file()) == 50
    out = tmp_path / "out"
    first = _clamp3("convert", "midi2mtf", str(folder), "-o", str(out), "-j", "2")
    assert first.returncode == 0, first.stderr
    assert "│ 40        │ 0            │ 0      │ 0        │ 9           │ 1            │" in first.stderr
    assert "skipped (unrecognised file):" in first.stderr and "random.bin" in first.stderr
    assert len(list(out.rglob("*.mtf"))) == 40
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mtf")}
    second = _clamp3("convert", "midi2mtf", str(folder), "-o", str(out), "-j", "2", "--quiet")
    assert second.returncode == 0
    assert "│ 0         │ 40           │ 0      │" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mtf")} == stamps


def test_cli_exit_code_and_errors(reference_dir, tmp_path):
    wrong = _clamp3(
        "convert", "midi2mtf", str(reference_dir / "xml2abc" / "xml" / "two_voices.xml"), "-o", str(tmp_path)
    )
    assert wrong.returncode == 1
    assert "two_voices.xml: is musicxml, not input for midi2mtf" in wrong.stderr
    missing = _clamp3("convert", "midi2mtf", str(tmp_path / "nope"), "-o", str(tmp_path / "o"))
    assert missing.returncode == 1 and "nope: no such file or directory" in missing.stderr


def test_an_unexpected_converter_error_is_reported_not_raised(reference_dir, tmp_path, monkeypatch):
    import clamp3.preprocess.midi as midi

    def broken(*args, **kwargs):
        raise RuntimeError("converter bug\nwith two lines")

    monkeypatch.setattr(midi, "midi_to_mtf", broken)
    report = convert("midi2mtf", [reference_dir / "midi2mtf" / "midi"], tmp_path, SERIAL)
    assert len(report.failures) == 10 and report.written == []
    assert str(report.failures[0]).endswith(": unexpected RuntimeError: converter bug with two lines")


def _normalised_xml(xml: str) -> str:
    """abc2xml output without its run date and converter version (abctoolkit's abc2xml is older)."""
    xml = re.sub(r"<encoding-date>[^<]*</encoding-date>", "<encoding-date/>", xml)
    return re.sub(r"<encoder>abc2xml version \d+</encoder>", "<encoder>abc2xml</encoder>", xml)


def test_abc2xml_writes_the_reference_musicxml_for_each_tune(reference_dir, tmp_path):
    folk = reference_dir / "xml2abc" / "folk_abc"
    _two_tune_collection(folk, tmp_path / "in" / "collection.abc")
    shutil.copy(folk / "nottingham_reel_81.abc", tmp_path / "in")
    report = convert("abc2xml", [tmp_path / "in"], tmp_path / "out", SERIAL)
    assert report.ok and len(report.written) == 3
    written = {p.name: _normalised_xml(p.read_text()) for p in report.written}
    expected = {
        name: _normalised_xml((reference_dir / "xml2abc" / "folk_via_xml" / "xml" / name).read_text())
        for name in ("oneills_0002.xml", "essen_ballad10_0.xml", "nottingham_reel_81.xml")
    }
    assert written["nottingham_reel_81.xml"] == expected["nottingham_reel_81.xml"]
    tunes = sorted(name for name in written if name.startswith("collection."))
    assert len(tunes) == 2 and all(name.endswith(".xml") for name in tunes)
    assert {written[name] for name in tunes} == {
        expected["oneills_0002.xml"],
        expected["essen_ballad10_0.xml"],
    }
    again = convert("abc2xml", [tmp_path / "in"], tmp_path / "out", SERIAL)
    assert again.written == [] and len(again.existing) == 3
