"""Bad inputs: each file of ``tests/data/bad`` (see the README.md there) gets a one-line typed error that
names it, or, for legal but extreme input, a conversion, in bounded time and memory; none stops a batch.

Every file is converted alone in a forked child of ``tests/bad_inputs_runner.py`` (the way ``clamp3 convert``
would send it), killed if it runs past :data:`TIME_LIMIT_S`; the child's peak memory above that of an idle
child must stay under :data:`PEAK_MIB`. That bound is set between what the legal cases need and what a
failed defence would take: the largest legal case, 30 s of 8-channel 192 kHz audio, peaks near 95 MiB (MERT
activations for a batch of windows) where decoding it whole would take 184 MiB of float32 samples alone,
and the bombs expand to 512 MiB (deflate), 1 GiB (bzip2) and about 3 GB (billion laughs) if not stopped.
"""

from __future__ import annotations

import json
import re
import runpy
import shutil
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clamp3.convert import CONVERTERS, ConvertOptions, convert
from clamp3.errors import InputError
from clamp3.modality import detect_kind
from clamp3.preprocess.audio import check_finite
from clamp3.preprocess.features import load_feature_file
from clamp3.preprocess.mert import MertExtractor
from clamp3.preprocess.midi import MAX_DELTA_TICKS, midi_to_mtf, mtf_to_midi, mtf_to_midi_bytes
from tests.tiny import build_tiny_blip

CORPUS = Path(__file__).parent / "data" / "bad"
RUNNER = Path(__file__).parent / "bad_inputs_runner.py"
TIME_LIMIT_S = 15.0
PEAK_MIB = 128.0
MEMORY_HEADROOM_MIB = 2048
"""Address space a child may add before allocations fail: keeps a broken defence from swapping the machine."""
LARGE_CASES = ("wav_8ch_192k.wav", "mxl_deflate_bomb.mxl")


def error(reason: str) -> tuple[str, str]:
    """The file is refused with an error whose reason contains ``reason``."""
    return "error", reason


def ok(output: str) -> tuple[str, str]:
    """The file converts: ``output`` is ``"<converter>: <output name>"`` or the loader's summary."""
    return "ok", output


UNDECODABLE_AUDIO = error("cannot decode audio (Format not recognised.)")
UNREADABLE_IMAGE = error("not a readable image (unknown or corrupt format)")
TRUNCATED_IMAGE = error("cannot decode the image (image file is truncated")
NO_ZIP = error("not a readable .mxl (zip) archive: File is not a zip file")
NO_MTHD = error("invalid MIDI file near byte 8: MThd not found. Probably not a MIDI file")
OVER_MAX_DELTA = error("track 0, event 0: delta time over the MIDI maximum of 268435455 ticks")

