"""Batch conversion of files into model input (what ``clamp3 convert`` runs).

Each converter turns files of some kinds into files under an output folder that mirrors the input
tree, with a new extension. Every output is written atomically, so an output that exists is
complete and a re-run skips it. The CPU-bound converters run in worker processes; the model-based
ones (``audio2mert``, ``image2caption``, ``symbolic2m3``) run in this process. A file that fails is reported
and the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from clamp3.errors import Clamp3Error, InputError
from clamp3.fileio import atomic_write
from clamp3.modality import FileKind, collect_files
from clamp3.progress import progress_bar

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ConverterSpec:
    kinds: frozenset[FileKind]
    suffix: str
    summary: str


CONVERTERS: Mapping[str, ConverterSpec] = MappingProxyType(
    {
        "xml2abc": ConverterSpec(frozenset({FileKind.MUSICXML}), ".abc", "MusicXML -> standard ABC"),
        "xml2interleaved": ConverterSpec(
            frozenset({FileKind.MUSICXML}), ".abc", "MusicXML -> interleaved ABC (symbolic model input)"
        ),
        "abc2interleaved": ConverterSpec(
            frozenset({FileKind.ABC}), ".abc", "ABC -> interleaved ABC, one output per tune"
        ),
        "abc2xml": ConverterSpec(frozenset({FileKind.ABC}), ".xml", "ABC -> MusicXML, one output per tune"),
        "midi2mtf": ConverterSpec(
            frozenset({FileKind.MIDI}), ".mtf", "MIDI -> MTF text (symbolic model input)"
        ),
        "mtf2midi": ConverterSpec(frozenset({FileKind.MTF}), ".mid", "MTF text -> MIDI"),
        "audio2mert": ConverterSpec(
            frozenset({FileKind.AUDIO}), ".npy", "audio -> MERT features [1, n_windows, D] (float32)"
        ),
        "image2caption": ConverterSpec(frozenset({FileKind.IMAGE}), ".txt", "image -> caption text"),
        "symbolic2m3": ConverterSpec(
            frozenset({FileKind.ABC, FileKind.MTF}),
            ".npy",
            "interleaved ABC, MTF -> M3 per-patch features [1, n_patches, H] (needs --m3)",
        ),
    }
)
MODEL_CONVERTERS = frozenset({"audio2mert", "image2caption", "symbolic2m3"})
_PER_TUNE = frozenset({"abc2interleaved", "abc2xml"})
"""Converters writing one output per tune of an ABC file (``name.abc`` -> ``name.<X>.<suffix>``)."""
_MIN_TASKS_PER_WORKER = 4
"""Fewer files than this per worker run in this process: starting workers would cost more."""
_CHUNKS_PER_WORKER = 8


@dataclass(frozen=True)
class ConvertOptions:
    m3_compatible: bool = True
    """``midi2mtf``: drop text-like meta messages, as CLaMP 3 does."""
    mert: str = "mert-v1-95m"
    """``audio2mert``: a registry name or a MERT checkpoint folder."""
    captioner: str = "blip-base"
    """``image2caption``: a registry name or a BLIP checkpoint folder."""
    m3: Path | None = None
    """``symbolic2m3``: an M3 checkpoint (official layout)."""
    m3_config: Path | None = None
    """``symbolic2m3``: a CLaMP 3 ``config.json`` whose symbolic tower the M3 encoder is (default:
    the official sizes)."""
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 8
    device: str | None = None


@dataclass(frozen=True)
class Task:
    source: Path
    output: Path


@dataclass
class ConvertReport:
    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    failures: list[InputError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    other_kinds: list[Path] = field(default_factory=list)
    """Files of a kind this converter does not read (left alone)."""
    unknown: list[Path] = field(default_factory=list)
    """Files whose kind could not be recognised (skipped with a warning)."""

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class _Outcome:
    written: tuple[Path, ...] = ()
    existing: tuple[Path, ...] = ()
    failures: tuple[InputError, ...] = ()
    warnings: tuple[str, ...] = ()


def plan(
    converter: str, inputs: Iterable[str | Path], out_dir: str | Path
) -> tuple[list[Task], ConvertReport]:
    """The conversion tasks for ``inputs`` (files or folders), and a report of what was left out."""
    spec = _spec(converter)
    out_dir = Path(out_dir)
    report = ConvertReport()
    tasks: list[Task] = []
    claimed: dict[Path, Path] = {}
    for argument in map(Path, inputs):
        if not argument.exists():
            report.failures.append(InputError(argument, "no such file or directory"))
            continue
        root = argument if argument.is_dir() else argument.parent
        files, unknown = collect_files([argument])
        report.unknown.extend(unknown)
        for path, kind in files:
            if kind not in spec.kinds:
                if argument.is_dir():
                    report.other_kinds.append(path)
                else:
                    report.failures.append(InputError(path, f"is {kind.value}, not input for {converter}"))
                continue
            output = out_dir / path.relative_to(root).with_suffix(spec.suffix)
            if output.resolve() == path.resolve():
                report.failures.append(InputError(path, "its output would overwrite it; choose another -o"))
            elif output in claimed:
                report.failures.append(InputError(path, f"its output {output} is also {claimed[output]}'s"))
            else:
                claimed[output] = path
                tasks.append(Task(path, output))
    return tasks, report


def convert(
    converter: str,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    options: ConvertOptions | None = None,
    show_progress: bool = False,
) -> ConvertReport:
    """Convert every file of the right kind under ``inputs`` into ``out_dir``; see the module docstring."""
    options = options or ConvertOptions()
    tasks, report = plan(converter, inputs, out_dir)
    if converter in MODEL_CONVERTERS:
        outcomes = _run_model_converter(converter, tasks, options, show_progress)
    else:
        outcomes = _run_file_converter(converter, tasks, options, show_progress)
    for outcome in outcomes:
        report.written.extend(outcome.written)
        report.existing.extend(outcome.existing)
        report.failures.extend(outcome.failures)
        report.warnings.extend(outcome.warnings)
    return report


def _spec(converter: str) -> ConverterSpec:
    try:
        return CONVERTERS[converter]
    except KeyError:
        raise Clamp3Error(f"unknown converter {converter!r}; choose one of {', '.join(CONVERTERS)}") from None


# ---------------------------------------------------------------- file converters (worker processes)


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


def _convert_file(converter: str, task: Task, m3_compatible: bool) -> _Outcome:
    """Convert one file (runs in a worker process; every failure comes back as data)."""
    try:
        if converter in _PER_TUNE:
            return _convert_abc_tunes(converter, task)
        if task.output.exists():
            return _Outcome(existing=(task.output,))
        warnings: tuple[str, ...] = ()
        if converter == "xml2abc":
            from clamp3.preprocess.abc_convert import xml_to_abc

            result = xml_to_abc(task.source)
            text, warnings = result.text, result.warnings
            _write_text(task.output, text)
        elif converter == "xml2interleaved":
            from clamp3.preprocess.sheet import xml_to_interleaved

            result = xml_to_interleaved(task.source)
            _write_text(task.output, result.text)
            warnings = result.warnings
        elif converter == "midi2mtf":
            from clamp3.preprocess.midi import midi_to_mtf

            _write_text(task.output, midi_to_mtf(task.source, m3_compatible=m3_compatible))
        elif converter == "mtf2midi":
            from clamp3.preprocess.midi import mtf_to_midi_bytes

            data = mtf_to_midi_bytes(_read_text(task.source), name=str(task.source))
            atomic_write(task.output, lambda tmp: tmp.write_bytes(data))
        return _Outcome(written=(task.output,), warnings=tuple(f"{task.source}: {w}" for w in warnings))
    except InputError as error:
        return _Outcome(failures=(error,))
    except Exception as exc:  # one file must never stop a batch
        return _Outcome(failures=(InputError.unexpected(task.source, exc),))


def _convert_abc_tunes(converter: str, task: Task) -> _Outcome:
    from clamp3.preprocess.abc_convert import abc_to_musicxml
    from clamp3.preprocess.sheet import abc_file_tunes, tune_to_interleaved

    convert_tune = abc_to_musicxml if converter == "abc2xml" else tune_to_interleaved
    tunes = abc_file_tunes(task.source)
    written, existing, failures, warnings = [], [], [], []
    for tune in tunes:
        output = task.output
        if len(tunes) > 1:
            number = tune.id.rsplit("#", 1)[-1].replace("/", "_")
            output = task.output.with_name(f"{task.output.stem}.{number}{task.output.suffix}")
        if output.exists():
            existing.append(output)
            continue
        try:
            result = convert_tune(tune.text, source=tune.id)
        except InputError as error:
            failures.append(error)
            continue
        _write_text(output, result.text)
        written.append(output)
        warnings.extend(f"{tune.id}: {w}" for w in result.warnings)
    return _Outcome(tuple(written), tuple(existing), tuple(failures), tuple(warnings))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc


def _run_file_converter(
    converter: str, tasks: list[Task], options: ConvertOptions, show_progress: bool
) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    if converter not in _PER_TUNE:  # one output per file: finished files need no worker
        done = [task for task in tasks if task.output.exists()]
        outcomes.append(_Outcome(existing=tuple(task.output for task in done)))
        tasks = [task for task in tasks if not task.output.exists()]
    with progress_bar(len(tasks), converter, show_progress) as bar:
        if options.jobs <= 1 or len(tasks) < _MIN_TASKS_PER_WORKER * options.jobs:
            for task in tasks:
                outcomes.append(_convert_file(converter, task, options.m3_compatible))
                bar.advance()
            return outcomes
        # a few chunks per worker: fewer round trips than one task each, still balanced
        size = max(1, len(tasks) // (options.jobs * _CHUNKS_PER_WORKER))
        chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        with ProcessPoolExecutor(max_workers=options.jobs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_convert_files, converter, chunk, options.m3_compatible) for chunk in chunks
            ]
            for future in as_completed(futures):
                done = future.result()
                outcomes.extend(done)
                bar.advance(len(done))
    return outcomes


def _convert_files(converter: str, tasks: list[Task], m3_compatible: bool) -> list[_Outcome]:
    return [_convert_file(converter, task, m3_compatible) for task in tasks]


# ---------------------------------------------------------------- model converters (this process)


def _run_model_converter(
    converter: str, tasks: list[Task], options: ConvertOptions, show_progress: bool
) -> list[_Outcome]:
    existing = [task for task in tasks if task.output.exists()]
    pending = [task for task in tasks if not task.output.exists()]
    outcomes = [_Outcome(existing=tuple(task.output for task in existing))]
    if not pending:
        return outcomes
    run: Callable[[list[Task], ConvertOptions, bool], list[_Outcome]] = {
        "audio2mert": _mert_features,
        "image2caption": _captions,
        "symbolic2m3": _m3_features,
    }[converter]
    return outcomes + run(pending, options, show_progress)


def _mert_features(tasks: list[Task], options: ConvertOptions, show_progress: bool) -> list[_Outcome]:
    import numpy as np

    from clamp3.hub.download import resolve_model_dir
    from clamp3.preprocess.mert import MertExtractor

    extractor = MertExtractor.from_pretrained(resolve_model_dir(options.mert), device=options.device)
    outcomes = []
    results = extractor.iter_extract([t.source for t in tasks], options.batch_size, show_progress)
    for task, result in zip(tasks, results, strict=True):
        if result.error is not None:
            outcomes.append(_Outcome(failures=(result.error,)))
            continue
        features = result.features[None].astype(np.float32)
        atomic_write(task.output, lambda tmp, f=features: _save_npy(tmp, f))
        outcomes.append(_Outcome(written=(task.output,)))
    return outcomes


def _save_npy(path: Path, array: np.ndarray) -> None:
    import numpy as np

    with path.open("wb") as handle:
        np.save(handle, array)


def _captions(tasks: list[Task], options: ConvertOptions, show_progress: bool) -> list[_Outcome]:
    from clamp3.hub.download import resolve_model_dir
    from clamp3.preprocess.image import BlipCaptioner, caption_files

    captioner = BlipCaptioner.from_pretrained(resolve_model_dir(options.captioner), device=options.device)
    outcomes = []
    with progress_bar(len(tasks), "captions", show_progress) as bar:
        results = caption_files(
            [t.source for t in tasks], captioner, options.batch_size, on_progress=bar.advance
        )
    for task, result in zip(tasks, results, strict=True):
        if result.error is not None:
            outcomes.append(_Outcome(failures=(result.error,)))
            continue
        _write_text(task.output, result.caption)
        outcomes.append(_Outcome(written=(task.output,)))
    return outcomes


def _m3_features(tasks: list[Task], options: ConvertOptions, show_progress: bool) -> list[_Outcome]:
    from clamp3.config import CLaMP3Config
    from clamp3.m3_features import M3FeatureExtractor
    from clamp3.preprocess.abc_tunes import is_interleaved

    if options.m3 is None:
        raise Clamp3Error("symbolic2m3 needs the M3 weights: give --m3 CHECKPOINT")
    config = CLaMP3Config.load(options.m3_config).symbolic if options.m3_config else None
    extractor = M3FeatureExtractor.from_checkpoint(options.m3, config, options.device)
    outcomes = []
    with progress_bar(len(tasks), "M3 features", show_progress) as bar:
        for task in tasks:
            try:
                text = _read_text(task.source)
                if task.source.suffix.lower() != ".mtf" and not is_interleaved(text):
                    raise InputError(
                        task.source, "not interleaved ABC: convert it with abc2interleaved first"
                    )
                features = extractor.features(text)
                atomic_write(task.output, lambda tmp, f=features: _save_npy(tmp, f))
                outcomes.append(_Outcome(written=(task.output,)))
            except InputError as error:
                outcomes.append(_Outcome(failures=(error,)))
            except ValueError as exc:  # the patchilizer's one-line complaint about the text
                outcomes.append(_Outcome(failures=(InputError(task.source, str(exc)),)))
            bar.advance()
    return outcomes
