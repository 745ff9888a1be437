"""Labels for classification: ``labels.csv`` files (``path,label`` rows) or the reference's file names.

A row's path may name the music file (``sub/song.mp3``), its feature file (``sub/song.npy``) or the
key itself (``sub/song``): rows are matched to vectors by ``feature_key``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from clamp3.errors import Clamp3Error, InputError
from clamp3.retrieval.features import FeatureSet, feature_key

_HEADER_NAMES = {"path", "id", "file", "filename", "filepath"}


def read_labels_csv(path: str | Path) -> dict[str, str]:
    """``{key: label}`` from a two-column CSV (an optional ``path,label`` header; blank lines ignored)."""
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(source, f"cannot read the labels file ({exc})") from exc
    labels: dict[str, str] = {}
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if (
            line == 1
            and len(cells) == 2
            and cells[0].lower() in _HEADER_NAMES
            and cells[1].lower() == "label"
        ):
            continue
        if len(cells) != 2 or not cells[0] or not cells[1]:
            raise InputError(source, f"line {line}: expected 'path,label', got {row!r}")
        key = feature_key(cells[0])
        if labels.get(key, cells[1]) != cells[1]:
            raise InputError(
                source, f"line {line}: {key!r} is labelled both {labels[key]!r} and {cells[1]!r}"
            )
        labels[key] = cells[1]
    if not labels:
        raise InputError(source, "no labels found")
    return labels


def labels_for(features: FeatureSet, labels: Mapping[str, str]) -> list[str]:
    """The label of every vector (``labels`` as from ``read_labels_csv``); raises if any lacks one."""
    missing = [path for key, path in zip(features.keys, features.paths, strict=True) if key not in labels]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise Clamp3Error(f"{len(missing)} file(s) have no label: {shown}")
    return [labels[key] for key in features.keys]


def labels_from_filenames(features: FeatureSet) -> list[str]:
    """The reference classifier's convention: the label is the file name up to its first underscore
    (``jazz_0001.npy`` -> ``jazz``)."""
    found = []
    for item_id, path in zip(features.ids, features.paths, strict=True):
        name = item_id.replace("\\", "/").rsplit("/", 1)[-1]
        if "_" not in name or name.startswith("_"):
            raise InputError(path, "file name has no 'label_' prefix")
        found.append(name.split("_", 1)[0])
    return found
