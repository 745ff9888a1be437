"""CLaMP 1 registry entries, resolved through the hub cache like CLaMP 3's (local fake hub, no network)."""

import os
import subprocess
import sys

import pytest

from clamp3 import CLaMP3
from clamp3.clamp1 import CLaMP1
from clamp3.errors import Clamp3Error
from clamp3.hub import REGISTRY
from tests.fake_hub import COMMIT, serve

LOAD = (
    "from clamp3.clamp1 import CLaMP1\nfrom clamp3.errors import Clamp3Error\n"
    "try:\n    CLaMP1.from_pretrained('clamp1-s512')\n"
    "except Clamp3Error as e:\n    print(type(e).__name__, e)"
)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env={**os.environ, **env}, capture_output=True, text=True)


def test_entries():
    for name, repo in (
        ("clamp1-s512", "sander-wood/clamp-small-512"),
        ("clamp1-s1024", "sander-wood/clamp-small-1024"),
    ):
        entry = REGISTRY[name]
        assert (entry.kind, entry.repo, entry.files) == ("clamp1", repo, ("config.json", "pytorch_model.bin"))
        assert entry.requires == ("distilroberta-base",) and entry.config is None
    tokenizer = REGISTRY["distilroberta-base"]
    assert (tokenizer.kind, tokenizer.repo) == ("tokenizer", "distilbert/distilroberta-base")


def test_families_do_not_load_each_other():
    with pytest.raises(Clamp3Error, match="'clamp1-s512' is a clamp1, not a CLaMP 3 model"):
        CLaMP3.from_pretrained("clamp1-s512")
    with pytest.raises(Clamp3Error, match="'saas' is a clamp3 model, not a CLaMP 1 model"):
        CLaMP1.from_pretrained("saas")


def test_offline_without_the_files_is_one_clear_message(tmp_path):
    result = _run(["-c", LOAD], {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert result.stdout.startswith(
        "ModelNotAvailableError config.json of sander-wood/clamp-small-512 (clamp1-s512)"
    )
    assert "`clamp3 models pull clamp1-s512`" in result.stdout and result.stdout.count("\n") == 1


def test_pull_then_load_from_the_hub_cache(clamp1_dir, tmp_path):
    tiny = clamp1_dir / "tiny_model"
    tokenizer = REGISTRY["distilroberta-base"]
    files = {
        ("sander-wood/clamp-small-512", n): (tiny / n).read_bytes()
        for n in ("config.json", "pytorch_model.bin")
    }
    files |= {(tokenizer.repo, n): b"{}" for n in tokenizer.files}
    with serve(files) as hub:
        pull = _run(
            ["-m", "clamp3", "models", "pull", "clamp1-s512"],
            {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path)},
        )
    assert pull.returncode == 0, pull.stderr
    assert len(pull.stdout.splitlines()) == 6
    snapshot = tmp_path / "hub" / "models--sander-wood--clamp-small-512" / "snapshots" / COMMIT
    assert (snapshot / "pytorch_model.bin").read_bytes() == (tiny / "pytorch_model.bin").read_bytes()
    # the hub layout has no text_model_config.json: the text encoder is distilroberta-base, which the
    # tiny checkpoint does not fit; the strict check names the file it read from the cache and the keys
    load = _run(["-c", LOAD], {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert load.stdout.startswith(
        f"CheckpointError {snapshot / 'pytorch_model.bin'}: checkpoint does not fit"
    )
    assert (
        "text_enc.embeddings.word_embeddings.weight (checkpoint [1000, 32], model [50265, 768])"
        in load.stdout
    )
    assert "music_enc" not in load.stdout
