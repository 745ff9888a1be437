"""The ``clamp3`` command. Each sub-module holds one command group and only calls the public API."""

from __future__ import annotations

import click

from clamp3 import __version__
from clamp3.cli.convert import convert_command
from clamp3.cli.demo import demo
from clamp3.cli.models import models


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clamp3")
def main() -> None:
    """CLaMP 3: text, sheet music, MIDI, audio and images in one embedding space."""


main.add_command(models)
main.add_command(convert_command)
main.add_command(demo)
