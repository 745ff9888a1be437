"""Shared test fixtures. Reference fixtures live in tests/fixtures (see its README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
"""Outputs of the reference CLaMP 3 and CLaMP 1 implementations, committed for parity tests."""


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
    """``tests/fixtures/reference``: outputs of the reference CLaMP 3 implementation."""
    return FIXTURES / "reference"


@pytest.fixture(scope="session")
def clamp1_dir() -> Path:
    """``tests/fixtures/clamp1``: outputs of the reference CLaMP 1 implementation."""
    return FIXTURES / "clamp1"


@pytest.fixture()
def run(tmp_path, monkeypatch):
    """``run(*args)``: the ``clamp3`` command line in this process (click's runner), with its own cache."""
    from click.testing import CliRunner

    from clamp3.cli import main

    monkeypatch.setenv("CLAMP3_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke
