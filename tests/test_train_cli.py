"""``clamp3 train contrastive`` from a TOML recipe: one process against two (torchrun, gloo), and export."""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clamp3.model.checkpoint import read_official_checkpoint
from tests.tiny import tiny_tokenizer
from tests.train_toy import WORDS, tiny_config, write_toy_corpus

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    write_toy_corpus(root, per_style=4)
    tiny_config(dropout=0.0).save(root / "config.json")
    tiny_tokenizer(WORDS).save_pretrained(root / "tokenizer")
    return root


def _recipe(root: Path, output: str) -> Path:
    path = root / f"{output}.toml"
    path.write_text(
        '[model]\nconfig = "config.json"\ntokenizer = "tokenizer"\n'
        '[data]\ntrain = "corpus.jsonl"\nvalidation_fraction = 0.25\ncache = false\n'
        "[contrastive]\nbatch_size = 8\nseed = 3\n"
        f'[train]\noutput = "{output}"\nepochs = 1\nlearning_rate = 1e-3\nwarmup_steps = 1\n'
        "show_progress = false\ntensorboard = false\n"
    )
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(workspace: Path, name: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "clamp3",
        "train",
        "contrastive",
        "--config",
        str(_recipe(workspace, name)),
    ]
    return subprocess.run(command, capture_output=True, text=True, env=_env())


def _train_loss(run: Path) -> float:
    with (run / "metrics.csv").open() as handle:
        return float(list(csv.DictReader(handle))[-1]["train_loss"])


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(workspace):
    single = _train(workspace, "single")
    assert single.returncode == 0, single.stderr
    assert "best model in" in single.stdout
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            "-m",
            "clamp3",
            "train",
            "contrastive",
            "--config",
            str(_recipe(workspace, "ddp")),
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert ddp.returncode == 0, ddp.stderr
    assert abs(_train_loss(workspace / "single") - _train_loss(workspace / "ddp")) < 1e-5
    one = load_file(workspace / "single" / "best" / "model.safetensors")
    two = load_file(workspace / "ddp" / "best" / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=1e-5, rtol=1e-4, msg=name)


def test_export_to_the_official_layout(workspace):
    run = workspace / "single"
    if not (run / "best").exists():
        assert _train(workspace, "single").returncode == 0
    target = workspace / "exported.pth"
    result = subprocess.run(
        [sys.executable, "-m", "clamp3", "train", "export", str(run / "best"), "-o", str(target)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    raw = torch.load(target, map_location="cpu", weights_only=True)
    assert set(raw) == {"model", "epoch", "min_eval_loss"}
    ours = load_file(run / "best" / "model.safetensors")
    exported = read_official_checkpoint(target)
    assert exported.keys() == ours.keys()
    assert all(torch.equal(exported[k], ours[k]) for k in ours)
    assert not any(k.endswith("position_ids") for k in raw["model"])


def test_recipe_errors_name_the_problem(workspace):
    bad = workspace / "bad.toml"
    bad.write_text('[data]\ntrain = "corpus.jsonl"\n[train]\nepochz = 3\n')
    result = subprocess.run(
        [sys.executable, "-m", "clamp3", "train", "contrastive", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 1
    assert "[train]: unknown setting(s) epochz" in result.stderr
