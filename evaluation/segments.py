"""Segment-level search measured on the held-out test tunes: does a short excerpt find its piece better
with the pieces' windows than with their global vectors alone, and does the best window of the right
piece lie where the excerpt came from (issue 20, "Measured, not assumed")?

    python evaluation/segments.py build OUT [--tunes DIR] [--pieces N]
    python evaluation/segments.py run OUT [--model default] > evaluation/segments.json

``build`` takes the test tunes' interleaved ABC (``--tunes``, default ``OUT/source/test/abc`` built by
``evaluation/int8.py``'s build when missing) and writes, per tune, the whole piece as ABC, as MIDI and as
audio (FluidSynth with FluidR3_GM, 22.05 kHz mono) and one excerpt of 4 to 8 bars (seeded random length
and start) in the same three modalities: the ABC excerpt is those bar lines, the MIDI excerpt the same
bars cut from the piece's MIDI by time, the audio excerpt the same seconds cut from the piece's rendering.
The piece's MIDI is written here, by music21 from the interleaved ABC (through abc2xml's MusicXML) with
repeats not played out, so that bar ``i`` of the ABC (from 1, a pickup is bar 1, as written) is measure
``i`` of the score and its seconds follow the MIDI's own tempo map; a tune whose measures do not match
its bar lines, or whose MIDI notes do not start where the score's do, is skipped and counted.
``OUT/manifest.json`` holds every tune's bar times, excerpt (bars and seconds) and the other places
where the same bars occur literally. Each tune's files are written before its record
(``OUT/tunes/<key>.json``), so a killed build resumes where it stopped.

``run`` embeds with the model (global vectors of pieces and excerpts, and the windows of the pieces
with the default :class:`~clamp3.preprocess.windows.WindowSettings`), checkpointed in ``OUT/vectors``,
then measures with numpy:

* piece retrieval, for every (excerpt modality -> piece modality) pair: MRR and hit@1 over all test
  pieces of the target modality, global vectors only against each way of adding the best window's score
  (:data:`~clamp3.retrieval.spans.COMBINE`);
* localisation: the share of excerpts whose best window in the right piece has IoU >= 0.5 with the
  excerpt's true span (bars for ABC pieces, seconds for MIDI and audio), against the expected share for
  a window drawn uniformly from that piece's windows; and, as a secondary number, the same share when
  any literal repetition of the excerpt's bars elsewhere in the piece counts as the right place too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 2026
SAMPLE_RATE = 22050
TAIL_SECONDS = 1.5
"""Rendered after the last MIDI event (the release of the last notes)."""
EXCERPT_BARS = (4, 8)
MODALITIES = ("abc", "midi", "audio")
SUFFIXES = {"abc": ".abc", "midi": ".mid", "audio": ".wav"}
IOU = 0.5
EPSILON = 1e-6
"""Seconds: an excerpt is cut from ``start - EPSILON`` to ``end - EPSILON`` so that the notes at its
first bar line are in and those at the next bar line are out, whatever the rounding."""
EMBED_CHUNK = 24
"""Files embedded (and stored) together."""
EMBEDDED = {"global vectors": 0, "pieces' windows": 0}
"""What this run embedded (the rest came from ``OUT/vectors``, stored by an earlier run)."""


# ---------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def _write_json(path: Path, value: object) -> None:
    _write_atomic(path, json.dumps(value, indent=1, ensure_ascii=False) + "\n")


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    _write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------- the piece's MIDI and bar times


def parse_abc(text: str, name: str):
    """The score of an interleaved ABC tune, read by music21 from abc2xml's MusicXML."""
    from music21 import converter, stream

    from clamp3.preprocess.abc_convert import abc_to_musicxml

    parsed = converter.parseData(abc_to_musicxml(text, source=name).text, format="musicxml")
    if isinstance(parsed, stream.Opus):
        parsed = parsed.scores[0]
    if not isinstance(parsed, stream.Score):
        parsed = stream.Score([parsed])
    return parsed


