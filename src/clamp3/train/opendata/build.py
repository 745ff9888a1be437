"""Build the symbolic training set of the bundled default model from licence-clean music21 corpus pieces.

``python -m clamp3.train.opendata.build OUT_DIR [--workers N]`` writes::

    OUT_DIR/
      train.jsonl validation.jsonl test.jsonl   one record per piece (reference layout, see below)
      descriptions.jsonl                          every piece's lines in all languages, with its split
      splits/{train,validation,test}.txt          piece ids per split (small; can be committed)
      music/<collection>/<stem>.abc .mid .mtf     interleaved ABC, music21's MIDI, its MTF
      music/<collection>/<stem>.json              the piece's analysis; written last, marks it complete
      transposed.jsonl                            a transposed copy of every training-split piece
      music/<collection>/<stem>_transposed.*      its four files (the .json names the interval)
      evaluation/essen.jsonl                      the evaluation-only Essen tunes, same format
      evaluation/descriptions.jsonl, evaluation/music/essenFolksong/...
      manifest.json                               counts and licence notes per collection, music21 version
      summary.json                                per-piece failures (stage and reason), duplicates

Records use the reference layout: ``filepaths`` (``.abc`` then ``.mtf``, relative to the JSONL file),
``title``, ``genres`` (English words), ``description`` (the English lines, one per fact, which the
trainer's text dropout samples), ``analysis`` (the same lines as one paragraph: the validation text)
and ``translations`` (``language`` plus ``title``, ``genres`` and ``description`` in one other language).
Each piece carries one translation language, taken in turn from a hash of its id, so every language
covers about an eleventh of the pieces and a piece still appears once per epoch (one record per language
would put copies of a piece into the same batch as false negatives).

Transposed copies (``transposed.jsonl``, ids ``<piece id>@<interval>``, e.g. ``...#42@-m3``) exist for
the training split only. An interval is drawn from the seed and the piece (:mod:`.transpose`); the ABC
comes from the piece's MusicXML (abc2xml's, for an ABC tune) transposed by it, the MIDI and the analysis
from music21's score transposed by it, and the descriptions from that analysis, so a copy differs from
its original in pitch only (key, range and everything said about them follow). Training uses a copy
in place of its original for some draws; it is never a piece of its own.

The split is by tune: pieces that share a tune key (:func:`~clamp3.train.opendata.corpus.tune_keys`:
the same music, O'Neill's book number, a normalised title) stay together; groups are shuffled with a
fixed seed and dealt to test and validation until each holds its share (5 %), the rest is training.

The build is resumable: a piece whose four files exist and whose ``.json`` names the current source
digest is skipped, every file is written atomically, and summary files are rewritten only when their
content changes, so a second run writes nothing. A piece that fails (music21 parse, analysis, MIDI,
MTF or ABC conversion) writes nothing, is listed in ``summary.json`` and is tried again next run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clamp3.fileio import atomic_write
from clamp3.preprocess.abc_convert import abc_to_musicxml, read_musicxml
from clamp3.preprocess.midi import midi_to_mtf
from clamp3.preprocess.sheet import musicxml_to_interleaved, tune_to_interleaved, xml_to_interleaved
from clamp3.progress import progress_bar
from clamp3.train.opendata.analysis import Analysis, analyse, load_score, midi_bytes, quiet
from clamp3.train.opendata.corpus import (
    COLLECTIONS,
    Piece,
    check_training,
    evaluation_pieces,
    training_pieces,
    tune_keys,
)
from clamp3.train.opendata.describe import Facts, Templates, describe, facts_for
from clamp3.train.opendata.transpose import choose_interval, key_signatures, transpose_musicxml

FORMAT = "opendata-1"
"""Part of every piece's source digest: change it when the per-piece outputs change, to rebuild them."""

SPLITS = ("train", "validation", "test")
TRANSPOSED = "transposed"
"""The JSONL file (and stem suffix) of the training pieces' transposed copies."""
SUFFIXES = (".abc", ".mid", ".mtf", ".json")
_MAX_WARNINGS = 20


def file_stem(piece: Piece, copy: bool) -> str:
    """The name (without suffix) of a piece's files, or of its transposed copy's."""
    return f"{piece.stem}_{TRANSPOSED}" if copy else piece.stem


