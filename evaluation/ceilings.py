"""What two of the bundled model's quality bars allow at best, measured on the evaluation sets.

    python evaluation/ceilings.py EVAL_SETS [--model default] > evaluation/ceilings.json

``EVAL_SETS`` is the folder that ``evaluation/default_model.py build`` wrote.

* **Fact ceilings**: the expected MRR of a ranker that knows only some facts of each query and each
  target (their genre, or the tune type, key and meter a short query names) and puts the targets that
  share them first, in random order. A group of ``n`` such targets gives its queries an expected
  reciprocal rank of ``H(n) / n``, so the ceiling is ``sum(H(n)) / N`` over the groups.
* **Backbone translation**: how often the frozen text backbone's pooled vector of an unseen-language
  short query lies nearest (cosine) to the vector of the English query with the same facts, among all
  distinct English queries. The bundled model's text tower is this backbone plus a linear projection,
  so what the backbone confuses here, the model confuses too. Measured on the pooled last layer, which
  the projection reads, and on every other layer's hidden states, to see whether a head reading another
  layer could do better.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

UNSEEN_LANGUAGES = ("sv", "tr", "vi")
_ENGLISH_QUERY = re.compile(r"An? (?P<type>.+) in (?P<key>.+), in (?P<meter>\S+) time\.")


def fact_ceiling(facts: Sequence[Hashable]) -> float:
    """Expected MRR when each item's query finds the items with equal ``facts`` first, in random order."""
    groups = Counter(facts).values()
    return sum(sum(1.0 / rank for rank in range(1, n + 1)) for n in groups) / len(facts)


def query_facts(english_query: str) -> dict[str, str]:
    """``"A jig in G major, in 6/8 time."`` -> ``{"type": "jig", "key": "G major", "meter": "6/8"}``."""
    found = _ENGLISH_QUERY.fullmatch(english_query.strip())
    if found is None:
        raise ValueError(f"not a short English query: {english_query!r}")
    return found.groupdict()


def nearest_translation_accuracy(english: np.ndarray, other: np.ndarray, same: Sequence[str]) -> float:
    """Share of rows of ``other`` whose nearest row of ``english`` (cosine) has the same text as their own
    English query; ``same[i]`` is the English text of query ``i``, and duplicates count once."""
    distinct = sorted(set(same))
    first = [same.index(text) for text in distinct]
    targets = english[first] / np.linalg.norm(english[first], axis=1, keepdims=True)
    queries = other / np.linalg.norm(other, axis=1, keepdims=True)
    nearest = (queries @ targets.T).argmax(axis=1)
    return float(np.mean([distinct[j] == same[i] for i, j in enumerate(nearest)]))


def _texts(folder: Path, names: Sequence[str]) -> list[str]:
    return [(folder / name).read_text(encoding="utf-8").strip() for name in names]


def run(sets: Path, model: str) -> dict[str, float]:
    from clamp3.encoder import CLaMP3

    genres = [row["label"] for row in csv.DictReader((sets / "wikimt" / "genre.csv").open(encoding="utf-8"))]
    test = sets / "test"
    names = sorted(path.name for path in (test / "text-en").glob("*.txt"))
    english = _texts(test / "text-en", names)
    facts = [query_facts(text) for text in english]
    results = {
        "wikimt genre ceiling (text -> abc)": fact_ceiling(genres),
        "wikimt random (text -> abc)": fact_ceiling([0] * len(genres)),
        "test short query ceiling: type, key, meter": fact_ceiling([tuple(f.values()) for f in facts]),
        "test short query ceiling: type, meter": fact_ceiling([(f["type"], f["meter"]) for f in facts]),
    }
    encoder = CLaMP3.from_pretrained(model, device="cpu")
    layers = range(encoder.config.text.encoder.num_layers + 1)
    vectors = [encoder.pooled_text_features(english, layer=layer) for layer in layers]
    for lang in UNSEEN_LANGUAGES:
        texts = _texts(test / f"text-{lang}", names)
        other = [encoder.pooled_text_features(texts, layer=layer) for layer in layers]
        accuracy = [nearest_translation_accuracy(vectors[layer], other[layer], english) for layer in layers]
        results[f"backbone nearest English query: {lang}"] = accuracy[-1]
        results[f"backbone nearest English query by layer (0 = embeddings): {lang}"] = accuracy
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", type=Path, help="the folder evaluation/default_model.py build wrote")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    print(json.dumps(run(args.sets, args.model), indent=1))


if __name__ == "__main__":
    main()
