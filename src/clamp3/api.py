"""The task API: embed, search, score, evaluate and classify, from files or precomputed features.

Every function takes paths (files or folders of any modality mix) and a model (a name, a path or a
loaded encoder), goes through the cached :class:`~clamp3.pipeline.Pipeline`, and returns a result
that also lists the files that failed or were skipped, so a caller can report them and go on.
Folders holding only reference-layout global vectors (``.npy`` of shape ``(1, D)`` or ``(D,)``) and
the ``.npz``/``.parquet`` files of ``clamp3 embed`` are read as they are, without a model; the latter
record the model and each item's modality, so they are checked against the model in use and can be
filtered by modality.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clamp3.cache import FeatureCache
from clamp3.errors import Clamp3Error, InputError
from clamp3.modality import FileKind, collect_files
from clamp3.pipeline import Embeddings, Item, Pipeline, PipelineOptions
from clamp3.preprocess.windows import Span, WindowSettings
from clamp3.retrieval import (
    ClassificationReport,
    EvalResult,
    FeatureSet,
    GroupScore,
    ModelMismatchError,
    PairwiseScore,
    VectorIndex,
    ZeroShotClassifier,
    classification_report,
    group_score,
    is_vector_file,
    pairwise_score,
    read_feature_folder,
    read_vector_file,
    same_model,
)
from clamp3.retrieval import evaluate as evaluate_features
from clamp3.retrieval.features import describe_model
from clamp3.retrieval.spans import SpanHit, piece_score, rank_spans, unit_rows
from clamp3.retrieval.vector_files import vector_file_model_name

OFFICIAL_MODEL = "saas"
BUNDLED_MODEL = "default"
MODEL_CARD_URL = "https://github.com/clamp3/clamp3/blob/main/MODEL_CARD.md"
PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)


def default_model_name() -> str:
    """The model used when none is named: the official SAAS weights when they (and the XLM-R tokenizer)
    are in the local cache, else the bundled open-data model."""
    from clamp3.hub import cached_path, get_entry

    official = get_entry(OFFICIAL_MODEL)
    needed = [official, *(get_entry(name) for name in official.requires)]
    if all(cached_path(entry, f) is not None for entry in needed for f in entry.files):
        return OFFICIAL_MODEL
    return BUNDLED_MODEL


def load_model(model: Any = None, *, device: str | None = None, dtype: str | None = None) -> Any:
    """``model`` itself if already loaded, else a CLaMP 3 or CLaMP 1 model loaded by name or path.

    With no model named, :func:`default_model_name` decides, and one line on stderr says which model is
    in use when it is the bundled one.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model
    name = str(model) if model else default_model_name()
    if not model and name == BUNDLED_MODEL:
        print(
            f"clamp3: using the bundled '{BUNDLED_MODEL}' model (open data, see {MODEL_CARD_URL}); for the "
            f"official CLaMP 3 weights run `clamp3 models pull {OFFICIAL_MODEL}` (then they are the default)",
            file=sys.stderr,
        )
    logger.info("loading model %s", name)
    if _is_clamp1(name):
        from clamp3.clamp1 import CLaMP1

        loaded = CLaMP1.from_pretrained(name, device=device, dtype=dtype)
    else:
        from clamp3.encoder import CLaMP3

        loaded = CLaMP3.from_pretrained(name, device=device, dtype=dtype)
    logger.info(
        "model %s loaded: %s on %s, fingerprint %s, %s",
        name,
        loaded.family,
        loaded.device,
        loaded.fingerprint[:16],
        loaded.precision,
    )
    return loaded


