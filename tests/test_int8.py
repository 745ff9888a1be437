"""int8 inference: close to float32, kept apart from float32 in cache keys and libraries, on the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from clamp3 import CLaMP3
from clamp3.errors import Clamp3Error
from clamp3.library import Library
from clamp3.pipeline import Pipeline, PipelineOptions
from clamp3.precision import Int8Conv1d, precision_name
from clamp3.preprocess.mert import MertExtractor
from tests.tiny import MODALITY_METHOD, load_case_input, tiny_dir, tiny_model_with_tokenizer

MIN_COSINE = 0.99


def _cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return (first * second).sum(-1) / np.linalg.norm(first, axis=-1) / np.linalg.norm(second, axis=-1)


@pytest.fixture(scope="module")
def models(reference_dir):
    directory = tiny_dir(reference_dir)
    return CLaMP3.from_pretrained(directory), CLaMP3.from_pretrained(directory, dtype="int8")


@pytest.mark.parametrize("modality", ["text", "symbolic", "audio"])
def test_int8_vectors_stay_close_to_float32(reference_dir, models, modality):
    directory = tiny_dir(reference_dir)
    cases = [c for c in json.loads((directory / "index.json").read_text()) if c["modality"] == modality]
    inputs = [load_case_input(directory, c) for c in cases]
    float32, int8 = (getattr(model, MODALITY_METHOD[modality])(inputs) for model in models)
    if modality == "text":  # the text tower stays float32 (see CLaMP3.float32_modules)
        np.testing.assert_array_equal(int8, float32)
        return
    cosine = _cosines(float32, int8)
    assert len(cosine) == len(cases) and cosine.min() >= MIN_COSINE
    assert not np.array_equal(float32, int8)  # the quantized kernels really ran


def test_int8_keeps_the_weights_fingerprint_and_changes_the_vector_keys(models):
    float32, int8 = models
    assert (float32.precision, int8.precision) == ("float32", "int8")
    assert int8.fingerprint == float32.fingerprint
    assert int8.vector_identity.startswith(f"{float32.fingerprint}:int8:text_model,")
    assert float32.vector_identity == float32.fingerprint
    assert "dtype=int8" in repr(int8)
    item = Pipeline.items_from_texts(["a calm piece"])[0]
    keys = {Pipeline(model)._vector_key(item, "global") for model in models}
    assert len(keys) == 2
    with pytest.raises(Clamp3Error, match="^an int8 model cannot be saved"):
        int8.save_pretrained("unused")
    assert precision_name(None) == precision_name("fp32") == "float32"
    assert precision_name("bf16") == "bfloat16"
    with pytest.raises(ValueError, match="unknown dtype 'int4'; use one of .*, int8$"):
        precision_name("int4")


def test_a_pipeline_refuses_a_dtype_its_model_does_not_run_at(models):
    with pytest.raises(Clamp3Error, match="^--dtype int8: the loaded model computes float32 vectors$"):
        Pipeline(models[0], options=PipelineOptions(dtype="int8"))
    assert Pipeline(models[1], options=PipelineOptions(dtype="int8")).model is models[1]


def test_int8_is_refused_off_the_cpu(reference_dir):
    with pytest.raises(Clamp3Error, match="^dtype int8 runs on the CPU only, not on meta$"):
        CLaMP3.from_pretrained(tiny_dir(reference_dir), device="meta", dtype="int8")


def test_an_int8_convolution_computes_the_convolution():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(8, 16, kernel_size=3, stride=2, bias=False)
    hidden = torch.randn(2, 8, 101)
    with torch.inference_mode():
        exact, quantized = conv(hidden), Int8Conv1d(conv)(hidden)
    assert quantized.shape == exact.shape == (2, 16, 50)
    cosine = torch.nn.functional.cosine_similarity(exact.flatten(), quantized.flatten(), dim=0)
    assert cosine > 0.999 and not torch.equal(exact, quantized)
    with pytest.raises(ValueError, match="^only Conv1d layers with one group, no padding and no dilation$"):
        Int8Conv1d(torch.nn.Conv1d(8, 16, kernel_size=3, padding=1))


def test_int8_mert_stays_close_and_has_its_own_cache_key(reference_dir, models):
    model_dir = reference_dir / "mert" / "model"
    audio = reference_dir / "mert" / "audio" / "main_24k_mono.wav"
    float32 = MertExtractor.from_pretrained(model_dir).extract([audio])[0].features
    int8 = MertExtractor.from_pretrained(model_dir, dtype="int8").extract([audio])[0].features
    assert float32.shape == int8.shape and _cosines(float32, int8).min() >= MIN_COSINE
    assert not np.array_equal(float32, int8)
    options = PipelineOptions(mert=str(model_dir))
    keys = {Pipeline(model, options=options)._audio_stage_key() for model in models}
    assert len(keys) == 2


def test_cli_embeds_with_int8_apart_from_float32(reference_dir, run, tmp_path):
    model = tiny_model_with_tokenizer(reference_dir, tmp_path / "model")
    music = tmp_path / "music"
    music.mkdir()
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", music / "bwv66.mid")
    (music / "calm.txt").write_text("a calm chorale for four voices\n")
    vectors = {}
    for dtype in ("float32", "int8"):
        out = tmp_path / f"{dtype}.npz"
        result = run(
            "embed", music, "-o", out, "--format", "npz", "--model", model, "--dtype", dtype, "--quiet"
        )
        assert result.exit_code == 0, result.output
        vectors[dtype] = np.load(out)["vectors"]
    assert vectors["float32"].shape == vectors["int8"].shape == (2, 24)
    assert _cosines(vectors["float32"], vectors["int8"]).min() >= MIN_COSINE
    assert not np.array_equal(vectors["float32"], vectors["int8"])  # not the float32 vectors from the cache


def test_a_library_refuses_to_mix_precisions(reference_dir, run, tmp_path):
    model_dir = tiny_model_with_tokenizer(reference_dir, tmp_path / "model")
    music = tmp_path / "music"
    music.mkdir()
    (music / "calm.txt").write_text("a calm chorale for four voices\n")
    library = Library.create(tmp_path / "lib", model=str(model_dir))
    assert library.precision == "float32"
    expected = "holds float32 vectors; they cannot be mixed with int8 vectors: make a new library for them"
    with pytest.raises(Clamp3Error, match=expected):
        library.add([music], options=PipelineOptions(dtype="int8"))
    with pytest.raises(Clamp3Error, match=expected):
        library.use_model(CLaMP3.from_pretrained(model_dir, dtype="int8"))
    refused = run("library", "add", music, "--library", tmp_path / "lib", "--dtype", "int8", "--quiet")
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == f"Error: {library.uri}: this library {expected}"

    created = run("library", "init", tmp_path / "int8-lib", "--model", model_dir, "--dtype", "int8")
    assert created.exit_code == 0 and created.output.strip().endswith("(24 dimensions, int8)")
    added = run("library", "add", music, "--library", tmp_path / "int8-lib", "--quiet")  # its own precision
    assert added.exit_code == 0, added.output
    int8_library = Library.open(tmp_path / "int8-lib")
    assert int8_library.stats()["precision"] == "int8" and len(int8_library) == 1
    assert int8_library.session().model.precision == "int8"