def plain_midi(data: bytes):
    """The MIDI file of ``data`` without the text metas that MTF leaves out with their delta times
    (lyrics, markers...): their times go to the next event, so MTF and MIDI keep one timeline."""
    import io

    import mido

    from clamp3.preprocess.midi import M3_DROPPED_META_TYPES

    midi = mido.MidiFile(file=io.BytesIO(data))
    for number, track in enumerate(midi.tracks):
        kept, carried = mido.MidiTrack(), 0
        for msg in track:
            if msg.is_meta and msg.type in M3_DROPPED_META_TYPES:
                carried += msg.time
                continue
            kept.append(msg.copy(time=msg.time + carried))
            carried = 0
        midi.tracks[number] = kept
    return midi


def tick_to_seconds(midi) -> Callable[[float], float]:
    """Seconds of a tick of ``midi``, by its own tempo map (all tracks; 120 bpm before any tempo)."""
    from clamp3.preprocess.windows import DEFAULT_TEMPO

    changes = sorted(
        (tick, msg.tempo)
        for track in midi.tracks
        for tick, msg in zip(np.cumsum([m.time for m in track]), track, strict=True)
        if msg.type == "set_tempo"
    )
    points = [(0, 0.0, DEFAULT_TEMPO)]  # (tick, seconds, tempo from there)
    for tick, tempo in changes:
        last_tick, last_seconds, last_tempo = points[-1]
        seconds = last_seconds + (tick - last_tick) * last_tempo / (1e6 * midi.ticks_per_beat)
        points.append((int(tick), seconds, tempo))

    def seconds(tick: float) -> float:
        start, at, tempo = next(p for p in reversed(points) if p[0] <= tick)
        return at + (tick - start) * tempo / (1e6 * midi.ticks_per_beat)

    return seconds


def midi_notes(midi) -> set[tuple[int, int]]:
    """``(tick, pitch)`` of every note start of a MIDI file (all tracks)."""
    return {
        (int(tick), msg.note)
        for track in midi.tracks
        for tick, msg in zip(np.cumsum([m.time for m in track]), track, strict=True)
        if msg.type == "note_on" and msg.velocity > 0
    }


def score_notes(score, ticks_per_beat: int) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """``(tick, pitch)`` of the score's note starts: ``(every note, the notes that must sound)`` (grace
    notes and the continuations of tied notes may or may not have a MIDI note of their own)."""
    every, sounding = set(), set()
    for part in score.parts:
        flat = part.flatten()
        for note in flat.notes:
            tick = round(float(flat.elementOffset(note)) * ticks_per_beat)
            notes = {(tick, pitch.midi) for pitch in note.pitches}
            every |= notes
            if not note.duration.isGrace and (note.tie is None or note.tie.type == "start"):
                sounding |= notes
    return every, sounding


@dataclass
class PieceMidi:
    """The MIDI written for a tune, where its bars are, and its notes as the score and the MIDI have them."""

    data: bytes
    bar_ticks: list[tuple[int, int]]
    bar_seconds: list[tuple[float, float]]
    every: set[tuple[int, int]]
    sounding: set[tuple[int, int]]
    heard: set[tuple[int, int]]
    checks: dict


def piece_midi(text: str, name: str) -> PieceMidi:
    """The MIDI of an interleaved ABC tune (repeats as written) and the ticks and seconds
    ``(start, end)`` of each of its bars. Raises ``ValueError`` when the bars or notes do not line up."""
    import io

    from music21 import stream

    from clamp3.preprocess.windows import abc_bars
    from clamp3.train.opendata.analysis import midi_bytes, without_repeats

    _, bar_lines = abc_bars(text)
    score = parse_abc(text, name)
    without_repeats(score)
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    if len(measures) != len(bar_lines):
        raise ValueError(f"{len(measures)} measures for {len(bar_lines)} bar lines")
    offsets = [float(m.offset) for m in measures]
    ends = [*offsets[1:], offsets[-1] + float(measures[-1].duration.quarterLength)]
    data, repairs = midi_bytes(score)
    midi = plain_midi(data)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    tpb = midi.ticks_per_beat
    every, sounding = score_notes(score, tpb)
    heard = midi_notes(midi)
    if not heard:
        raise ValueError("the MIDI has no notes")
    if not heard <= every or not sounding <= heard:
        extra, missing = sorted(heard - every)[:3], sorted(sounding - heard)[:3]
        raise ValueError(f"MIDI notes differ from the score's: extra {extra}, missing {missing}")
    seconds = tick_to_seconds(midi)
    ticks = [(round(a * tpb), round(b * tpb)) for a, b in zip(offsets, ends, strict=True)]
    checks = {"midi notes": len(heard), "midi repairs": list(repairs), "midi seconds": round(midi.length, 3)}
    return PieceMidi(
        buffer.getvalue(), ticks, [(seconds(a), seconds(b)) for a, b in ticks], every, sounding, heard, checks
    )


