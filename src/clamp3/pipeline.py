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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from clamp3.cache import FeatureCache, digest, file_digest, sampled_file_digest
from clamp3.errors import InputError
from clamp3.hub.download import resolve_model_dir
from clamp3.modality import FileKind, collect_files
from clamp3.preprocess.frontends import front_end
from clamp3.progress import progress_bar

if TYPE_CHECKING:
    from clamp3.encoder import CLaMP3
    from clamp3.model.towers import Tower

# Bump a stage's version when its output for the same file changes; old cache entries then miss.
STAGE_VERSIONS: Mapping[str, str] = MappingProxyType(
    {
        "sheet": "sheet-1",
        "clamp1-sheet": "clamp1-sheet-1",
        "midi": "midi-m3-1",
        "mert": "mert-1",
        "frontend": "frontend-1",
        "caption": "caption-1",
    }
)
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


@dataclass
class PipelineOptions:
    mert: str = "mert-v1-95m"
    """Audio front end for models reading MERT features: a registry name or a MERT checkpoint folder."""
    captioner: str = "blip-base"
    """Image captioner: a registry name or a BLIP checkpoint folder."""
    batch_size: int = 32
    audio_batch_size: int = 2
    show_progress: bool = False
    recursive: bool = True


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
        self._mert = None
        self._captioner = None
        self.encoder_calls = 0
        """How many times the model's encoder ran (0 on a fully cached re-run)."""

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
        return list(found), list(skipped)

    def items_from_files(self, files: Sequence[tuple[Path, FileKind]]) -> tuple[list[Item], list[InputError]]:
        items: list[Item] = []
        failures: list[InputError] = []
        prepared: dict[Path, list[Item] | InputError] = {}
        if self.family == "clamp1":
            for path, kind in files:
                if kind not in _CLAMP1_KINDS:
                    prepared[path] = InputError(
                        path,
                        "CLaMP 1 reads text, images and sheet music only; "
                        f"{kind.value} needs default, saas or c2",
                    )
        audio = [path for path, kind in files if kind is FileKind.AUDIO and path not in prepared]
        images = [path for path, kind in files if kind is FileKind.IMAGE]
        prepared.update(self._audio_items(audio))
        prepared.update(self._image_items(images))
        for path, kind in files:
            if path not in prepared:
                try:
                    prepared[path] = self._file_items(path, kind)
                except InputError as error:
                    prepared[path] = error
                except Exception as exc:  # one file must never stop a batch
                    prepared[path] = InputError.unexpected(path, exc)
            result = prepared[path]
            if isinstance(result, InputError):
                failures.append(result)
            else:
                items.extend(result)
        return items, failures

    @staticmethod
    def items_from_texts(texts: Sequence[str]) -> list[Item]:
        return [Item(id=f"text:{i}", kind=FileKind.TEXT, data=text) for i, text in enumerate(texts)]

    def _cached_text(self, stage: str, path: Path, convert: Callable[[], str]) -> str:
        if self.cache is None:
            return convert()
        key = digest(STAGE_VERSIONS[stage], file_digest(path))
        text = self.cache.get_text(key)
        if text is None:
            text = convert()
            self.cache.put_text(key, text)
        return text

    def _file_items(self, path: Path, kind: FileKind) -> list[Item]:
        from clamp3.preprocess.text import read_text_file

        if kind is FileKind.TEXT:
            return [Item(str(path), kind, read_text_file(path), path)]
        if kind is FileKind.MTF:
            return [Item(str(path), kind, read_text_file(path), path)]
        if kind is FileKind.MIDI:
            from clamp3.preprocess.midi import midi_to_mtf

            text = self._cached_text("midi", path, lambda: midi_to_mtf(path, m3_compatible=True))
            return [Item(str(path), kind, text, path)]
        if kind in (FileKind.ABC, FileKind.MUSICXML) and self.family == "clamp1":
            return self._clamp1_sheet_items(path, kind)
        if kind in (FileKind.ABC, FileKind.MUSICXML):
            return self._sheet_items(path, kind)
        if kind is FileKind.FEATURES:
            from clamp3.preprocess.features import load_feature_file

            return [Item(str(path), kind, load_feature_file(path), path)]
        raise InputError(path, f"{kind.value} files are not supported")

    def _sheet_items(self, path: Path, kind: FileKind) -> list[Item]:
        """Sheet music: one item per tune; tunes are cached together as a small JSON document."""
        import json

        from clamp3.preprocess.sheet import sheet_to_interleaved

        def convert() -> str:
            return json.dumps(
                [[item.id.removeprefix(str(path)), item.text] for item in sheet_to_interleaved(path)]
            )

        tunes = json.loads(self._cached_text("sheet", path, convert))
        return [Item(f"{path}{suffix}", kind, text, path) for suffix, text in tunes]

    def _clamp1_sheet_items(self, path: Path, kind: FileKind) -> list[Item]:
        """CLaMP 1 route: MusicXML through xml2abc ``-m 2 -c 6 -x`` and its filter; ABC tunes filtered."""
        from clamp3.clamp1 import load_music, prepare_xml2abc_output
        from clamp3.preprocess.sheet import abc_file_tunes

        if kind is FileKind.MUSICXML:
            return [
                Item(str(path), kind, self._cached_text("clamp1-sheet", path, lambda: load_music(path)), path)
            ]
        tunes = abc_file_tunes(path)
        return [Item(tune.id, kind, prepare_xml2abc_output(tune.text), path) for tune in tunes]

    def _audio_items(self, paths: list[Path]) -> dict[Path, list[Item] | InputError]:
        if not paths:
            return {}
        results: dict[Path, list[Item] | InputError] = {}
        keys = {}
        todo = []
        stage = self._audio_stage_key()
        for path in paths:
            try:
                keys[path] = digest(stage, file_digest(path))
            except OSError as exc:
                results[path] = InputError(path, exc.strerror or str(exc))
                continue
            cached = self.cache.get_array(keys[path]) if self.cache is not None else None
            if cached is not None:
                results[path] = [Item(str(path), FileKind.AUDIO, cached, path)]
            else:
                todo.append(path)
        for path, outcome in self._extract_audio(todo):
            if isinstance(outcome, InputError):
                results[path] = outcome
                continue
            if self.cache is not None:
                self.cache.put_array(keys[path], outcome)
            results[path] = [Item(str(path), FileKind.AUDIO, outcome, path)]
        return results

    def _audio_stage_key(self) -> str:
        """What the cached features of an audio file depend on besides its bytes."""
        name = self.model.config.audio.features
        if name == "mert-v1-95m":
            return digest(STAGE_VERSIONS["mert"], _folder_fingerprint(resolve_model_dir(self.options.mert)))
        return digest(STAGE_VERSIONS["frontend"], front_end(name).name)

    def _extract_audio(self, paths: list[Path]) -> Iterator[tuple[Path, np.ndarray | InputError]]:
        if not paths:
            return
        name = self.model.config.audio.features
        if name != "mert-v1-95m":
            frontend = front_end(name)
            with progress_bar(len(paths), "audio features", self.options.show_progress) as bar:
                for path in paths:
                    try:
                        yield path, frontend.file_features(path)
                    except InputError as exc:
                        yield path, exc
                    bar.advance(1)
            return
        extractor = self._mert_extractor()
        for result in extractor.iter_extract(
            paths, self.options.audio_batch_size, self.options.show_progress
        ):
            yield result.path, result.error if result.error is not None else result.features

    def _mert_extractor(self):
        if self._mert is None:
            from clamp3.preprocess.mert import MertExtractor

            self._mert = MertExtractor.from_pretrained(
                resolve_model_dir(self.options.mert), self.model.device
            )
        return self._mert

    def _image_items(self, paths: list[Path]) -> dict[Path, list[Item] | InputError]:
        """Images with a caption file beside them take its caption; only the others are captioned."""
        if not paths:
            return {}
        from clamp3.preprocess.image import read_caption_sidecar

        results: dict[Path, list[Item] | InputError] = {}
        uncaptioned = []
        for path in paths:
            try:
                caption = read_caption_sidecar(path)
            except InputError as error:
                results[path] = error
                continue
            if caption is None:
                uncaptioned.append(path)
            else:
                results[path] = [_image_item(path, caption)]
        results.update(self._captioned_items(uncaptioned))
        return results

    def _captioned_items(self, paths: list[Path]) -> dict[Path, list[Item] | InputError]:
        """Images captioned by the captioner (loaded on first use), the captions cached."""
        if not paths:
            return {}
        results: dict[Path, list[Item] | InputError] = {}
        captioner_id = _folder_fingerprint(resolve_model_dir(self.options.captioner))
        keys = {}
        todo = []
        for path in paths:
            try:
                keys[path] = digest(STAGE_VERSIONS["caption"], captioner_id, file_digest(path))
            except OSError as exc:
                results[path] = InputError(path, exc.strerror or str(exc))
                continue
            caption = self.cache.get_text(keys[path]) if self.cache is not None else None
            if caption is not None:
                results[path] = [_image_item(path, caption)]
            else:
                todo.append(path)
        if todo:
            from clamp3.preprocess.image import BlipCaptioner, caption_files

            if self._captioner is None:
                self._captioner = BlipCaptioner.from_pretrained(
                    resolve_model_dir(self.options.captioner), device=self.model.device
                )
            for result in caption_files(todo, self._captioner, self.options.batch_size):
                if result.error is not None:
                    results[result.path] = result.error
                    continue
                if self.cache is not None:
                    self.cache.put_text(keys[result.path], result.caption)
                results[result.path] = [_image_item(result.path, result.caption)]
        return results

    # ------------------------------------------------------------------ items -> vectors

    def embed(self, items: Sequence[Item], global_features: bool = True) -> np.ndarray | list[np.ndarray]:
        """Vectors of ``items`` in order: ``(N, D)``, or a list of ``[L, H]`` arrays when not global."""
        outputs: list[np.ndarray | None] = [None] * len(items)
        scope = "global" if global_features else "local"
        keys = [self._vector_key(item, scope) for item in items]
        missing: dict[str, list[int]] = {}
        for index, (item, key) in enumerate(zip(items, keys, strict=True)):
            cached = self.cache.get_array(key) if self.cache is not None else None
            if cached is not None:
                outputs[index] = cached
            else:
                missing.setdefault(item.tower, []).append(index)
        for tower, indices in missing.items():
            vectors = self._encode(tower, [items[i].data for i in indices], global_features)
            for index, vector in zip(indices, vectors, strict=True):
                outputs[index] = vector
                if self.cache is not None:
                    self.cache.put_array(keys[index], vector)
        if not global_features:
            return [np.asarray(o) for o in outputs]
        if not items:
            return np.zeros((0, self.model.embedding_dim), dtype=np.float32)
        return np.stack(outputs).astype(np.float32)

    def _vector_key(self, item: Item, scope: str) -> str:
        data = item.data
        content = data.tobytes() + str(data.shape).encode() if isinstance(data, np.ndarray) else data
        return digest("vector", self.model.fingerprint, item.tower, scope, content)

    def _encode(self, tower: Tower, data: list, global_features: bool):
        self.encoder_calls += 1
        options = {
            "global_features": global_features,
            "batch_size": self.options.batch_size,
            "show_progress": self.options.show_progress,
        }
        if tower == "text":
            return self.model.encode_text(data, **options)
        if tower == "symbolic":
            return self.model.encode_symbolic(data, **options)
        return self.model.encode_audio_features(data, **options)

    # ------------------------------------------------------------------ both

    def embed_paths(self, paths: Iterable[str | Path], global_features: bool = True) -> Embeddings:
        """Every recognised file under ``paths``: items, their vectors, failures and skipped files."""
        files, skipped = self.collect(paths)
        items, failures = self.items_from_files(files)
        return Embeddings(items, self.embed(items, global_features), failures, skipped)
