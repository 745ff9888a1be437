"""Registry downloads through huggingface_hub, against a local fake hub (no network needed)."""

import hashlib
import os
import subprocess
import sys

import pytest

from clamp3.hub import REGISTRY
from clamp3.hub.registry import SAAS_FILE
from tests.fake_hub import serve

TOKENIZER = REGISTRY["xlm-roberta-base"]


def _hub_files() -> dict[tuple[str, str], bytes]:
    files = {("sander-wood/clamp3", SAAS_FILE): os.urandom(200_000)}
    for name in TOKENIZER.files:
        files[(TOKENIZER.repo, name)] = f"{name} content".encode()
    for name in REGISTRY["mert-v1-95m"].files:
        files[("m-a-p/MERT-v1-95M", name)] = b"mert " + name.encode()
    return files


def _clamp3(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clamp3", *args], env={**os.environ, **env}, capture_output=True, text=True
    )


def _snapshot(home, repo: str, filename: str):
    return (
        home
        / "hub"
        / f"models--{repo.replace('/', '--')}"
        / "snapshots"
        / "0123456789abcdef0123456789abcdef01234567"
        / filename
    )


def test_pull_downloads_a_model_and_what_it_requires(tmp_path):
    files = _hub_files()
    with serve(files) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0"}
        result = _clamp3("models", "pull", "saas", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        _snapshot(tmp_path, "sander-wood/clamp3", SAAS_FILE).read_bytes()
        == files[("sander-wood/clamp3", SAAS_FILE)]
    )
    for name in TOKENIZER.files:
        assert _snapshot(tmp_path, TOKENIZER.repo, name).read_bytes() == f"{name} content".encode()
    listing = _clamp3("models", "list", env={"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    cached = {line.split()[0]: line.split()[3] for line in listing.stdout.splitlines()[1:]}
    expected = {name: "no" for name in REGISTRY} | {"saas": "yes", "xlm-roberta-base": "yes"}
    assert cached == expected | {"default": "yes"}  # bundled with the package


def test_pull_resumes_a_partial_download(tmp_path):
    files = _hub_files()
    content = files[("sander-wood/clamp3", SAAS_FILE)]
    blobs = tmp_path / "hub" / "models--sander-wood--clamp3" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{hashlib.sha256(content).hexdigest()}.part").write_bytes(content[:150_000])
    with serve(files) as hub:
        result = _clamp3("models", "pull", "saas", env={"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path)})
        ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(SAAS_FILE)]
    assert result.returncode == 0, result.stderr
    assert ranges == ["bytes=150000-"]
    assert _snapshot(tmp_path, "sander-wood/clamp3", SAAS_FILE).read_bytes() == content


def test_an_interrupted_download_is_finished_by_the_next_pull(tmp_path):
    files = _hub_files()
    content = files[("sander-wood/clamp3", SAAS_FILE)]
    env = {"HF_HOME": str(tmp_path)}
    with serve(files, cut_first_download_at=70_000) as hub:
        env["HF_ENDPOINT"] = hub.url
        first = _clamp3("models", "pull", "saas", env=env)
        second = _clamp3("models", "pull", "saas", env=env)
        ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(SAAS_FILE)]
    assert first.returncode == 1 and "clamp3 models pull saas" in first.stderr
    assert second.returncode == 0, second.stderr
    assert ranges == [None, "bytes=70000-"]
    assert _snapshot(tmp_path, "sander-wood/clamp3", SAAS_FILE).read_bytes() == content


def test_pulling_mert_shows_its_non_commercial_licence(tmp_path):
    with serve(_hub_files()) as hub:
        result = _clamp3(
            "models", "pull", "mert-v1-95m", env={"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path)}
        )
    assert result.returncode == 0, result.stderr
    assert "CC BY-NC 4.0" in result.stderr


def test_offline_without_the_file_is_one_clear_message(tmp_path):
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = _clamp3("models", "pull", "c2", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "weights_clamp3_c2_" in lines[0] and "`clamp3 models pull c2`" in lines[0]
    code = (
        "import clamp3\ntry:\n    clamp3.CLaMP3.from_pretrained('saas')\n"
        "except clamp3.ModelNotAvailableError as e:\n    print(e)"
    )
    api = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert SAAS_FILE in api.stdout and "clamp3 models pull saas" in api.stdout


def test_info_and_unknown_names(tmp_path):
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    info = _clamp3("models", "info", "mert-v1-95m", env=env)
    assert info.returncode == 0
    assert "licence:    CC-BY-NC-4.0" in info.stdout
    assert "pytorch_model.bin -> not downloaded" in info.stdout
    unknown = _clamp3("models", "info", "nope", env=env)
    assert unknown.returncode == 1 and "unknown model name 'nope'" in unknown.stderr


@pytest.mark.parametrize("name", ["saas", "c2"])
def test_official_entries_use_the_released_file_names(name):
    entry = REGISTRY[name]
    assert entry.repo == "sander-wood/clamp3"
    assert entry.files == (
        f"weights_clamp3_{name}_h_size_768_t_model_FacebookAI_xlm-roberta-base_t_length_128_a_size_768"
        "_a_layers_12_a_length_128_s_size_768_s_layers_12_p_size_64_p_length_512.pth",
    )
    assert entry.config().projection_dim == 768
