"""``clamp3 classify`` (zero-shot) and ``clamp3 probe train|predict`` (linear probe)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from clamp3.cli.common import friendly_errors, model_options, report_problems
from clamp3.fileio import atomic_write


def _label_list(labels: str | None, labels_file: Path | None) -> list[str]:
    if (labels is None) == (labels_file is None):
        raise click.UsageError("give --labels or --labels-file")
    if labels_file is not None:
        names = labels_file.read_text(encoding="utf-8").splitlines()
    else:
        names = labels.split(",")
    return [name.strip() for name in names if name.strip()]


@click.command("classify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--labels", default=None, help='Comma-separated labels, e.g. "jazz,rock,folk".')
@click.option(
    "--labels-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="One label per line."
)
@click.option(
    "--template",
    "templates",
    multiple=True,
    help='Prompt template with {label}, e.g. "A {label} song." (repeatable) [built-in templates].',
)
@click.option("--language", default="en", show_default=True, help="Language of the built-in templates.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="labels.csv (id,label): report accuracy and macro-F1.",
)
@click.option(
    "--confusion", type=click.Path(path_type=Path), help="With --truth: write a confusion-matrix PNG."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option(
    "--csv", "csv_path", type=click.Path(path_type=Path), help="Write id, prediction and probabilities."
)
@model_options
@friendly_errors
def classify_command(
    paths: tuple[Path, ...],
    labels: str | None,
    labels_file: Path | None,
    templates: tuple[str, ...],
    language: str,
    top_k: int,
    truth: Path | None,
    confusion: Path | None,
    as_json: bool,
    csv_path: Path | None,
    model_args: dict[str, Any],
) -> None:
    """Zero-shot classification: which label's text prompts are closest to each file."""
    from clamp3.api import zero_shot
    from clamp3.retrieval import read_labels_csv

    truth_labels = read_labels_csv(truth) if truth is not None else None
    result = zero_shot(
        paths,
        _label_list(labels, labels_file),
        language=language,
        templates=templates,
        truth=truth_labels,
        **model_args,
    )
    order = result.probabilities.argsort(axis=1)[:, ::-1][:, :top_k]
    if as_json:
        for row, item_id in enumerate(result.ids):
            top = [
                {"label": result.labels[i], "probability": float(result.probabilities[row, i])}
                for i in order[row]
            ]
            click.echo(
                json.dumps({"id": item_id, "prediction": top[0]["label"], "top": top}, ensure_ascii=False)
            )
    else:
        table = Table("file", *(f"#{i + 1}" for i in range(order.shape[1])))
        for row, item_id in enumerate(result.ids):
            table.add_row(
                item_id, *(f"{result.labels[i]} {result.probabilities[row, i]:.1%}" for i in order[row])
            )
        Console().print(table)
    if csv_path is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "prediction", *result.labels])
        for row, item_id in enumerate(result.ids):
            writer.writerow(
                [item_id, result.predictions[row], *(f"{p:.6f}" for p in result.probabilities[row])]
            )
        atomic_write(csv_path, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))
    if result.report is not None:
        click.echo(
            f"accuracy: {result.report.accuracy:.4f}  macro-F1: {result.report.macro_f1:.4f}", err=as_json
        )
        if confusion is not None:
            from clamp3.retrieval.plots import plot_confusion_matrix

            plot_confusion_matrix(result.report, confusion)
    if report_problems(result.failures):
        raise SystemExit(1)


@click.group("probe")
def probe_group() -> None:
    """Train and apply a linear classifier on global vectors."""


def _vectors(paths: tuple[Path, ...], model_args: dict[str, Any], features_model: str):
    """Vectors of ``paths`` and the name of the model they come from."""
    from clamp3.api import Session, collect, is_precomputed

    if all(is_precomputed(p) for p in paths):
        found = collect(None, paths)
        return found, features_model
    found = collect(Session.open(**model_args), paths)
    return found, found.features.model


@probe_group.command("train")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--labels",
    "labels_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="labels.csv: id (relative path or its key), label.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to save the probe (.safetensors).",
)
@click.option(
    "--features-model",
    default="precomputed",
    show_default=True,
    help="Name recorded for precomputed .npy features (their model is unknown to clamp3).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@model_options
@friendly_errors
def probe_train(
    paths: tuple[Path, ...],
    labels_csv: Path,
    output: Path,
    features_model: str,
    epochs: int,
    learning_rate: float,
    seed: int,
    model_args: dict[str, Any],
) -> None:
    """Train a probe on the vectors of PATHS (files, folders or precomputed features)."""
    from clamp3.retrieval import LinearProbe, ProbeConfig, labels_for, read_labels_csv

    found, model_name = _vectors(paths, model_args, features_model)
    labels = labels_for(found.features, read_labels_csv(labels_csv))
    config = ProbeConfig(max_epochs=epochs, learning_rate=learning_rate, seed=seed)
    probe, report = LinearProbe.fit(found.features.vectors, labels, embedding_model=model_name, config=config)
    probe.save(output)
    scores = report.validation or report.train
    which = "validation" if report.validation else "training"
    click.echo(
        f"{which} accuracy: {scores.accuracy:.4f}  macro-F1: {scores.macro_f1:.4f}  "
        f"(epoch {report.best_epoch} of {report.epochs_run}); saved {output}"
    )
    if report_problems(found.failures, found.skipped):
        raise SystemExit(1)


@probe_group.command("predict")
@click.argument("probe_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--features-model",
    default="precomputed",
    show_default=True,
    help="Name of the model of precomputed .npy features (must match the probe's).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@model_options
@friendly_errors
def probe_predict(
    probe_path: Path, paths: tuple[Path, ...], features_model: str, as_json: bool, model_args: dict[str, Any]
) -> None:
    """Label the vectors of PATHS with a trained probe."""
    from clamp3.retrieval import LinearProbe

    probe = LinearProbe.load(probe_path)
    found, model_name = _vectors(paths, model_args, features_model)
    probabilities = probe.probabilities(found.features.vectors, embedding_model=model_name)
    for item_id, row in zip(found.features.ids, probabilities, strict=True):
        label = probe.labels[int(row.argmax())]
        if as_json:
            click.echo(json.dumps({"id": item_id, "label": label, "probability": float(row.max())}))
        else:
            click.echo(f"{item_id}\t{label}\t{row.max():.4f}")
    if report_problems(found.failures, found.skipped):
        raise SystemExit(1)
