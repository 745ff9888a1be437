"""The licence-clean pieces of the music21 corpus, with the metadata their files carry.

Training collections (public-domain books; the ABC transcriptions name their transcribers but state no
licence): Ryan's Mammoth Collection, O'Neill's Music of Ireland, Aird's Airs, the two miscFolk files
(Northumbrian Minstrelsy, American fife music) and the 371 Bach chorales of
``music21.corpus.chorales.Iterator`` (MusicXML only: the CCARH ``.krn`` copies are never read).
Essen, Palestrina, Monteverdi, the Nottingham files and WikiMT are evaluation-only:
:func:`evaluation_pieces` lists Essen, and :func:`check_training` refuses any of them.

Metadata is taken from the ABC header (the lines from ``X:`` to the first ``K:``) as written, only
tidied (``"BAG OF MEAL, THE"`` -> ``"The Bag of Meal"``); turning it into vocabulary is
:mod:`clamp3.train.opendata.describe`'s job.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from clamp3.errors import Clamp3Error
from clamp3.preprocess.abc_tunes import split_abc_tunes
from clamp3.preprocess.sheet import read_abc

CHORALES = "chorales"
"""The collection name of the Bach chorales (they live in the corpus folder ``bach``)."""

EVALUATION_ONLY = frozenset({"essenFolksong", "palestrina", "monteverdi", "nottingham-dataset", "wikimt"})
"""Collections that may be used to evaluate a model, never to train one (licence)."""


class EvaluationOnlyError(Clamp3Error):
    """A piece of an evaluation-only (or unknown) collection was about to go into training data."""


@dataclass(frozen=True)
class Book:
    """Where a collection's tunes come from, as its title page says (vocabulary keys in lower case)."""

    title: str | None
    year: str | None
    genre: str
    origin: str | None = None
    instruments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collection:
    name: str
    folder: str
    """The folder under the music21 corpus."""
    training: bool
    licence: str
    book: Book
    file_books: tuple[tuple[str, Book], ...] = ()
    """Books of single files (file name -> book) where one folder holds several books."""
    markings_in_notes: bool = False
    """Whether quoted ``N:`` strings are tempo or character markings (O'Neill's)."""

    def book_for(self, file_name: str) -> Book:
        return dict(self.file_books).get(file_name, self.book)


_CAMPIN = "ABC transcriptions by Jack Campin (Z: lines), no licence stated on them"
COLLECTIONS = (
    Collection(
        "ryansMammoth",
        "ryansMammoth",
        True,
        "Ryan's Mammoth Collection (Boston, 1883): public-domain book. ABC transcriptions by Ray Davies "
        "and others (Z: lines), no licence stated on them.",
        Book("Ryan's Mammoth Collection", "1883", "fiddle_tune", instruments=("fiddle",)),
    ),
    Collection(
        "oneills1850",
        "oneills1850",
        True,
        "O'Neill's Music of Ireland (Chicago, 1903): public-domain book. ABC transcriptions by Norbert "
        "Paap, John Chambers and others (Z: lines), no licence stated on them.",
        Book("O'Neill's Music of Ireland", "1903", "irish_tune", origin="ireland"),
        markings_in_notes=True,
    ),
    Collection(
        "airdsAirs",
        "airdsAirs",
        True,
        f"James Aird, A Selection of Scotch, English, Irish and Foreign Airs (Glasgow, 1778-1803): "
        f"public-domain books. {_CAMPIN}.",
        Book(
            "Aird's Selection of Scotch, English, Irish and Foreign Airs",
            "1778-1803",
            "tune",
            instruments=("fife", "violin", "flute"),
        ),
    ),
    Collection(
        "miscFolk",
        "miscFolk",
        True,
        f"Bruce and Stokoe, Northumbrian Minstrelsy (1882), and colonial and Civil War American fife "
        f"tunes: public domain. {_CAMPIN}.",
        Book(None, None, "tune"),
        file_books=(
            (
                "northumbrianminstrelsyopus.abc",
                Book("Northumbrian Minstrelsy", "1882", "tune", "northumberland"),
            ),
            ("americanfifeopus.abc", Book(None, None, "fife_tune", "america", ("fife",))),
        ),
    ),
    Collection(
        CHORALES,
        "bach",
        True,
        "J. S. Bach's four-part chorales (18th century): public domain. MusicXML from the music21 corpus "
        "without a rights tag (most exported from MuseScore 2.1.0); the CCARH .krn copies are not used.",
        Book(None, None, "chorale"),
    ),
    Collection(
        "essenFolksong",
        "essenFolksong",
        False,
        "Essen Folksong Collection (EsAC): permission for non-commercial distribution and use in music21 "
        "only. Evaluation only, never training.",
        Book("Essen Folksong Collection", None, "folk_song"),
    ),
)
"""Every collection this module enumerates, training ones first."""

