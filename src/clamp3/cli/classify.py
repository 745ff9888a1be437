"""``clamp3 classify`` (zero-shot) and ``clamp3 probe train|predict`` (linear probe)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click

from clamp3.cli.common import friendly_errors, model_options, report_problems
from clamp3.extras import require
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

    if confusion is not None:
        require("--confusion", "matplotlib.figure")
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
        from rich.console import Console
        from rich.table import Table

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


def _declared_model(model: Any, features_model: str | None) -> tuple[str, str | None]:
    """The model of precomputed vectors that record none: ``-m`` (by fingerprint when its weights are
    here) or the label ``--features-model``."""
    if model is not None and features_model is not None:
        raise click.UsageError("give -m (a model) or --features-model (a label), not both")
    if model is None:
        return features_model or "precomputed", None
    from clamp3.api import model_name
    from clamp3.hub.identity import model_identity

    name = model_name(model)
    return model_identity(name).fingerprint or name, name


def _vectors(
    groups: list[tuple[Path, ...]], model_args: dict[str, Any], features_model: str | None
) -> list[Any]:
    """One collection per group of paths, all of one model, each recording that model: embedded
    files by the model they were embedded with, vector files by the one they record, bare ``.npy``
    vectors by the one declared (see ``_declared_model``)."""
    from dataclasses import replace

    from clamp3.api import Session, check_same_model, collect, is_precomputed

    session, found = None, []
    for paths in groups:
        if all(is_precomputed(p) for p in paths):
            collection = collect(None, paths, model=model_args["model"])
            if collection.features.model is None:
                model, name = _declared_model(model_args["model"], features_model)
                collection.features = replace(collection.features, model=model, model_name=name)
        else:
            session = session or Session.open(**model_args)
            collection = collect(session, paths)
        found.append(collection)
    check_same_model([collection.features for collection in found])
    return found


def _labels(features: Any, labels_csv: Path | None) -> list[str]:
    from clamp3.retrieval import labels_for, labels_from_filenames, read_labels_csv

    if labels_csv is None:
        return labels_from_filenames(features)
    return labels_for(features, read_labels_csv(labels_csv))


@probe_group.command("train")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--labels",
    "labels_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="labels.csv: id (relative path or its key), label [labels from file names: label_name.npy].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to save the probe (.safetensors).",
)
@click.option(
    "--validation",
    "validation_path",
    type=click.Path(exists=True, path_type=Path),
    help="Validation files or vectors (labelled like PATHS) [a stratified 20% of PATHS].",
)
@click.option(
    "--balanced", is_flag=True, help="Weigh each item's loss by the inverse frequency of its label."
)
@click.option(
    "--features-model",
    default=None,
    help="Label recorded for .npy vectors of a model clamp3 does not know (else name it with -m) "
    "[precomputed].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@model_options
@friendly_errors
def probe_train(
    paths: tuple[Path, ...],
    labels_csv: Path | None,
    output: Path,
    validation_path: Path | None,
    balanced: bool,
    features_model: str | None,
    epochs: int,
    learning_rate: float,
    seed: int,
    model_args: dict[str, Any],
) -> None:
    """Train a probe on the vectors of PATHS (files, folders, .npy vectors or embed's .npz/.parquet).

    The probe records the vectors' model; for bare .npy vectors name it with -m (the model that made
    them), so that `probe predict` accepts that model's files.
    """
    from clamp3.retrieval import LinearProbe, ProbeConfig

    groups = [paths] + ([(validation_path,)] if validation_path is not None else [])
    found = _vectors(groups, model_args, features_model)
    features = found[0].features
    validation = None
    if validation_path is not None:
        validation = (found[1].features.vectors, _labels(found[1].features, labels_csv))
    config = ProbeConfig(max_epochs=epochs, learning_rate=learning_rate, seed=seed, balanced=balanced)
    probe, report = LinearProbe.fit(
        features.vectors,
        _labels(features, labels_csv),
        embedding_model=str(features.model),
        embedding_model_name=features.model_name,
        config=config,
        validation=validation,
    )
    probe.save(output)
    which = "validation" if report.validation else "training"
    for score in report.history:
        click.echo(
            f"epoch {score.epoch}: {which} accuracy {score.accuracy:.4f}  macro-F1 {score.macro_f1:.4f}  "
            f"loss {score.loss:.4f}",
            err=True,
        )
    scores = report.validation or report.train
    click.echo(
        f"{which} accuracy: {scores.accuracy:.4f}  macro-F1: {scores.macro_f1:.4f}  "
        f"(epoch {report.best_epoch} of {report.epochs_run}); saved {output}"
    )
    if report_problems([f for c in found for f in c.failures], [s for c in found for s in c.skipped]):
        raise SystemExit(1)


@probe_group.command("predict")
@click.argument("probe_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--features-model",
    default=None,
    help="Label of the model of .npy vectors, as given to probe train (else -m names the model) "
    "[the probe's model].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@model_options
@friendly_errors
def probe_predict(
    probe_path: Path,
    paths: tuple[Path, ...],
    features_model: str | None,
    as_json: bool,
    model_args: dict[str, Any],
) -> None:
    """Label the vectors of PATHS with a trained probe (files are embedded by the probe's model
    unless -m names another)."""
    from clamp3.retrieval import LinearProbe

    probe = LinearProbe.load(probe_path)
    if model_args["model"] is None and features_model is None:
        model_args = {**model_args, "model": probe.embedding_model_name}
        features_model = None if probe.embedding_model_name else probe.embedding_model
    (found,) = _vectors([paths], model_args, features_model)
    probabilities = probe.probabilities(found.features)
    for item_id, row in zip(found.features.ids, probabilities, strict=True):
        label = probe.labels[int(row.argmax())]
        if as_json:
            click.echo(json.dumps({"id": item_id, "label": label, "probability": float(row.max())}))
        else:
            click.echo(f"{item_id}\t{label}\t{row.max():.4f}")
    if report_problems(found.failures, found.skipped):
        raise SystemExit(1)
