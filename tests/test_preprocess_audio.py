"""Audio -> MERT features against the reference fixtures in ``mert/`` (see its README.md)."""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clamp3.errors import CheckpointError, InputError
from clamp3.preprocess import audio
from clamp3.preprocess.audio import (
    StreamResampler,
    WindowSpec,
    iter_mono,
    load_mono,
    normalize,
    resample,
    scan_audio,
    split_windows,
    stream_windows,
    window_lengths,
)
from clamp3.preprocess.mert import MertExtractor, hubert_key, load_mert

TOL = {"atol": 1e-5, "rtol": 1e-4}
NAMES = ("main_24k_mono", "main_44k1_stereo", "short_24k_mono")
SPEC = WindowSpec()


@pytest.fixture(scope="module")
def mert_dir(reference_dir: Path) -> Path:
    return reference_dir / "mert"


@pytest.fixture(scope="module")
def index(mert_dir: Path) -> dict[str, dict]:
    files = json.loads((mert_dir / "index.json").read_text())["files"]
    return {Path(entry["audio"]).stem: entry for entry in files}


@pytest.fixture(scope="module")
def extractor(mert_dir: Path) -> MertExtractor:
    return MertExtractor.from_pretrained(mert_dir / "model", device="cpu")


def _audio(mert_dir: Path, name: str) -> Path:
    return mert_dir / "audio" / f"{name}.wav"


def _slices(signal: np.ndarray, spec: dict) -> np.ndarray:
    return np.stack([signal[start : start + spec["length"]] for start in spec["starts"]])


def _write_clip(path: Path, seconds: float, rate: int = 24000, channels: int = 1, seed: int = 0) -> Path:
    """Deterministic tones, a chirp and noise, written as PCM16 (the format follows the suffix)."""
    t = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal((len(t), channels))
    tones = 0.3 * np.sin(2 * np.pi * (220 + 15 * t) * t)[:, None] + 0.1 * np.sin(2 * np.pi * 550 * t)[:, None]
    sf.write(path, (tones * np.linspace(1, 0.5, channels) + 0.03 * noise).astype(np.float32), rate, "PCM_16")
    return path


# ------------------------------------------------------------------------------- waveform preprocessing