TRAINING_COLLECTIONS = tuple(c.name for c in COLLECTIONS if c.training)


@dataclass(frozen=True)
class Metronome:
    """A ``Q:`` metronome mark: ``beat`` (a note length such as ``1/4`` or ``3/8``) = ``bpm``."""

    beat: str
    bpm: int


@dataclass(frozen=True)
class Metadata:
    """What a piece's file says about it, tidied but not interpreted."""

    titles: tuple[str, ...] = ()
    rhythm: str | None = None
    """``R:``: a tune type in the Irish and Scottish books, German theme tags in Essen."""
    markings: tuple[str, ...] = ()
    """Tempo or character words: O'Neill's quoted ``N:`` strings, the quoted text of ``Q:``."""
    metronome: Metronome | None = None
    composer: str | None = None
    """``C:``: a composer, or (Aird's) where the air comes from."""
    collector: str | None = None
    """From a "collected by ..." string in ``N:`` or ``C:``."""
    source: str | None = None
    """``B:`` and ``S:`` as written (e.g. "O'Neill's 626", "Coles pg 75.2")."""
    origin: str | None = None
    """``O:`` as written (Essen: "Europa, Mitteleuropa, Deutschland")."""
    meter: str | None = None
    key: str | None = None
    transcriber: str | None = None
    bwv: str | None = None
    instruments: tuple[str, ...] = ()
    """Instruments a ``T:`` line names instead of a title (Aird's "For the Ger. Flute")."""


@dataclass(frozen=True)
class Piece:
    """One piece: a tune of an ABC file, or a chorale's MusicXML file."""

    id: str
    """Stable id: ``<corpus-relative file>#<X: number>``; chorales ``bach/<file>#R<Riemenschneider>``."""
    collection: str
    file: str
    """The file, relative to the music21 corpus folder."""
    number: str
    abc: str | None
    """The tune's ABC text (file-header fields included); ``None`` for a chorale."""
    musicxml: str | None
    """The chorale's MusicXML path; ``None`` for an ABC tune."""
    metadata: Metadata
    book: Book

    @property
    def source_key(self) -> str:
        """The music this piece is made from: pieces with equal keys are the same music."""
        return self.file if self.abc is None else f"{self.file}#{self.number}"

    @property
    def stem(self) -> str:
        """A file-name stem unique within the collection (``BanishMisfortune_10``, ``bwv269_R1``)."""
        base = Path(self.file).name.rsplit(".", 1)[0]
        return re.sub(r"[^A-Za-z0-9_-]", "-", f"{base}_{self.number}")


def corpus_root() -> Path:
    """The folder of the installed music21 corpus."""
    import music21

    return Path(music21.__file__).parent / "corpus"


def collection(name: str) -> Collection:
    """The collection called ``name``; raises :class:`Clamp3Error` for an unknown one."""
    for item in COLLECTIONS:
        if item.name == name:
            return item
    raise Clamp3Error(f"{name}: unknown collection (known: {', '.join(c.name for c in COLLECTIONS)})")


