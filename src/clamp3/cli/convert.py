"""``clamp3 convert KIND INPUT... -o OUT_DIR``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import click

from clamp3.convert import CONVERTERS, ConvertOptions, convert
from clamp3.errors import Clamp3Error

logger = logging.getLogger(__name__)

_HELP = (
    "Convert files and folders into model input; outputs mirror the input tree under the -o folder.\n\n\b\n"
    + "\n".join(f"{name:<16} {spec.summary}" for name, spec in CONVERTERS.items())
    + "\n\nExisting outputs are kept (a re-run only does what is missing). "
    "Exit code 1 if any file failed."
)


@click.command("convert", help=_HELP)
@click.argument("kind", type=click.Choice(list(CONVERTERS)))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes [CPU count].")
@click.option(
    "--m3-compatible/--no-m3-compatible",
    default=True,
    show_default=True,
    help="midi2mtf: drop text-like meta messages, as CLaMP 3 does.",
)
@click.option("--mert", default="mert-v1-95m", show_default=True, help="audio2mert: model name or folder.")
@click.option(
    "--captioner", default="blip-base", show_default=True, help="image2caption: model name or folder."
)
@click.option(
    "--m3",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="symbolic2m3: an M3 checkpoint (official layout, e.g. best/m3.pth of clamp3 train m3).",
)
@click.option(
    "--m3-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="symbolic2m3: a CLaMP 3 config.json giving the M3 encoder's sizes [the official ones].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default=None, help="Device for model-based converters [cuda if available].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def convert_command(
    kind: str,
    inputs: tuple[str, ...],
    out_dir: str,
    jobs: int | None,
    m3_compatible: bool,
    mert: str,
    captioner: str,
    m3: Path | None,
    m3_config: Path | None,
    batch_size: int,
    device: str | None,
    quiet: bool,
) -> None:
    from rich.console import Console
    from rich.table import Table

    options = ConvertOptions(
        m3_compatible=m3_compatible,
        mert=mert,
        captioner=captioner,
        m3=m3,
        m3_config=m3_config,
        batch_size=batch_size,
        device=device,
    )
    if jobs is not None:
        options = replace(options, jobs=jobs)
    try:
        report = convert(kind, inputs, out_dir, options, show_progress=not quiet)
    except Clamp3Error as exc:
        raise click.ClickException(str(exc)) from None
    console = Console(stderr=True)
    table = Table(title=f"clamp3 convert {kind}")
    counts = {
        "converted": report.written,
        "already done": report.existing,
        "failed": report.failures,
        "warnings": report.warnings,
        "other kinds": report.other_kinds,
        "unrecognised": report.unknown,
    }
    for name in counts:
        table.add_column(name)
    table.add_row(*(str(len(items)) for items in counts.values()))
    console.print(table)
    for path in report.unknown:
        console.print(f"[yellow]skipped (unrecognised file): {path}[/yellow]", soft_wrap=True)
    for warning in report.warnings:
        logger.info("converter warning: %s", warning)
    for failure in report.failures:
        console.print(f"[red]failed:[/red] {failure}", soft_wrap=True)
    if not report.ok:
        raise SystemExit(1)
