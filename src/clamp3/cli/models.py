"""``clamp3 models list|pull|info``."""

from __future__ import annotations

import click

from clamp3.errors import Clamp3Error


@click.group()
def models() -> None:
    """List, download and describe the models clamp3 knows."""


@models.command("list")
def list_models() -> None:
    """Known model names, their licences and whether their files are in the local cache."""
    from clamp3.hub import REGISTRY, cached_path

    width = max(len(name) for name in REGISTRY) + 2
    click.echo(f"{'name':<{width}}{'kind':<16}{'licence':<15}{'cached':<9}repository")
    for entry in REGISTRY.values():
        have = sum(cached_path(entry, f) is not None for f in entry.files)
        state = "yes" if have == len(entry.files) else ("partial" if have else "no")
        where = "(bundled with clamp3)" if entry.bundled else entry.repo
        click.echo(f"{entry.name:<{width}}{entry.kind:<16}{entry.licence:<15}{state:<9}{where}")


@models.command()
@click.argument("names", nargs=-1, required=True)
def pull(names: tuple[str, ...]) -> None:
    """Download models (and what they need) into the Hugging Face cache."""
    from rich.console import Console

    from clamp3.hub import fetch, get_entry

    console = Console(stderr=True)
    try:
        queue = list(dict.fromkeys(n for name in names for n in (name, *get_entry(name).requires)))
        for name in queue:
            entry = get_entry(name)
            if entry.notice:
                console.print(f"[yellow]{entry.name}: {entry.notice}[/yellow]")
            for filename in entry.files:
                click.echo(str(fetch(entry, filename)))
    except Clamp3Error as exc:
        raise click.ClickException(str(exc)) from None


@models.command()
@click.argument("name")
def info(name: str) -> None:
    """Details of one model: repository, licence, files and where they are cached."""
    from clamp3.hub import cached_path, get_entry

    try:
        entry = get_entry(name)
    except Clamp3Error as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"name:       {entry.name}")
    click.echo(f"kind:       {entry.kind}")
    click.echo(f"summary:    {entry.summary}")
    if entry.bundled:
        click.echo(f"bundled:    {entry.local_dir}")
    else:
        click.echo(f"repository: https://huggingface.co/{entry.repo} (revision {entry.revision})")
    click.echo(f"licence:    {entry.licence}")
    if entry.notice:
        click.echo(f"notice:     {entry.notice}")
    if entry.requires:
        click.echo(f"requires:   {', '.join(entry.requires)}")
    for filename in entry.files:
        path = cached_path(entry, filename)
        click.echo(f"file:       {filename} -> {path if path else 'not downloaded'}")
