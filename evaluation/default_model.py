"""The bundled model's evaluation: builds the evaluation sets as plain files, then measures them with
the project's own ``clamp3 eval`` and ``clamp3 classify`` (every number in MODEL_CARD.md comes from here).

    python evaluation/default_model.py build OUT --data /work/build/opendata --wikimt WIKIMT_JSONL
    python evaluation/default_model.py run OUT [--model default] > evaluation/results.json

Sets (held-out test split of the open data, split by tune; Essen and WikiMT are evaluation-only):

* ``test/abc``, ``test/midi`` (the score's MIDI), ``test/audio-fluidr3`` and ``test/audio-musescore``
  (the same performance rendered with FluidR3_GM, the training sound font, and MuseScore_General, never
  used in training), ``test/midi-transcribed`` (basic-pitch transcription of the FluidR3 rendering);
* ``test/text-<lang>``: one short query per tune from its facts (tune type, key, meter) in English and
  in three languages no training template used (Swedish, Turkish, Vietnamese), and
  ``test/text-description``: the English description as in the training data;
* ``test/tune-type.csv`` and ``test/category.csv``: zero-shot labels;
* ``test/midi-transposed``, ``test/audio-transposed``: each test tune transposed by an interval drawn
  as for the training copies (seeded with :data:`EVAL_SEED`), its MIDI and FluidR3 rendering, to find
  the score in its written key from a performance in another key;
* ``essen/``: 150 Chinese and 150 German Essen folk songs (ABC, MIDI, FluidR3 audio, ``origin.csv``);
* ``wikimt/``: the 808 WikiMT lead sheets, their Wikipedia descriptions and ``genre.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from clamp3.preprocess.frontends import SAMPLE_RATE
from clamp3.preprocess.synth import FLUID_R3, render
from clamp3.preprocess.transcribe import transcribe
from clamp3.train.default_model.inputs import Piece, read_pieces
from clamp3.train.opendata.build import Job, build_piece
from clamp3.train.opendata.corpus import training_pieces
from clamp3.train.opendata.render import MUSESCORE_GENERAL, choose_variation, vary_midi

EVAL_SEED = 2026
"""Seeds the evaluation renderings' variations (training used the recipe's seed)."""
SECONDS = 24.0
UNSEEN_LANGUAGES = ("sv", "tr", "vi")

TUNE_TYPES = {
    "reel": {"en": "reel", "sv": "reel", "tr": "reel", "vi": "điệu reel"},
    "jig": {"en": "jig", "sv": "jigg", "tr": "jig", "vi": "điệu jig"},
    "double jig": {"en": "double jig", "sv": "dubbeljigg", "tr": "çift jig", "vi": "điệu jig đôi"},
    "slip jig": {"en": "slip jig", "sv": "slip-jigg", "tr": "slip jig", "vi": "điệu slip jig"},
    "hornpipe": {"en": "hornpipe", "sv": "hornpipe", "tr": "hornpipe", "vi": "điệu hornpipe"},
    "strathspey": {"en": "strathspey", "sv": "strathspey", "tr": "strathspey", "vi": "điệu strathspey"},
    "march": {"en": "march", "sv": "marsch", "tr": "marş", "vi": "hành khúc"},
    "air": {"en": "air", "sv": "visa", "tr": "ezgi", "vi": "giai điệu trữ tình"},
    "clog": {"en": "clog dance", "sv": "träskodans", "tr": "clog dansı", "vi": "điệu nhảy clog"},
    "chorale": {"en": "chorale", "sv": "koral", "tr": "koral", "vi": "bài thánh ca hợp xướng"},
    "highland fling": {
        "en": "highland fling", "sv": "highland fling", "tr": "highland fling", "vi": "điệu highland fling"
    },
    "quickstep": {"en": "quickstep", "sv": "quickstep", "tr": "quickstep", "vi": "điệu quickstep"},
    "fiddle tune": {"en": "fiddle tune", "sv": "fiollåt", "tr": "keman ezgisi", "vi": "giai điệu vĩ cầm"},
    "Irish tune": {
        "en": "Irish tune", "sv": "irländsk låt", "tr": "İrlanda ezgisi", "vi": "giai điệu Ireland"
    },
    "tune": {"en": "tune", "sv": "låt", "tr": "ezgi", "vi": "giai điệu"},
}  # fmt: skip
SENTENCES = {
    "en": "{article} {type} in {key}, in {meter} time.",
    "sv": "En {type} i {key}, i {meter}-takt.",
    "tr": "{key} tonunda, {meter} ölçülü bir {type}.",
    "vi": "Một {type} ở giọng {key}, nhịp {meter}.",
}
_SOLFEGE = {"C": "Do", "D": "Re", "E": "Mi", "F": "Fa", "G": "Sol", "A": "La", "B": "Si"}
_VI_SOLFEGE = {"C": "Đô", "D": "Rê", "E": "Mi", "F": "Fa", "G": "Son", "A": "La", "B": "Si"}
_SV_NAMES = {"Bb": "B", "B": "H", "Eb": "Ess", "Ab": "Ass", "Db": "Dess", "Gb": "Gess"}


def key_name(tonic: str, mode: str, lang: str) -> str:
    """``("F#", "minor", "sv")`` -> ``"Fiss-moll"``; only major and minor are named."""
    letter, accidental = tonic[0], tonic[1:]
    if lang == "en":
        name = letter + {"#": "-sharp", "b": "-flat"}.get(accidental, "")
        return f"{name} {mode}"
    if lang == "sv":
        name = _SV_NAMES.get(tonic, letter + {"#": "iss", "b": "ess"}.get(accidental, ""))
        return f"{name}-{'dur' if mode == 'major' else 'moll'}"
    if lang == "tr":
        name = _SOLFEGE[letter] + {"#": " diyez", "b": " bemol"}.get(accidental, "")
        return f"{name} {'majör' if mode == 'major' else 'minör'}"
    name = _VI_SOLFEGE[letter] + {"#": " thăng", "b": " giáng"}.get(accidental, "")
    return f"{name} {'trưởng' if mode == 'major' else 'thứ'}"


def tune_type(record: dict) -> str:
    """The most specific tune type among a record's genres (``tune`` when none is known)."""
    genres = record["genres"]
    for genre in genres:
        if genre in TUNE_TYPES and genre not in ("tune", "Irish tune", "fiddle tune"):
            return genre
    return next((g for g in genres if g in TUNE_TYPES), "tune")