def check_training(pieces: list[Piece]) -> None:
    """Raise :class:`EvaluationOnlyError`, naming the first offending piece, unless every piece belongs
    to a training collection."""
    for piece in pieces:
        if piece.collection in EVALUATION_ONLY:
            raise EvaluationOnlyError(
                f"{piece.id}: {piece.collection} is evaluation-only and must never go into training data"
            )
        if piece.collection not in TRAINING_COLLECTIONS:
            raise EvaluationOnlyError(f"{piece.id}: {piece.collection} is not a licence-checked training set")


def count_tunes(name: str, root: Path | None = None) -> int:
    """The number of ``X:`` headers in an ABC collection (or of chorales): cheap, nothing is parsed."""
    if name == CHORALES:
        return len(_chorale_files())
    folder = (root or corpus_root()) / collection(name).folder
    return sum(
        len(re.findall(r"^\s*X:", read_abc(path), re.MULTILINE)) for path in sorted(folder.glob("*.abc"))
    )


def training_pieces(root: Path | None = None) -> list[Piece]:
    """Every training piece, collection by collection in :data:`TRAINING_COLLECTIONS` order."""
    return [piece for name in TRAINING_COLLECTIONS for piece in collection_pieces(name, root)]


def evaluation_pieces(root: Path | None = None) -> list[Piece]:
    """The evaluation-only Essen tunes (8,514). Never pass these to the training writer."""
    return collection_pieces("essenFolksong", root)


def collection_pieces(name: str, root: Path | None = None) -> list[Piece]:
    """The pieces of one collection, in file order then tune order."""
    root = root or corpus_root()
    spec = collection(name)
    if name == CHORALES:
        return _chorales(spec, root)
    pieces = []
    for path in sorted((root / spec.folder).glob("*.abc")):
        file = f"{spec.folder}/{path.name}"
        for tune in split_abc_tunes(read_abc(path), file):
            number = tune.id.rsplit("#", 1)[1]
            metadata = tune_metadata(tune.text, markings_in_notes=spec.markings_in_notes)
            pieces.append(
                Piece(tune.id, name, file, number, tune.text, None, metadata, spec.book_for(path.name))
            )
    return pieces


def _chorale_files() -> list[str]:
    from music21.corpus import chorales

    return list(chorales.Iterator(returnType="filename"))


def _chorales(spec: Collection, root: Path) -> list[Piece]:
    """The 371 chorales in Riemenschneider order. music21 maps a few numbers to the same file; such a
    file gets every title it is listed under (they are texts sung to the same melody)."""
    from music21.corpus import chorales

    names = _chorale_files()
    listing = chorales.ChoraleListRKBWV().byRiemenschneider
    titles: dict[str, list[str]] = {}
    for number, name in enumerate(names, start=1):
        title = listing[number]["title"]
        if title not in titles.setdefault(name, []):
            titles[name].append(title)
    pieces = []
    for number, name in enumerate(names, start=1):
        path = _musicxml_path(root, name)
        own = listing[number]["title"]
        ordered = (own, *(t for t in titles[name] if t != own))
        metadata = Metadata(titles=ordered, composer="Johann Sebastian Bach", bwv=listing[number]["bwv"])
        file = f"{spec.folder}/{path.name}"
        pieces.append(
            Piece(f"{file}#R{number}", CHORALES, file, f"R{number}", None, str(path), metadata, spec.book)
        )
    return pieces


def _musicxml_path(root: Path, name: str) -> Path:
    """The MusicXML file of a chorale name from music21's list: ``<name>.mxl`` (or ``.xml``) when it
    exists, else the MusicXML file music21's own look-up finds (``bwv18.5-l`` -> ``bwv18.5-lz.mxl``)."""
    from music21 import corpus

    for suffix in _MUSICXML_SUFFIXES:
        if (root / f"{name}{suffix}").is_file():
            return root / f"{name}{suffix}"
    found = corpus.getWork(name)
    candidates = sorted(Path(p) for p in (found if isinstance(found, list) else [found]))
    for path in candidates:
        if path.suffix in _MUSICXML_SUFFIXES:
            return path
    raise Clamp3Error(f"{name}: no MusicXML file in the music21 corpus")