def excerpt_matches(piece: PieceMidi, first: int, last: int, excerpt: bytes) -> bool:
    """Whether the MIDI excerpt holds exactly the notes that start in bars ``first..last`` of the piece's
    MIDI (times relative to the first of them), and those are the score's notes of these bars."""
    import io

    import mido

    start, end = piece.bar_ticks[first - 1][0], piece.bar_ticks[last - 1][1]

    def inside(notes: set[tuple[int, int]]) -> set[tuple[int, int]]:
        return {(t, p) for t, p in notes if start <= t < end}

    heard = inside(piece.heard)
    if not heard or not inside(piece.sounding) <= heard <= inside(piece.every):
        return False
    cut = midi_notes(mido.MidiFile(file=io.BytesIO(excerpt)))
    if not cut:
        return False
    shift = min(t for t, _ in heard) - min(t for t, _ in cut)
    return {(t + shift, p) for t, p in cut} == heard


# ---------------------------------------------------------------------------- excerpts


_BAR_SIGNS = re.compile(r"[:|\][]*\|[:|\]]*\d*|::|\[\d")


def bar_content(line: str) -> str:
    """A bar line of interleaved ABC without its bar signs, volta numbers and spaces: two bars that
    read the same here are the same music."""
    return re.sub(r"\s+", "", _BAR_SIGNS.sub("", line))


def occurrences(bar_lines: Sequence[str], first: int, last: int) -> list[tuple[int, int]]:
    """Every ``(first, last)`` (from 1, inclusive) where bars ``first..last`` occur literally."""
    contents = [bar_content(line) for line in bar_lines]
    length = last - first + 1
    wanted = contents[first - 1 : last]
    return [
        (p + 1, p + length) for p in range(len(contents) - length + 1) if contents[p : p + length] == wanted
    ]


def choose_excerpt(key: str, bars: int, seed: int) -> tuple[int, int]:
    """The excerpt's bars ``(first, last)``: a length of 4 to 8 bars (at most the piece), then a start,
    both drawn from a generator seeded with the tune's key."""
    rng = random.Random(f"{seed}:{key}")
    length = min(rng.randint(*EXCERPT_BARS), bars)
    first = rng.randint(1, bars - length + 1)
    return first, first + length - 1


def midi_excerpt(midi: bytes, start: float, end: float, name: str) -> bytes:
    """Seconds ``[start, end)`` of a MIDI file as a MIDI file (through MTF, as the windows are cut)."""
    from clamp3.preprocess.midi import midi_to_mtf, mtf_to_midi_bytes
    from clamp3.preprocess.windows import mtf_excerpt

    text = mtf_excerpt(midi_to_mtf(midi, m3_compatible=True, name=name), start - EPSILON, end - EPSILON)
    if "\nnote_on " not in text:
        raise ValueError(f"no note in {start:.2f}-{end:.2f} s")
    return mtf_to_midi_bytes(text, name=name)


def render_audio(midi: bytes, name: str) -> tuple[np.ndarray, dict]:
    """The MIDI rendered with FluidR3_GM (no reverb), and when the sound starts against the first note."""
    import io

    import mido

    from clamp3.preprocess.synth import FLUID_R3, render

    parsed = mido.MidiFile(file=io.BytesIO(midi))
    samples = render(parsed, FLUID_R3, SAMPLE_RATE, parsed.length + TAIL_SECONDS, name=name)
    first_note = tick_to_seconds(parsed)(min(t for t, _ in midi_notes(parsed)))
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
    onset = float(loud[0]) / SAMPLE_RATE if len(loud) else float("nan")
    return samples, {"audio onset - first note (s)": round(onset - first_note, 3)}


# ---------------------------------------------------------------------------- build


def _source_tunes(out: Path, tunes: Path | None) -> Path:
    if tunes is not None:
        return tunes
    folder = out / "source" / "test" / "abc"
    if not folder.is_dir():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from int8 import build as build_int8  # the test tunes as the open-data build converts them

        build_int8(out / "source")
    return folder