def model_name(model: Any = None) -> str | None:
    """The name recorded with vectors of ``model``: a registry name as it is, a model on disk by its
    absolute path, no model by the default's name; ``None`` for a loaded model."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return None
    name = str(model) if model else default_model_name()
    return os.path.abspath(name) if Path(name).exists() else name


def _is_clamp1(name: str) -> bool:
    """A CLaMP 1 registry name, or a folder in CLaMP 1's format or its hub layout (a transformers
    ``config.json``, which neither CLaMP 3 layout has)."""
    import json

    from clamp3.clamp1.config import is_our_config
    from clamp3.hub import REGISTRY

    if name in REGISTRY:
        return REGISTRY[name].kind == "clamp1"
    config = Path(name) / "config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return is_our_config(data) or (
        "model_type" in data and "format" not in data and "config_py_overrides" not in data
    )


@dataclass
class Session:
    """What the task functions share: one model, one pipeline, one cache."""

    model: Any
    pipeline: Pipeline
    name: str | None = None
    """The model's name as vectors record it (see :func:`model_name`); ``None`` for a loaded model."""

    @classmethod
    def open(
        cls,
        model: Any = None,
        *,
        cache: bool | FeatureCache = True,
        options: PipelineOptions | None = None,
        device: str | None = None,
    ) -> Session:
        dtype = options.dtype if options is not None else None
        encoder = load_model(model, device=device, dtype=dtype)
        store = cache if isinstance(cache, FeatureCache) else (FeatureCache() if cache else None)
        logger.info("feature cache: %s", store.root if store is not None else "off")
        return cls(encoder, Pipeline(encoder, store, options), model_name(model))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, D)`` vectors of literal texts (through the cache)."""
        return self.pipeline.embed(self.pipeline.items_from_texts(list(texts)))


# ---------------------------------------------------------------------------- collections of vectors


@dataclass
class Collection:
    """The vectors of one side of a task (a set of files or a folder of precomputed features)."""

    features: FeatureSet
    items: list[Item] = field(default_factory=list)
    """The embedded items, row by row (empty for precomputed features)."""
    failures: list[InputError] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _is_vector_file(path: Path) -> bool:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).ndim <= 2
    except (OSError, ValueError):
        return False


def is_precomputed(path: PathLike) -> bool:
    """True for a folder (or file) holding only global vectors in the reference layout, and for a
    vector file written by ``clamp3 embed --format npz|parquet``."""
    if is_vector_file(path):
        return True
    files, _ = collect_files([Path(path)])
    return bool(files) and all(kind is FileKind.FEATURES and _is_vector_file(p) for p, kind in files)


def relative_id(item: Item, root: Path) -> str:
    base = item.path if item.path is not None else Path(item.id)
    relative = base.name if root.is_file() else os.path.relpath(base, root).replace(os.sep, "/")
    suffix = item.id[len(str(item.path)) :] if item.path is not None else ""
    return relative + suffix


def collect(
    session: Session | None,
    paths: Sequence[PathLike],
    *,
    kinds: set[FileKind] | None = None,
    model: Any = None,
) -> Collection:
    """Vectors for ``paths``: read when precomputed, embedded (through the cache) otherwise.

    Ids are paths relative to the argument they were found under (file names for file arguments),
    so that two folders with the same layout pair up by key. Precomputed vectors that record their
    model must come from the session's model (without a session: from ``model``, when named).
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise InputError(root, "no such file or directory")
    if roots and all(is_precomputed(root) for root in roots):
        return _precomputed(roots, kinds, _model_in_use(session, model))
    if session is None:
        raise Clamp3Error("these inputs need a model to embed them")
    ids: list[str] = []
    items: list[Item] = []
    failures: list[InputError] = []
    skipped: list[Path] = []
    for root in roots:
        files, unknown = session.pipeline.collect([root])
        skipped.extend(unknown)
        if kinds is not None:
            files = [(p, k) for p, k in files if k in kinds]
        found, failed = session.pipeline.items_from_files(files)
        items.extend(found)
        failures.extend(failed)
        ids.extend(relative_id(item, root) for item in found)
    if not items and not failures:
        where = ", ".join(str(r) for r in roots)
        raise Clamp3Error(f"no input files found in {where}")
    embedded = session.pipeline.embed_items(items)
    id_of = dict(zip((item.id for item in items), ids, strict=True))
    features = FeatureSet(
        tuple(id_of[item.id] for item in embedded.items),
        embedded.vectors,
        tuple(item.id for item in embedded.items),
        model=session.model.fingerprint,
        model_name=session.name,
        modalities=tuple(item.kind.value for item in embedded.items),
    )
    return Collection(features, embedded.items, failures + embedded.failures, skipped)


def _model_in_use(session: Session | None, model: Any) -> tuple[str, str | None] | None:
    """(fingerprint or name, name) of the session's model, else of the named ``model``, else ``None``."""
    if session is not None:
        return session.model.fingerprint, session.name
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        return None
    from clamp3.hub.identity import model_identity

    name = model_name(model)
    return model_identity(name).fingerprint or name, name


