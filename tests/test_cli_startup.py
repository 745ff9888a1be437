"""``clamp3 --help`` and every ``clamp3 COMMAND --help`` stay light: no torch, transformers, LanceDB...

Each check runs in a fresh interpreter, where ``sys.modules`` shows what building the help imported.
"""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "lancedb", "pyarrow", "numpy")

_HELP_SCRIPT = """
import json, sys
import click
from clamp3.cli import main

def walk(command, path):
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, [*path, name])

commands = list(walk(main, []))
for path in commands:
    try:
        main.main([*path, "--help"], prog_name="clamp3", standalone_mode=False)
    except SystemExit:
        pass
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"commands": [" ".join(p) for p in commands], "heavy": heavy}))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def test_every_help_imports_none_of_the_heavy_modules():
    lines = _run(f"HEAVY = {HEAVY!r}\n{_HELP_SCRIPT}").splitlines()
    report = json.loads(lines[-1])
    assert report["heavy"] == []
    commands = set(report["commands"])
    assert {"", "embed", "convert", "library add", "train default-model", "serve", "models pull"} <= commands
    assert len(commands) >= 30


def test_importing_the_package_and_the_cli_imports_none_of_them():
    code = f"import sys, clamp3, clamp3.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    assert _run(code).strip() == "[]"


def test_python_m_clamp3_help_lists_the_commands():
    done = subprocess.run(
        [sys.executable, "-m", "clamp3", "--help"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("Usage: python -m clamp3 [OPTIONS] COMMAND [ARGS]...")
    for command in ("embed", "search", "convert", "library", "serve", "train"):
        assert f"\n  {command} " in done.stdout