def query(
    record: dict, analysis: dict, lang: str, key_lang: str | None = None, type_lang: str | None = None
) -> str:
    """The short query in ``lang``; ``key_lang``/``type_lang`` name the key/tune type another language's
    way (``evaluation/text_transfer.py`` measures what that changes)."""
    kind = tune_type(record)
    name = TUNE_TYPES[kind][type_lang or lang]
    article = "An" if name[0].lower() in "aeiou" else "A"
    key = key_name(analysis["key_tonic"], analysis["key_mode"], key_lang or lang)
    return SENTENCES[lang].format(article=article, type=name, key=key, meter=analysis["meter"])


def category(kind: str) -> str:
    if kind == "chorale":
        return "chorale"
    if kind == "air":
        return "air"
    return "dance tune"


def _write_audio(midi_bytes: bytes, piece_id: str, targets: dict[Path, Path], name: str) -> np.ndarray:
    """Render one performance with each sound font; returns the first rendering's samples."""
    variation = choose_variation(piece_id, EVAL_SEED)
    midi = vary_midi(midi_bytes, variation, SECONDS, name)
    first = None
    for font, target in targets.items():
        if not target.is_file():
            samples = render(midi, font, SAMPLE_RATE, SECONDS, variation.reverb, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, samples, SAMPLE_RATE)
        first = sf.read(target, dtype="float32")[0] if first is None else first
    return first


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        writer.writerows(rows)