def original_id(record_id: str) -> str:
    """The piece a record is of: its own id, or for a transposed copy (``<id>@<interval>``) the original's."""
    return record_id.rsplit("@", 1)[0]


@dataclass(frozen=True)
class BuildSettings:
    seed: int = 42
    """Seeds the split and the choice of each piece's translation language."""
    fractions: tuple[float, float, float] = (0.90, 0.05, 0.05)
    """Shares of train, validation and test, counted in pieces."""
    transposed: bool = True
    """Build a transposed copy of every training-split piece (``transposed.jsonl``)."""
    workers: int = 1
    """Worker processes for the per-piece work (music21 runs in them, its stderr output captured)."""
    progress: bool = True


@dataclass(frozen=True)
class Failure:
    id: str
    stage: str
    """``parse``, ``transpose``, ``analysis``, ``midi``, ``mtf`` or ``abc``."""
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one piece in one run."""

    id: str
    written: bool
    failure: Failure | None = None


@dataclass(frozen=True)
class BuildSummary:
    written: int
    """Pieces whose files were written in this run."""
    skipped: int
    """Pieces already complete."""
    failures: tuple[Failure, ...]
    duplicates: tuple[tuple[str, str], ...]
    """``(id, id of the piece with the same music)``: enumerated but not built twice."""
    records: dict[str, int] = field(default_factory=dict)
    """Records per JSONL file (``train``, ``validation``, ``test``, ``transposed``, ``essen``)."""
    seconds: float = 0.0


def build(
    out_dir: str | Path,
    training: list[Piece] | None = None,
    evaluation: list[Piece] | None = None,
    settings: BuildSettings | None = None,
) -> BuildSummary:
    """Build (or complete) the data set in ``out_dir``; see the module docstring for the layout.

    ``training`` and ``evaluation`` default to every training piece and the Essen set; pass short lists
    to build a subset. Raises :class:`~clamp3.train.opendata.corpus.EvaluationOnlyError` before writing
    anything if ``training`` holds a piece of an evaluation-only collection.
    """
    started = time.perf_counter()
    settings = settings or BuildSettings()
    out = Path(out_dir)
    training = training_pieces() if training is None else training
    evaluation = evaluation_pieces() if evaluation is None else evaluation
    check_training(training)
    templates = Templates.load()
    unique, duplicates = _unique(training)
    splits = assign_splits(training, settings.seed, settings.fractions)
    for name in SPLITS:
        ids = [p.id for p in training if splits[p.id] == name]
        write_if_changed(out / "splits" / f"{name}.txt", "".join(f"{i}\n" for i in ids))

    jobs = [Job(p, out / "music" / p.collection) for p in unique]
    jobs += [Job(p, out / "evaluation" / "music" / p.collection) for p in evaluation]
    copies = [
        Job(p, out / "music" / p.collection, transposition_seed=settings.seed)
        for p in unique
        if settings.transposed and splits[p.id] == "train"
    ]
    outcomes = _run(jobs + copies, settings)
    failures = tuple(o.failure for o in outcomes if o.failure)
    failed = {f.id for f in failures}

    built = {job.piece.id: job.read_sidecar() for job in jobs if job.id not in failed}
    languages = templates.languages[1:]
    outputs = (*SPLITS, TRANSPOSED) if settings.transposed else SPLITS
    records: dict[str, list[str]] = {name: [] for name in outputs}
    descriptions = []
    for piece in unique:
        if piece.id in built:
            split = splits[piece.id]
            record, lines = piece_record(piece, built[piece.id], templates, languages, settings.seed)
            records[split].append(json.dumps(record, ensure_ascii=False))
            entry = {"id": piece.id, "split": split, "lines": lines}
            descriptions.append(json.dumps(entry, ensure_ascii=False))
    for job in copies:
        if job.id not in failed and job.piece.id in built:  # a copy stands in for its original only
            record, _ = piece_record(job.piece, job.read_sidecar(), templates, languages, settings.seed)
            records[TRANSPOSED].append(json.dumps(record, ensure_ascii=False))
    for name in outputs:
        write_if_changed(out / f"{name}.jsonl", "".join(f"{line}\n" for line in records[name]))
    write_if_changed(out / "descriptions.jsonl", "".join(f"{line}\n" for line in descriptions))

    evaluation_dir = out / "evaluation"
    essen, essen_lines = [], []
    for piece in evaluation:
        if piece.id in built:
            record, lines = piece_record(piece, built[piece.id], templates, languages, settings.seed)
            essen.append(json.dumps(record, ensure_ascii=False))
            essen_lines.append(json.dumps({"id": piece.id, "lines": lines}, ensure_ascii=False))
    if evaluation:
        write_if_changed(evaluation_dir / "essen.jsonl", "".join(f"{line}\n" for line in essen))
        write_if_changed(evaluation_dir / "descriptions.jsonl", "".join(f"{line}\n" for line in essen_lines))

    counts = {name: len(records[name]) for name in outputs} | ({"essen": len(essen)} if evaluation else {})
    manifest = _manifest(training, evaluation, built, failures, duplicates, splits, settings)
    if settings.transposed:
        copied = len(records[TRANSPOSED])
        manifest[TRANSPOSED] = {"built": copied, "failed": len(copies) - copied}
    _write_json(out / "manifest.json", manifest | {"languages": list(templates.languages)})
    _write_json(
        out / "summary.json",
        {
            "failures": [asdict(f) for f in sorted(failures, key=lambda f: f.id)],
            "duplicates": [{"id": a, "same_music_as": b} for a, b in duplicates],
            "records": counts,
        },
    )
    return BuildSummary(
        written=sum(o.written for o in outcomes),
        skipped=sum(not o.written and o.failure is None for o in outcomes),
        failures=failures,
        duplicates=duplicates,
        records=counts,
        seconds=round(time.perf_counter() - started, 1),
    )


# --- one piece -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """What a built piece's ``.json`` holds: its analysis, and the interval of a transposed copy."""

    analysis: Analysis
    transposition: str | None = None