EXPECTED: dict[str, tuple[str, str]] = {
    "text_empty.txt": error("the text file is empty"),
    "text_latin1.txt": error("not UTF-8 text (byte 3)"),
    "text_truncated.txt": error("not UTF-8 text (byte 19)"),
    "text_random.txt": error("not UTF-8 text (byte 1)"),
    "text_is_midi.txt": ok("midi2mtf: text_is_midi.mtf"),
    "abc_empty.abc": error("the file is empty"),
    "abc_truncated.abc": ok("abc2interleaved: abc_truncated.abc"),
    "abc_random.abc": error("binary data, not ABC text (a NUL byte at offset 827)"),
    "abc_latin1.abc": ok("abc2interleaved: abc_latin1.abc"),
    "abc_is_musicxml.abc": ok("xml2interleaved: abc_is_musicxml.abc"),
    "xml_empty.xml": error("the file is empty"),
    "xml_truncated.xml": error("not well-formed XML: unclosed token: line 9, column 30"),
    "xml_random.xml": error("not well-formed XML: not well-formed (invalid token): line 1, column 1"),
    "xml_latin1.xml": error("not well-formed XML: not well-formed (invalid token): line 5, column 23"),
    "xml_billion_laughs.xml": error(
        "not well-formed XML: limit on input amplification factor (from DTD and entities) breached"
    ),
    "xml_external_entity.xml": error("not well-formed XML: undefined entity &secret;: line 4, column 20"),
    "xml_is_abc.xml": ok("abc2interleaved: xml_is_abc.abc"),
    "musicxml_not_a_score.musicxml": error("not a partwise MusicXML score (the root element is <html>)"),
    "musicxml_timewise.musicxml": error(
        "not a partwise MusicXML score (the root element is <score-timewise>)"
    ),
    "mxl_empty.mxl": error("the file is empty"),
    "mxl_truncated.mxl": NO_ZIP,
    "mxl_random.mxl": NO_ZIP,
    "mxl_no_score.mxl": error("the .mxl archive holds no .xml or .musicxml score"),
    "mxl_zip_bomb.mxl": error("the score 'score.xml' would expand to 1024 MiB, more than the 128 MiB"),
    "mxl_zip_bomb_small_size.mxl": error(
        "the score 'score.xml' is compressed with zip method 12; only stored and deflated scores are read"
    ),
    "mxl_deflate_bomb.mxl": error("the score 'score.xml' would expand to 512 MiB, more than the 128 MiB"),
    "mid_empty.mid": error("empty file"),
    "mid_truncated.mid": error("truncated MIDI file: data ends at byte 47"),
    "mid_random.mid": NO_MTHD,
    "mid_huge_delta.mid": OVER_MAX_DELTA,
    "mid_long_vlq.mid": OVER_MAX_DELTA,
    "mid_is_text.mid": NO_MTHD,
    "mtf_empty.mtf": error("line 1: expected 'ticks_per_beat <integer>'"),
    "mtf_truncated.mtf": error("line 4: note_on needs 4 values (time, channel, note, velocity), found 3"),
    "mtf_latin1.mtf": error("not UTF-8 text (byte 127)"),
    "mtf_random.mtf": error("not UTF-8 text (byte 1)"),
    "mtf_huge_delta.mtf": error("line 4: delta time outside the MIDI range of 0 to 268435455 ticks"),
    "mtf_bad_ticks.mtf": error("line 1: ticks_per_beat 70000 does not fit in a MIDI header (16 bits)"),
    "mtf_is_midi.mtf": ok("midi2mtf: mtf_is_midi.mtf"),
    "wav_empty.wav": error("the file is empty"),
    "wav_zero_samples.wav": error("no audio samples"),
    "wav_truncated.wav": ok("audio2mert: wav_truncated.npy"),
    "wav_random.wav": UNDECODABLE_AUDIO,
    "wav_nan.wav": error("NaN or infinite sample at frame 900 (0.113 s)"),
    "wav_inf.wav": error("NaN or infinite sample at frame 1500 (0.188 s)"),
    "wav_is_text.wav": UNDECODABLE_AUDIO,
    "wav_8ch_192k.wav": ok("audio2mert: wav_8ch_192k.npy"),
    "flac_empty.flac": error("the file is empty"),
    "flac_truncated.flac": error("cannot decode audio (Error : flac decoder lost sync.)"),
    "flac_random.flac": UNDECODABLE_AUDIO,
    "ogg_empty.ogg": error("the file is empty"),
    "ogg_truncated.ogg": error("no audio samples"),
    "ogg_random.ogg": UNDECODABLE_AUDIO,
    "mp3_empty.mp3": error("the file is empty"),
    "mp3_truncated.mp3": ok("audio2mert: mp3_truncated.npy"),
    "mp3_random.mp3": error("cannot decode audio (not a readable MP3 stream)"),
    "png_empty.png": UNREADABLE_IMAGE,
    "jpg_empty.jpg": UNREADABLE_IMAGE,
    "webp_empty.webp": UNREADABLE_IMAGE,
    "png_truncated.png": TRUNCATED_IMAGE,
    "jpg_truncated.jpg": TRUNCATED_IMAGE,
    "webp_truncated.webp": error("cannot decode the image (could not create decoder object)"),
    "png_random.png": UNREADABLE_IMAGE,
    "jpg_random.jpg": UNREADABLE_IMAGE,
    "webp_random.webp": UNREADABLE_IMAGE,
    "png_pixel_bomb.png": error("cannot decode the image (Image size (10000000000 pixels) exceeds limit"),
    "jpg_is_png.jpg": ok("image2caption: jpg_is_png.txt"),
    "npy_empty.npy": error("the file is empty"),
    "npy_truncated.npy": error("truncated: 56 bytes of data where the header promises 96"),
    "npy_random.npy": error("not a .npy file (no NUMPY signature)"),
    "npy_object_array.npy": error("holds Python objects (pickled data is never loaded)"),
    "npy_is_pickle.npy": error("a pickle, not a .npy array (pickles are never loaded)"),
    "npy_nan.npy": error("holds NaN or infinite values (1 of 24, as float32)"),
    "npy_int.npy": error("holds int32 values, not floating-point features"),
    "npy_wrong_shape.npy": error("shape [3, 1, 8] is neither [n_windows, D] nor [1, n_windows, D]"),
    "npy_no_windows.npy": error("shape [1, 0, 8] holds no features (no windows or D = 0)"),
    "npy_huge_shape.npy": error("truncated: 16 bytes of data where the header promises 3072000000000000"),
    "npy_negative_shape.npy": error("shape [-1, 8] is neither [n_windows, D] nor [1, n_windows, D]"),
    "npy_float64_overflow.npy": error("holds NaN or infinite values (24 of 24, as float32)"),
    "npy_is_npz.npy": error("an .npz archive, not a .npy array"),
    "npy_is_wav.npy": ok("audio2mert: npy_is_wav.npy"),
}