# --- ABC headers ---------------------------------------------------------------------------------------

_FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")
_COMMENT = re.compile(r"(?<!\\)%.*$")
_COLLECTED = re.compile(r"^\(?\s*collected\s+(?:by|from)\s+(.+?)\)?[.\s]*$", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]*)"')
_METRONOME = re.compile(r"^(?:(\d+/\d+)\s*=\s*)?(\d+)$")
_MUSICXML_SUFFIXES = (".mxl", ".xml", ".musicxml")
_INSTRUMENT_NAME = r"(?:ger(?:man)?[.:]?\s+)?(flute|violin|fife|clarinet)"
_INSTRUMENT_LINE = re.compile(
    rf"^for\s+(?:the\s+)?{_INSTRUMENT_NAME}(?:\s+or\s+{_INSTRUMENT_NAME})?[.\s]*$", re.IGNORECASE
)
_SMALL_WORDS = frozenset({"a", "an", "and", "at", "by", "for", "in", "o'", "of", "on", "or", "the", "to"})


def header_fields(tune: str) -> list[tuple[str, str]]:
    """``(letter, value)`` for the header lines of one ABC tune (up to and including the first ``K:``);
    comments removed, empty values kept."""
    fields = []
    for line in tune.split("\n"):
        match = _FIELD.match(_COMMENT.sub("", line).strip())
        if match:
            fields.append((match.group(1), match.group(2).strip()))
            if match.group(1) == "K":
                break
    return fields


def tune_metadata(tune: str, markings_in_notes: bool = False) -> Metadata:
    """The metadata of one ABC tune's header (see :class:`Metadata`)."""
    fields = header_fields(tune)

    def values(letter: str) -> list[str]:
        return [value for key, value in fields if key == letter and value]

    markings: list[str] = []
    collector = None
    notes = [text for value in values("N") for text in _QUOTED.findall(value)]
    composers = []
    for text in values("C"):
        text = text.strip('"').strip()
        if match := _COLLECTED.match(text):
            collector = collector or _tidy_name(match.group(1))
        elif _tidy_name(text):
            composers.append(_tidy_name(text))
    for text in notes:
        if match := _COLLECTED.match(text.strip()):
            collector = collector or _tidy_name(match.group(1))
        elif markings_in_notes and text.strip(" .,;"):
            markings.append(text.strip(" .,;"))
    tempo = values("Q")[0] if values("Q") else ""
    markings += [text.strip(" .,;") for text in _QUOTED.findall(tempo) if text.strip(" .,;")]
    sources = values("B") + values("S")
    titles, instruments = [], []
    for value in values("T"):
        if match := _INSTRUMENT_LINE.match(value.strip()):
            instruments += [name.lower() for name in match.groups() if name]
        elif not value.strip().startswith("("):  # "(Can be used as a Clog.)" is a note
            titles.append(clean_title(value))
    return Metadata(
        titles=tuple(dict.fromkeys(t for t in titles if t)),
        rhythm=values("R")[0] if values("R") else None,
        markings=tuple(dict.fromkeys(markings)),
        metronome=parse_metronome(tempo),
        composer="; ".join(composers) or None,
        collector=collector,
        source="; ".join(s.strip('"') for s in sources) or None,
        origin=values("O")[0] if values("O") else None,
        meter=values("M")[0] if values("M") else None,
        key=values("K")[0] if values("K") else None,
        transcriber=values("Z")[0].strip('"') if values("Z") else None,
        instruments=tuple(dict.fromkeys(instruments)),
    )