def _precomputed(
    roots: list[Path], kinds: set[FileKind] | None, in_use: tuple[str, str | None] | None
) -> Collection:
    sets, failures = [], []
    for root in roots:
        if is_vector_file(root):
            features = read_vector_file(root)
        else:
            features, errors = read_feature_folder(root if root.is_dir() else root.parent)
            failures.extend(errors)
            if root.is_file():
                features = features.subset([i for i, p in enumerate(features.paths) if Path(p) == root])
        recorded = _recorded(features)
        if in_use is not None and features.model is not None and not same_model(*in_use, *recorded):
            raise ModelMismatchError(
                f"{root}: vectors of model {describe_model(*recorded)}, "
                f"but the model in use is {describe_model(*in_use)}"
            )
        sets.append(_of_kinds(features, kinds, root) if kinds is not None else features)
    if len(sets) == 1:
        return Collection(sets[0], failures=failures)
    dims = {s.dim for s in sets if len(s)}
    if len(dims) > 1:
        raise Clamp3Error(f"precomputed feature folders of different dimensions: {sorted(dims)}")
    check_same_model(sets)
    known = all(s.model is not None for s in sets)
    merged = FeatureSet(
        tuple(i for s in sets for i in s.ids),
        np.concatenate([s.vectors for s in sets]),
        tuple(p for s in sets for p in s.paths),
        sets[0].model if known else None,
        sets[0].model_name if known else None,
        tuple(m for s in sets for m in s.modalities) if all(s.modalities for s in sets) else (),
    )
    return Collection(merged, failures=failures)


def _recorded(features: FeatureSet) -> tuple[str, str | None]:
    return str(features.model), features.model_name


def check_same_model(sets: Sequence[FeatureSet]) -> None:
    """Refuse to mix vectors recorded with different models (sets that record none are not checked)."""
    known = [s for s in sets if s.model is not None]
    for other in known[1:]:
        if not same_model(*_recorded(known[0]), *_recorded(other)):
            raise ModelMismatchError(
                f"vectors of different models: {describe_model(*_recorded(known[0]))} "
                f"and {describe_model(*_recorded(other))}"
            )


def _of_kinds(features: FeatureSet, kinds: set[FileKind], root: Path) -> FeatureSet:
    if not features.modalities:
        raise Clamp3Error(
            f"{root}: .npy vectors do not record their modality, so they cannot be filtered by it "
            "(clamp3 embed --format npz or parquet keeps it)"
        )
    names = {kind.value for kind in kinds}
    return features.subset([i for i, name in enumerate(features.modalities) if name in names])


def recorded_model_name(paths: Sequence[PathLike]) -> str | None:
    """The model name recorded in the first vector file among ``paths`` that has one."""
    for path in paths:
        if is_vector_file(path):
            name = vector_file_model_name(path)
            if name is not None:
                return name
    return None


# ---------------------------------------------------------------------------- tasks


def embed(
    paths: Sequence[PathLike],
    model: Any = None,
    *,
    global_features: bool = True,
    cache: bool | FeatureCache = True,
    options: PipelineOptions | None = None,
    device: str | None = None,
) -> Embeddings:
    """Vectors for every recognised file under ``paths`` (see :class:`~clamp3.pipeline.Embeddings`)."""
    session = Session.open(model, cache=cache, options=options, device=device)
    return session.pipeline.embed_paths(paths, global_features)


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    id: str
    path: str
    kind: str | None = None
    caption: str | None = None
    span: Span | None = None
    """With ``segments``: the best-matching passage of the hit (``None`` for a text, or a piece
    searched without segments)."""


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    candidates: int
    failures: list[InputError] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)

    def __repr__(self) -> str:
        best = f", best {self.hits[0].path!r} ({self.hits[0].score:.4f})" if self.hits else ""
        return (
            f"SearchResult(query={self.query!r}, {len(self.hits)} hits of {self.candidates} candidates"
            f"{best}, {len(self.failures)} failures)"
        )