@pytest.fixture(scope="module")
def large_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cases too large to commit, made by the corpus generator (run from source: no ``__pycache__``)."""
    folder = tmp_path_factory.mktemp("large")
    write_large_cases = runpy.run_path(str(CORPUS / "make_corpus.py"))["write_large_cases"]
    assert [path.name for path in write_large_cases(folder)] == list(LARGE_CASES)
    return folder


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="module")
def mert_dir(reference_dir: Path) -> Path:
    return reference_dir / "mert" / "model"


@pytest.fixture(scope="module", autouse=True)
def runner(
    tmp_path_factory: pytest.TempPathFactory, large_dir: Path, blip_dir: Path, mert_dir: Path
) -> Iterator[tuple[subprocess.Popen, Path] | None]:
    """The runner, started on every corpus file in the background (the batch tests run meanwhile)."""
    if not sys.platform.startswith("linux"):  # it forks, caps RLIMIT_AS and reads ru_maxrss in KiB
        yield None
        return
    work = tmp_path_factory.mktemp("single")
    request = {
        "files": [str(CORPUS / name) for name in EXPECTED if name not in LARGE_CASES]
        + [str(large_dir / name) for name in LARGE_CASES],
        "out_dir": str(work / "out"),
        "mert": str(mert_dir),
        "captioner": str(blip_dir),
        "time_limit_s": TIME_LIMIT_S,
        "memory_headroom_mib": MEMORY_HEADROOM_MIB,
        "parallel": 2,
    }
    (work / "request.json").write_text(json.dumps(request))
    with (
        (work / "request.json").open() as stdin,
        (work / "results").open("w") as out,
        (work / "stderr").open("w") as err,
    ):
        process = subprocess.Popen([sys.executable, str(RUNNER)], stdin=stdin, stdout=out, stderr=err)
    yield process, work
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def runs(runner: tuple[subprocess.Popen, Path] | None) -> tuple[Path, dict[str, dict]]:
    """The runner's output folder and its result for each file, by file name."""
    if runner is None:
        pytest.skip("the runner needs Linux")
    process, work = runner
    assert process.wait(timeout=300) == 0, (work / "stderr").read_text()[-3000:]
    results = [json.loads(line) for line in (work / "results").read_text().splitlines()]
    return work / "out", {Path(result["file"]).name: result for result in results}


def test_the_readme_documents_every_file_of_the_corpus() -> None:
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE)
    committed = {path.name for path in CORPUS.iterdir()} - {"README.md", "make_corpus.py"}
    assert len(documented) == len(set(documented))
    assert set(documented) == committed | set(LARGE_CASES) == set(EXPECTED)


def _mixed_folder(reference_dir: Path, folder: Path) -> Path:
    """The committed corpus and one valid file per converter input kind (named ``good_*``) in one folder."""
    shutil.copytree(CORPUS, folder, ignore=shutil.ignore_patterns("README.md", "make_corpus.py"))
    sources = {
        "good_score.mxl": "xml2abc/xml/chorale_bwv66_6.mxl",
        "good_tune.abc": "xml2abc/folk_abc/oneills_0002.abc",
        "good_song.mid": "midi2mtf/midi/chorale_bwv66_6.mid",
        "good_song.mtf": "midi2mtf/mtf_full/chorale_bwv66_6.mtf",
        "good_clip.wav": "mert/audio/short_24k_mono.wav",
    }
    for name, source in sources.items():
        shutil.copy(reference_dir / source, folder / name)
    Image.fromarray(np.full((24, 32, 3), 200, np.uint8)).save(folder / "good_picture.png")
    return folder


