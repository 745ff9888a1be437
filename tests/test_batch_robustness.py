"""Nothing stops a batch: every bad input is one failure line, the good ones are embedded.

The fuzz test runs ``clamp3 embed`` in a child process over more than 300 mutants of the project's own
fixtures (every kind) and checks the whole contract at once: no traceback, a bounded time, bounded
memory, one line per bad file, every good file embedded and exit code 1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from PIL import Image

from clamp3 import CLaMP3
from clamp3.cache import FeatureCache
from clamp3.cli import main
from clamp3.limits import InputLimits
from clamp3.pipeline import Pipeline, PipelineOptions
from tests.mutants import write_mutants
from tests.tiny import build_tiny_blip, tiny_model_with_tokenizer

THREE_TUNES = """X:1
T:First
M:4/4
L:1/8
K:G
GABc d2 B2|c2 A2 G4|]

X:2
T:Second, two voices of unequal length
M:4/4
L:1/8
K:D
V:1
D2 F2 A2 d2|f4 d4|
V:2
D,8|
V:1
A8|]

X:3
T:Third
M:3/4
L:1/8
K:A
A2 B2 c2|e4 c2|B2 A2 F2|A6|]
"""

GIB = 1 << 30


@pytest.fixture(scope="module")
def mert_dir(reference_dir):
    return reference_dir / "mert" / "model"


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny-with-tokenizer"))


def _options(mert_dir, **changes) -> PipelineOptions:
    return PipelineOptions(mert=str(mert_dir), **changes)


def _pipeline(model_dir, mert_dir, cache: Path | None = None, **changes) -> Pipeline:
    store = FeatureCache(cache) if cache is not None else None
    return Pipeline(CLaMP3.from_pretrained(model_dir), store, _options(mert_dir, **changes))


def test_one_bad_tune_fails_alone_and_the_failure_is_remembered(model_dir, mert_dir, tmp_path, monkeypatch):
    (tmp_path / "three.abc").write_text(THREE_TUNES)
    pipeline = _pipeline(model_dir, mert_dir, tmp_path / "cache")
    result = pipeline.embed_paths([tmp_path / "three.abc"])
    assert [item.id for item in result.items] == [
        f"{tmp_path / 'three.abc'}#1",
        f"{tmp_path / 'three.abc'}#3",
    ]
    (failure,) = result.failures
    assert failure.path == f"{tmp_path / 'three.abc'}#2"
    assert result.vectors.shape == (2, pipeline.model.embedding_dim)

    import clamp3.preprocess.sheet as sheet

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(sheet, "sheet_file_items", no_conversion)
    again = _pipeline(model_dir, mert_dir, tmp_path / "cache").embed_paths([tmp_path / "three.abc"])
    assert [str(e) for e in again.failures] == [str(failure)]
    np.testing.assert_array_equal(again.vectors, result.vectors)

    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    import clamp3.preprocess.midi as midi

    first = _pipeline(model_dir, mert_dir, tmp_path / "cache").embed_paths([tmp_path / "broken.mid"])
    monkeypatch.setattr(midi, "midi_to_mtf", no_conversion)  # a failed conversion is not redone
    second = _pipeline(model_dir, mert_dir, tmp_path / "cache").embed_paths([tmp_path / "broken.mid"])
    assert [str(e) for e in second.failures] == [str(e) for e in first.failures] != []


def test_sheet_music_under_another_name_embeds_alike_with_and_without_cache(
    model_dir, mert_dir, reference_dir, tmp_path
):
    (tmp_path / "tune.abc").write_text(THREE_TUNES.split("\n\n")[0] + "\n")
    shutil.copy(tmp_path / "tune.abc", tmp_path / "tune-abc.txt")
    shutil.copy(reference_dir / "xml2abc" / "xml" / "two_voices.xml", tmp_path / "score.xml")
    shutil.copy(tmp_path / "score.xml", tmp_path / "score-xml.txt")
    files = ["tune.abc", "tune-abc.txt", "score.xml", "score-xml.txt"]
    cached = _pipeline(model_dir, mert_dir, tmp_path / "cache").embed_paths([tmp_path / f for f in files])
    plain = _pipeline(model_dir, mert_dir, None).embed_paths([tmp_path / f for f in files[::-1]])
    assert cached.failures == plain.failures == []
    vectors = dict(zip((Path(i.id).name for i in plain.items), plain.vectors, strict=True))
    np.testing.assert_allclose(vectors["tune.abc#1"], vectors["tune-abc.txt#1"], atol=1e-6)
    np.testing.assert_allclose(vectors["score.xml"], vectors["score-xml.txt"], atol=1e-6)
    np.testing.assert_allclose(cached.vectors, plain.vectors[::-1], atol=1e-6)


def test_size_limits_fail_fast_with_the_limit_named(model_dir, mert_dir, tmp_path):
    (tmp_path / "long.txt").write_text("la " * 1_700_000)  # 5 MB on one line
    (tmp_path / "long.abc").write_text("X:1\nK:C\n" + "ABcd" * 2_500_000 + "\n")  # 10 MB
    (tmp_path / "ok.txt").write_text("an irish reel\n")
    pipeline = _pipeline(model_dir, mert_dir, None)
    started = time.monotonic()
    result = pipeline.embed_paths([tmp_path])
    assert time.monotonic() - started < 60
    assert [Path(item.id).name for item in result.items] == ["ok.txt"]
    abc, text = sorted(result.failures, key=str)
    assert abc.path == f"{tmp_path / 'long.abc'}#1"
    assert re.fullmatch(r"100000\d\d characters of ABC, over the limit of 200000", abc.reason)
    assert str(text) == f"{tmp_path / 'long.txt'}: 5100000 characters of text, over the limit of 100000"
    note = "note_on channel=0 note=60 velocity=64 time=1\n"
    (tmp_path / "notes.mtf").write_text("ticks_per_beat 480\n" + note * 9)
    few = _pipeline(model_dir, mert_dir, None, limits=InputLimits(max_symbolic_patches=5))
    (failure,) = few.embed_paths([tmp_path / "notes.mtf"]).failures
    assert re.fullmatch(r"\d+ patches of symbolic music, over the limit of 5", failure.reason)
    (tmp_path / "notes.mtf").unlink()
    small = _pipeline(model_dir, mert_dir, None, limits=InputLimits(max_file_bytes=100))
    result = small.embed_paths([tmp_path])
    assert [Path(item.id).name for item in result.items] == ["ok.txt"]
    assert sorted(str(e) for e in result.failures) == [
        f"{tmp_path / 'long.abc'}: 10000009 bytes, over the limit of 100 bytes",
        f"{tmp_path / 'long.txt'}: 5100000 bytes, over the limit of 100 bytes",
    ]


def test_an_item_the_encoder_refuses_fails_alone(model_dir, mert_dir, tmp_path):
    pipeline = _pipeline(model_dir, mert_dir, None)
    dim = pipeline.model.config.audio.feature_size
    np.save(tmp_path / "good.npy", np.ones((1, 3, dim), np.float32))
    np.save(tmp_path / "wrong.npy", np.ones((3, 100), np.float32))
    (tmp_path / "reel.txt").write_text("an irish reel\n")
    result = pipeline.embed_paths([tmp_path])
    assert sorted(Path(item.id).name for item in result.items) == ["good.npy", "reel.txt"]
    (failure,) = result.failures
    assert failure.path == str(tmp_path / "wrong.npy") and "100" in failure.reason


def test_images_without_captions_or_captioner_fail_one_by_one(model_dir, mert_dir, tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "blue.png")
    (tmp_path / "blue.caption.txt").write_text("a blue square\n")
    pipeline = _pipeline(model_dir, mert_dir, None, captioner=str(tmp_path / "no-blip-here"))
    result = pipeline.embed_paths([tmp_path])
    assert [Path(item.id).name for item in result.items] == ["blue.png"]
    (failure,) = result.failures
    assert failure.path == str(tmp_path / "red.png")
    assert failure.reason.startswith(
        f"needs a caption: write red.caption.txt or `clamp3 models pull {tmp_path / 'no-blip-here'}`"
    )


def test_search_leaves_the_query_file_out_unless_asked(model_dir, mert_dir, tmp_path):
    for name, text in {
        "a.txt": "an irish reel\n",
        "b.txt": "a calm chorale\n",
        "c.txt": "four voices\n",
    }.items():
        (tmp_path / name).write_text(text)
    args = ["search", tmp_path / "a.txt", tmp_path, "--json", "--model", model_dir, "--mert", mert_dir]
    runner = CliRunner()
    hits = runner.invoke(main, [str(a) for a in args], catch_exceptions=False).stdout.splitlines()
    assert len(hits) == 2 and all('a.txt"' not in hit for hit in hits)
    hits = runner.invoke(main, [str(a) for a in [*args, "--include-query"]]).stdout.splitlines()
    assert len(hits) == 3 and '"a.txt"' in hits[0] and '"score": 1.0' in hits[0]


def test_mert_is_refused_for_a_model_that_does_not_read_it(tmp_path):
    (tmp_path / "a.txt").write_text("an irish reel\n")
    result = CliRunner().invoke(main, ["embed", str(tmp_path), "-o", str(tmp_path / "out"), "--mert", "x"])
    assert result.exit_code == 1
    assert "--mert x: this model reads" in result.output and "not MERT's" in result.output
    help_text = CliRunner().invoke(main, ["convert", "--help"]).output
    assert "OUT_DIR" not in help_text and "-o, --output" in help_text


# ---------------------------------------------------------------------------- processes


_MEASURED = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(f'peak_kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
    "sys.exit(code)"
)
"""Runs a command and then prints its peak resident memory (its own: it is the only child)."""


def _run_embed(args: list[str], env_cache: Path, timeout: float) -> tuple[int, str, float, int]:
    """``clamp3 embed ARGS`` in a child: exit code, stderr, seconds and peak memory in bytes."""
    env = {**os.environ, "CLAMP3_CACHE_DIR": str(env_cache), "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    command = [sys.executable, "-c", _MEASURED, sys.executable, "-m", "clamp3", "embed", *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, env=env, text=True, timeout=timeout, check=False)
    err, _, peak = done.stderr.rpartition("peak_kib=")
    return done.returncode, err, time.monotonic() - started, int(peak) * 1024


def _seed_files(reference_dir: Path, model_dir: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    ref = reference_dir
    seeds = {
        "three": folder / "three.abc",
        "voices": folder / "voices.xml",
        "chorale": folder / "chorale-mxl.mxl",
        "midi": folder / "chorale-mid.mid",
        "mtf": folder / "tempo.mtf",
        "wav": folder / "short-wav.wav",
        "flac": folder / "short-flac.flac",
        "ogg": folder / "short-ogg.ogg",
        "mp3": folder / "short-mp3.mp3",
        "text": folder / "notes.txt",
        "features": folder / "features.npy",
        "png": folder / "cover-png.png",
        "jpg": folder / "cover-jpg.jpg",
    }
    seeds["three"].write_text(THREE_TUNES.replace(THREE_TUNES.split("\n\n")[1], "X:2\nT:ok\nK:D\nDFAd|]"))
    shutil.copy(ref / "xml2abc" / "xml" / "two_voices.xml", seeds["voices"])
    shutil.copy(ref / "xml2abc" / "xml" / "chorale_bwv66_6.mxl", seeds["chorale"])
    shutil.copy(ref / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", seeds["midi"])
    shutil.copy(ref / "midi2mtf" / "mtf_m3" / "tempo_changes.mtf", seeds["mtf"])
    shutil.copy(ref / "mert" / "audio" / "short_24k_mono.wav", seeds["wav"])
    audio, rate = sf.read(seeds["wav"])
    for name in ("flac", "ogg", "mp3"):
        sf.write(seeds[name], audio, rate)
    seeds["text"].write_text("a calm chorale\nfor four voices\n")
    dim = CLaMP3.from_pretrained(model_dir).config.audio.feature_size
    np.save(seeds["features"], np.random.default_rng(0).normal(size=(1, 4, dim)).astype(np.float32))
    picture = np.random.default_rng(1).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(picture).save(seeds["png"])
    Image.fromarray(picture).save(seeds["jpg"])
    return seeds


def test_fuzzed_inputs_never_stop_the_batch(reference_dir, model_dir, mert_dir, tmp_path):
    seeds = _seed_files(reference_dir, model_dir, tmp_path / "good")
    mutants = write_mutants(seeds, tmp_path / "mutants", per_seed=24, seed=22)
    assert len(mutants) >= 300
    blip = build_tiny_blip(tmp_path / "blip")
    out = tmp_path / "out"
    args = [str(tmp_path / "good"), str(tmp_path / "mutants"), "-o", str(out), "--quiet"]
    args += ["--model", str(model_dir), "--mert", str(mert_dir), "--captioner", str(blip)]
    code, err, seconds, peak = _run_embed(args, tmp_path / "cache", timeout=600)
    assert code == 1
    assert "Traceback" not in err and "unexpected" not in err, err[-3000:]
    assert peak < 4 * GIB
    lines = [line for line in err.splitlines() if line.startswith("failed: ")]
    failed: dict[str, int] = {}
    for line in lines:
        source = line.removeprefix("failed: ").split(": ", 1)[0].split("#", 1)[0]
        failed[source] = failed.get(source, 0) + 1
    outputs = {p.name for p in out.glob("*.npy")}  # each input folder's files land in `out` itself

    def produced(path: Path) -> bool:
        """Whether ``path`` has an output: ``stem.npy``, or ``stem.<tune>.npy`` for ABC tunes."""
        tune = re.compile(re.escape(path.stem) + r"\.\d+\.npy")
        return f"{path.stem}.npy" in outputs or any(tune.fullmatch(name) for name in outputs)

    for path in seeds.values():  # every good file is embedded whole
        assert str(path) not in failed and produced(path), path
    assert {f"three.{tune}.npy" for tune in (1, 2, 3)} <= outputs
    for path in mutants:  # and every mutant embedded or named by failure lines (one; ABC: one per tune)
        assert produced(path) or failed.get(str(path)), path
        if path.suffix != ".abc":
            assert failed.get(str(path), 0) <= 1, path
    assert f"{len(lines)} file(s) failed" in err
    print(
        f"fuzz: {len(mutants)} mutants, {len(lines)} failures, {seconds:.0f} s, peak {peak / 2**20:.0f} MiB"
    )


def test_kill_9_keeps_finished_outputs_and_a_rerun_completes(reference_dir, model_dir, mert_dir, tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    midi = (reference_dir / "midi2mtf" / "midi").glob("*.mid")
    for number, source in enumerate(sorted(midi) * 14):
        shutil.copy(source, music / f"{number:03d}-{source.name}")
    for number in range(60):
        (music / f"text{number:02d}.txt").write_text(f"a calm chorale number {number}\n")
    model = ["--model", str(model_dir), "--mert", str(mert_dir), "--quiet"]
    env = {**os.environ, "CLAMP3_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "clamp3", "embed", str(music), "-o", str(out), *model]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(out.rglob("*.npy")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert child.poll() is None, "embed finished before the first chunk was seen"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = {p: np.load(p) for p in out.rglob("*.npy")}
    assert 0 < len(finished) < 200
    code, err, _, _ = _run_embed([str(music), "-o", str(out), *model], tmp_path / "cache", timeout=600)
    assert code == 0, err
    clean = tmp_path / "clean"
    code, err, _, _ = _run_embed([str(music), "-o", str(clean), *model, "--no-cache"], tmp_path / "c2", 600)
    assert code == 0, err
    outputs = sorted(p.relative_to(out) for p in out.rglob("*.npy"))
    assert outputs == sorted(p.relative_to(clean) for p in clean.rglob("*.npy")) and len(outputs) == 200
    for relative in outputs:
        np.testing.assert_allclose(np.load(out / relative), np.load(clean / relative), atol=1e-5)
    for path, vector in finished.items():
        np.testing.assert_array_equal(np.load(path), vector)


def test_limits_are_set_from_the_command_line(model_dir, mert_dir, tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("an irish reel for four voices\n")
    (tmp_path / "texts" / "b.txt").write_text("a reel\n")
    base = [
        "embed",
        str(tmp_path / "texts"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(model_dir),
        "--quiet",
    ]
    result = CliRunner().invoke(main, [*base, "--limit", "max_text_chars=10"])
    assert result.exit_code == 1
    assert (
        f"failed: {tmp_path / 'texts' / 'a.txt'}: 30 characters of text, over the limit of 10"
        in result.output
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.npy"]
    result = CliRunner().invoke(
        main, [*base, "--limit", "max_text_chars=none", "--limit", "max_file_bytes=1e9"]
    )
    assert result.exit_code == 2 and "'max_file_bytes=1e9': '1e9' is not a number" in result.output
    result = CliRunner().invoke(main, [*base, "--limit", "max_text_chars=none"])
    assert result.exit_code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.npy",
        "b.npy",
    ]
    assert InputLimits().with_settings(["max_audio_seconds=1.5"]).max_audio_seconds == 1.5
    with pytest.raises(ValueError, match="NAME one of max_file_bytes"):
        InputLimits().with_settings(["seconds=3"])


def test_utf16_abc_is_read(model_dir, mert_dir, tmp_path):
    tune = THREE_TUNES.split("\n\n")[0] + "\n"
    (tmp_path / "utf8.abc").write_text(tune)
    (tmp_path / "utf16.abc").write_bytes(tune.encode("utf-16"))  # with a byte-order mark
    result = _pipeline(model_dir, mert_dir, None).embed_paths([tmp_path / "utf16.abc", tmp_path / "utf8.abc"])
    assert result.failures == [] and len(result.items) == 2
    np.testing.assert_allclose(result.vectors[0], result.vectors[1], atol=1e-6)


def test_an_image_needing_a_missing_package_fails_alone(model_dir, mert_dir, tmp_path, monkeypatch):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    (tmp_path / "reel.txt").write_text("an irish reel\n")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if the image extra were not installed
    monkeypatch.delitem(sys.modules, "clamp3.preprocess.image", raising=False)
    result = _pipeline(model_dir, mert_dir, None, captioner=str(tmp_path)).embed_paths([tmp_path])
    assert [Path(item.id).name for item in result.items] == ["reel.txt"]
    (failure,) = result.failures
    assert str(failure) == (
        f"{tmp_path / 'red.png'}: needs a caption: write red.caption.txt or `clamp3 models pull {tmp_path}` "
        "(needs the PIL package: pip install 'clamp3[image]')"
    )


def test_a_tune_refused_by_a_limit_converts_once_the_limit_is_raised(model_dir, mert_dir, tmp_path):
    (tmp_path / "three.abc").write_text(THREE_TUNES)
    cache = tmp_path / "cache"
    small = InputLimits(max_abc_chars=40)
    refused = _pipeline(model_dir, mert_dir, cache, limits=small).embed_paths([tmp_path / "three.abc"])
    assert refused.items == []
    (first,) = [e for e in refused.failures if e.path.endswith("#1")]
    assert re.fullmatch(r"\d+ characters of ABC, over the limit of 40", first.reason)
    raised = _pipeline(model_dir, mert_dir, cache).embed_paths([tmp_path / "three.abc"])
    assert [Path(item.id).name for item in raised.items] == ["three.abc#1", "three.abc#3"]