def query_vector(session: Session | None, query: PathLike | None, text: str | None) -> tuple[str, np.ndarray]:
    """The label and vector of a search query: a text, a file, or a precomputed ``.npy`` vector."""
    if (query is None) == (text is None):
        raise Clamp3Error("give either a query file or a query text")
    if text is not None:
        if session is None:
            raise Clamp3Error("a text query needs a model")
        return text, session.embed_texts([text])[0]
    path = Path(query)
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.suffix.lower() == ".npy" and _is_vector_file(path):
        return str(path), np.load(path, allow_pickle=False).reshape(-1).astype(np.float32)
    if session is None:
        raise Clamp3Error("a query file needs a model")
    found = collect(session, [path])
    if not len(found.features):
        raise found.failures[0] if found.failures else InputError(path, "not a recognised input file")
    return str(path), found.features.vectors[0]


def search(
    query: PathLike | None,
    targets: Sequence[PathLike],
    *,
    text: str | None = None,
    k: int = 10,
    model: Any = None,
    kinds: set[FileKind] | None = None,
    cache: bool | FeatureCache = True,
    options: PipelineOptions | None = None,
    device: str | None = None,
    library: Any = None,
    include_query: bool = False,
    segments: bool = False,
    windows: WindowSettings | None = None,
    combine: str = "max",
) -> SearchResult:
    """The ``k`` targets most similar to a query file or a query ``text`` (any language).

    ``kinds`` restricts the targets (for example ``{FileKind.AUDIO}``). With ``library`` (a folder or
    an open :class:`~clamp3.library.Library`) the library is searched and ``targets`` must be empty.
    A query file that is also among the targets is not a hit of itself unless ``include_query``.
    Targets may be vector files of ``clamp3 embed --format npz|parquet``; with no ``model`` named, a
    text or file query is embedded with the model they record.

    ``segments`` also embeds the windows of every target piece (``windows``, default
    :class:`~clamp3.preprocess.windows.WindowSettings`; a library uses its own): each hit carries
    its best-matching passage (:attr:`Hit.span`) and its score combines its global and best-window
    scores (``combine``, see :data:`~clamp3.retrieval.spans.COMBINE`).
    """
    if library is not None:
        if targets:
            raise Clamp3Error("search a library or target files, not both")
        return _search_library(
            library,
            query=query,
            text=text,
            k=k,
            kinds=kinds,
            include_query=include_query,
            model=model,
            session_args={"cache": cache is not False, "options": options, "device": device},
            segments=segments,
            combine=combine,
        )
    named, model = model, model if model is not None else recorded_model_name(targets)
    needs_model = (
        text is not None
        or not all(is_precomputed(t) for t in targets)
        or (query is not None and not (str(query).lower().endswith(".npy") and _is_vector_file(Path(query))))
    )
    session = Session.open(model, cache=cache, options=options, device=device) if needs_model else None
    label, vector = query_vector(session, query, text)
    found = collect(session, targets, kinds=kinds, model=named)
    if query is not None and not include_query:
        found.features = _without_file(found.features, Path(query))
    if not len(found.features):
        return SearchResult(label, [], 0, found.failures, found.skipped)
    if segments:
        return _search_segments(session, label, vector, found, k, windows or WindowSettings(), combine)
    by_path = {item.id: item for item in found.items}
    hits = []
    for rank, hit in enumerate(VectorIndex(found.features).search(vector[None], k)[0], start=1):
        item = by_path.get(hit.path)
        kind = item.kind.value if item else _modality(found.features, hit.index)
        hits.append(Hit(rank, hit.score, hit.id, hit.path, kind, item.caption if item else None))
    return SearchResult(label, hits, len(found.features), found.failures, found.skipped)


def _search_segments(
    session: Session | None,
    label: str,
    vector: np.ndarray,
    found: Collection,
    k: int,
    windows: WindowSettings,
    combine: str,
) -> SearchResult:
    """:func:`search` with segments: every target's windows embedded and scored with its vector."""
    if session is None or not found.items:
        raise Clamp3Error("segment search needs the music files themselves, not precomputed vectors")
    by_path = {item.id: item for item in found.items}
    items = [by_path[path] for path in found.features.paths]  # row by row (the query file left out)
    embedded, failures = session.pipeline.embed_windows(items, windows)
    best = {item.id: rank_spans(vector, [(item.id, spans, vectors)])[0] for item, spans, vectors in embedded}
    scores = unit_rows(found.features.vectors) @ unit_rows(vector)[0]
    rows = []
    for row, item in enumerate(items):
        top = best.get(item.id)
        rows.append((piece_score(float(scores[row]), top.score if top else None, combine), row, top))
    rows.sort(key=lambda entry: (-entry[0], entry[1]))
    hits = [
        Hit(
            rank,
            score,
            found.features.ids[row],
            items[row].id,
            items[row].kind.value,
            items[row].caption,
            top.span if top else None,
        )
        for rank, (score, row, top) in enumerate(rows[:k], start=1)
    ]
    return SearchResult(label, hits, len(found.features), found.failures + failures, found.skipped)