@dataclass(frozen=True)
class Job:
    """The four files of one piece, or (``transposition_seed`` given) of its transposed copy."""

    piece: Piece
    folder: Path
    transposition_seed: int | None = None
    """Seeds the interval of a transposed copy (see :mod:`.transpose`); ``None`` for the piece itself."""

    @property
    def id(self) -> str:
        """The piece id; a copy's is ``<id>@transposed`` (its record id names the interval instead)."""
        return self.piece.id if self.transposition_seed is None else f"{self.piece.id}@{TRANSPOSED}"

    def paths(self) -> dict[str, Path]:
        """The four output files, by suffix."""
        stem = file_stem(self.piece, copy=self.transposition_seed is not None)
        return {suffix: self.folder / f"{stem}{suffix}" for suffix in SUFFIXES}

    def source_digest(self) -> str:
        """A digest of what the files are made from (the piece's ABC text or MusicXML bytes, music21's
        version, :data:`FORMAT` and a copy's transposition seed)."""
        import music21

        piece = self.piece
        data = piece.abc.encode("utf-8") if piece.abc is not None else Path(piece.musicxml).read_bytes()
        copy = "" if self.transposition_seed is None else f"|{TRANSPOSED} {self.transposition_seed}"
        return hashlib.sha256(f"{FORMAT}|{music21.__version__}{copy}|".encode() + data).hexdigest()

    def is_complete(self) -> bool:
        """Whether all four files exist and the ``.json`` was made from the current source."""
        paths = self.paths()
        if not all(path.is_file() for path in paths.values()):
            return False
        try:
            return json.loads(paths[".json"].read_text("utf-8")).get("source") == self.source_digest()
        except (OSError, ValueError):
            return False

    def read_sidecar(self) -> Built:
        """The analysis (and transposition) stored in a complete job's ``.json``."""
        data = json.loads(self.paths()[".json"].read_text("utf-8"))
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data["analysis"].items()}
        return Built(Analysis(**fields), data.get("transposition"))


