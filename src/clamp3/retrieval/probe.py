"""Linear probe on global vectors: the reference classifier's recipe (``classification/train_cls.py``),
minus its bugs.

A single linear layer trained with cross-entropy on its logits (the reference applies softmax first
and then cross-entropy, a double softmax), AdamW, mini-batches, a seeded stratified validation split
and selection of the epoch with the best validation accuracy (ties: lower validation loss).
``balanced`` weighs each item's loss by the inverse frequency of its label, so that every label counts
as much in total (the reference's ``--balanced_training`` instead draws as many items of each label as
the rarest has, every epoch: it leaves most of the larger labels' items out of each epoch, and crashes).
The saved probe records the label set, the input dimension and the embedding model (weights
fingerprint and name, see :func:`~clamp3.retrieval.features.same_model`), and refuses vectors from
another model. Plain numpy (the gradient of a linear layer under cross-entropy is one line), so
training is deterministic and needs no torch start-up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clamp3.errors import Clamp3Error, InputError
from clamp3.fileio import atomic_write
from clamp3.retrieval.errors import DimensionMismatchError, ModelMismatchError
from clamp3.retrieval.features import FeatureSet, describe_model, same_model
from clamp3.retrieval.metrics import ClassificationReport, classification_report
from clamp3.retrieval.similarity import as_matrix

FORMAT = "clamp3.linear_probe"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class ProbeConfig:
    """Training settings. ``patience``: stop after this many epochs without a better validation score."""

    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    max_epochs: int = 200
    batch_size: int = 32
    validation_fraction: float = 0.2
    patience: int = 20
    seed: int = 42
    balanced: bool = False
    """Weigh the loss of each item by ``n_items / (n_labels * n_items_of_its_label)``."""

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise Clamp3Error("max_epochs, batch_size and patience must be at least 1")
        if self.learning_rate <= 0:
            raise Clamp3Error(f"learning_rate must be positive, got {self.learning_rate}")


@dataclass(frozen=True)
class EpochScore:
    """Scores on the validation items (the training items when there are none) after one epoch."""

    epoch: int
    accuracy: float
    macro_f1: float
    loss: float


@dataclass(frozen=True)
class ProbeReport:
    """How training went: the selected epoch, every epoch's scores, and the selected weights' scores on
    the training and validation items."""

    best_epoch: int
    epochs_run: int
    train: ClassificationReport
    validation: ClassificationReport | None
    history: tuple[EpochScore, ...] = ()


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split into (train, validation) row indices holding ``ceil(fraction * n)`` items of each
    label for validation, but always at least one item of each label for training."""
    if not 0.0 <= fraction < 1.0:
        raise Clamp3Error(f"validation fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    names = np.asarray(labels, dtype=object)
    validation = []
    for label in sorted(set(labels)):
        rows = rng.permutation(np.flatnonzero(names == label))
        validation.extend(rows[: min(len(rows) - 1, math.ceil(fraction * len(rows)))])
    is_val = np.zeros(len(names), dtype=bool)
    is_val[validation] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@dataclass
class _AdamW:
    """AdamW (decoupled weight decay, as ``torch.optim.AdamW`` with its default betas and eps)."""

    learning_rate: float
    weight_decay: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    steps: int = 0
    moments: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Update ``params`` in place."""
        if not self.moments:
            self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self.steps += 1
        correction1, correction2 = 1 - self.beta1**self.steps, 1 - self.beta2**self.steps
        for param, grad, (m, v) in zip(params, grads, self.moments, strict=True):
            param *= 1 - self.learning_rate * self.weight_decay
            m *= self.beta1
            m += (1 - self.beta1) * grad
            v *= self.beta2
            v += (1 - self.beta2) * grad * grad
            param -= self.learning_rate * (m / correction1) / (np.sqrt(v / correction2) + self.eps)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (n_classes * count)`` per label: every label then weighs ``n / n_classes`` in total."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.divide(len(y), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)


def _train(
    x: np.ndarray, y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, n_classes: int, config: ProbeConfig
) -> tuple[np.ndarray, np.ndarray, int, list[EpochScore]]:
    """Mini-batch AdamW on softmax cross-entropy from zero weights (the problem is convex, so no random
    init is needed). Returns the weights of the epoch with the best (validation accuracy, -loss), that
    epoch and the scores of every epoch run."""
    x64, val64 = x.astype(np.float64), val_x.astype(np.float64)
    weight, bias = np.zeros((n_classes, x.shape[1])), np.zeros(n_classes)
    item_weight = class_weights(y, n_classes)[y] if config.balanced else np.ones(len(y))
    optimizer = _AdamW(config.learning_rate, config.weight_decay)
    rng = np.random.default_rng(config.seed)
    best, best_state, best_epoch, history = (-1.0, 0.0), (weight.copy(), bias.copy()), 0, []
    for epoch in range(1, config.max_epochs + 1):
        order = rng.permutation(len(y))
        for start in range(0, len(y), config.batch_size):
            rows = order[start : start + config.batch_size]
            error = np.exp(_log_softmax(x64[rows] @ weight.T + bias))
            error[np.arange(len(rows)), y[rows]] -= 1.0
            error *= item_weight[rows, None] / len(rows)
            optimizer.step([weight, bias], [error.T @ x64[rows], error.sum(axis=0)])
        log_probs = _log_softmax(val64 @ weight.T + bias)
        predicted = log_probs.argmax(axis=1)
        score = (float(np.mean(predicted == val_y)), float(np.mean(log_probs[np.arange(len(val_y)), val_y])))
        macro_f1 = classification_report(val_y.astype(str).tolist(), predicted.astype(str).tolist()).macro_f1
        history.append(EpochScore(epoch, score[0], macro_f1, -score[1]))
        if score > best:
            best, best_state, best_epoch = score, (weight.copy(), bias.copy()), epoch
        elif epoch - best_epoch >= config.patience:
            break
    return best_state[0], best_state[1], best_epoch, history


class LinearProbe:
    """A trained linear classifier: ``logits = vectors @ weight.T + bias`` over ``labels``.

    ``embedding_model`` identifies the model of the training vectors (its weights fingerprint when
    known, else its name or a label) and ``embedding_model_name`` is its name when known.
    """

    def __init__(
        self,
        labels: Sequence[str],
        weight: np.ndarray,
        bias: np.ndarray,
        embedding_model: str,
        embedding_model_name: str | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.embedding_model = embedding_model
        self.embedding_model_name = embedding_model_name
        if self.weight.shape[0] != len(self.labels) or self.bias.shape != (len(self.labels),):
            raise Clamp3Error(
                f"weight {self.weight.shape} and bias {self.bias.shape} do not fit {len(self.labels)} labels"
            )

    @property
    def input_dim(self) -> int:
        return int(self.weight.shape[1])

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray | FeatureSet,
        labels: Sequence[str],
        *,
        embedding_model: str,
        embedding_model_name: str | None = None,
        config: ProbeConfig | None = None,
        validation: tuple[np.ndarray, Sequence[str]] | None = None,
    ) -> tuple[LinearProbe, ProbeReport]:
        """Train on ``vectors`` (``(N, D)``) with one label each.

        The validation items are ``validation`` when given, else a stratified split of the inputs
        (``config.validation_fraction``); with no validation items the training items select the epoch.
        """
        config = config or ProbeConfig()
        x = as_matrix(vectors.vectors if isinstance(vectors, FeatureSet) else vectors)
        if len(x) != len(labels):
            raise Clamp3Error(f"{len(x)} vectors against {len(labels)} labels")
        names = tuple(sorted(set(labels)))
        if len(names) < 2:
            raise Clamp3Error("a probe needs at least two distinct labels")
        y = np.array([names.index(label) for label in labels], dtype=np.int64)
        if validation is None:
            train_rows, val_rows = stratified_split(labels, config.validation_fraction, config.seed)
            val_x, val_y = x[val_rows], y[val_rows]
            x, y = x[train_rows], y[train_rows]
        else:
            val_x = as_matrix(validation[0])
            unknown = sorted(set(validation[1]) - set(names))
            if unknown:
                raise Clamp3Error(f"validation labels not seen in training: {', '.join(unknown)}")
            val_y = np.array([names.index(label) for label in validation[1]], dtype=np.int64)
        has_validation = len(val_y) > 0
        if not has_validation:
            val_x, val_y = x, y

        weight, bias, best_epoch, history = _train(x, y, val_x, val_y, len(names), config)
        probe = cls(names, weight, bias, embedding_model, embedding_model_name)
        train_report = classification_report([names[i] for i in y], probe._predict(x), names)
        val_report = None
        if has_validation:
            val_report = classification_report([names[i] for i in val_y], probe._predict(val_x), names)
        report = ProbeReport(best_epoch, len(history), train_report, val_report, tuple(history))
        return probe, report

    def _checked(self, vectors: np.ndarray | FeatureSet, embedding_model: str | None) -> np.ndarray:
        """The vectors as a matrix, if they come from the probe's model: ``embedding_model`` (a
        fingerprint or a name), else the model a ``FeatureSet`` records."""
        model, name = embedding_model, None
        if model is None and isinstance(vectors, FeatureSet):
            model, name = vectors.model, vectors.model_name
        trained_on = describe_model(self.embedding_model, self.embedding_model_name)
        if model is None:
            raise ModelMismatchError(
                f"name the embedding model of these vectors; this probe expects {trained_on}"
            )
        if not same_model(model, name, self.embedding_model, self.embedding_model_name):
            raise ModelMismatchError(
                f"vectors come from {describe_model(model, name)} but this probe was trained on "
                f"{trained_on} vectors"
            )
        x = as_matrix(vectors.vectors if isinstance(vectors, FeatureSet) else vectors)
        if x.shape[1] != self.input_dim:
            raise DimensionMismatchError(
                f"vectors have dimension {x.shape[1]}; this probe expects {self.input_dim}"
            )
        return x

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def _predict(self, x: np.ndarray) -> list[str]:
        return [self.labels[i] for i in np.argmax(self._logits(x), axis=1)]

    def probabilities(
        self, vectors: np.ndarray | FeatureSet, embedding_model: str | None = None
    ) -> np.ndarray:
        """Softmax over the labels, ``(N, n_labels)``. ``embedding_model`` defaults to ``vectors.model``."""
        logits = self._logits(self._checked(vectors, embedding_model)).astype(np.float64)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray | FeatureSet, embedding_model: str | None = None) -> list[str]:
        """The most probable label per vector. ``embedding_model`` defaults to ``vectors.model``."""
        return self._predict(self._checked(vectors, embedding_model))

    def evaluate(
        self, vectors: np.ndarray | FeatureSet, true_labels: Sequence[str], embedding_model: str | None = None
    ) -> ClassificationReport:
        """Accuracy, macro-F1 and confusion matrix against ``true_labels``."""
        return classification_report(true_labels, self.predict(vectors, embedding_model), self.labels)

    def save(self, path: str | Path) -> Path:
        """Write one ``.safetensors`` file: the weights plus labels, input dimension and model as metadata."""
        from safetensors.numpy import save_file

        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "labels": json.dumps(self.labels, ensure_ascii=False),
            "input_dim": str(self.input_dim),
            "embedding_model": self.embedding_model,
            "embedding_model_name": self.embedding_model_name or "",
        }
        tensors = {"weight": self.weight, "bias": self.bias}
        target = Path(path)
        atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        return target

    @classmethod
    def load(cls, path: str | Path) -> LinearProbe:
        """Read a probe written by ``save``."""
        from safetensors import SafetensorError, safe_open

        source = Path(path)
        try:
            with safe_open(str(source), framework="np") as handle:
                metadata = handle.metadata() or {}
                if metadata.get("format") != FORMAT:
                    raise InputError(source, "not a clamp3 linear probe file")
                if metadata.get("format_version") != FORMAT_VERSION:
                    raise InputError(
                        source, f"unsupported probe format version {metadata.get('format_version')!r}"
                    )
                weight, bias = handle.get_tensor("weight"), handle.get_tensor("bias")
        except (OSError, SafetensorError) as exc:
            raise InputError(source, f"cannot read the probe ({exc})") from exc
        probe = cls(
            json.loads(metadata["labels"]),
            weight,
            bias,
            metadata["embedding_model"],
            metadata.get("embedding_model_name") or None,
        )
        if probe.input_dim != int(metadata["input_dim"]):
            raise InputError(
                source, f"weights of dimension {probe.input_dim}, metadata says {metadata['input_dim']}"
            )
        return probe
