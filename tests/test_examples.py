"""The README's fine-tuning example, run as written."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CLAMP3_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_finetune_example_trains_a_model_that_finds_the_right_style(tmp_path):
    prepared = _run(str(REPO / "examples" / "finetune" / "prepare.py"), "toy", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    trained = _run("-m", "clamp3", "train", "contrastive", "--config", "toy/train.toml", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "toy" / "run" / "best" / "model.safetensors").exists()
    for style in ("jig", "waltz", "reel"):
        found = _run(
            "-m",
            "clamp3",
            "search",
            "--text",
            f"a {style}",
            "toy/tunes",
            "--model",
            "toy/run/best",
            "-k",
            "1",
            "--json",
            "--quiet",
            cwd=tmp_path,
        )
        assert found.returncode == 0, found.stderr
        assert Path(json.loads(found.stdout)["path"]).name.startswith(f"{style}_")
