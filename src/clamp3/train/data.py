"""Training data: text-music pairs from JSONL files, and the reference's augmentations.

Two JSONL layouts are read:

* the reference's: ``{"id", "filepaths": [...], "title", "artists", "genres", "tags", "background",
  "analysis", "description", "scene", "translations": {"language": ..., <field>: ...}, ...}`` - every
  string or list-of-strings field other than ``id``, ``filepaths``, ``language`` and ``translations`` is a
  text candidate, ``analysis`` is the validation text;
* a simple one: ``{"path": "tune.abc", "texts": ["...", ...], "lang": "en"}`` (``paths`` for several
  files); the first text is the validation text.

Paths are relative to the JSONL file. Music files go through the cached preprocessing pipeline, so a
conversion or MERT run happens once per file, not once per epoch. Every random choice of an item (text
dropout, which file, truncation) is drawn from a generator seeded by ``(seed, epoch, index)``: the same
item gets the same augmentation on any number of processes and after a resume.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clamp3.errors import Clamp3Error, InputError
from clamp3.model.towers import Tower
from clamp3.pipeline import Pipeline

_NOT_TEXT = frozenset({"id", "filepaths", "language", "translations", "path", "paths", "lang"})
_VOICE_NAME = re.compile(r" (?:nm|snm)=")


@dataclass(frozen=True)
class Example:
    id: str
    texts: tuple[str, ...]
    """Text candidates: field values, each possibly several lines."""
    translations: tuple[str, ...]
    eval_text: str
    music: tuple[str | np.ndarray, ...]
    """Model inputs of the example's music files: symbolic text, or audio features ``[n, D]``."""


@dataclass(frozen=True)
class Record:
    """One JSONL line: its text fields and the music files it names."""

    id: str
    texts: tuple[str, ...]
    translations: tuple[str, ...]
    eval_text: str
    files: tuple[Path, ...]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def read_jsonl(path: str | Path) -> list[Record]:
    """The records of a training JSONL file (either layout); a bad line names the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read ({exc})") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise InputError(path, f"line {number}: not JSON ({exc.args[0]})") from None
        if not isinstance(data, dict):
            raise InputError(path, f"line {number}: expected a JSON object")
        records.append(_record(data, path.parent, f"{path}:{number}"))
    return records


def _record(data: dict, base: Path, where: str) -> Record:
    if "filepaths" in data:
        files = data["filepaths"]
        texts = [t for key, value in data.items() if key not in _NOT_TEXT for t in _strings(value)]
        translations = data.get("translations") or {}
        translated = [t for key, value in translations.items() if key != "language" for t in _strings(value)]
        eval_text = (
            data.get("analysis") if isinstance(data.get("analysis"), str) else (texts[0] if texts else "")
        )
    else:
        files = data.get("paths") or ([data["path"]] if "path" in data else [])
        texts = _strings(data.get("texts", []))
        translated = []
        eval_text = texts[0] if texts else ""
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise Clamp3Error(f'{where}: needs music files ("filepaths", "paths" or "path")')
    if not texts or not eval_text.strip():
        raise Clamp3Error(f"{where}: needs at least one non-empty text")
    return Record(
        id=str(data.get("id", where)),
        texts=tuple(texts),
        translations=tuple(translated),
        eval_text=eval_text,
        files=tuple(base / f for f in files),
    )


def load_examples(
    records: Sequence[Record], pipeline: Pipeline, tower: Tower
) -> tuple[list[Example], list[InputError]]:
    """Model inputs for every record's files of ``tower``'s modality (through the pipeline's cache).

    Files of another modality are ignored; a record left without music fails as a whole.
    """
    from clamp3.modality import detect_kind

    files = sorted({f for record in records for f in record.files})
    kinds = {}
    failures: list[InputError] = []
    for path in files:
        kind = detect_kind(path) if path.exists() else None
        if kind is None:
            failures.append(InputError(path, "missing or not a recognised music file"))
        elif kind.tower == tower:
            kinds[path] = kind
    items, failed = pipeline.items_from_files(list(kinds.items()))
    failures += failed
    inputs: dict[Path, list] = {}
    for item in items:
        inputs.setdefault(item.path, []).append(item.data)
    examples = []
    for record in records:
        music = tuple(data for path in record.files for data in inputs.get(path, []))
        if music:
            examples.append(Example(record.id, record.texts, record.translations, record.eval_text, music))
        else:
            failures.append(InputError(record.id, f"no readable {tower} input among its files"))
    return examples, failures


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item's augmentations in one epoch."""
    return np.random.default_rng([seed, epoch, index])


def training_text(example: Example, rng: np.random.Generator, dropout: bool = True) -> list[str]:
    """The lines of one training text, as the reference builds it (facts section 7.2).

    With probability 0.5 the translations are the candidates (when there are any), else the text
    fields. Lines are de-duplicated; with ``dropout`` each is kept with probability 0.5 (all of them
    when none survives), then they are shuffled.
    """
    candidates = list(example.translations) if example.translations and rng.random() < 0.5 else []
    if not candidates:
        candidates = list(example.texts)
    lines = list(dict.fromkeys(line for text in candidates for line in text.split("\n") if line.strip()))
    if dropout:
        kept = [line for line in lines if rng.random() < 0.5]
        lines = kept or lines
    return [lines[i] for i in rng.permutation(len(lines))]


def remove_instrument_info(text: str) -> str:
    """Drop instrument names: ABC ``V:`` lines are cut at `` nm=``/`` snm=``; MTF programs become 0."""
    if text.startswith("ticks_per_beat"):
        return "\n".join(
            line.rsplit(" ", 1)[0] + " 0" if line.startswith("program_change ") else line
            for line in text.split("\n")
        )
    lines = []
    for line in text.split("\n"):
        if line.startswith("V:") and (match := _VOICE_NAME.search(line)):
            line = line[: match.start()]
        lines.append(line)
    return "\n".join(lines)


def random_slice(array: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """The rows of ``array`` that :func:`random_window` chooses."""
    start, stop = random_window(len(array), size, rng)
    return array[start:stop]


def random_window(length: int, size: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """``[start, stop)`` of at most ``size`` items: the head, the tail or a random middle (reference
    truncation); always the head when ``rng`` is ``None`` (validation)."""
    if length <= size:
        return 0, length
    if rng is None:
        return 0, size
    choice = rng.integers(3)
    if choice == 0:
        return 0, size
    if choice == 1:
        return length - size, length
    start = int(rng.integers(1, length - size + 1))
    return start, start + size
