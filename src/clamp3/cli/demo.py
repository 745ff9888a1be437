"""``clamp3 demo``: search and classify the example library with text, MIDI and audio queries.

The library (scores, MIDI, audio and captioned images) and the queries ship with the package, in
``clamp3/demo_data``. The library is embedded once, through the feature cache, and every step ranks its
vectors against one query.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clamp3.modality import FileKind, collect_files

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from clamp3.api import Session
    from clamp3.pipeline import Item
    from clamp3.retrieval import FeatureSet

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"
DEFAULT_LIBRARY = DEMO_DATA / "library"
DEFAULT_QUERIES = DEMO_DATA / "queries"
TOP_K = 5
ENGLISH_QUERY = "a lively Irish reel for the fiddle"
GERMAN_QUERY = "ein ruhiger vierstimmiger Choral"
"""German: "a calm four-part chorale"."""
IMAGE_QUERY = "images/organ-pipes.png"
LABELS = ("reel", "jig", "hornpipe", "chorale", "air")
SCORES = frozenset({FileKind.ABC, FileKind.MUSICXML})
MUSIC = SCORES | {FileKind.MIDI, FileKind.MTF, FileKind.AUDIO, FileKind.FEATURES}


@dataclass
class Library:
    """The embedded library: one row per item, named by its path relative to the library folder."""

    names: list[str]
    kinds: list[FileKind]
    vectors: np.ndarray

    def features(self, kinds: frozenset[FileKind] | None = None) -> FeatureSet:
        """The rows of the given kinds (all rows for ``None``)."""
        from clamp3.retrieval import FeatureSet

        rows = [i for i, kind in enumerate(self.kinds) if kinds is None or kind in kinds]
        if not rows:
            raise click.ClickException("the library holds no files of the kinds this step searches")
        return FeatureSet(tuple(self.names[i] for i in rows), self.vectors[rows])


def _item_names(items: list[Item], root: Path) -> list[str]:
    """Paths relative to ``root``; the tune suffix (``#2``) is kept only for files of several tunes."""
    from clamp3.api import relative_id

    tunes = Counter(item.path for item in items)
    return [
        relative_id(item, root) if tunes[item.path] > 1 else item.path.relative_to(root).as_posix()
        for item in items
    ]


def _embed_library(session: Session, root: Path) -> Library:
    from clamp3.api import collect
    from clamp3.cli.common import report_problems

    found = collect(session, [root])
    report_problems(found.failures)
    kinds = [item.kind for item in found.items]
    return Library(_item_names(found.items, root), kinds, found.features.vectors)


def _query_file(folder: Path, kind: FileKind) -> Path:
    """The first file of ``kind`` in the queries folder."""
    for path, found in collect_files([folder]).files:
        if found is kind:
            return path
    raise click.ClickException(f"{folder}: no {kind.value} query file")


def _search_table(library: FeatureSet, query: np.ndarray) -> Table:
    from rich.table import Table

    from clamp3.retrieval import VectorIndex

    table = Table("rank", "score", "file")
    for rank, hit in enumerate(VectorIndex(library).search(query[None], TOP_K)[0], start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", hit.id)
    return table


def _zero_shot_table(session: Session, scores: FeatureSet) -> Table:
    from rich.table import Table

    from clamp3.retrieval import ZeroShotClassifier

    classifier = ZeroShotClassifier.from_labels(LABELS, session.embed_texts)
    table = Table("file", "label", "probability")
    for name, [(label, probability)] in zip(scores.ids, classifier.top_k(scores, 1), strict=True):
        table.add_row(name, label, f"{probability:.3f}")
    return table


def _section(console: Console, title: str, table: Table) -> None:
    console.print()
    console.print(title, style="bold", soft_wrap=True, markup=False)
    console.print(table)


def _run(console: Console, model_name: str | None, library: Path, queries: Path) -> None:
    from clamp3.api import Session, default_model_name, query_vector
    from clamp3.errors import Clamp3Error

    started = time.perf_counter()
    session = Session.open(model_name)
    name = model_name or default_model_name()
    try:
        english = session.embed_texts([ENGLISH_QUERY])[0]
    except Clamp3Error as exc:
        raise click.ClickException(f"model {name} cannot embed text, which the demo needs ({exc})") from None
    embedded = _embed_library(session, library)
    seconds = time.perf_counter() - started
    console.print(
        f"model {name} loaded and {len(embedded.names)} items of {library} embedded in {seconds:.1f} s",
        soft_wrap=True,
        markup=False,
    )
    _section(
        console,
        f'1. English text search: "{ENGLISH_QUERY}"',
        _search_table(embedded.features(MUSIC), english),
    )
    german = session.embed_texts([GERMAN_QUERY])[0]
    _section(
        console, f'2. German text search: "{GERMAN_QUERY}"', _search_table(embedded.features(MUSIC), german)
    )
    midi = _query_file(queries, FileKind.MIDI)
    midi_table = _search_table(embedded.features(MUSIC), query_vector(session, midi, None)[1])
    _section(console, f"3. MIDI -> music: {midi.relative_to(queries).as_posix()}", midi_table)
    audio = _query_file(queries, FileKind.AUDIO)
    audio_table = _search_table(embedded.features(SCORES), query_vector(session, audio, None)[1])
    _section(console, f"4. Audio -> score: {audio.relative_to(queries).as_posix()}", audio_table)
    title = f"5. Zero-shot classification of the scores: {', '.join(LABELS)}"
    _section(console, title, _zero_shot_table(session, embedded.features(SCORES)))
    image = library / IMAGE_QUERY
    if image.is_file():
        image_table = _search_table(embedded.features(MUSIC), query_vector(session, image, None)[1])
        _section(console, f"6. Image -> music (through its caption): {IMAGE_QUERY}", image_table)


@click.command()
@click.option(
    "--model", "model_name", default=None, help="Model name or path [saas if downloaded, else default]."
)
@click.option(
    "--library",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEFAULT_LIBRARY,
    show_default="the example library shipped with clamp3",
    help="Library folder.",
)
@click.option(
    "--queries",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEFAULT_QUERIES,
    show_default="the example queries shipped with clamp3",
    help="Folder holding the MIDI and audio queries.",
)
def demo(model_name: str | None, library: Path, queries: Path) -> None:
    """Search an example library by English and German text, MIDI and audio, and classify its scores."""
    from rich.console import Console

    from clamp3.errors import Clamp3Error

    try:
        _run(Console(), model_name, library, queries)
    except Clamp3Error as exc:
        raise click.ClickException(str(exc)) from None
