"""Shared test fixtures. Reference fixtures live in ../shared (override with CLAMP3_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    path = Path(os.environ.get("CLAMP3_SHARED", REPO.parent / "shared"))
    if not (path / "fixtures" / "reference").is_dir():
        raise RuntimeError(
            f"reference fixtures not found under {path}; put the shared folder beside the repo "
            "or set CLAMP3_SHARED"
        )
    return path


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every test writes its cache entries (and the converted e5 backbone) into one session folder,
    never into the user's cache."""
    root = tmp_path_factory.mktemp("clamp3-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAMP3_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, which spin-wait to a crawl on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/fixtures/reference``: outputs of the reference CLaMP 3 implementation."""
    return shared_dir() / "fixtures" / "reference"


@pytest.fixture(scope="session")
def clamp1_dir() -> Path:
    """``../shared/fixtures/clamp1``: outputs of the reference CLaMP 1 implementation."""
    return shared_dir() / "fixtures" / "clamp1"
