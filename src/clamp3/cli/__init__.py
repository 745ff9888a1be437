"""The ``clamp3`` command. Each sub-module holds one command group and only calls the public API."""

from __future__ import annotations

import click

from clamp3 import __version__
from clamp3.cli.cache import cache_group
from clamp3.cli.classify import classify_command, probe_group
from clamp3.cli.convert import convert_command
from clamp3.cli.demo import demo
from clamp3.cli.library import library_group
from clamp3.cli.logs import add_verbose_option
from clamp3.cli.models import models
from clamp3.cli.serve import serve_command
from clamp3.cli.tasks import embed_command, eval_command, locate_command, score_command, search_command
from clamp3.cli.train import train_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clamp3")
def main() -> None:
    """CLaMP 3: text, sheet music, MIDI, audio and images in one embedding space."""


for command in (
    embed_command,
    search_command,
    locate_command,
    score_command,
    eval_command,
    library_group,
    classify_command,
    probe_group,
    train_group,
    convert_command,
    models,
    cache_group,
    serve_command,
    demo,
):
    main.add_command(command)
add_verbose_option(main)
