"""``clamp3 cache info|clear``."""

from __future__ import annotations

import click

from clamp3.cache import FeatureCache


@click.group("cache")
def cache_group() -> None:
    """The feature cache (CLAMP3_CACHE_DIR, else the user cache folder)."""


@cache_group.command("info")
def cache_info() -> None:
    """Where the cache is, how many entries it holds and their size."""
    stats = FeatureCache().stats()
    click.echo(f"location: {stats.root}")
    click.echo(f"entries:  {stats.entries}")
    click.echo(f"size:     {stats.bytes / 1e6:.1f} MB")


@cache_group.command("clear")
def cache_clear() -> None:
    """Delete every cached conversion and vector."""
    cache = FeatureCache()
    click.echo(f"removed {cache.clear()} entries from {cache.root}")
