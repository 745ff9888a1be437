"""Classification metrics in plain numpy: accuracy, macro-F1 and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clamp3.errors import Clamp3Error


@dataclass(frozen=True, eq=False)
class ClassificationReport:
    """Scores of predicted labels against true ones.

    ``confusion[i, j]`` counts items of true label ``labels[i]`` predicted as ``labels[j]``.
    ``macro_f1`` averages the F1 of every label that occurs among the true or the predicted labels
    (scikit-learn's ``f1_score(average="macro")``; a label never predicted has F1 0).
    """

    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    f1: dict[str, float]
    confusion: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.confusion.sum())


def classification_report(
    true_labels: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = ()
) -> ClassificationReport:
    """Compare ``predicted`` with ``true_labels``; ``labels`` fixes the confusion-matrix order
    (default: sorted labels of both lists; labels outside it are added in sorted order)."""
    if len(true_labels) != len(predicted):
        raise Clamp3Error(f"{len(true_labels)} true labels against {len(predicted)} predictions")
    if not true_labels:
        raise Clamp3Error("no items to score")
    seen = set(true_labels) | set(predicted)
    order = list(dict.fromkeys(labels)) + sorted(seen - set(labels))
    index = {label: i for i, label in enumerate(order)}
    confusion = np.zeros((len(order), len(order)), dtype=np.int64)
    np.add.at(confusion, ([index[t] for t in true_labels], [index[p] for p in predicted]), 1)
    hits = np.diag(confusion).astype(np.float64)
    support, predicted_count = confusion.sum(axis=1), confusion.sum(axis=0)
    denominator = support + predicted_count
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    present = [index[label] for label in order if label in seen]
    return ClassificationReport(
        labels=tuple(order),
        accuracy=float(hits.sum() / len(true_labels)),
        macro_f1=float(np.mean(f1[present])),
        f1={label: float(f1[index[label]]) for label in order},
        confusion=confusion,
    )