@dataclass
class LocateResult:
    """The passages of a piece ranked for a query, best first."""

    query: str
    piece: str
    spans: list[SpanHit]
    failures: list[InputError] = field(default_factory=list)

    def __repr__(self) -> str:
        best = f", best {self.spans[0].span} ({self.spans[0].score:.4f})" if self.spans else ""
        return f"LocateResult(query={self.query!r}, piece={self.piece!r}, {len(self.spans)} spans{best})"


def locate(
    query: PathLike | None,
    piece: PathLike,
    *,
    text: str | None = None,
    model: Any = None,
    windows: WindowSettings | None = None,
    cache: bool | FeatureCache = True,
    options: PipelineOptions | None = None,
    device: str | None = None,
    library: Any = None,
) -> LocateResult:
    """Where in ``piece`` a query (a file: a few bars of ABC, a MIDI or audio excerpt; or a ``text``)
    matches: the piece's windows (bars of sheet music, seconds of MIDI and audio) ranked by cosine.

    With ``library`` (a folder or an open :class:`~clamp3.library.Library`), ``piece`` is an item of
    the library (its id or path) and its stored window vectors are used.
    """
    if library is not None:
        from clamp3.library import Library

        if not isinstance(library, Library):
            library = Library.open(library, model=model)
        library.session(cache=cache is not False, options=options, device=device)
        label, spans = library.locate(str(piece), text=text, path=query)
        return LocateResult(label, str(piece), spans)
    session = Session.open(model, cache=cache, options=options, device=device)
    label, vector = query_vector(session, query, text)
    path = Path(piece)
    files, _ = session.pipeline.collect([path])
    if not files:
        raise InputError(path, "not a recognised music file")
    items, failures = session.pipeline.items_from_files(files)
    embedded, failed = session.pipeline.embed_windows(items, windows or WindowSettings())
    failures += failed
    if not embedded:
        if failures:
            raise failures[0]
        raise InputError(path, "has no passages to locate (a text or an image)")
    spans = rank_spans(vector, [(item.id, spans, vectors) for item, spans, vectors in embedded])
    return LocateResult(label, str(path), spans, failures)


def _without_file(features: FeatureSet, query: Path) -> FeatureSet:
    """``features`` less the vectors of the file ``query`` (an item of it: the path, or ``path#<tune>``)."""
    query = query.resolve()

    def of_query(path: str) -> bool:
        file = path.rsplit("#", 1)[0] if "#" in path else path
        return query in (Path(path).resolve(), Path(file).resolve())

    keep = [i for i, path in enumerate(features.paths) if not of_query(path)]
    return features if len(keep) == len(features.paths) else features.subset(keep)


def _modality(features: FeatureSet, row: int) -> str | None:
    return features.modalities[row] if features.modalities else None


def _search_library(
    library: Any,
    *,
    query: PathLike | None,
    text: str | None,
    k: int,
    kinds: set[FileKind] | None,
    include_query: bool,
    model: Any,
    session_args: dict[str, Any],
    segments: bool,
    combine: str,
) -> SearchResult:
    from clamp3.library import Library

    if (query is None) == (text is None):
        raise Clamp3Error("give either a query file or a query text")
    if not isinstance(library, Library):
        library = Library.open(library, model=model)
    elif model is not None:
        library._check_model(model)
    library.session(**session_args)
    found = library.search(
        text=text,
        path=query,
        k=k,
        kinds=kinds,
        include_query=include_query,
        segments=segments,
        combine=combine,
    )
    hits = [Hit(h.rank, h.score, h.id, h.path or "", h.kind, h.caption, h.span) for h in found]
    return SearchResult(text if text is not None else str(query), hits, len(library))


@dataclass
class ScoreResult:
    mode: Literal["pairwise", "group"]
    score: float
    details: PairwiseScore | GroupScore
    failures: list[InputError] = field(default_factory=list)


