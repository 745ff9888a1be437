"""``clamp3 train contrastive | m3 | default-model | export``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from clamp3.cli.common import friendly_errors
from clamp3.train.default_model.settings import DefaultModelSettings

_RECIPE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _is_reporting_process() -> bool:
    """Under torchrun, only the first process reports."""
    return os.environ.get("RANK", "0") == "0"


@click.group("train")
def train_group() -> None:
    """Train or fine-tune models (single process, or under torchrun for several)."""


@train_group.command("contrastive")
@click.option("--config", "config_path", type=_RECIPE, required=True, help="Training recipe (TOML).")
@friendly_errors
def contrastive_command(config_path: Path) -> None:
    """Align text with symbolic music or audio; resumes from OUTPUT/checkpoint.pt when present."""
    from clamp3.train.recipe import load_recipe, run_contrastive

    recipe = load_recipe(config_path)
    state = run_contrastive(recipe)
    if _is_reporting_process():
        last = state.history[-1] if state.history else {}
        shown = "  ".join(f"{k}={v:.4f}" for k, v in last.items() if k not in ("epoch", "step"))
        click.echo(
            f"epoch {state.epoch}, step {state.step}: {shown}; best model in {recipe.train.output / 'best'}"
        )


@train_group.command("m3")
@click.option(
    "--config",
    "config_path",
    type=_RECIPE,
    required=True,
    help="M3 pretraining recipe (TOML: [model], [data] train = [folders], [m3], [train]).",
)
@friendly_errors
def m3_command(config_path: Path) -> None:
    """Pretrain the symbolic tower with masked patch modelling (M3) on unlabelled scores and MIDI."""
    from clamp3.train.recipe import load_m3_recipe, run_m3

    recipe = load_m3_recipe(config_path)
    state = run_m3(recipe)
    if _is_reporting_process():
        last = state.history[-1] if state.history else {}
        click.echo(
            f"epoch {state.epoch}, step {state.step}: val_loss={last.get('val_loss', float('nan')):.4f}; "
            f"best model in {recipe.train.output / 'best' / 'm3.pth'}"
        )


@train_group.command("default-model")
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the data, derived inputs, checkpoints and the model (re-run to resume).",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="An open-data set already built (python -m clamp3.train.opendata.build); default WORK/opendata.",
)
@click.option("--epochs", type=int, default=DefaultModelSettings.epochs, show_default=True)
@click.option(
    "--m3-epochs",
    type=int,
    default=DefaultModelSettings.m3_epochs,
    show_default=True,
    help="Epochs of M3 pretraining of the symbolic tower before the alignment (0: none).",
)
@click.option(
    "--symbolic-lr-scale",
    type=float,
    default=DefaultModelSettings.symbolic_lr_scale,
    show_default=True,
    help="Learning-rate factor of the symbolic tower in the alignment (below 1 keeps more of M3).",
)
@click.option(
    "--transposed-share",
    type=click.FloatRange(0.0, 1.0),
    default=DefaultModelSettings.transposed_share,
    show_default=True,
    help="Chance that a training draw takes the tune's transposed copy (0: no copies).",
)
@click.option(
    "--freedoom-wad",
    "freedoom",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="A Doom WAD whose MIDI music joins M3 pretraining (repeat; default: Debian freedoom's two).",
)
@click.option("--seed", type=int, default=DefaultModelSettings.seed, show_default=True)
@click.option("--workers", type=int, default=DefaultModelSettings.workers, show_default=True)
@click.option("--max-steps", type=int, help="Stop after this many steps (resume later to go on).")
@click.option("--device", help="cpu or cuda (default: cuda when available).")
@friendly_errors
def default_model_command(
    work: Path,
    data: Path | None,
    epochs: int,
    m3_epochs: int,
    symbolic_lr_scale: float,
    transposed_share: float,
    freedoom: tuple[Path, ...],
    seed: int,
    workers: int,
    max_steps: int | None,
    device: str | None,
) -> None:
    """Rebuild the bundled default model from open data: data set, renderings, training, export."""
    from clamp3.train.default_model.recipe import train_default_model

    settings = DefaultModelSettings(
        work=work,
        opendata=data,
        epochs=epochs,
        m3_epochs=m3_epochs,
        symbolic_lr_scale=symbolic_lr_scale,
        transposed_share=transposed_share,
        freedoom=freedoom or DefaultModelSettings.freedoom,
        seed=seed,
        workers=workers,
        max_steps=max_steps,
    )
    state = train_default_model(settings, device)
    best = max((row.get("val_mrr", 0.0) for row in state.history), default=0.0)
    if state.finished:
        click.echo(f"{state.epoch} epochs, best val_mrr={best:.4f}; model in {settings.model}")
    else:
        click.echo(f"stopped at step {state.step} (val_mrr so far {best:.4f}); run again to resume")


@train_group.command("export")
@click.argument("model_path", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["official", "ours"]),
    default="official",
    show_default=True,
    help="official: the reference's .pth layout; ours: model.safetensors + config.json.",
)
@click.option(
    "--adapter",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A LoRA adapter (best/ of a run with [lora]) to merge into the model first.",
)
@friendly_errors
def export_command(model_path: Path, output: Path, fmt: str, adapter: Path | None) -> None:
    """Write a trained model in the official .pth layout (for the reference's scripts) or in ours."""
    from clamp3.encoder import CLaMP3
    from clamp3.model.checkpoint import save_official

    if adapter is not None:
        from clamp3.train.lora import require_peft

        require_peft()
    encoder = CLaMP3.from_pretrained(model_path, device="cpu")
    if adapter is not None:
        from clamp3.train.lora import load_adapter, merge_adapter

        merged = merge_adapter(load_adapter(encoder.model, adapter))
        encoder = CLaMP3(merged, device="cpu", tokenizer_dir=encoder._tokenizer_dir)
    if fmt == "official":
        save_official(encoder.model, output)
    else:
        encoder.save_pretrained(output)
    click.echo(f"wrote {output}")