def build_piece(job: Job) -> Outcome:
    """Convert and analyse one piece (or its transposed copy) and write its four files; any failure is
    returned, not raised (third-party parsers may raise anything, and one bad tune must not stop a batch)."""
    piece = job.piece
    stage = "parse"
    messages: list[str] = []
    transposition = None
    try:
        with quiet() as messages:
            score = load_score(piece)
            if job.transposition_seed is not None:
                stage = "transpose"
                xml, transposition = _transposed_musicxml(piece, job.transposition_seed)
                score.transpose(transposition, inPlace=True)
            stage = "analysis"
            analysis = analyse(score)
            stage = "midi"
            midi, midi_notes = midi_bytes(score)
        stage = "mtf"
        mtf = midi_to_mtf(midi, name=job.id)
        stage = "abc"
        if transposition is not None:
            conversion = musicxml_to_interleaved(xml, source=job.id)
        elif piece.abc is not None:
            conversion = tune_to_interleaved(piece.abc, source=piece.id)
        else:
            conversion = xml_to_interleaved(piece.musicxml)
    except Exception as exc:  # any exception: see the docstring
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Outcome(job.id, False, Failure(job.id, stage, f"{type(exc).__name__}: {detail}"))
    paths = job.paths()
    warnings = [*midi_notes, *(f"music21: {m}" for m in messages), *conversion.warnings]
    sidecar = {"id": piece.id, "source": job.source_digest(), "analysis": asdict(analysis)}
    sidecar |= {"transposition": transposition} if transposition else {}
    sidecar["warnings"] = warnings[:_MAX_WARNINGS]
    _write_bytes(paths[".abc"], conversion.text.encode("utf-8"))
    _write_bytes(paths[".mid"], midi)
    _write_bytes(paths[".mtf"], mtf.encode("utf-8"))
    _write_bytes(paths[".json"], (json.dumps(sidecar, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return Outcome(job.id, True)


def _transposed_musicxml(piece: Piece, seed: int) -> tuple[bytes, str]:
    """The piece's MusicXML (abc2xml's for an ABC tune) transposed, and the interval's name."""
    if piece.abc is not None:
        xml = abc_to_musicxml(piece.abc, source=piece.id).text.encode("utf-8")
    else:
        xml = read_musicxml(piece.musicxml)
    interval = choose_interval(key_signatures(xml, piece.id), piece.id, seed)
    if interval is None:
        raise ValueError("every interval would give a key signature with more than six accidentals")
    return transpose_musicxml(xml, interval, piece.id), interval.name


def piece_record(
    piece: Piece, built: Built, templates: Templates, languages: tuple[str, ...], seed: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The JSONL record of a built piece or transposed copy (paths relative to the folder holding
    ``music/``) and its description lines in every language; ``languages`` are those a translation may be
    in."""
    facts = facts_for(piece, built.analysis, templates)
    record_id = piece.id if built.transposition is None else f"{piece.id}@{built.transposition}"
    stem = file_stem(piece, copy=built.transposition is not None)
    lines = {lang: describe(facts, lang, templates, salt=record_id) for lang in templates.languages}
    lang = languages[zlib.crc32(f"{seed}|{record_id}".encode()) % len(languages)]
    folder = f"music/{piece.collection}"
    record: dict[str, Any] = {
        "id": record_id,
        "filepaths": [f"{folder}/{stem}.abc", f"{folder}/{stem}.mtf"],
    }
    if piece.metadata.titles:
        record["title"] = piece.metadata.titles[0]
    record["genres"] = _genres(facts, "en", templates)
    record["description"] = "\n".join(lines["en"])
    record["analysis"] = " ".join(lines["en"])
    translation: dict[str, Any] = {"language": templates.language_name(lang)}
    if piece.metadata.titles:
        translation["title"] = piece.metadata.titles[0]
    translation["genres"] = _genres(facts, lang, templates)
    translation["description"] = "\n".join(lines[lang])
    record["translations"] = translation
    return record, lines


def _genres(facts: Facts, lang: str, templates: Templates) -> list[str]:
    words = [templates.word("tune_type", facts.tune_type, lang)] if facts.tune_type else []
    return [*words, templates.word("genre", facts.genre, lang)] if facts.genre else words


# --- the whole set -------------------------------------------------------------------------------------


def _unique(pieces: list[Piece]) -> tuple[list[Piece], tuple[tuple[str, str], ...]]:
    """Pieces with distinct music, and ``(id, first id)`` for the rest (music21 lists some chorale files
    under two Riemenschneider numbers)."""
    first: dict[str, str] = {}
    unique, duplicates = [], []
    for piece in pieces:
        if piece.source_key in first:
            duplicates.append((piece.id, first[piece.source_key]))
        else:
            first[piece.source_key] = piece.id
            unique.append(piece)
    return unique, tuple(duplicates)


def _run(jobs: list[Job], settings: BuildSettings) -> list[Outcome]:
    """Build the pieces that are not complete yet, in worker processes, with a progress bar.

    Every piece is submitted before the bar starts, so the workers exist before the bar's thread does
    (safe with the fork start method); music21's stderr output stays inside the workers.
    """
    todo = [job for job in jobs if not job.is_complete()]
    waiting = {job.id for job in todo}
    outcomes = [Outcome(job.id, False) for job in jobs if job.id not in waiting]
    if not todo:
        return outcomes
    with ProcessPoolExecutor(max(1, settings.workers)) as pool:
        futures = [pool.submit(build_piece, job) for job in todo]
        with progress_bar(len(jobs), "open data", enabled=settings.progress) as bar:
            bar.advance(len(outcomes))
            for future in as_completed(futures):
                outcomes.append(future.result())
                bar.advance(1)
    return outcomes


def assign_splits(pieces: list[Piece], seed: int, fractions: tuple[float, float, float]) -> dict[str, str]:
    """``{piece id: split}`` by tune (see the module docstring); depends only on the pieces and seed."""
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, piece in enumerate(pieces):
        for key in tune_keys(piece):
            if key in owner:
                parent[root(index)] = root(owner[key])
            else:
                owner[key] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(pieces)):
        groups.setdefault(root(index), []).append(index)
    ordered = sorted(groups.values(), key=lambda members: pieces[members[0]].id)
    random.Random(seed).shuffle(ordered)
    targets = {"test": round(fractions[2] * len(pieces)), "validation": round(fractions[1] * len(pieces))}
    filled = Counter[str]()
    splits = {}
    for members in ordered:
        name = next((s for s in ("test", "validation") if filled[s] < targets[s]), "train")
        filled[name] += len(members)
        splits.update({pieces[i].id: name for i in members})
    return splits


def _manifest(
    training: list[Piece],
    evaluation: list[Piece],
    built: dict[str, Built],
    failures: tuple[Failure, ...],
    duplicates: tuple[tuple[str, str], ...],
    splits: dict[str, str],
    settings: BuildSettings,
) -> dict[str, Any]:
    import music21

    failed = Counter(f.id for f in failures)
    duplicate_ids = {a for a, _ in duplicates}
    collections: dict[str, Any] = {}
    for spec in COLLECTIONS:
        pieces = [p for p in (training if spec.training else evaluation) if p.collection == spec.name]
        if not pieces:
            continue
        entry: dict[str, Any] = {
            "use": "training" if spec.training else "evaluation only",
            "licence": spec.licence,
            "pieces": len(pieces),
            "built": sum(p.id in built for p in pieces),
            "failed": sum(failed[p.id] for p in pieces),
        }
        if spec.training:
            entry["duplicates"] = sum(p.id in duplicate_ids for p in pieces)
            entry["splits"] = {
                name: sum(splits[p.id] == name and p.id in built for p in pieces) for name in SPLITS
            }
        collections[spec.name] = entry
    return {
        "music21": music21.__version__,
        "format": FORMAT,
        "seed": settings.seed,
        "fractions": dict(zip(SPLITS, settings.fractions, strict=True)),
        "corpus_licence": "music21 corpus/license.txt: some encodings may not be used commercially; the "
        "licences embedded in individual pieces apply. Per-collection notes below.",
        "collections": collections,
    }


# --- files ---------------------------------------------------------------------------------------------


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds exactly it; whether it wrote."""
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    _write_bytes(path, data)
    return True


def _write_json(path: Path, value: Any) -> bool:
    return write_if_changed(path, json.dumps(value, ensure_ascii=False, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clamp3.train.opendata.build",
        description="Build the open-data symbolic training set (music21 corpus) into OUT_DIR.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=BuildSettings.seed, help="split seed (default 42)")
    parser.add_argument("--no-evaluation", action="store_true", help="skip the evaluation-only Essen set")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    settings = BuildSettings(seed=args.seed, workers=args.workers, progress=not args.no_progress)
    summary = build(args.out_dir, evaluation=[] if args.no_evaluation else None, settings=settings)
    print(
        f"{summary.written} pieces written, {summary.skipped} already complete, "
        f"{len(summary.failures)} failed, {len(summary.duplicates)} duplicates skipped "
        f"in {summary.seconds:.0f} s; records: {summary.records}"
    )
    for failure in summary.failures:
        print(f"failed: {failure.id} ({failure.stage}): {failure.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