def score(
    generated: PathLike | Sequence[PathLike],
    references: PathLike | Sequence[PathLike],
    *,
    mode: Literal["pairwise", "group"] = "pairwise",
    model: Any = None,
    allow_unmatched: bool = False,
    cache: bool | FeatureCache = True,
    options: PipelineOptions | None = None,
    device: str | None = None,
) -> ScoreResult:
    """How similar generated music is to references.

    ``pairwise``: each generated file against the reference with the same key (relative folder and
    name before the first dot; several generated files per reference are fine), averaged over the
    generated files. ``group``: cosine between the mean vectors of the two sets.
    """
    queries, refs = _two_sides(generated, references, model, cache, options, device)
    failures = queries.failures + refs.failures
    if mode == "group":
        details = group_score(queries.features, refs.features)
        return ScoreResult(mode, details.similarity, details, failures)
    details = pairwise_score(queries.features, refs.features, allow_unmatched=allow_unmatched)
    return ScoreResult(mode, details.mean_similarity, details, failures)


@dataclass
class EvaluationResult:
    result: EvalResult
    failures: list[InputError] = field(default_factory=list)


def evaluate(
    queries: PathLike | Sequence[PathLike],
    references: PathLike | Sequence[PathLike],
    *,
    both: bool = False,
    model: Any = None,
    allow_unmatched: bool = False,
    cache: bool | FeatureCache = True,
    options: PipelineOptions | None = None,
    device: str | None = None,
) -> EvaluationResult:
    """Retrieval quality of queries against references paired by key: MRR and Hit@1/10/100."""
    query_side, reference_side = _two_sides(queries, references, model, cache, options, device)
    result = evaluate_features(
        query_side.features, reference_side.features, both=both, allow_unmatched=allow_unmatched
    )
    return EvaluationResult(result, query_side.failures + reference_side.failures)


def _as_list(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def _two_sides(first, second, model, cache, options, device) -> tuple[Collection, Collection]:
    """Both sides' vectors, of one model: the named one, else the one their vector files record."""
    first, second = _as_list(first), _as_list(second)
    precomputed = all(is_precomputed(p) for p in first + second)
    if precomputed:
        session = None
    else:
        recorded = model if model is not None else recorded_model_name(first + second)
        session = Session.open(recorded, cache=cache, options=options, device=device)
    sides = collect(session, first, model=model), collect(session, second, model=model)
    check_same_model([side.features for side in sides])
    return sides


@dataclass
class ZeroShotResult:
    ids: list[str]
    labels: tuple[str, ...]
    probabilities: np.ndarray
    """``(N, n_labels)``, rows summing to 1."""
    items: list[Item]
    report: ClassificationReport | None = None
    failures: list[InputError] = field(default_factory=list)

    @property
    def predictions(self) -> list[str]:
        return [self.labels[i] for i in self.probabilities.argmax(axis=1)]

    def __repr__(self) -> str:
        return (
            f"ZeroShotResult({len(self.ids)} items, labels={list(self.labels)}, "
            f"{len(self.failures)} failures)"
        )


def zero_shot(
    paths: Sequence[PathLike],
    labels: Sequence[str],
    *,
    model: Any = None,
    language: str = "en",
    templates: Sequence[str] = (),
    truth: dict[str, str] | None = None,
    cache: bool | FeatureCache = True,
    options: PipelineOptions | None = None,
    device: str | None = None,
) -> ZeroShotResult:
    """Classify music without training data: each label becomes text prompts ("This piece of music is
    {label}.") whose vectors the music vectors are compared with.

    ``truth`` maps ids (or their keys) to true labels; when given, accuracy, macro-F1 and the confusion
    matrix are reported. Vector files of ``clamp3 embed`` are classified with the model they record
    unless ``model`` names one.
    """
    recorded = model if model is not None else recorded_model_name(paths)
    session = Session.open(recorded, cache=cache, options=options, device=device)
    found = collect(session, paths)
    classifier = ZeroShotClassifier.from_labels(
        labels,
        session.embed_texts,
        language=language,
        templates=templates,
    )
    probabilities = (
        classifier.probabilities(found.features) if len(found.features) else np.zeros((0, len(labels)))
    )
    result = ZeroShotResult(
        list(found.features.ids), classifier.labels, probabilities, found.items, failures=found.failures
    )
    if truth is not None:
        from clamp3.retrieval import labels_for

        result.report = classification_report(
            labels_for(found.features, truth), result.predictions, classifier.labels
        )
    return result
