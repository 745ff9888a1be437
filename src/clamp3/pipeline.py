"""From files and literal texts to vectors.

Each file's kind is detected (:mod:`clamp3.modality`), the file is turned into model input
(interleaved ABC, MTF, text, MERT features, an image caption: the text of the image's
``<stem>.caption.txt`` beside it, else BLIP's) and the inputs are embedded with a
model, batched per tower. Both steps go through the :class:`~clamp3.cache.FeatureCache`: a file
whose bytes did not change costs no conversion, no MERT or captioning run and no encoder call the
second time. A file that fails becomes an :class:`~clamp3.errors.InputError` in the result and the
others go on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from clamp3.cache import FeatureCache, digest, file_digest, sampled_file_digest
from clamp3.errors import Clamp3Error, InputError, as_input_error
from clamp3.hub.download import resolve_model_dir
from clamp3.limits import InputLimits
from clamp3.modality import FileKind, caption_sidecar, collect_files
from clamp3.preprocess.frontends import front_end
from clamp3.progress import progress_bar

if TYPE_CHECKING:
    from clamp3.encoder import CLaMP3
    from clamp3.model.towers import Tower
    from clamp3.preprocess.windows import Span, Window, WindowSettings

logger = logging.getLogger(__name__)

# Bump a stage's version when its output for the same file changes; old cache entries then miss.
STAGE_VERSIONS: Mapping[str, str] = MappingProxyType(
    {
        "sheet": "sheet-2",
        "clamp1-sheet": "clamp1-sheet-2",
        "midi": "midi-m3-2",
        "mert": "mert-1",
        "frontend": "frontend-1",
        "caption": "caption-1",
    }
)
_MERT = "mert-v1-95m"
_CLAMP1_KINDS = frozenset({FileKind.TEXT, FileKind.IMAGE, FileKind.ABC, FileKind.MUSICXML})


@dataclass(frozen=True)
class Item:
    """One model input: a file (or a tune of an ``.abc`` file, id ``path#X``) or a literal text."""

    id: str
    kind: FileKind
    data: str | np.ndarray
    """Text (raw text, caption, interleaved ABC or MTF) or audio features ``[n_windows, D]``."""
    path: Path | None = None
    caption: str | None = None

    @property
    def tower(self) -> Tower:
        return self.kind.tower


@dataclass
class Embeddings:
    """Vectors of the items that could be embedded, with what could not."""

    items: list[Item]
    vectors: np.ndarray | list[np.ndarray]
    failures: list[InputError] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    """Files whose kind could not be recognised."""

    def __repr__(self) -> str:
        vectors = (
            f"vectors {tuple(self.vectors.shape)}"
            if isinstance(self.vectors, np.ndarray)
            else f"{len(self.vectors)} local feature arrays"
        )
        return (
            f"Embeddings({len(self.items)} items, {vectors}, "
            f"{len(self.failures)} failures, {len(self.skipped)} skipped)"
        )


@dataclass
class PipelineOptions:
    mert: str = _MERT
    """Audio front end for models reading MERT features: a registry name or a MERT checkpoint folder."""
    captioner: str = "blip-base"
    """Image captioner: a registry name or a BLIP checkpoint folder."""
    batch_size: int = 32
    audio_batch_size: int = 2
    show_progress: bool = False
    recursive: bool = True
    limits: InputLimits = field(default_factory=InputLimits)
    """The largest input of each kind (see :mod:`clamp3.limits`)."""
    chunk_files: int = 64
    """Files converted and embedded together by :meth:`Pipeline.iter_embeddings` before the next ones."""
    dtype: str = "float32"
    """The precision models are loaded at (:func:`clamp3.api.load_model`): float32, bf16, fp16, or int8
    (CPU: the symbolic and audio towers and MERT quantized). Cached vectors are kept apart per precision."""


def _image_item(path: Path, caption: str) -> Item:
    """An image's item: its caption, embedded by the text tower."""
    return Item(str(path), FileKind.IMAGE, caption, path, caption)


def _folder_fingerprint(directory: Path) -> str:
    files = sorted(p for p in directory.iterdir() if p.is_file())
    return digest(*(f"{p.name}:{sampled_file_digest(p)}" for p in files))


class Pipeline:
    """Turns files into vectors with one model, caching conversions and vectors.

    ``model=None`` gives a converter only (symbolic and text files to model input, CLaMP 3's routes).
    ``cache=None`` disables caching. ``mert`` and ``captioner`` (in ``options``) are only loaded
    when an audio file or an image is met.
    """

    def __init__(
        self,
        model: CLaMP3 | None,
        cache: FeatureCache | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.options = options or PipelineOptions()
        if self.options.mert != PipelineOptions.mert and model is not None:
            self._check_mert_use(model)
        if self.options.dtype != PipelineOptions.dtype and model is not None:
            self._check_precision(model)
        self._mert = None
        self._captioner = None
        self.encoder_calls = 0
        """How many times the model's encoder ran (0 on a fully cached re-run)."""
        self._cache_lookups: Counter[str] = Counter()
        """Cache hits and misses per stage ("midi hit", "vector miss"...), for the log."""

    def _check_mert_use(self, model: CLaMP3) -> None:
        """Refuse a MERT choice that the model would ignore (it reads other audio features)."""
        features = model.config.audio.features if model.family == "clamp3" else "no"
        if features != _MERT:
            raise Clamp3Error(
                f"--mert {self.options.mert}: this model reads {features} audio features, not MERT's; "
                "leave --mert out (it is for saas and c2)"
            )

    def _check_precision(self, model: CLaMP3) -> None:
        """Refuse a ``dtype`` option that the loaded model does not compute at."""
        from clamp3.precision import precision_name

        if precision_name(self.options.dtype) != model.precision:
            raise Clamp3Error(
                f"--dtype {self.options.dtype}: the loaded model computes {model.precision} vectors"
            )

    @property
    def family(self) -> str:
        """The model family whose input routes apply (CLaMP 3's when converting without a model)."""
        return self.model.family if self.model is not None else "clamp3"

    # ------------------------------------------------------------------ files -> items

    def collect(self, paths: Iterable[str | Path]) -> tuple[list[tuple[Path, FileKind]], list[Path]]:
        """Files under ``paths`` with their kinds, and the files whose kind is unknown."""
        paths = [Path(p) for p in paths]
        for path in paths:
            if not path.exists():
                raise InputError(path, "no such file or directory")
        found, skipped = collect_files(paths, recursive=self.options.recursive)
        found, skipped = list(found), list(skipped)
        kinds = Counter(kind.value for _, kind in found)
        logger.info(
            "found %d file(s) in %s: %s; %d unrecognised",
            len(found),
            ", ".join(map(str, paths)),
            _counts(kinds),
            len(skipped),
        )
        for path, kind in found:
            logger.debug("found %s (%s)", path, kind.value)
        return found, skipped

    def items_from_files(
        self, files: Sequence[tuple[Path, FileKind]], show_progress: bool | None = None
    ) -> tuple[list[Item], list[InputError]]:
        """The model inputs of ``files`` in order (a file may give several, one per tune) and the
        failures, one per file or tune that could not be read or converted.

        Nothing a file does escapes as an exception: whatever is raised while reading or converting
        it becomes that file's :class:`InputError`. ``show_progress`` overrides the options' setting.
        """
        progress = self.options.show_progress if show_progress is None else show_progress
        lookups = self._cache_lookups.copy()
        prepared: dict[Path, list[Item | InputError]] = {}
        for path, kind in files:
            refused = self._refusal(path, kind)
            if refused is not None:
                prepared[path] = [refused]
        audio = [path for path, kind in files if kind is FileKind.AUDIO and path not in prepared]
        images = [path for path, kind in files if kind is FileKind.IMAGE and path not in prepared]
        self._run_group(partial(self._audio_items, show_progress=progress), audio, prepared)
        self._run_group(self._image_items, images, prepared)
        items: list[Item] = []
        failures: list[InputError] = []
        for path, kind in files:
            if path not in prepared:
                prepared[path] = self._guarded(path, partial(self._file_items, path, kind))
            for result in prepared[path]:
                if isinstance(result, InputError):
                    failures.append(result)
                else:
                    items.append(result)
        logger.info(
            "read %d file(s): %d input(s), %d failure(s); cache: %s",
            len(files),
            len(items),
            len(failures),
            _counts(self._cache_lookups - lookups),
        )
        return items, failures

    def _refusal(self, path: Path, kind: FileKind) -> InputError | None:
        """Why ``path`` is not even read: too large, or of a kind the model family cannot embed."""
        if self.family == "clamp1" and kind not in _CLAMP1_KINDS:
            needs = f"{kind.value} needs default, saas or c2"
            return InputError(path, f"CLaMP 1 reads text, images and sheet music only; {needs}")
        try:
            self.options.limits.check_file(path)
        except InputError as error:
            return error
        except OSError as exc:
            return InputError(path, exc.strerror or str(exc))
        return None

    @staticmethod
    def _guarded(source: str | Path, work: Callable[[], list[Item | InputError]]) -> list[Item | InputError]:
        """``work()``, or the one-line failure of ``source`` whatever it raises."""
        try:
            return list(work())
        except Exception as exc:  # one file must never stop a batch
            return [as_input_error(source, exc)]

    @staticmethod
    def _run_group(
        stage: Callable[[list[Path], dict[Path, list[Item | InputError]]], None],
        paths: list[Path],
        results: dict[Path, list[Item | InputError]],
    ) -> None:
        """Run a stage that handles many files at once (audio, images); when it raises, the files it has
        not finished all fail with that reason (a missing model, package or caption)."""
        if not paths:
            return
        try:
            stage(paths, results)
        except Exception as exc:
            for path in paths:
                results.setdefault(path, [as_input_error(path, exc)])

    @staticmethod
    def items_from_texts(texts: Sequence[str]) -> list[Item]:
        return [Item(id=f"text:{i}", kind=FileKind.TEXT, data=text) for i, text in enumerate(texts)]

    def _cached_text(
        self, stage: str, path: Path, kind: FileKind, convert: Callable[[], str], settings: str = ""
    ) -> str:
        """``convert()``'s text for ``path``, from the cache when its bytes were converted before with
        the same ``settings`` (whatever else decides the result).

        A conversion that failed is remembered too (its reason, under the same key), so a bad file is
        not converted again on every run.
        """
        if self.cache is None:
            return convert()
        key = digest(STAGE_VERSIONS[stage], kind.value, settings, file_digest(path))
        text = self.cache.get_text(key)
        failed = self.cache.get_text(digest(key, "failed")) if text is None else None
        self._looked_up(stage, text is not None or failed is not None, path)
        if text is not None:
            return text
        if failed is not None:
            raise InputError(path, failed)
        try:
            text = convert()
        except InputError as error:
            self.cache.put_text(digest(key, "failed"), error.reason)
            raise
        self.cache.put_text(key, text)
        return text

    def _file_items(self, path: Path, kind: FileKind) -> list[Item | InputError]:
        from clamp3.preprocess.text import read_text_file

        limits = self.options.limits
        if kind in (FileKind.TEXT, FileKind.MTF):
            text = read_text_file(path)
            if kind is FileKind.TEXT:
                limits.check_text(path, text)
            return [self._symbolic_checked(Item(str(path), kind, text, path))]
        if kind is FileKind.MIDI:
            from clamp3.preprocess.midi import midi_to_mtf

            text = self._cached_text(
                "midi", path, kind, lambda: midi_to_mtf(path, m3_compatible=True, require_notes=True)
            )
            return [self._symbolic_checked(Item(str(path), kind, text, path))]
        if kind in (FileKind.ABC, FileKind.MUSICXML) and self.family == "clamp1":
            return self._clamp1_sheet_items(path, kind)
        if kind in (FileKind.ABC, FileKind.MUSICXML):
            return self._sheet_items(path, kind)
        if kind is FileKind.FEATURES:
            from clamp3.preprocess.features import load_feature_file

            features = load_feature_file(path, expected_dim=self.model.config.audio.feature_size)
            return [Item(str(path), kind, features, path)]
        raise InputError(path, f"{kind.value} files are not supported")

    def _symbolic_checked(self, item: Item) -> Item | InputError:
        """``item``, or its failure when it is symbolic music past the patch limit."""
        limit = self.options.limits.max_symbolic_patches
        if item.tower != "symbolic" or self.model is None or limit is None:
            return item
        if item.data.isascii() and len(item.data) <= limit:
            return item  # every patch holds at least one character: no need to split the text
        try:
            self.options.limits.check_patches(item.id, len(self.model.patchilizer.split(item.data)))
        except InputError as error:
            return error
        return item

    def _sheet_items(self, path: Path, kind: FileKind) -> list[Item | InputError]:
        """Sheet music: one item per tune, a failing tune in its place; the tunes of a file are cached
        together as a small JSON document (``[id suffix, text]`` or ``[id suffix, null, reason]``)."""
        import json

        from clamp3.preprocess.sheet import sheet_file_items

        def convert() -> str:
            tunes = sheet_file_items(path, kind, check_tune=self.options.limits.check_abc_tune)
            return json.dumps(
                [
                    [tune.path.removeprefix(str(path)), None, tune.reason]
                    if isinstance(tune, InputError)
                    else [tune.id.removeprefix(str(path)), tune.text]
                    for tune in tunes
                ]
            )

        results: list[Item | InputError] = []
        limits = self.options.limits  # a tune refused by a limit converts once the limit is raised
        settings = f"abc limits {limits.max_abc_chars} {limits.max_abc_line_chars}"
        for suffix, text, *reason in json.loads(self._cached_text("sheet", path, kind, convert, settings)):
            if text is None:
                results.append(InputError(f"{path}{suffix}", reason[0]))
            else:
                results.append(self._symbolic_checked(Item(f"{path}{suffix}", kind, text, path)))
        return results

    def _clamp1_sheet_items(self, path: Path, kind: FileKind) -> list[Item]:
        """CLaMP 1 route: MusicXML through xml2abc ``-m 2 -c 6 -x`` and its filter; ABC tunes filtered."""
        from clamp3.clamp1 import load_music, prepare_xml2abc_output
        from clamp3.preprocess.sheet import abc_file_tunes

        if kind is FileKind.MUSICXML:
            text = self._cached_text("clamp1-sheet", path, kind, lambda: load_music(path))
            return [Item(str(path), kind, text, path)]
        tunes = abc_file_tunes(path)
        return [Item(tune.id, kind, prepare_xml2abc_output(tune.text), path) for tune in tunes]

    def _audio_items(
        self, paths: list[Path], results: dict[Path, list[Item | InputError]], show_progress: bool
    ) -> None:
        """Audio files' features into ``results``: from the cache, else extracted (MERT or a front end)."""
        keys = {}
        todo = []
        stage = self._audio_stage_key()
        for path in paths:
            try:
                keys[path] = digest(stage, file_digest(path))
            except OSError as exc:
                results[path] = [InputError(path, exc.strerror or str(exc))]
                continue
            cached = self.cache.get_array(keys[path]) if self.cache is not None else None
            self._looked_up("audio", cached is not None, path)
            if cached is not None:
                results[path] = [Item(str(path), FileKind.AUDIO, cached, path)]
            else:
                todo.append(path)
        for path, outcome in self._extract_audio(todo, show_progress):
            if isinstance(outcome, InputError):
                results[path] = [outcome]
                continue
            if self.cache is not None:
                self.cache.put_array(keys[path], outcome)
            results[path] = [Item(str(path), FileKind.AUDIO, outcome, path)]

    def _audio_stage_key(self) -> str:
        """What the cached features of an audio file depend on besides its bytes."""
        name = self.model.config.audio.features
        if name == _MERT:
            mert = _folder_fingerprint(resolve_model_dir(self.options.mert))
            dtype = self._mert_dtype()  # float32 features keep the key they always had
            return digest(STAGE_VERSIONS["mert"], mert, *([dtype] if dtype is not None else []))
        return digest(STAGE_VERSIONS["frontend"], front_end(name).name)

    def _extract_audio(
        self, paths: list[Path], show_progress: bool
    ) -> Iterator[tuple[Path, np.ndarray | InputError]]:
        if not paths:
            return
        name = self.model.config.audio.features
        seconds = self.options.limits.max_audio_seconds
        if name != _MERT:
            frontend = front_end(name)
            with progress_bar(len(paths), "audio features", show_progress) as bar:
                for path in paths:
                    try:
                        yield path, frontend.file_features(path, max_seconds=seconds)
                    except Exception as exc:  # one file must never stop a batch
                        yield path, as_input_error(path, exc)
                    bar.advance(1)
            return
        extractor = self._mert_extractor()
        batches = extractor.iter_extract(
            paths, self.options.audio_batch_size, show_progress, max_seconds=seconds
        )
        for result in batches:
            yield result.path, result.error if result.error is not None else result.features

    def _mert_dtype(self) -> str | None:
        """MERT runs in int8 with an int8 model, else in float32 (``None``)."""
        from clamp3.precision import INT8

        return INT8 if self.model.precision == INT8 else None

    def _mert_extractor(self):
        if self._mert is None:
            from clamp3.preprocess.mert import MertExtractor

            self._mert = MertExtractor.from_pretrained(
                resolve_model_dir(self.options.mert), self.model.device, dtype=self._mert_dtype()
            )
        return self._mert

    def _image_items(self, paths: list[Path], results: dict[Path, list[Item | InputError]]) -> None:
        """Images' captions into ``results``: the caption file beside an image, else the captioner's."""
        from clamp3.preprocess.captions import read_caption_sidecar

        uncaptioned = []
        for path in paths:
            try:
                caption = read_caption_sidecar(path)
            except InputError as error:
                results[path] = [error]
                continue
            if caption is None:
                uncaptioned.append(path)
            else:
                results[path] = [_image_item(path, caption)]
        if uncaptioned:
            try:
                self._captioned_items(uncaptioned, results)
            except (ImportError, Clamp3Error) as exc:
                for path in uncaptioned:
                    results.setdefault(path, [self._uncaptioned(path, exc)])

    def _uncaptioned(self, path: Path, exc: Exception) -> InputError:
        """The failure of an image that needs a caption when the captioner cannot run."""
        sidecar = caption_sidecar(path).name
        why = as_input_error(path, exc).reason
        return InputError(
            path, f"needs a caption: write {sidecar} or `clamp3 models pull {self.options.captioner}` ({why})"
        )

    def _captioned_items(self, paths: list[Path], results: dict[Path, list[Item | InputError]]) -> None:
        """Images captioned by the captioner (loaded on first use), the captions cached."""
        captioner_id = _folder_fingerprint(resolve_model_dir(self.options.captioner))
        keys = {}
        todo = []
        for path in paths:
            try:
                keys[path] = digest(STAGE_VERSIONS["caption"], captioner_id, file_digest(path))
            except OSError as exc:
                results[path] = [InputError(path, exc.strerror or str(exc))]
                continue
            caption = self.cache.get_text(keys[path]) if self.cache is not None else None
            self._looked_up("caption", caption is not None, path)
            if caption is not None:
                results[path] = [_image_item(path, caption)]
            else:
                todo.append(path)
        if not todo:
            return
        from clamp3.preprocess.image import BlipCaptioner, caption_files

        if self._captioner is None:
            self._captioner = BlipCaptioner.from_pretrained(
                resolve_model_dir(self.options.captioner), device=self.model.device
            )
        for result in caption_files(todo, self._captioner, self.options.batch_size):
            if result.error is not None:
                results[result.path] = [result.error]
                continue
            if self.cache is not None:
                self.cache.put_text(keys[result.path], result.caption)
            results[result.path] = [_image_item(result.path, result.caption)]

    # ------------------------------------------------------------------ items -> vectors

    def embed(
        self, items: Sequence[Item], global_features: bool = True, show_progress: bool | None = None
    ) -> np.ndarray | list[np.ndarray]:
        """Vectors of ``items`` in order: ``(N, D)``, or a list of ``[L, H]`` arrays when not global.

        Raises when the encoder refuses an item; :meth:`embed_items` sets such items aside instead.
        """
        progress = self.options.show_progress if show_progress is None else show_progress
        outputs: list[np.ndarray | None] = [None] * len(items)
        scope = "global" if global_features else "local"
        keys = [self._vector_key(item, scope) for item in items]
        missing: dict[str, list[int]] = {}
        for index, (item, key) in enumerate(zip(items, keys, strict=True)):
            cached = self.cache.get_array(key) if self.cache is not None else None
            self._looked_up("vector", cached is not None, item.id)
            if cached is not None:
                outputs[index] = cached
            else:
                missing.setdefault(item.tower, []).append(index)
        logger.info(
            "embedding %d input(s): %d from the cache, to encode: %s",
            len(items),
            len(items) - sum(map(len, missing.values())),
            _counts(Counter({tower: len(indices) for tower, indices in missing.items()})),
        )
        for tower, indices in missing.items():
            vectors = self._encode(tower, [items[i].data for i in indices], global_features, progress)
            for index, vector in zip(indices, vectors, strict=True):
                outputs[index] = vector
                if self.cache is not None:
                    self.cache.put_array(keys[index], vector)
        if not global_features:
            return [np.asarray(o) for o in outputs]
        if not items:
            return np.zeros((0, self.model.embedding_dim), dtype=np.float32)
        return np.stack(outputs).astype(np.float32)

    def embed_items(
        self, items: Sequence[Item], global_features: bool = True, show_progress: bool | None = None
    ) -> Embeddings:
        """The vectors of ``items``; when the encoder refuses one, each item is tried alone and only the
        refused ones fail (with their reason), the others keep their vectors."""
        try:
            return Embeddings(list(items), self.embed(items, global_features, show_progress))
        except Exception:  # the items at fault are found below, each tried alone
            pass
        kept: list[Item] = []
        vectors: list[np.ndarray] = []
        failures: list[InputError] = []
        for item in items:
            try:
                vectors.extend(self.embed([item], global_features, show_progress=False))
            except Exception as exc:
                failures.append(as_input_error(item.id, exc))
                continue
            kept.append(item)
        if not global_features:
            return Embeddings(kept, vectors, failures)
        matrix = np.stack(vectors) if vectors else np.zeros((0, self.model.embedding_dim), np.float32)
        return Embeddings(kept, matrix, failures)

    def _looked_up(self, stage: str, hit: bool, what: object) -> None:
        """Count a cache lookup of ``stage`` for the log (nothing without a cache)."""
        if self.cache is None:
            return
        outcome = "hit" if hit else "miss"
        self._cache_lookups[f"{stage} {outcome}"] += 1
        logger.debug("cache %s: %s %s", outcome, stage, what)

    def _vector_key(self, item: Item, scope: str) -> str:
        data = item.data
        content = data.tobytes() + str(data.shape).encode() if isinstance(data, np.ndarray) else data
        return digest("vector", self.model.vector_identity, item.tower, scope, content)

    def _encode(self, tower: Tower, data: list, global_features: bool, show_progress: bool):
        self.encoder_calls += 1
        options = {
            "global_features": global_features,
            "batch_size": self.options.batch_size,
            "show_progress": show_progress,
        }
        if tower == "text":
            return self.model.encode_text(data, **options)
        if tower == "symbolic":
            return self.model.encode_symbolic(data, **options)
        return self.model.encode_audio_features(data, **options)

    # ------------------------------------------------------------------ windows (segment-level search)

    def audio_seconds_per_row(self) -> float:
        """How many seconds of audio one row of the model's audio features covers."""
        name = self.model.config.audio.features
        if name == _MERT:
            from clamp3.preprocess.audio import WindowSpec

            return WindowSpec().window_seconds
        return front_end(name).seconds_per_position

    def item_windows(self, item: Item, settings: WindowSettings) -> list[Window]:
        """The windows of one item: bars of sheet music, seconds of MIDI and audio, none of a text."""
        from clamp3.preprocess import windows

        if item.kind in (FileKind.ABC, FileKind.MUSICXML):
            return windows.abc_windows(item.data, settings.bars)
        if item.kind in (FileKind.MIDI, FileKind.MTF):
            return windows.mtf_windows(item.data, settings.seconds)
        if item.tower == "audio":
            return windows.feature_windows(item.data, self.audio_seconds_per_row(), settings.seconds)
        return []

    def embed_windows(
        self, items: Sequence[Item], settings: WindowSettings
    ) -> tuple[list[tuple[Item, list[Span], np.ndarray]], list[InputError]]:
        """The windows of ``items`` embedded: per item that has windows, the item, its spans and their
        ``(n, D)`` vectors; an item whose windows cannot be cut or embedded fails as a whole."""
        if self.family != "clamp3":
            raise Clamp3Error("segment-level search needs a CLaMP 3 model (default, saas or c2)")
        parts: list[tuple[Item, list[Window]]] = []
        failures: dict[str, InputError] = {}
        for item in items:
            try:
                found = self.item_windows(item, settings)
            except Exception as exc:  # one item must never stop a batch
                failures[item.id] = as_input_error(item.id, exc)
                continue
            if found:
                parts.append((item, found))
        inputs = [
            Item(f"{item.id}@{i}", item.kind, w.data, item.path)
            for item, found in parts
            for i, w in enumerate(found)
        ]
        embedded = self.embed_items(inputs)
        for error in embedded.failures:
            owner = error.path.rsplit("@", 1)[0]
            failures.setdefault(owner, InputError(owner, f"a window could not be embedded: {error.reason}"))
        rows = dict(zip((sub.id for sub in embedded.items), embedded.vectors, strict=True))
        results = [
            (item, [w.span for w in found], np.stack([rows[f"{item.id}@{i}"] for i in range(len(found))]))
            for item, found in parts
            if item.id not in failures
        ]
        return results, list(failures.values())

    # ------------------------------------------------------------------ both

    def iter_embeddings(
        self, files: Sequence[tuple[Path, FileKind]], global_features: bool = True
    ) -> Iterator[Embeddings]:
        """The embeddings of ``files``, :attr:`~PipelineOptions.chunk_files` files at a time, so that a
        caller can keep each chunk's vectors (write them out) before the next chunk is read. One progress
        bar counts the files."""
        step = max(1, self.options.chunk_files)
        with progress_bar(len(files), "embedding", self.options.show_progress) as bar:
            for start in range(0, len(files), step):
                chunk = files[start : start + step]
                items, failures = self.items_from_files(chunk, show_progress=False)
                result = self.embed_items(items, global_features, show_progress=False)
                result.failures[:0] = failures
                logger.info(
                    "embedded files %d-%d of %d: %d vector(s), %d failure(s)",
                    start + 1,
                    start + len(chunk),
                    len(files),
                    len(result.items),
                    len(result.failures),
                )
                yield result
                bar.advance(len(chunk))

    def embed_paths(self, paths: Iterable[str | Path], global_features: bool = True) -> Embeddings:
        """Every recognised file under ``paths``: items, their vectors, failures and skipped files."""
        files, skipped = self.collect(paths)
        items, failures = self.items_from_files(files)
        result = self.embed_items(items, global_features)
        return Embeddings(result.items, result.vectors, failures + result.failures, skipped)


def _counts(counts: Counter[str]) -> str:
    """``abc 2, midi 1`` (sorted by name), or ``none``."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"
