"""``clamp3 train m3`` and a ``[lora]`` contrastive run, end to end through the command line."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from clamp3.encoder import CLaMP3
from clamp3.model.checkpoint import read_official_checkpoint
from clamp3.model.m3 import load_m3_encoder_into
from clamp3.model.towers import CLaMP3Model
from clamp3.train.lora import load_adapter
from tests.train_toy import WORDS, example, tiny_config, write_toy_corpus

REPO = Path(__file__).resolve().parents[1]


def _clamp3(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO / "src"), "CLAMP3_CACHE_DIR": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "clamp3", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def test_m3_pretraining_then_its_encoder_starts_contrastive_training(tmp_path):
    write_toy_corpus(tmp_path, per_style=3)
    tiny_config().save(tmp_path / "config.json")
    (tmp_path / "m3.toml").write_text(
        '[model]\nconfig = "config.json"\ndecoder_layers = 1\ndecoder_heads = 2\ndecoder_intermediate = 64\n'
        '[data]\ntrain = ["tunes"]\n'
        "[m3]\nbatch_size = 4\nval_fraction = 0.2\n"
        '[train]\noutput = "m3run"\nepochs = 3\nlearning_rate = 2e-3\n'
        "show_progress = false\ntensorboard = false\n"
    )
    result = _clamp3("train", "m3", "--config", "m3.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "best model in m3run/best/m3.pth" in result.stdout
    metrics = (tmp_path / "m3run" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,step,lr,train_loss,val_loss,neg_val_loss") and len(metrics) == 4
    losses = [float(line.split(",")[3]) for line in metrics[1:]]
    assert losses[-1] < losses[0]
    state = read_official_checkpoint(tmp_path / "m3run" / "best" / "m3.pth")
    model = CLaMP3Model(tiny_config())
    load_m3_encoder_into(model, tmp_path / "m3run" / "best" / "m3.pth")
    for name, tensor in model.symbolic_model.state_dict().items():
        if not name.endswith("position_ids") and not name.endswith("token_type_ids"):
            assert torch.equal(tensor, state[f"encoder.{name}"]), name


def test_lora_run_saves_an_adapter_that_export_merges(tmp_path):
    write_toy_corpus(tmp_path, per_style=3)
    torch.manual_seed(0)
    base = CLaMP3(CLaMP3Model(tiny_config()), device="cpu", tokenizer=example.build_tokenizer(WORDS))
    base.save_pretrained(tmp_path / "base")
    (tmp_path / "lora.toml").write_text(
        '[model]\ninit = "base"\n[data]\ntrain = "corpus.jsonl"\nvalidation_fraction = 0.25\n'
        "[contrastive]\nbatch_size = 6\n"
        '[lora]\nr = 4\nalpha = 8.0\ntowers = ["text", "symbolic"]\n'
        '[train]\noutput = "run"\nepochs = 2\nlearning_rate = 5e-3\n'
        "show_progress = false\ntensorboard = false\n"
    )
    trained = _clamp3("train", "contrastive", "--config", "lora.toml", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    adapter = tmp_path / "run" / "best"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter.json", "adapter.safetensors"]
    exported = _clamp3(
        "train", "export", "base", "--adapter", "run/best", "--format", "ours", "-o", "merged", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    tunes = [p.read_text() for p in sorted((tmp_path / "tunes").glob("*.abc"))[:5]]
    merged = CLaMP3.from_pretrained(tmp_path / "merged").encode_symbolic(tunes)
    reloaded = CLaMP3.from_pretrained(tmp_path / "base")
    adapted = CLaMP3(load_adapter(reloaded.model, adapter), device="cpu").encode_symbolic(tunes)
    plain = CLaMP3.from_pretrained(tmp_path / "base").encode_symbolic(tunes)
    np.testing.assert_allclose(merged, adapted, atol=1e-5)
    assert not np.allclose(merged, plain, atol=1e-4)  # the adapter changed the vectors
