"""PNG plots of results. Needs matplotlib (``pip install 'clamp3[plot]'``), imported on use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clamp3.extras import require
from clamp3.fileio import atomic_write
from clamp3.retrieval.evaluate import RetrievalMetrics
from clamp3.retrieval.metrics import ClassificationReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _new_figure(width: float, height: float) -> Figure:
    require("plots", "matplotlib.figure")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Figure, path: str | Path) -> Path:
    target = Path(path)
    atomic_write(target, lambda tmp: figure.savefig(tmp, format="png"))
    return target


def plot_rank_distribution(metrics: RetrievalMetrics, path: str | Path, *, title: str = "") -> Path:
    """Histogram of the true items' ranks (log-spaced bins) beside the cumulative Hit@K curve."""
    ranks = np.array([record.rank for record in metrics.ranks])
    top = max(int(ranks.max()), metrics.n_references, 2)
    figure = _new_figure(10, 4)
    histogram, cumulative = figure.subplots(1, 2)
    bins = np.unique(np.geomspace(1, top + 1, num=min(40, top + 1)).astype(int))
    histogram.hist(ranks, bins=bins, color="tab:blue")
    histogram.set(xscale="log", xlabel="rank of the true item", ylabel="queries", title="Rank distribution")
    ks = np.arange(1, top + 1)
    hit_rate = np.searchsorted(np.sort(ranks), ks, side="right") / len(ranks)
    cumulative.plot(ks, hit_rate, color="tab:orange")
    cumulative.set(xscale="log", ylim=(0, 1.02), xlabel="K", ylabel="Hit@K", title=f"MRR {metrics.mrr:.4f}")
    cumulative.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_confusion_matrix(report: ClassificationReport, path: str | Path, *, title: str = "") -> Path:
    """Confusion matrix (rows: true label, columns: predicted), shaded by row share, with the counts."""
    counts = report.confusion
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(report.labels) + 2.5)
    figure = _new_figure(size + 1, size)
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the true label")
    ticks = np.arange(len(report.labels))
    axes.set_xticks(ticks, report.labels, rotation=45, ha="right")
    axes.set_yticks(ticks, report.labels)
    axes.set(xlabel="predicted", ylabel="true")
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if shares[row, col] > 0.5 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    axes.set_title(title or f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}")
    return _save(figure, path)
