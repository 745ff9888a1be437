"""Zero-shot classification: music vectors against text vectors of prompted labels.

A label's vector is the mean of the L2-normalised text embeddings of every template filled with the
label. Scores are cosine similarities; probabilities are ``softmax(scale * cosine)`` over the labels.

``DEFAULT_SCALE = 100`` (temperature 0.01), the logit scale CLIP-style models converge to. CLaMP 3 has
no learned scale (its training multiplies unnormalised dot products by 1), and a scale of 1 on cosines,
which lie in [-1, 1], gives nearly uniform probabilities that hide the ranking. The scale changes only
the probabilities: predictions, top-k order and all metrics do not depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from clamp3.errors import Clamp3Error
from clamp3.retrieval.features import FeatureSet
from clamp3.retrieval.metrics import ClassificationReport, classification_report
from clamp3.retrieval.similarity import as_matrix, normalize_rows, same_dim

DEFAULT_SCALE = 100.0
PLACEHOLDER = "{label}"

TextEncoder = Callable[[list[str]], np.ndarray]
"""Texts in, one ``(len(texts), D)`` embedding matrix out (for example ``CLaMP3.encode_text``)."""


def _template_table() -> dict[str, list[str]]:
    text = resources.files("clamp3.retrieval").joinpath("templates.json").read_text(encoding="utf-8")
    return json.loads(text)["templates"]


def template_languages() -> tuple[str, ...]:
    """Language codes that have default templates."""
    return tuple(_template_table())


def default_templates(language: str = "en") -> tuple[str, ...]:
    """The default templates of one language (``"en"``, ``"de"``, ``"zh"``, ...)."""
    table = _template_table()
    if language not in table:
        raise Clamp3Error(f"no default templates for language {language!r}; available: {', '.join(table)}")
    return tuple(table[language])


def fill_templates(labels: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every template filled with every label, label-major: ``[t0(l0), t1(l0), ..., t0(l1), ...]``."""
    if not templates:
        raise Clamp3Error("no templates given")
    for template in templates:
        if PLACEHOLDER not in template:
            raise Clamp3Error(f"template {template!r} has no {PLACEHOLDER} placeholder")
    return [template.replace(PLACEHOLDER, label) for label in labels for template in templates]


def label_vectors(labels: Sequence[str], text_encoder: TextEncoder, templates: Sequence[str]) -> np.ndarray:
    """Unit-length ``(len(labels), D)`` label vectors: mean normalised embedding of each label's prompts."""
    texts = fill_templates(labels, templates)
    embeddings = as_matrix(text_encoder(texts), "text embeddings")
    if len(embeddings) != len(texts):
        raise Clamp3Error(f"the text encoder returned {len(embeddings)} vectors for {len(texts)} texts")
    per_label = normalize_rows(embeddings).reshape(len(labels), len(templates), -1)
    return normalize_rows(per_label.mean(axis=1))


@dataclass(frozen=True, eq=False)
class ZeroShotClassifier:
    """Labels with their unit-length text vectors; classifies music vectors of the same embedding space."""

    labels: tuple[str, ...]
    label_vectors: np.ndarray
    scale: float = DEFAULT_SCALE

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[str],
        text_encoder: TextEncoder,
        *,
        language: str = "en",
        templates: Sequence[str] = (),
        scale: float = DEFAULT_SCALE,
    ) -> ZeroShotClassifier:
        """Build label vectors with ``templates`` (for example one custom ``--template``), or with the
        default templates of ``language``."""
        names = tuple(dict.fromkeys(labels))
        if len(names) < 2:
            raise Clamp3Error("zero-shot classification needs at least two distinct labels")
        chosen = tuple(templates) or default_templates(language)
        return cls(names, label_vectors(names, text_encoder, chosen), scale)

    def similarities(self, vectors: np.ndarray | FeatureSet) -> np.ndarray:
        """Cosine similarity of every music vector with every label, ``(N, n_labels)``."""
        music = normalize_rows(vectors.vectors if isinstance(vectors, FeatureSet) else vectors)
        same_dim(music, self.label_vectors, "music vectors against label vectors")
        return music @ self.label_vectors.T

    def probabilities(self, vectors: np.ndarray | FeatureSet) -> np.ndarray:
        """``softmax(scale * cosine)`` over the labels, ``(N, n_labels)``, rows summing to 1."""
        logits = self.scale * self.similarities(vectors).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def top_k(self, vectors: np.ndarray | FeatureSet, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ``(label, probability)`` per vector, best first (ties: label order)."""
        probabilities = self.probabilities(vectors)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, : max(k, 1)]
        return [
            [(self.labels[j], float(row[j])) for j in picks]
            for row, picks in zip(probabilities, order, strict=True)
        ]

    def predict(self, vectors: np.ndarray | FeatureSet) -> list[str]:
        """The most similar label per vector."""
        return [self.labels[j] for j in np.argmax(self.similarities(vectors), axis=1)]

    def evaluate(self, vectors: np.ndarray | FeatureSet, true_labels: Sequence[str]) -> ClassificationReport:
        """Accuracy, macro-F1 and confusion matrix of the predictions against ``true_labels``."""
        return classification_report(true_labels, self.predict(vectors), self.labels)