def build_tune(path: Path, out: Path, seed: int) -> dict:
    """One tune's six files and its record (``skipped`` with a reason when it cannot be used)."""
    from clamp3.preprocess.windows import abc_bars, abc_excerpt

    key = path.stem
    text = path.read_text(encoding="utf-8")
    _, bar_lines = abc_bars(text)
    if len(bar_lines) < EXCERPT_BARS[0]:
        return {"key": key, "skipped": f"{len(bar_lines)} bars, fewer than {EXCERPT_BARS[0]}"}
    try:
        piece = piece_midi(text, str(path))
    except Exception as exc:  # music21 and abc2xml may raise anything; the tune is counted as skipped
        return {"key": key, "skipped": f"MIDI: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    midi, bar_seconds = piece.data, piece.bar_seconds
    first, last = choose_excerpt(key, len(bar_lines), seed)
    start, end = bar_seconds[first - 1][0], bar_seconds[last - 1][1]
    try:
        excerpt_midi = midi_excerpt(midi, start, end, key)
        samples, audio_checks = render_audio(midi, key)
    except Exception as exc:  # as above
        return {"key": key, "skipped": f"excerpt: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    files = {
        out / "pieces" / "abc" / f"{key}.abc": text,
        out / "pieces" / "midi" / f"{key}.mid": midi,
        out / "excerpts" / "abc" / f"{key}.abc": abc_excerpt(text, first, last),
        out / "excerpts" / "midi" / f"{key}.mid": excerpt_midi,
    }
    for target, data in files.items():
        _write_atomic(target, data)
    _write_wav(out / "pieces" / "audio" / f"{key}.wav", samples)
    cut = samples[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
    _write_wav(out / "excerpts" / "audio" / f"{key}.wav", cut)
    return {
        "key": key,
        "bars": len(bar_lines),
        "bar_seconds": [[round(a, 6), round(b, 6)] for a, b in bar_seconds],
        "excerpt": {"bars": [first, last], "seconds": [round(start, 6), round(end, 6)]},
        "occurrences": [list(pair) for pair in occurrences(bar_lines, first, last)],
        "audio_seconds": round(len(samples) / SAMPLE_RATE, 3),
        "checks": {
            **piece.checks,
            "excerpt notes match": excerpt_matches(piece, first, last, excerpt_midi),
            **audio_checks,
        },
    }


def build(out: Path, tunes: Path | None, pieces: int | None, seed: int = SEED) -> None:
    source = _source_tunes(out, tunes)
    paths = sorted(source.glob("*.abc"))
    if pieces is not None and pieces < len(paths):
        paths = sorted(random.Random(seed).sample(paths, pieces))
    started = time.time()
    records = []
    for number, path in enumerate(paths, start=1):
        record_path = out / "tunes" / f"{path.stem}.json"
        if record_path.is_file():
            record = json.loads(record_path.read_text(encoding="utf-8"))
        else:
            record = build_tune(path, out, seed)
            _write_json(record_path, record)
        records.append(record)
        state = f"skipped: {record['skipped']}" if "skipped" in record else "ok"
        print(f"{number}/{len(paths)} {path.stem} {state}", file=sys.stderr)
    kept = [r for r in records if "skipped" not in r]
    manifest = {
        "source": str(source),
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "excerpt_bars": list(EXCERPT_BARS),
        "tunes": len(records),
        "kept": len(kept),
        "skipped": {r["key"]: r["skipped"] for r in records if "skipped" in r},
        "pieces": {r["key"]: r for r in kept},
    }
    _write_json(out / "manifest.json", manifest)
    print(
        f"{len(kept)} of {len(records)} tunes built in {out} ({time.time() - started:.0f} s)", file=sys.stderr
    )


# ---------------------------------------------------------------------------- run: vectors


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _items(session, paths: list[Path]) -> tuple[dict[str, object], list[str]]:
    """The model inputs of files, by file stem (the tune's key), and the failures as text."""
    files, skipped = session.pipeline.collect(paths)
    items, failures = session.pipeline.items_from_files(files, show_progress=False)
    return {Path(item.path).stem: item for item in items}, [
        *(f"{f.path}: {f.reason}" for f in failures),
        *(f"{p}: not recognised" for p in skipped),
    ]


def embed_globals(session, out: Path, folder: Path, keys: list[str]) -> tuple[dict, list[str]]:
    """``{(set, modality): {key: vector}}`` of every piece and excerpt, each vector stored in ``folder``
    as soon as its chunk is embedded (a killed run embeds only what is missing)."""
    vectors: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    failures: list[str] = []
    for set_name in ("pieces", "excerpts"):
        for modality in MODALITIES:
            store = folder / "global" / set_name / modality
            todo = [k for k in keys if not (store / f"{k}.npy").is_file()]
            for chunk in _chunks(todo, EMBED_CHUNK):
                paths = [out / set_name / modality / f"{k}{SUFFIXES[modality]}" for k in chunk]
                items, failed = _items(session, paths)
                embedded = session.pipeline.embed_items(list(items.values()), show_progress=False)
                for item, vector in zip(embedded.items, embedded.vectors, strict=True):
                    _write_atomic(store / f"{Path(item.path).stem}.npy", _npy_bytes(vector))
                    EMBEDDED["global vectors"] += 1
                failures += failed + [f"{f.path}: {f.reason}" for f in embedded.failures]
                print(f"embedded {set_name}/{modality}: {len(chunk)} more", file=sys.stderr)
            vectors[(set_name, modality)] = {
                k: np.load(store / f"{k}.npy") for k in keys if (store / f"{k}.npy").is_file()
            }
    return vectors, failures


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def embed_piece_windows(
    session, out: Path, folder: Path, keys: list[str], settings
) -> tuple[dict, list[str]]:
    """``{modality: {key: (spans, vectors)}}``: the windows of every piece, stored as for the globals."""
    from clamp3.preprocess.windows import Span

    windows: dict[str, dict[str, tuple[list, np.ndarray]]] = {}
    failures: list[str] = []
    for modality in MODALITIES:
        store = folder / "windows" / modality
        todo = [k for k in keys if not (store / f"{k}.npz").is_file()]
        for chunk in _chunks(todo, EMBED_CHUNK):
            paths = [out / "pieces" / modality / f"{k}{SUFFIXES[modality]}" for k in chunk]
            items, failed = _items(session, paths)
            embedded, errors = session.pipeline.embed_windows(list(items.values()), settings)
            for item, spans, vectors in embedded:
                arrays = {
                    "starts": np.array([s.start for s in spans], dtype=np.float64),
                    "ends": np.array([s.end for s in spans], dtype=np.float64),
                    "unit": np.array(spans[0].unit),
                    "vectors": np.asarray(vectors, dtype=np.float32),
                }
                _write_atomic(store / f"{Path(item.path).stem}.npz", _npz_bytes(**arrays))
                EMBEDDED["pieces' windows"] += 1
            failures += failed + [f"{f.path}: {f.reason}" for f in errors]
            print(f"embedded windows of {modality} pieces: {len(chunk)} more", file=sys.stderr)
        windows[modality] = {}
        for key in keys:
            if (store / f"{key}.npz").is_file():
                with np.load(store / f"{key}.npz") as data:
                    unit = str(data["unit"])
                    spans = [
                        Span(float(a), float(b), unit)
                        for a, b in zip(data["starts"], data["ends"], strict=True)
                    ]
                    windows[modality][key] = (spans, data["vectors"].copy())
    return windows, failures


# ---------------------------------------------------------------------------- run: measures


def true_span(record: dict, modality: str, bars: tuple[int, int] | None = None):
    """The span of bars ``first..last`` (default: the excerpt's) in a piece of ``modality``."""
    from clamp3.preprocess.windows import BAR, SECOND, Span

    first, last = bars if bars is not None else record["excerpt"]["bars"]
    if modality == "abc":
        return Span(first, last, BAR)
    return Span(record["bar_seconds"][first - 1][0], record["bar_seconds"][last - 1][1], SECOND)


def best_window_scores(queries: np.ndarray, windows: list[tuple[list, np.ndarray]]) -> np.ndarray:
    """``[q, p]``: the cosine of query ``q`` to the best window of piece ``p``."""
    from clamp3.retrieval.spans import unit_rows

    counts = [len(vectors) for _, vectors in windows]
    stacked = unit_rows(np.concatenate([vectors for _, vectors in windows]))
    scores = unit_rows(queries) @ stacked.T
    return np.maximum.reduceat(scores, np.cumsum([0, *counts[:-1]]), axis=1)


def retrieval(queries: np.ndarray, pieces: np.ndarray, windows: list[tuple[list, np.ndarray]]) -> dict:
    """MRR and hit@1 of query ``i`` finding piece ``i`` among all, per way of combining scores."""
    from clamp3.retrieval.spans import COMBINE, piece_score, unit_rows

    global_scores = unit_rows(queries) @ unit_rows(pieces).T
    window_scores = best_window_scores(queries, windows)
    results = {}
    for combine in sorted(COMBINE, key=lambda c: c != "global"):  # global-only first
        scores = np.vectorize(lambda g, w, c=combine: piece_score(float(g), float(w), c))(
            global_scores, window_scores
        )
        right = np.diag(scores)[:, None]
        ranks = 1 + (scores > right).sum(axis=1)  # ties go to the right piece
        results[combine] = {
            "mrr": round(float(np.mean(1.0 / ranks)), 4),
            "hit@1": round(float(np.mean(ranks == 1)), 4),
            "hit@5": round(float(np.mean(ranks <= 5)), 4),
        }
    return results


def localisation(
    queries: np.ndarray, windows: list[tuple[list, np.ndarray]], records: list[dict], modality: str
) -> dict:
    """How often the best window of the right piece is where the excerpt came from (IoU >= 0.5), the
    same for a uniformly random window, how often any window is (the ceiling the window sizes allow),
    and the first two again with literal repetitions of the excerpt's bars counting as right."""
    from clamp3.retrieval.spans import rank_spans

    hits, chance, ceiling, equivalent, equivalent_chance, ious = [], [], [], [], [], []
    for query, (spans, vectors), record in zip(queries, windows, records, strict=True):
        best = rank_spans(query, [(record["key"], spans, vectors)])[0].span
        truth = true_span(record, modality)
        places = [true_span(record, modality, tuple(pair)) for pair in record["occurrences"]]
        unique = sorted(set(spans), key=lambda s: (s.start, s.end))
        ious.append(best.overlap(truth))
        hits.append(best.overlap(truth) >= IOU)
        chance.append(np.mean([s.overlap(truth) >= IOU for s in unique]))
        ceiling.append(any(s.overlap(truth) >= IOU for s in unique))
        equivalent.append(any(best.overlap(p) >= IOU for p in places))
        equivalent_chance.append(np.mean([any(s.overlap(p) >= IOU for p in places) for s in unique]))
    return {
        "share": round(float(np.mean(hits)), 4),
        "random window": round(float(np.mean(chance)), 4),
        "some window right (ceiling)": round(float(np.mean(ceiling)), 4),
        "mean IoU": round(float(np.mean(ious)), 4),
        "content-equivalent share (secondary)": round(float(np.mean(equivalent)), 4),
        "content-equivalent random window (secondary)": round(float(np.mean(equivalent_chance)), 4),
    }


def run(out: Path, model: str) -> dict:
    from clamp3.api import Session
    from clamp3.cache import digest
    from clamp3.preprocess.windows import WindowSettings

    started = time.time()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    records = manifest["pieces"]
    settings = WindowSettings()
    session = Session.open(model)
    folder = out / "vectors" / digest(session.model.vector_identity, json.dumps(settings.to_dict()))[:16]
    keys = sorted(records)
    vectors, global_failures = embed_globals(session, out, folder, keys)
    windows, window_failures = embed_piece_windows(session, out, folder, keys, settings)
    embedded = time.time()
    usable = [
        k for k in keys if all(k in v for v in vectors.values()) and all(k in w for w in windows.values())
    ]
    chosen = [records[k] for k in usable]
    results: dict = {
        "model": model,
        "settings": {
            "windows": settings.to_dict(),
            "excerpt bars": manifest["excerpt_bars"],
            "seed": manifest["seed"],
            "iou": IOU,
            "sound font": "FluidR3_GM",
            "ranks": "1 + pieces scoring strictly higher than the right one",
        },
        "counts": {
            "test tunes": manifest["tunes"],
            "skipped by build": len(manifest["skipped"]),
            "skipped reasons": _reasons(manifest["skipped"].values()),
            "built": len(records),
            "embedding failures": [*global_failures, *window_failures],
            "evaluated": len(usable),
            "excerpt bars": _histogram(
                [r["excerpt"]["bars"][1] - r["excerpt"]["bars"][0] + 1 for r in chosen]
            ),
            "piece bars (median)": float(np.median([r["bars"] for r in chosen])),
            "excerpt seconds (median)": round(
                float(np.median([r["excerpt"]["seconds"][1] - r["excerpt"]["seconds"][0] for r in chosen])), 2
            ),
            "piece seconds (median)": round(float(np.median([r["bar_seconds"][-1][1] for r in chosen])), 2),
            "excerpts repeated literally elsewhere": sum(len(r["occurrences"]) > 1 for r in chosen),
            "excerpt MIDI notes = the notes of its bars": sum(
                r["checks"]["excerpt notes match"] for r in chosen
            ),
            "audio onset - first MIDI note (s), largest": max(
                abs(r["checks"]["audio onset - first note (s)"]) for r in chosen
            ),
            "windows per piece (mean)": {
                m: round(float(np.mean([len(windows[m][k][0]) for k in usable])), 1) for m in MODALITIES
            },
        },
        "retrieval": {},
        "localisation": {},
    }
    for query in MODALITIES:
        excerpts = np.stack([vectors[("excerpts", query)][k] for k in usable])
        for target in MODALITIES:
            pieces = np.stack([vectors[("pieces", target)][k] for k in usable])
            piece_windows = [windows[target][k] for k in usable]
            pair = f"{query} -> {target}"
            results["retrieval"][pair] = retrieval(excerpts, pieces, piece_windows)
            results["localisation"][pair] = localisation(excerpts, piece_windows, chosen, target)
    results["targets"] = targets(results)
    results["timing"] = {
        "embedded by this run (the rest from OUT/vectors)": dict(EMBEDDED),
        "loading and embedding (s)": round(embedded - started, 1),
        "measuring (s)": round(time.time() - embedded, 1),
    }
    return results


def targets(results: dict) -> dict:
    """The issue's bars, met or not (localisation against the same modality's pieces)."""
    checks = {}
    for pair, scores in results["retrieval"].items():  # with the default way of combining, max
        checks[f"segments (max) beat global, {pair}"] = scores["max"]["mrr"] > scores["global"]["mrr"]
    for modality, bar in (("abc", 0.7), ("midi", 0.7), ("audio", 0.5)):
        share = results["localisation"][f"{modality} -> {modality}"]["share"]
        checks[f"localisation {modality} -> {modality} >= {bar}"] = share >= bar
    return checks


def _reasons(reasons) -> dict[str, int]:
    counted: dict[str, int] = {}
    for reason in reasons:
        short = re.sub(r"\d+", "N", reason)[:80]
        counted[short] = counted.get(short, 0) + 1
    return counted


def _histogram(values: list[int]) -> dict[str, int]:
    return {str(v): values.count(v) for v in sorted(set(values))}


def summary(results: dict) -> str:
    lines = [f"{results['counts']['evaluated']} excerpts, model {results['model']}", ""]
    lines.append(f"{'MRR':<16}{'global':>8}{'max':>8}{'window':>8}{'mean':>8}")
    for pair, scores in results["retrieval"].items():
        lines.append(
            f"{pair:<16}" + "".join(f"{scores[c]['mrr']:>8.3f}" for c in ("global", "max", "window", "mean"))
        )
    lines += ["", f"{'localisation':<16}{'share':>8}{'random':>8}{'ceiling':>8}{'equiv.':>8}{'random':>8}"]
    for pair, scores in results["localisation"].items():
        values = (
            scores["share"],
            scores["random window"],
            scores["some window right (ceiling)"],
            scores["content-equivalent share (secondary)"],
            scores["content-equivalent random window (secondary)"],
        )
        lines.append(f"{pair:<16}" + "".join(f"{v:>8.3f}" for v in values))
    lines += ["", *(f"{'met' if ok else 'NOT met'}: {name}" for name, ok in results["targets"].items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build")
    make.add_argument("out", type=Path)
    make.add_argument("--tunes", type=Path, help="folder of the test tunes' interleaved ABC")
    make.add_argument("--pieces", type=int, help="a seeded random choice of this many tunes (default all)")
    measure = commands.add_parser("run")
    measure.add_argument("out", type=Path)
    measure.add_argument("--model", default="default")
    args = parser.parse_args()
    if args.command == "build":
        build(args.out, args.tunes, args.pieces)
    else:
        results = run(args.out, args.model)
        print(summary(results), file=sys.stderr)
        print(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