def build_test(out: Path, data: Path) -> None:
    records = {json.loads(line)["id"]: json.loads(line) for line in (data / "test.jsonl").open()}
    type_rows, category_rows = [], []
    for number, piece in enumerate(read_pieces(data, "test")):
        record, key = records[piece.id], piece.key
        analysis = json.loads(piece.abc.with_suffix(".json").read_text(encoding="utf-8"))["analysis"]
        _copy(piece.abc, out / "abc" / f"{key}.abc")
        _copy(piece.midi, out / "midi" / f"{key}.mid")
        targets = {FLUID_R3: out / "audio-fluidr3" / f"{key}.wav"}
        targets[MUSESCORE_GENERAL] = out / "audio-musescore" / f"{key}.wav"
        samples = _write_audio(piece.midi.read_bytes(), piece.id, targets, str(piece.midi))
        transcribed = out / "midi-transcribed" / f"{key}.mid"
        if not transcribed.is_file():
            transcribed.parent.mkdir(parents=True, exist_ok=True)
            transcribe(samples).save(str(transcribed))
        for lang in ("en", *UNSEEN_LANGUAGES):
            _write_text(out / f"text-{lang}" / f"{key}.txt", query(record, analysis, lang))
        _write_text(out / "text-description" / f"{key}.txt", piece.example.eval_text)
        kind = tune_type(record)
        if kind not in ("tune", "Irish tune", "fiddle tune"):
            type_rows.append((f"{key}.abc", "jig" if kind == "double jig" else kind))
        category_rows.append((f"{key}.abc", category(kind)))
        print(f"test {number + 1}", file=sys.stderr, end="\r")
    _write_csv(out / "tune-type.csv", type_rows)
    _write_csv(out / "category.csv", category_rows)


def build_transposed(out: Path, data: Path) -> None:
    """Transposed MIDI and FluidR3 audio of every test tune (files named as in ``test/abc``)."""
    corpus = {piece.id: piece for piece in training_pieces()}
    for number, piece in enumerate(read_pieces(data, "test")):
        midi = out / "midi-transposed" / f"{piece.key}.mid"
        audio = out / "audio-transposed" / f"{piece.key}.wav"
        job = Job(corpus[piece.id], out / "transposed-sources", transposition_seed=EVAL_SEED)
        if not midi.is_file():
            outcome = build_piece(job)
            if outcome.failure:
                print(f"skipped {piece.id}: {outcome.failure.reason}", file=sys.stderr)
                continue
            _copy(job.paths()[".mid"], midi)
        _write_audio(midi.read_bytes(), job.id, {FLUID_R3: audio}, str(midi))
        print(f"transposed {number + 1}", file=sys.stderr, end="\r")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def essen_origin(piece: Piece) -> str | None:
    lines = piece.example.texts
    text = " ".join(lines)
    if "China" in text:
        return "Chinese"
    if "Deutschland" in text:
        return "German"
    return None


def build_essen(out: Path, data: Path, per_origin: int = 150) -> None:
    pieces = read_pieces(data, "essen")
    groups: dict[str, list[Piece]] = {"Chinese": [], "German": []}
    for piece in pieces:
        origin = essen_origin(piece)
        if origin:
            groups[origin].append(piece)
    rng = random.Random(EVAL_SEED)
    rows = []
    for origin, members in groups.items():
        for piece in rng.sample(members, min(per_origin, len(members))):
            key = piece.key
            _copy(piece.abc, out / "abc" / f"{key}.abc")
            _copy(piece.midi, out / "midi" / f"{key}.mid")
            _write_audio(
                piece.midi.read_bytes(), piece.id, {FLUID_R3: out / "audio" / f"{key}.wav"}, piece.id
            )
            rows.append((f"{key}.abc", origin))
    _write_csv(out / "origin.csv", rows)


def build_wikimt(out: Path, wikimt: Path) -> None:
    rows = []
    for line in wikimt.open(encoding="utf-8"):
        item = json.loads(line)
        _write_text(out / "abc" / f"{item['id']}.abc", item["music"])
        _write_text(out / "text" / f"{item['id']}.txt", item["text"])
        rows.append((f"{item['id']}.abc", item["genre"]))
    _write_csv(out / "genre.csv", rows)


# ------------------------------------------------------------------------------ measuring


