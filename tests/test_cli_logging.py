"""``-v``/``-vv`` on every command: clamp3's log records on stderr, nothing without them."""

import logging
import re
import shutil

import click
import pytest
from click.testing import CliRunner

from clamp3.cli import main
from clamp3.cli.logs import level_for
from tests.tiny import tiny_model_with_tokenizer

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|DEBUG|WARNING) clamp3(\.\w+)*: ")


@pytest.fixture(scope="module")
def setup(reference_dir, tmp_path_factory):
    """Two ABC tunes in one file, a MIDI file and a text, and the tiny model."""
    root = tmp_path_factory.mktemp("logging")
    music = root / "music"
    music.mkdir()
    folk = reference_dir / "xml2abc" / "folk_abc"
    (music / "tunes.abc").write_text(
        (folk / "oneills_0002.abc").read_text() + "\n" + (folk / "essen_ballad10_0.abc").read_text()
    )
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", music / "bwv66.mid")
    (music / "about.txt").write_text("a calm chorale for four voices\n")
    model = tiny_model_with_tokenizer(reference_dir, root / "model")
    return music, model


@pytest.fixture()
def embed(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAMP3_CACHE_DIR", str(tmp_path / "cache"))
    music, model = setup

    def run(*verbosity: str, subcommand_verbosity: tuple[str, ...] = ()):
        args = [*verbosity, "embed", str(music), "-o", str(tmp_path / "out"), "-m", str(model), "--quiet"]
        result = CliRunner().invoke(main, [*args, *subcommand_verbosity], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return [line for line in result.stderr.splitlines() if LINE.match(line)]

    return run


def test_without_verbose_nothing_is_logged(embed):
    assert embed() == []


def test_verbose_logs_the_model_and_the_file_counts(embed, setup):
    music, model = setup
    lines = embed("-v")
    assert lines
    assert all(" INFO clamp3." in line for line in lines)
    assert any(
        f"INFO clamp3.api: model {model} loaded: clamp3 on cpu, fingerprint " in line for line in lines
    )
    assert any(
        line.endswith(f"clamp3.pipeline: found 3 file(s) in {music}: abc 1, midi 1, text 1; 0 unrecognised")
        for line in lines
    )
    assert any(
        line.endswith("read 3 file(s): 4 input(s), 0 failure(s); cache: midi miss 1, sheet miss 1")
        for line in lines
    )
    assert any(line.endswith("embedded files 1-3 of 3: 4 vector(s), 0 failure(s)") for line in lines)


def test_verbose_counts_add_up_before_and_after_the_subcommand(embed, setup):
    music, _ = setup
    lines = embed("-v", subcommand_verbosity=("-v",))
    assert any(line.endswith(f"DEBUG clamp3.pipeline: found {music / 'about.txt'} (text)") for line in lines)
    assert any(" DEBUG clamp3.pipeline: cache miss: vector " in line for line in lines)
    assert embed(subcommand_verbosity=("-vv",))[0].split(" ", 2)[2] == lines[0].split(" ", 2)[2]


def test_a_second_run_logs_cache_hits(embed):
    embed()
    lines = embed("-v")
    assert any(line.endswith("cache: midi hit 1, sheet hit 1") for line in lines)
    assert any("embedding 4 input(s): 4 from the cache, to encode: none" in line for line in lines)


def test_the_run_leaves_logging_as_it_found_it(embed):
    handlers = list(logging.getLogger().handlers)
    level = logging.getLogger("clamp3").level
    embed("-vv")
    assert logging.getLogger().handlers == handlers
    assert logging.getLogger("clamp3").level == level


def test_every_command_takes_verbose():
    def walk(command: click.Command):
        yield command
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from walk(sub)

    commands = list(walk(main))
    assert len(commands) >= 30
    for command in commands:
        (option,) = [p for p in command.params if "--verbose" in getattr(p, "opts", ())]
        assert option.opts == ["-v", "--verbose"] and option.count


def test_levels():
    assert [level_for(n) for n in range(4)] == [logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG]