@pytest.mark.parametrize("name", ["main_24k_mono", "main_44k1_stereo"])
def test_loaded_and_normalised_waveforms_match_reference(mert_dir: Path, index: dict, name: str) -> None:
    entry = index[name]
    loaded = load_mono(_audio(mert_dir, name))
    assert len(loaded) == entry["loaded_waveform_shape_24k"][1]
    expected = np.load(mert_dir / entry["loaded_slices"]["file"])
    np.testing.assert_allclose(_slices(loaded, entry["loaded_slices"]), expected, atol=1e-6, rtol=0)
    processed = np.load(mert_dir / entry["processed_slices"]["file"])
    np.testing.assert_allclose(_slices(normalize(loaded), entry["processed_slices"]), processed, **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_streamed_statistics_and_windows_match_reference(mert_dir: Path, index: dict, name: str) -> None:
    entry = index[name]
    stats = scan_audio(_audio(mert_dir, name), SPEC, block_frames=7919)
    assert stats.num_samples == entry["processor_output_shape"][1]
    assert stats.mean == pytest.approx(entry["normalization_mean_float32"], rel=1e-4, abs=1e-9)
    assert stats.var == pytest.approx(entry["normalization_var_float32"], rel=1e-5)
    kept = [n for n in entry["window_lengths_samples"] if n >= SPEC.min_samples]
    assert [len(w) for w in stream_windows(_audio(mert_dir, name), SPEC, block_frames=7919)] == kept
    assert [len(w) for w in split_windows(load_mono(_audio(mert_dir, name)), SPEC)] == kept


def test_window_lengths_keep_a_tail_of_exactly_one_second() -> None:
    assert window_lengths(24000, SPEC) == [24000]
    assert window_lengths(23999, SPEC) == []
    assert window_lengths(120000 + 23999, SPEC) == [120000]
    assert window_lengths(240000 + 24000, SPEC) == [120000, 120000, 24000]


@pytest.mark.parametrize(("orig", "new"), [(44100, 24000), (48000, 24000), (22050, 24000), (16000, 24000)])
def test_streamed_resampling_equals_whole_signal_and_keeps_a_sine(orig: int, new: int) -> None:
    seconds = 2.0
    t = np.arange(round(seconds * orig)) / orig
    sine = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    whole = resample(sine, orig, new)
    assert len(whole) == math.ceil(len(sine) * new / orig)
    resampler = StreamResampler(orig, new, min_chunk=2000)
    cuts = np.cumsum(np.random.default_rng(1).integers(1, 3000, size=200))
    pieces = [resampler.push(piece) for piece in np.split(sine, cuts[cuts < len(sine)])]
    np.testing.assert_allclose(np.concatenate([*pieces, resampler.finish()]), whole, atol=1e-6, rtol=0)
    expected = np.sin(2 * np.pi * 1000.0 * np.arange(len(whole)) / new)
    middle = slice(new // 10, -new // 10)
    np.testing.assert_allclose(whole[middle], expected[middle], atol=2e-3, rtol=0)


# ----------------------------------------------------------------------------------------------- model


def test_conv_features_and_hidden_states_match_reference(mert_dir: Path, extractor: MertExtractor) -> None:
    window = torch.from_numpy(normalize(load_mono(_audio(mert_dir, "short_24k_mono")))[None, :120000])
    with torch.inference_mode():
        conv = extractor.model.feature_extractor(window).transpose(1, 2)
        states = torch.stack(extractor.model(window, output_hidden_states=True).hidden_states)
    layers = mert_dir / "layers"
    np.testing.assert_allclose(
        conv.numpy(), np.load(layers / "short_24k_mono.window0_conv_features.npy"), **TOL
    )
    np.testing.assert_allclose(
        states.numpy(), np.load(layers / "short_24k_mono.window0_hidden_states.npy"), **TOL
    )


@pytest.mark.parametrize("name", NAMES)
def test_per_layer_features_match_reference(mert_dir: Path, extractor: MertExtractor, name: str) -> None:
    windows = split_windows(normalize(load_mono(_audio(mert_dir, name))), extractor.spec)
    layers = np.concatenate([extractor.layer_features(window[None]) for window in windows], axis=1)
    np.testing.assert_allclose(layers, np.load(mert_dir / "layers" / f"{name}.layers.npy"), **TOL)


def test_extract_matches_reference_batched_and_unbatched(
    mert_dir: Path, extractor: MertExtractor, tmp_path: Path
) -> None:
    flac = tmp_path / "main_44k1_stereo.flac"
    data, rate = sf.read(_audio(mert_dir, "main_44k1_stereo"), dtype="int16")
    sf.write(flac, data, rate, "PCM_16")
    paths = [*(_audio(mert_dir, name) for name in NAMES), flac]
    expected = [np.load(mert_dir / "features" / f"{name}.npy")[0] for name in NAMES]
    expected.append(expected[1])
    one = extractor.extract(paths, batch_size=1)
    # batch 4: the two 55200-sample tails share a forward pass with each other, full windows with full ones
    four = extractor.extract(paths, batch_size=4, show_progress=True, block_frames=5003)
    for results in (one, four):
        assert [r.path for r in results] == paths
        for result, want in zip(results, expected, strict=True):
            assert result.ok and result.features.dtype == np.float32
            np.testing.assert_allclose(result.features, want, **TOL)
    for a, b in zip(one, four, strict=True):
        np.testing.assert_allclose(a.features, b.features, atol=1e-6, rtol=1e-5)


def test_features_of_an_in_memory_waveform_match_reference(mert_dir: Path, extractor: MertExtractor) -> None:
    data, rate = sf.read(_audio(mert_dir, "main_44k1_stereo"), dtype="float32")
    features = extractor.features(data.mean(axis=1, dtype=np.float32), rate)
    np.testing.assert_allclose(features, np.load(mert_dir / "features" / "main_44k1_stereo.npy")[0], **TOL)


def test_bf16_autocast_stays_close_to_float32(mert_dir: Path, extractor: MertExtractor) -> None:
    window = normalize(load_mono(_audio(mert_dir, "short_24k_mono")))[None, :120000]
    low = MertExtractor(extractor.model, device="cpu", dtype="bf16").window_features(window)
    np.testing.assert_allclose(low, extractor.window_features(window), atol=0.03, rtol=0.03)
    with pytest.raises(ValueError, match="unknown dtype 'int4'"):
        MertExtractor(extractor.model, device="cpu", dtype="int4")


def test_positional_convolution_runs_in_float32_under_autocast(extractor: MertExtractor) -> None:
    seen: dict[str, torch.dtype] = {}
    model = extractor.model
    hooks = [
        model.encoder.pos_conv_embed.conv.register_forward_hook(lambda m, i, o: seen.update(pos=o.dtype)),
        model.encoder.layers[0].attention.q_proj.register_forward_hook(
            lambda m, i, o: seen.update(q=o.dtype)
        ),
    ]
    try:
        MertExtractor(model, device="cpu", dtype="bf16").window_features(np.zeros((1, 24000), np.float32))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == {"pos": torch.float32, "q": torch.bfloat16}  # the rest of the model still autocasts


# -------------------------------------------------------------------------------------- checkpoint files


def test_pytorch_bin_with_a_prefix_loads_like_safetensors(mert_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    shutil.copy(mert_dir / "model" / "config.json", tmp_path / "config.json")
    tensors = load_file(mert_dir / "model" / "model.safetensors")
    torch.save(
        {f"music_hubert.{key}": value for key, value in tensors.items()}, tmp_path / "pytorch_model.bin"
    )
    reference = load_mert(mert_dir / "model").state_dict()
    loaded = load_mert(tmp_path).state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)
    weight_g = tensors["encoder.pos_conv_embed.conv.weight_g"]
    assert torch.equal(loaded["encoder.pos_conv_embed.conv.parametrizations.weight.original0"], weight_g)


def test_hubert_key_renames_weight_norm_and_drops_prefixes() -> None:
    assert hubert_key("encoder.pos_conv_embed.conv.weight_v") == (
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1"
    )
    assert hubert_key("hubert.feature_extractor.conv_layers.0.conv.weight") == (
        "feature_extractor.conv_layers.0.conv.weight"
    )
    assert hubert_key("masked_spec_embed") == "masked_spec_embed"
    assert (
        hubert_key("model.encoder.layers.1.attention.q_proj.bias") == "encoder.layers.1.attention.q_proj.bias"
    )


@pytest.mark.parametrize("option", ["feature_extractor_cqt", "deepnorm"])
def test_unsupported_mert_options_fail_clearly(mert_dir: Path, tmp_path: Path, option: str) -> None:
    config = json.loads((mert_dir / "model" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, option: True}))
    shutil.copy(mert_dir / "model" / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"config.json: {option} is true"):
        load_mert(tmp_path)


def test_missing_weights_fail_clearly(mert_dir: Path, tmp_path: Path) -> None:
    shutil.copy(mert_dir / "model" / "config.json", tmp_path / "config.json")
    tensors = torch.load(mert_dir / "model" / "pytorch_model.bin", weights_only=True)
    del tensors["encoder.layer_norm.weight"]
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"missing: encoder\.layer_norm\.weight"):
        load_mert(tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError, match="neither model.safetensors nor pytorch_model.bin"):
        load_mert(tmp_path)


