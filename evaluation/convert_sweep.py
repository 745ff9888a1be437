"""Run every MusicXML file and every ABC tune of a corpus through clamp3's sheet-music conversion.

    python evaluation/convert_sweep.py [--corpus DIR] [--results sweep.jsonl] [--jobs N] [--timeout S]

``DIR`` defaults to music21's corpus (``pip install music21``). Each MusicXML file
(``.xml``/``.mxl``/``.musicxml``) goes through :func:`clamp3.preprocess.sheet.xml_to_interleaved`, each
tune of each ``.abc`` file through :func:`~clamp3.preprocess.sheet.abc_file_tunes` and
:func:`~clamp3.preprocess.sheet.tune_to_interleaved`, in worker processes, each item stopped after
``--timeout`` seconds. One JSON line per item is appended to ``--results`` as it finishes; a second run
skips the items already there, so an interrupted sweep resumes where it stopped. At the end the counts
are printed: files and tunes converted, the routes the converted tunes took, and the failures by reason
class (the reason with its specifics, such as line text, numbers and quoted names, taken out).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from clamp3.errors import InputError
from clamp3.preprocess.abc_convert import is_musicxml_path
from clamp3.preprocess.abc_tunes import is_interleaved, is_xml2abc_shaped

_ROUTE_WARNING = re.compile(r"(?:^|: )route: (?P<route>[^(]+?) \(")
_SPECIFICS = (
    (re.compile(r" in: .*"), ""),  # abc2xml echoes the failing line
    (re.compile(r"'[^']+'|\"[^\"]+\""), "'…'"),
    (re.compile(r"\b\d+\b"), "N"),
)


def corpus_items(corpus: Path) -> Iterator[tuple[str, str, int]]:
    """``(item id, file, tune index)`` for every MusicXML file (index -1) and ABC tune under ``corpus``."""
    from clamp3.preprocess.sheet import abc_file_tunes

    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        name = str(path)
        if is_musicxml_path(name):
            yield name, name, -1
        elif path.suffix.lower() == ".abc":
            try:
                tunes = abc_file_tunes(name)
            except InputError:
                yield name, name, 0  # the worker reports why
                continue
            for index, tune in enumerate(tunes):
                yield tune.id, name, index


def convert_item(item_id: str, file: str, index: int, timeout: float) -> dict[str, object]:
    """Convert one item (runs in a worker); the outcome as a JSON-able record."""
    from clamp3.preprocess.sheet import abc_file_tunes, tune_to_interleaved, xml_to_interleaved

    def expire(*_: object) -> None:
        raise TimeoutError(f"no result after {timeout:g} s")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.perf_counter()
    record: dict[str, object] = {"id": item_id, "file": file, "kind": "xml" if index < 0 else "abc"}
    try:
        if index < 0:
            route, result = "xml2abc", xml_to_interleaved(file)
        else:
            tune = abc_file_tunes(file)[index]
            route, result = default_route(tune.text), tune_to_interleaved(tune.text, source=tune.id)
        record.update(ok=True, route=route_of(route, result.warnings), chars=len(result.text))
    except InputError as error:
        record.update(ok=False, reason=error.reason)
    except TimeoutError as exc:
        record.update(ok=False, reason=f"timeout: {exc}")
    except Exception as exc:  # what clamp3 let through is a failure of clamp3's own
        record.update(ok=False, reason=f"uncaught {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def route_of(default: str, warnings: tuple[str, ...]) -> str:
    """The route a conversion took: the one a ``route: ...`` warning names, else ``default``."""
    for warning in warnings:
        match = _ROUTE_WARNING.search(warning)
        if match:
            return match["route"]
    return default


def default_route(tune: str) -> str:
    """The route :func:`~clamp3.preprocess.sheet.tune_to_interleaved` takes first for an ABC tune."""
    if is_interleaved(tune):
        return "already interleaved"
    return "interleaving pipeline" if is_xml2abc_shaped(tune) else "abc2xml"


def reason_class(reason: str) -> str:
    """A failure reason without its specifics, so that failures of one kind count together."""
    for pattern, replacement in _SPECIFICS:
        reason = pattern.sub(replacement, reason)
    return reason[:120]


def load_results(path: Path) -> dict[str, dict[str, object]]:
    """The records of an earlier (maybe interrupted) run, by item id; a torn last line is ignored."""
    records: dict[str, dict[str, object]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["id"]] = record
    return records


def summary(records: list[dict[str, object]], corpus: Path) -> str:
    """The counts a sweep reports, as Markdown-friendly text."""
    lines: list[str] = []
    for kind, unit in (("xml", "MusicXML files"), ("abc", "ABC tunes")):
        mine = [r for r in records if r["kind"] == kind]
        done = [r for r in mine if r["ok"]]
        lines.append(f"{unit}: {len(done)} of {len(mine)} converted, {len(mine) - len(done)} failed")
        routes = Counter(str(r["route"]) for r in done)
        lines.extend(f"  route {route}: {count}" for route, count in routes.most_common())
        reasons = Counter(reason_class(str(r["reason"])) for r in mine if not r["ok"])
        lines.extend(f"  {count:5d}  {reason}" for reason, count in reasons.most_common())
    abc_files: dict[object, bool] = {}
    for record in records:
        if record["kind"] == "abc":
            abc_files[record["file"]] = abc_files.get(record["file"], True) and bool(record["ok"])
    lines.append(f"ABC files: {sum(abc_files.values())} of {len(abc_files)} with every tune converted")
    slowest = max(records, key=lambda r: float(r["seconds"]), default=None)  # type: ignore[arg-type]
    if slowest:
        lines.append(f"slowest item: {Path(str(slowest['id'])).relative_to(corpus)} {slowest['seconds']} s")
    return "\n".join(lines)


def default_corpus() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder to sweep (default: music21's corpus)")
    parser.add_argument("--results", type=Path, default=Path("convert_sweep.jsonl"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per file or tune")
    args = parser.parse_args(argv)
    corpus = (args.corpus or default_corpus()).resolve()
    records = load_results(args.results)
    todo = [item for item in corpus_items(corpus) if item[0] not in records]
    print(f"{len(records)} items done before, {len(todo)} to go", file=sys.stderr)
    with (
        args.results.open("a", encoding="utf-8") as out,
        ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool,
    ):
        futures = [pool.submit(convert_item, *item, args.timeout) for item in todo]
        for done, future in enumerate(as_completed(futures), start=1):
            record = future.result()
            records[str(record["id"])] = record
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            if done % 500 == 0:
                print(f"{done} of {len(todo)}", file=sys.stderr)
    print(summary(list(records.values()), corpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
