"""What two of the bundled model's quality bars allow at best, measured on the evaluation sets.

    python evaluation/ceilings.py EVAL_SETS [--model default] > evaluation/ceilings.json

``EVAL_SETS`` is the folder that ``evaluation/default_model.py build`` wrote.

* **Fact ceilings**: the expected MRR of a ranker that knows only some facts of each query and each
  target (their genre, or the tune type, key and meter a short query names) and puts the targets that
  share them first, in random order. A group of ``n`` such targets gives its queries an expected
  reciprocal rank of ``H(n) / n``, so the ceiling is ``sum(H(n)) / N`` over the groups. For WikiMT
  also a ranker that knows every genre and, where a description names it outright (a waltz, or
  "3/4"), the meter: it puts the same genre first and, within it and after it, the named meter.
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
_WALTZ = re.compile(r"waltz|\b3/4\b", re.IGNORECASE)
_ABC_METER = re.compile(r"^M:\s*(\S+)", re.MULTILINE)


def fact_ceiling(facts: Sequence[Hashable]) -> float:
    """Expected MRR when each item's query finds the items with equal ``facts`` first, in random order."""
    groups = Counter(facts).values()
    return sum(sum(1.0 / rank for rank in range(1, n + 1)) for n in groups) / len(facts)


def scored_ceiling(scores: np.ndarray) -> float:
    """Expected MRR of a ranker that orders the items by ``scores[i]`` for query ``i`` (whose target is
    item ``i``) and breaks ties at random: ``a`` items above the target and ``n`` tied with it (itself
    included) give it an expected reciprocal rank of ``(1 / n) * sum(1 / (a + k) for k = 1..n)``."""
    total = 0.0
    for query, row in enumerate(scores):
        above = int(np.sum(row > row[query]))
        tied = int(np.sum(row == row[query]))
        total += sum(1.0 / (above + k) for k in range(1, tied + 1)) / tied
    return total / len(scores)


def named_meter(text: str) -> str | None:
    """The meter a WikiMT description names outright: ``"3/4"`` for a waltz or a written 3/4, else None."""
    return "3/4" if _WALTZ.search(text) else None


def genre_and_named_meter_scores(
    genres: Sequence[str], meters: Sequence[str], texts: Sequence[str]
) -> np.ndarray:
    """Scores of a ranker that knows every genre and the meter a text names: the same genre counts 2, the
    named meter 1 (so the named meter orders the items within a genre, then those of other genres)."""
    genre = np.asarray(genres)
    meter = np.asarray(meters)
    named = [named_meter(text) for text in texts]
    same_genre = genre[:, None] == genre[None, :]
    named_match = np.array([meter == cue if cue else np.zeros(len(meter), bool) for cue in named])
    return 2 * same_genre.astype(int) + named_match.astype(int)


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


def _abc_meter(path: Path) -> str:
    found = _ABC_METER.search(path.read_text(encoding="utf-8"))
    return found.group(1) if found else "none"


def _texts(folder: Path, names: Sequence[str]) -> list[str]:
    return [(folder / name).read_text(encoding="utf-8").strip() for name in names]


def run(sets: Path, model: str) -> dict[str, float]:
    from clamp3.encoder import CLaMP3

    wikimt = sets / "wikimt"
    rows = list(csv.DictReader((wikimt / "genre.csv").open(encoding="utf-8")))
    genres = [row["label"] for row in rows]
    meters = [_abc_meter(wikimt / "abc" / row["id"]) for row in rows]
    texts = _texts(wikimt / "text", [Path(row["id"]).with_suffix(".txt").name for row in rows])
    test = sets / "test"
    names = sorted(path.name for path in (test / "text-en").glob("*.txt"))
    english = _texts(test / "text-en", names)
    facts = [query_facts(text) for text in english]
    results = {
        "wikimt genre ceiling (text -> abc)": fact_ceiling(genres),
        "wikimt genre and named meter ceiling (text -> abc)": scored_ceiling(
            genre_and_named_meter_scores(genres, meters, texts)
        ),
        "wikimt texts naming a meter": sum(named_meter(text) is not None for text in texts),
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