# ------------------------------------------------------------------------------ long, short, bad inputs


def test_streamed_long_file_equals_in_memory_path(extractor: MertExtractor, tmp_path: Path) -> None:
    path = _write_clip(tmp_path / "long.wav", seconds=123.7, rate=44100, channels=2)
    in_memory = split_windows(normalize(load_mono(path)), SPEC)
    assert [len(w) for w in in_memory] == [120000] * 24 + [88800]
    lengths, largest_difference = [], 0.0
    tracemalloc.start()
    try:
        for window, expected in zip(stream_windows(path, SPEC, block_frames=10007), in_memory, strict=True):
            lengths.append(len(window))
            largest_difference = max(largest_difference, float(np.abs(window - expected).max()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lengths == [len(w) for w in in_memory]
    assert largest_difference < 1e-5
    decoded_bytes = 123.7 * 44100 * 2 * 4
    assert peak < decoded_bytes / 5  # streaming never holds the whole decoded (or resampled) clip
    (result,) = extractor.extract([path], batch_size=8, block_frames=10007)
    full = extractor.window_features(np.stack(in_memory[:-1]))
    expected = np.concatenate([full, extractor.window_features(in_memory[-1][None])])
    np.testing.assert_allclose(result.features, expected, **TOL)


def test_one_bad_file_does_not_stop_the_others(
    mert_dir: Path, extractor: MertExtractor, tmp_path: Path
) -> None:
    too_short = _write_clip(tmp_path / "too_short.wav", seconds=0.5)
    one_second = _write_clip(tmp_path / "one_second.wav", seconds=1.0)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(2).bytes(4000))
    missing = tmp_path / "missing.wav"
    good = _audio(mert_dir, "short_24k_mono")
    results = extractor.extract([too_short, good, corrupt, one_second, missing], batch_size=2)
    assert [r.path for r in results] == [too_short, good, corrupt, one_second, missing]
    assert [r.ok for r in results] == [False, True, False, True, False]
    np.testing.assert_allclose(
        results[1].features, np.load(mert_dir / "features" / "short_24k_mono.npy")[0], **TOL
    )
    assert results[3].features.shape == (1, 32)
    assert (
        str(results[0].error) == f"{too_short}: shorter than 1 second (0.500 s): too short for MERT features"
    )
    assert str(results[2].error) == f"{corrupt}: cannot decode audio (Format not recognised.)"
    assert str(results[4].error) == f"{missing}: no such file"
    assert all("\n" not in str(r.error) for r in results if not r.ok)
    with pytest.raises(InputError, match="shorter than 1 second"):
        extractor.features(np.zeros(44000, np.float32), 44100)


def test_truncated_flac_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    whole = _write_clip(tmp_path / "whole.flac", seconds=3.0)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError) as caught:
        scan_audio(truncated, SPEC)
    assert caught.value.path == str(truncated)
    assert str(caught.value).startswith(f"{truncated}: cannot decode audio (")


