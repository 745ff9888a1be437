"""int8 against float32 with the bundled model: vector cosines on real inputs, and retrieval on the
held-out test tunes (the accuracy numbers of the README's "int8 on a CPU" section come from here).

    python evaluation/int8.py build OUT     # the 240 test tunes' ABC, MIDI and text queries (no audio)
    python evaluation/int8.py run OUT [--model default] > evaluation/int8.json

``build`` converts only the test split's pieces of the open data (music21 corpus) and writes the sets
of ``evaluation/default_model.py`` that need no rendering: ``abc``, ``midi``, ``text-description`` and
the short queries ``text-en``/``-sv``/``-tr``/``-vi``. ``run`` measures, for float32 and int8 alike,
``clamp3 eval`` MRR of every text set and of ABC<->MIDI, and the cosine of each int8 vector to its
float32 vector (min and mean per tower) over those sets, the demo library and the test fixtures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from default_model import UNSEEN_LANGUAGES, _copy, _write_text, clamp3, failed_files, query

import clamp3 as api
from clamp3.pipeline import PipelineOptions

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ROOT / "data" / "opendata-splits" / "test.txt"
TEXT_SETS = ("text-description", "text-en", *(f"text-{lang}" for lang in UNSEEN_LANGUAGES))
REAL_INPUTS = (
    ROOT / "src" / "clamp3" / "demo_data",
    ROOT / "tests" / "fixtures" / "reference" / "midi2mtf" / "midi",
    ROOT / "tests" / "fixtures" / "reference" / "xml2abc",
    ROOT / "tests" / "fixtures" / "reference" / "mert" / "audio",
)


def build(out: Path) -> None:
    """The test tunes' files, converted as the open-data build converts them."""
    from clamp3.train.default_model.inputs import read_pieces
    from clamp3.train.opendata.build import BuildSettings
    from clamp3.train.opendata.build import build as build_data
    from clamp3.train.opendata.corpus import training_pieces

    wanted = set(SPLITS.read_text().split())
    pieces = [piece for piece in training_pieces() if piece.id in wanted]
    data = out / "data"
    build_data(
        data,
        training=pieces,
        evaluation=[],
        settings=BuildSettings(transposed=False, workers=2, progress=False),
    )
    # a subset is split again among itself: its pieces are all test pieces, whatever split they got
    lines = [line for name in ("train", "validation", "test") for line in (data / f"{name}.jsonl").open()]
    (data / "all.jsonl").write_text("".join(lines), encoding="utf-8")
    records = {json.loads(line)["id"]: json.loads(line) for line in lines}
    test = out / "test"
    for piece in read_pieces(data, "all"):
        analysis = json.loads(piece.abc.with_suffix(".json").read_text(encoding="utf-8"))["analysis"]
        _copy(piece.abc, test / "abc" / f"{piece.key}.abc")
        _copy(piece.midi, test / "midi" / f"{piece.key}.mid")
        for lang in ("en", *UNSEEN_LANGUAGES):
            _write_text(test / f"text-{lang}" / f"{piece.key}.txt", query(records[piece.id], analysis, lang))
        _write_text(test / "text-description" / f"{piece.key}.txt", piece.example.eval_text)
    print(f"{len(records)} of {len(wanted)} test tunes built in {test}", file=sys.stderr)


def retrieval(queries: Path, references: Path, model: str, dtype: str) -> dict[str, float]:
    args = ("eval", str(queries), str(references), "--model", model, "--allow-unmatched", "--dtype", dtype)
    (result,), log = clamp3(*args)
    return {"mrr": result["mrr"], "hit@10": result["hit@10"], "failed": failed_files(log)}


def cosines(paths: list[Path], model: str) -> dict[str, dict[str, float]]:
    """Min and mean cosine of int8 to float32 vectors, per tower, over every file under ``paths``."""
    vectors = {}
    for dtype in ("float32", "int8"):
        embedded = api.embed(paths, model, cache=False, options=PipelineOptions(dtype=dtype))
        vectors[dtype] = {
            item.id: (item.tower, vector)
            for item, vector in zip(embedded.items, embedded.vectors, strict=True)
        }
    by_tower: dict[str, list[float]] = {}
    for item_id, (tower, exact) in vectors["float32"].items():
        quantized = vectors["int8"][item_id][1]
        cosine = float(exact @ quantized / np.linalg.norm(exact) / np.linalg.norm(quantized))
        by_tower.setdefault(tower, []).append(cosine)
    return {
        tower: {"items": len(values), "min": round(min(values), 5), "mean": round(float(np.mean(values)), 5)}
        for tower, values in sorted(by_tower.items())
    }


def run(out: Path, model: str) -> dict:
    test = out / "test"
    results: dict = {"model": model}
    for dtype in ("float32", "int8"):
        for name in TEXT_SETS:
            for target in ("abc", "midi"):
                results[f"{dtype} test {name} -> {target}"] = retrieval(
                    test / name, test / target, model, dtype
                )
        for query_set, target in (("abc", "midi"), ("midi", "abc")):
            results[f"{dtype} test {query_set} -> {target}"] = retrieval(
                test / query_set, test / target, model, dtype
            )
    drops = [
        results[key]["mrr"] - results[f"int8{key.removeprefix('float32')}"]["mrr"]
        for key in results
        if key.startswith("float32 ")
    ]
    results["largest MRR drop"] = round(max(drops), 4)
    sets = [test / name for name in ("abc", "midi", *TEXT_SETS)]
    results["cosine"] = cosines([*REAL_INPUTS, *sets], model)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build").add_argument("out", type=Path)
    measure = commands.add_parser("run")
    measure.add_argument("out", type=Path)
    measure.add_argument("--model", default="default")
    args = parser.parse_args()
    if args.command == "build":
        build(args.out)
    else:
        print(json.dumps(run(args.out, args.model), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