def parse_metronome(tempo: str) -> Metronome | None:
    """The metronome mark of a ``Q:`` value (``1/4=120``, ``3/8=112 "Slow"``), or ``None``.

    A bare number (``Q:80``, an old form) is kept with the beat ``1/4``, as music21 reads it.
    """
    text = _QUOTED.sub("", tempo).replace(" ", "")
    match = _METRONOME.match(text)
    if not match or int(match.group(2)) == 0:
        return None
    return Metronome(match.group(1) or "1/4", int(match.group(2)))


def clean_title(title: str) -> str:
    """A tidied title: ``"BAG OF MEAL, THE"`` -> ``"The Bag of Meal"``, ``"Erie -- Hornpipe"`` ->
    ``"Erie Hornpipe"``; quotes and a trailing period dropped."""
    title = " ".join(title.replace('"', "").replace(" -- ", " ").split())
    title = re.sub(r"\.$", "", title)
    match = re.match(r"^(.*?),\s*(the|a|an)$", title, re.IGNORECASE)
    if match:
        title = f"{match.group(2)} {match.group(1)}"
    if title.isupper():
        title = _title_case(title)
    return title[:1].upper() + title[1:]


def _title_case(text: str) -> str:
    words = []
    for index, word in enumerate(text.lower().split(" ")):
        if index and word in _SMALL_WORDS:
            words.append(word)
            continue
        # O'NEILL -> O'Neill, but I'M -> I'm and PIPER'S -> Piper's
        word = word[:1].upper() + word[1:]
        word = re.sub(r"(^[OD]'|[-(/.])([a-z])", lambda m: m.group(1) + m.group(2).upper(), word)
        words.append(word)
    return " ".join(words)


def _tidy_name(text: str) -> str:
    text = " ".join(text.strip().strip('"').split()).rstrip(".")
    text = re.sub(r"^by\s+", "", text, flags=re.IGNORECASE)
    return _title_case(text) if text.isupper() else text


# --- tune identity -------------------------------------------------------------------------------------

_TYPE_TAIL = re.compile(
    r"(?:(?:^|\s+)(?:reel|jig|double jig|slip jig|hornpipe|strathspey|march|waltz|air|clog|polka|slide|"
    r"highland fling|fling|quick ?step|set dance|setting|version|no|\d+(?:st|nd|rd|th)?))+$"
)
_GENERIC_TITLES = frozenset(
    {
        "untitled",
        "no title",
        "unknown",
        "tune",
        "song",
        "dance",
        "irish",
        "scotch",
        "scottish",
        "english",
        "welsh",
        "highland",
        "quick",
        "slow",
        "old",
        "new",
        "favourite",
        "favorite",
        "country dance",
    }
)


def title_key(title: str) -> str | None:
    """A title reduced for matching the same tune across books (``"The Bag of Meal -- Jig"`` and
    ``"Bag o' Meal 2"`` both give ``"bag o meal"``); ``None`` for titles too short or generic."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"['`]", "", text)
    text = " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())
    text = re.sub(r"^(?:the|a|an)\s+", "", text)
    text = _TYPE_TAIL.sub("", text).strip()
    if len(text) < 4 or text in _GENERIC_TITLES:
        return None
    return text


def tune_keys(piece: Piece) -> tuple[str, ...]:
    """Keys shared by pieces that are the same tune: the source music, the book number (O'Neill's lists
    several transcriptions of one number), the American fife file's appendix (numbers + 100) and
    normalised titles. Pieces sharing any key go to the same split."""
    keys = [f"source:{piece.source_key}"]
    if piece.collection == "oneills1850" and piece.metadata.source:
        match = re.search(r"o'?neill'?s\s*(\d+)", piece.metadata.source, re.IGNORECASE)
        if match:
            keys.append(f"oneills:{int(match.group(1))}")
    if piece.file.endswith("americanfifeopus.abc") and piece.number.isdigit():
        keys.append(f"americanfife:{int(piece.number) % 100}")
    keys += [f"title:{key}" for key in map(title_key, piece.metadata.titles) if key]
    return tuple(keys)