def test_flac_is_lossless_and_ogg_mp3_decode_close(tmp_path: Path) -> None:
    wav = _write_clip(tmp_path / "clip.wav", seconds=3.0, rate=44100, channels=2)
    data, rate = sf.read(wav, dtype="float32")
    reference = load_mono(wav)
    sf.write(tmp_path / "clip.flac", data, rate, "PCM_16")
    np.testing.assert_array_equal(load_mono(tmp_path / "clip.flac"), reference)
    for suffix, subtype in ((".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")):
        sf.write(tmp_path / f"clip{suffix}", data, rate, subtype)  # (its mp3 writer garbles int16 input)
        decoded = load_mono(tmp_path / f"clip{suffix}")
        assert len(decoded) == len(reference), suffix
        assert np.corrcoef(decoded, reference)[0, 1] > 0.98, suffix


def test_m4a_decodes_through_pyav(tmp_path: Path) -> None:
    av = pytest.importorskip("av")  # PyAV is optional: only m4a / aac need it
    t = np.arange(3 * 44100) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    decoded = load_mono(path)
    expected = resample(tone, 44100, 24000)
    assert abs(len(decoded) - len(expected)) <= 2048
    best = max(np.corrcoef(decoded[lag : lag + 48000], expected[:48000])[0, 1] for lag in range(0, 1200, 4))
    assert best > 0.95


def test_m4a_without_pyav_is_a_clear_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(InputError) as caught:
        scan_audio(path, SPEC)
    assert str(caught.value) == (
        f"{path}: no decoder for .m4a files: libsndfile does not read them and PyAV is not installed "
        "(pip install av)"
    )


# ------------------------------------------------------------------ hostile headers, odd rates, limits