def clamp3(*args: str) -> tuple[list[dict], str]:
    """Run the clamp3 command with ``--json``: its JSON lines and its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "clamp3", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 and not rows:
        raise RuntimeError(f"clamp3 {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return rows, done.stderr


def failed_files(log: str) -> int:
    """How many input files the command reported as failed (they are left out of the measure)."""
    return sum(line.startswith("failed:") for line in log.splitlines())


def retrieval(queries: Path, references: Path, model: str) -> dict[str, float]:
    (result,), log = clamp3("eval", str(queries), str(references), "--model", model, "--allow-unmatched")
    kept = {k: result[k] for k in ("mrr", "hit@1", "hit@10", "queries", "references") if k in result}
    return {**kept, "failed": failed_files(log)}


def labelled_only(folder: Path, truth: Path) -> Path:
    """A folder beside ``folder`` holding copies of just the files that ``truth`` labels."""
    target = folder.with_name(f"{folder.name}-{truth.stem}")
    for row in csv.DictReader(truth.open(encoding="utf-8")):
        if not (target / row["id"]).is_file():
            _copy(folder / row["id"], target / row["id"])
    return target


def zero_shot(paths: Path, labels: list[str], truth: Path, model: str, template: str) -> dict[str, float]:
    paths = labelled_only(paths, truth)
    rows, log = clamp3(
        "classify", str(paths), "--labels", ",".join(labels), "--truth", str(truth), "--model", model,
        "--template", template,
    )  # fmt: skip
    found = re.search(r"accuracy: ([\d.]+)\s+macro-F1: ([\d.]+)", log)
    if found is None:
        raise RuntimeError(f"clamp3 classify printed no accuracy: {log.strip()[-500:]}")
    return {
        "accuracy": float(found.group(1)),
        "macro_f1": float(found.group(2)),
        "items": len(rows),
        "failed": failed_files(log),
    }


def run(out: Path, model: str) -> dict:
    test, essen, wikimt = out / "test", out / "essen", out / "wikimt"
    results: dict[str, dict] = {"model": {"name": model}}
    text = {f"text-{lang}": test / f"text-{lang}" for lang in ("description", "en", *UNSEEN_LANGUAGES)}
    for name, folder in text.items():
        for target in ("abc", "midi", "audio-fluidr3"):
            results[f"test {name} -> {target}"] = retrieval(folder, test / target, model)
    pairs = [
        ("abc", "midi"), ("midi", "abc"), ("midi-transcribed", "abc"), ("midi", "audio-fluidr3"),
        ("audio-fluidr3", "abc"), ("audio-musescore", "abc"), ("audio-fluidr3", "midi"),
        ("audio-musescore", "midi"), ("midi-transcribed", "midi"), ("audio-transposed", "abc"),
        ("midi-transposed", "abc"),
    ]  # fmt: skip
    for query_set, target in pairs:
        results[f"test {query_set} -> {target}"] = retrieval(test / query_set, test / target, model)
    types = sorted({row["label"] for row in csv.DictReader((test / "tune-type.csv").open())})
    results["zero-shot tune type (abc)"] = zero_shot(
        test / "abc", types, test / "tune-type.csv", model, "A {label}."
    )
    results["zero-shot category (abc)"] = zero_shot(
        test / "abc", ["chorale", "dance tune", "air"], test / "category.csv", model, "A {label}."
    )
    for query_set, target in [
        ("abc", "midi"),
        ("midi", "abc"),
        ("abc", "audio"),
        ("audio", "abc"),
        ("midi", "audio"),
    ]:
        results[f"essen {query_set} -> {target}"] = retrieval(essen / query_set, essen / target, model)
    results["essen zero-shot origin (abc)"] = zero_shot(
        essen / "abc", ["Chinese", "German"], essen / "origin.csv", model, "A {label} folk song."
    )
    results["wikimt text -> abc"] = retrieval(wikimt / "text", wikimt / "abc", model)
    genres = sorted({row["label"] for row in csv.DictReader((wikimt / "genre.csv").open())})
    results["wikimt zero-shot genre (abc)"] = zero_shot(
        wikimt / "abc", genres, wikimt / "genre.csv", model, "A {label} song."
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build")
    build.add_argument("out", type=Path)
    build.add_argument("--data", type=Path, required=True, help="open-data build folder")
    build.add_argument("--wikimt", type=Path, required=True, help="wikimt-dev.jsonl")
    measure = commands.add_parser("run")
    measure.add_argument("out", type=Path)
    measure.add_argument("--model", default="default")
    args = parser.parse_args()
    if args.command == "build":
        build_test(args.out / "test", args.data)
        build_transposed(args.out / "test", args.data)
        build_essen(args.out / "essen", args.data)
        build_wikimt(args.out / "wikimt", args.wikimt)
    else:
        print(json.dumps(run(args.out, args.model), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