@pytest.mark.parametrize(
    "converter", ["xml2interleaved", "abc2interleaved", "midi2mtf", "mtf2midi", "audio2mert", "image2caption"]
)
def test_a_batch_converts_the_good_files_and_reports_the_bad_ones(
    tmp_path: Path, reference_dir: Path, blip_dir: Path, mert_dir: Path, converter: str
) -> None:
    folder = _mixed_folder(reference_dir, tmp_path / "mixed")
    options = ConvertOptions(mert=str(mert_dir), captioner=str(blip_dir), jobs=2, device="cpu")
    report = convert(converter, [folder], tmp_path / "out", options)

    spec = CONVERTERS[converter]
    mine = [path.name for path in sorted(folder.iterdir()) if detect_kind(path) in spec.kinds]
    good = [name for name in mine if name.startswith("good_")]
    refused = {name: EXPECTED[name][1] for name in mine if name in EXPECTED and EXPECTED[name][0] == "error"}
    assert len(good) == 1 and refused and not report.ok and report.unknown == []
    converted = [name for name in mine if name not in refused]
    assert sorted(path.name for path in report.written) == sorted(
        Path(name).with_suffix(spec.suffix).name for name in converted
    )
    assert {Path(failure.path).name: failure.path for failure in report.failures} == {
        name: str(folder / name) for name in refused
    }
    for failure in report.failures:
        assert refused[Path(failure.path).name] in failure.reason and "\n" not in str(failure)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_bad_file_is_refused_clearly_or_converted_within_bounds(
    runs: tuple[Path, dict[str, dict]], name: str
) -> None:
    _, results = runs
    result = results[name]
    outcome, text = EXPECTED[name]
    assert result["outcome"] == outcome, result["messages"]
    [message] = result["messages"]
    if outcome == "error":
        assert message.startswith(str(result["file"]) + ": ") and name in message
        assert text in message and "\n" not in message
    else:
        assert message == text
    assert result["seconds"] < TIME_LIMIT_S
    assert result["peak_mib"] < PEAK_MIB, f"{name}: peak {result['peak_mib']} MiB"


def test_legal_extreme_audio_gives_finite_features(runs: tuple[Path, dict[str, dict]]) -> None:
    out_dir, _ = runs
    windows = {"wav_8ch_192k.wav": 6, "wav_truncated.wav": 1, "mp3_truncated.mp3": 1, "npy_is_wav.npy": 1}
    for name, count in windows.items():
        features = load_feature_file(out_dir / name / Path(name).with_suffix(".npy").name)
        assert features.shape == (count, 32)  # 32: the tiny MERT's hidden size
        assert np.isfinite(features).all()


# ------------------------------------------------------------------ the limits themselves, at their edges


def test_midi_delta_times_up_to_the_4_byte_maximum_pass_both_ways() -> None:
    top = b"\xff\xff\xff\x7f"  # 268435455, the largest 4-byte variable-length quantity
    events = top + b"\x90\x3c\x50" + b"\x00\xff\x2f\x00"
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(events)) + events
    mtf = midi_to_mtf(data, name="top.mid")
    assert mtf.splitlines()[1] == f"note_on {MAX_DELTA_TICKS} 0 60 80" and MAX_DELTA_TICKS == 268435455
    assert midi_to_mtf(mtf_to_midi_bytes(mtf, name="top.mtf")) == mtf
    over = mtf.replace(str(MAX_DELTA_TICKS), str(MAX_DELTA_TICKS + 1))
    with pytest.raises(InputError, match="^over.mtf: line 2: delta time outside the MIDI range"):
        mtf_to_midi(over, name="over.mtf")


@pytest.mark.parametrize("ticks", [-32768, 32767])
def test_mtf_ticks_per_beat_keeps_the_full_16_bit_range(ticks: int) -> None:
    mtf = f"ticks_per_beat {ticks}\nnote_on 0 0 60 80\nend_of_track 0"
    assert midi_to_mtf(mtf_to_midi_bytes(mtf), m3_compatible=False) == mtf
    too_far = mtf.replace(str(ticks), str(ticks + (1 if ticks > 0 else -1)), 1)
    with pytest.raises(InputError, match="line 1: ticks_per_beat .* does not fit in a MIDI header"):
        mtf_to_midi(too_far)


def test_non_finite_waveforms_are_refused_in_memory_too(mert_dir: Path) -> None:
    extractor = MertExtractor.from_pretrained(mert_dir, device="cpu")
    samples = np.zeros(48000, np.float32)
    samples[30000] = np.inf
    with pytest.raises(InputError, match=r"^clip: NaN or infinite sample at frame 30000 \(1\.250 s\)$"):
        extractor.features(samples, 24000, path="clip")
    block = np.zeros((10, 8), np.float32)
    block[7, 5] = np.nan
    with pytest.raises(InputError, match=r"^x.wav: NaN or infinite sample at frame 107 \(0\.011 s\)$"):
        check_finite("x.wav", block, 10000, first_frame=100)


def test_content_sniffing_never_expands_a_bzip2_entry(tmp_path: Path) -> None:
    bomb = tmp_path / "archive"  # no extension: the kind is judged by content alone
    shutil.copy(CORPUS / "mxl_zip_bomb.mxl", bomb)
    tracemalloc.start()
    try:
        assert detect_kind(bomb) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