def _wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """A PCM16 WAV header declaring ``data_bytes`` of samples (which need not follow)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


@pytest.mark.parametrize(
    ("rate", "channels", "reason"),
    [
        (1, 1, "sample rate of 1 Hz, outside the 1000-384000 Hz that are decoded (a broken header?)"),
        (999, 1, "sample rate of 999 Hz, outside"),
        (768000, 1, "sample rate of 768000 Hz, outside"),
        (24000, 300, "300 channels, outside the 1-256 that are decoded"),
    ],
)
def test_implausible_decoded_parameters_are_refused_before_resampling(
    tmp_path: Path, rate: int, channels: int, reason: str
) -> None:
    path = tmp_path / "hostile.wav"
    samples = bytes(88000 - 88000 % (2 * channels))
    path.write_bytes(_wav_header(rate, channels, len(samples)) + samples)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=rf"^{path}: {re.escape(reason)}"):
            load_mono(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("orig", [44101, 23999, 383999])
def test_rates_sharing_no_factor_resample_in_bounded_memory(orig: int) -> None:
    t = np.arange(2 * orig) / orig
    sine = np.sin(2 * np.pi * 500.0 * t).astype(np.float32)
    tracemalloc.start()
    try:
        out = resample(sine, orig, 24000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == math.ceil(len(sine) * 24000 / orig)
    expected = np.sin(2 * np.pi * 500.0 * np.arange(len(out)) / 24000)
    np.testing.assert_allclose(out[2400:-2400], expected[2400:-2400], atol=2e-3, rtol=0)
    assert peak < 40 << 20  # the polyphase bank alone would be 24000 x (orig + 2 * width) float32


@pytest.mark.parametrize(("orig", "new"), [(44100, 24000), (8000, 24000), (22050, 24000)])
def test_per_output_filtering_equals_the_polyphase_bank(
    orig: int, new: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sine = np.sin(2 * np.pi * 700.0 * np.arange(orig) / orig).astype(np.float32)
    polyphase = resample(sine, orig, new)
    monkeypatch.setattr(audio, "FILTER_BUDGET", 64)  # no bank fits: every output is evaluated on its own
    resampler = StreamResampler(orig, new, min_chunk=3000)
    pieces = [resampler.push(piece) for piece in np.array_split(sine, 7)]
    np.testing.assert_allclose(np.concatenate([*pieces, resampler.finish()]), polyphase, atol=1e-6, rtol=0)


def test_audio_over_the_length_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    path = _write_clip(tmp_path / "three.wav", seconds=3.0)
    with pytest.raises(
        InputError,
        match=rf"^{path}: the audio is 3\.0 s long, over the limit of 2\.5 s \(as its header says\)$",
    ):
        scan_audio(path, SPEC, max_seconds=2.5)
    assert scan_audio(path, SPEC, max_seconds=3.0).num_samples == 72000
    assert len(load_mono(path, max_seconds=None)) == 72000


def test_audio_over_the_length_limit_stops_decoding_when_the_header_does_not_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_clip(tmp_path / "three.wav", seconds=3.0)
    monkeypatch.setattr(audio, "_declared_frames", lambda handle, size: None)
    with pytest.raises(
        InputError, match=rf"^{path}: the audio is longer than the limit of 2 s \(decoding stopped there\)$"
    ):
        list(iter_mono(path, 24000, block_frames=1000, max_seconds=2))
    assert len(load_mono(path, max_seconds=3)) == 72000


def test_a_truncated_wav_declares_no_more_than_its_size_holds(tmp_path: Path) -> None:
    path = tmp_path / "truncated.wav"
    path.write_bytes(_wav_header(24000, 2, 24000 * 4 * 600) + bytes(24000 * 4 * 3))  # claims 600 s, holds 3
    assert scan_audio(path, SPEC, max_seconds=5).num_samples == 72000


def test_extractor_reports_files_over_the_length_limit(extractor: MertExtractor, tmp_path: Path) -> None:
    short = _write_clip(tmp_path / "short.wav", seconds=1.5)
    long = _write_clip(tmp_path / "long.wav", seconds=4.0)
    results = extractor.extract([long, short], max_seconds=2)
    assert [r.ok for r in results] == [False, True]
    assert (
        str(results[0].error)
        == f"{long}: the audio is 4.0 s long, over the limit of 2 s (as its header says)"
    )


def test_decoder_chatter_on_stderr_is_silenced(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    clip = _write_clip(tmp_path / "clip.wav", seconds=2.0)
    data, rate = sf.read(clip, dtype="float32")
    sf.write(tmp_path / "clip.mp3", data, rate, "MPEG_LAYER_III")
    damaged = bytearray((tmp_path / "clip.mp3").read_bytes())
    damaged[2000:2400] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp3").write_bytes(bytes(damaged))
    capfd.readouterr()
    decoded = load_mono(tmp_path / "damaged.mp3")
    assert len(decoded) > 24000
    assert capfd.readouterr().err == ""
    print("still here", file=sys.stderr)  # stderr works again afterwards
    assert capfd.readouterr().err == "still here\n"
