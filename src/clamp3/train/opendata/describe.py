"""Short description lines in twelve languages, from a piece's metadata and analysis only.

The wording is data (``templates.json`` beside this module): per language and fact several phrasings,
and the vocabulary (tune types, genres, origins, instruments, tempo and character words, note values, key
names) translated for the slots the phrasings give them. :func:`facts_for` maps a piece onto that
vocabulary; a fact the sources do not give, or a word the vocabulary lacks, yields no line in any language
(a marking like "2nd setting" is simply dropped), so translations never say more than the English.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from clamp3.errors import Clamp3Error
from clamp3.train.opendata.analysis import Analysis
from clamp3.train.opendata.corpus import CHORALES, Piece

MIN_KEY_CONFIDENCE = 0.6
"""Below this correlation the estimated key is left out (a written church mode is always given)."""

_TEMPO_CLASSES = ((72, "slow"), (108, "moderate"))
"""Beats per minute of the metronome's own beat up to which a tempo counts as slow, moderate; else fast."""

_FACT_ORDER = (
    "alt_titles",
    "type_key",
    "type",
    "key",
    "genre_book",
    "genre_book_undated",
    "genre",
    "bach_chorale",
    "catalogue",
    "origin",
    "origin_text",
    "composer",
    "collector",
    "character",
    "metronome",
    "tempo_class",
    "meter",
    "texture_monophonic",
    "texture_chords",
    "texture_voices",
    "texture_satb",
    "range",
    "range_voices",
    "size",
    "scale_pentatonic",
    "scale_hexatonic",
    "instruments",
)
TEMPO_FACTS = frozenset({"character", "metronome", "tempo_class"})


@dataclass(frozen=True)
class Templates:
    """The parsed ``templates.json`` (read-only)."""

    data: MappingProxyType

    @classmethod
    def load(cls, path: str | Path | None = None) -> Templates:
        """The templates at ``path``, by default the file shipped with this package."""
        if path is None:
            text = resources.files("clamp3.train.opendata").joinpath("templates.json").read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls(MappingProxyType(json.loads(text)))

    @property
    def languages(self) -> tuple[str, ...]:
        """Language codes, English first."""
        return tuple(self.data["languages"])

    def language_name(self, lang: str) -> str:
        return self.data["languages"][lang]

    def has(self, kind: str, key: str) -> bool:
        return key in self.data["vocabulary"][kind]

    def alias(self, kind: str, text: str) -> str:
        """The vocabulary key a source spelling stands for (``slipjig`` -> ``slip jig``)."""
        return self.data["aliases"].get(kind, {}).get(text, text)

    def word(self, kind: str, key: str, lang: str, article: bool = False) -> str:
        """A vocabulary entry; ``article`` picks the form with an indefinite article where there is one."""
        value = self.data["vocabulary"][kind][key][lang]
        if isinstance(value, list):
            return value[1] if article else value[0]
        return value

    def phrasings(self, lang: str, fact: str) -> list[str]:
        return self.data["sentences"][lang][fact]

    def joined(self, items: list[str], lang: str, conjunction: str = "and") -> str:
        """``a, b and c`` in the language's words."""
        join = self.data["joiners"][lang]
        if len(items) <= 1:
            return "".join(items)
        return join["sep"].join(items[:-1]) + join[conjunction] + items[-1]

    def quoted(self, text: str, lang: str) -> str:
        start, end = self.data["joiners"][lang]["quotes"]
        return f"{start}{text}{end}"

    def key_name(self, tonic: str, mode: str, lang: str) -> str | None:
        """``F#`` + ``minor`` -> ``F-sharp minor``, ``fis-Moll``, ``嬰ヘ短調``...; ``None`` if not spelled."""
        table = self.data["keys"][lang]
        name = table["tonic"].get(tonic)
        pattern = table["modes"].get(mode)
        if name is None or pattern is None:
            return None
        if mode == "minor" and table["lower_minor"]:
            name = name.lower()
        return pattern.format(tonic=name)


@dataclass(frozen=True)
class Facts:
    """What a description may say about one piece, as vocabulary keys and plain values."""

    titles: tuple[str, ...] = ()
    tune_type: str | None = None
    genre: str | None = None
    book: str | None = None
    year: str | None = None
    origin: str | None = None
    origin_text: str | None = None
    composer: str | None = None
    collector: str | None = None
    bach_chorale: bool = False
    bwv: str | None = None
    number: str | None = None
    instruments: tuple[str, ...] = ()
    character: tuple[str, ...] = ()
    metronome_beat: str | None = None
    metronome_bpm: int | None = None
    tempo_class: str | None = None
    key_tonic: str | None = None
    key_mode: str | None = None
    meter: str | None = None
    texture: str | None = None
    parts: int = 1
    satb: bool = False
    lowest: str | None = None
    highest: str | None = None
    semitones: int | None = None
    notes: int | None = None
    bars: int | None = None
    scale: str | None = None


def facts_for(piece: Piece, analysis: Analysis, templates: Templates) -> Facts:
    """Map a piece's metadata and analysis onto the vocabulary of ``templates``."""
    meta = piece.metadata
    book = piece.book
    origin = book.origin
    composer = meta.composer
    if composer and templates.has("origin", templates.alias("origin", composer.lower().rstrip(". "))):
        origin, composer = templates.alias("origin", composer.lower().rstrip(". ")), None  # Aird's "Irish."
    character = _character_words(meta.markings, templates)
    metronome = meta.metronome
    beat = metronome.beat if metronome and templates.has("note_value", metronome.beat) else None
    if metronome and not character:
        tempo_class = next((name for limit, name in _TEMPO_CLASSES if metronome.bpm <= limit), "fast")
    else:
        tempo_class = None
    if analysis.written_mode:
        tonic, mode = analysis.written_tonic, analysis.written_mode
    elif analysis.key_confidence >= MIN_KEY_CONFIDENCE:
        tonic, mode = analysis.key_tonic, analysis.key_mode
    else:
        tonic = mode = None
    if tonic is None or mode is None or templates.key_name(tonic, mode, "en") is None:
        tonic = mode = None  # e.g. a double sharp: no spelling in the key tables
    chorale = piece.collection == CHORALES
    return Facts(
        titles=tuple(t for t in meta.titles if t == meta.titles[0] or not _type_title(t, templates)),
        tune_type=_tune_type(meta.rhythm, meta.titles, templates),
        genre=book.genre,
        book=book.title,
        year=book.year,
        origin=origin,
        origin_text=meta.origin,
        composer=None if chorale else composer,
        collector=meta.collector,
        bach_chorale=chorale,
        bwv=meta.bwv,
        number=piece.number.lstrip("R") if chorale else None,
        instruments=tuple(i for i in meta.instruments if templates.has("instrument", i)) or book.instruments,
        character=character,
        metronome_beat=beat,
        metronome_bpm=metronome.bpm if beat else None,
        tempo_class=tempo_class,
        key_tonic=tonic,
        key_mode=mode,
        meter=analysis.meter,
        texture=analysis.texture,
        parts=analysis.parts,
        satb=[n.lower() for n in analysis.part_names] == ["soprano", "alto", "tenor", "bass"],
        lowest=analysis.lowest,
        highest=analysis.highest,
        semitones=analysis.semitones,
        notes=analysis.notes,
        bars=analysis.bars,
        scale=analysis.scale,
    )


def _tune_type(rhythm: str | None, titles: tuple[str, ...], templates: Templates) -> str | None:
    """The ``R:`` tune type, else one a title names: a title that is only a type ("A Strathspey", a
    second ``T:`` line in Aird's) or ends in one ("Lord Moira's Strathspey")."""
    if rhythm:
        key = templates.alias("tune_type", " ".join(rhythm.lower().split()))
        if templates.has("tune_type", key):
            return key
    for title in titles:
        if key := _type_title(title, templates):
            return key
    for title in titles:
        words = re.sub(r"[^a-z ]+", " ", title.lower()).split()
        for size in (2, 1):
            key = templates.alias("tune_type", " ".join(words[-size:]))
            if len(words) > size and templates.has("tune_type", key):
                return key
    return None


def _type_title(title: str, templates: Templates) -> str | None:
    """The tune type a title consists of ("A Quick Step" -> quickstep), else ``None``."""
    text = re.sub(r"^(?:a|an|the) ", "", " ".join(re.sub(r"[^a-z ]+", " ", title.lower()).split()))
    key = templates.alias("tune_type", text)
    return key if templates.has("tune_type", key) else None


def _character_words(markings: tuple[str, ...], templates: Templates) -> tuple[str, ...]:
    """Vocabulary keys of tempo and character markings; phrases are split at commas, "and" and "with"
    ("Slow with expression" -> slow, with expression); unknown parts are dropped."""
    found: list[str] = []
    for marking in markings:
        text = " ".join(marking.lower().replace("&", " and ").split())
        key = templates.alias("character", text)
        if templates.has("character", key):
            found.append(key)
            continue
        for part in re.split(r",|;| and ", text):
            pieces = re.split(r" (?=with )", part.strip())
            for piece in pieces:
                key = templates.alias("character", piece.strip(" ."))
                if templates.has("character", key):
                    found.append(key)
    return tuple(dict.fromkeys(found))


def describe_facts(facts: Facts, lang: str, templates: Templates, salt: str = "") -> list[tuple[str, str]]:
    """``(fact, line)`` pairs in a fixed fact order; the phrasing of each fact is picked by a hash of
    ``salt`` (use the piece id), the language and the fact, so a piece always gets the same lines."""
    values = _values(facts, lang, templates)
    lines = []
    for fact in _facts_present(facts):
        options = templates.phrasings(lang, fact)
        template = options[zlib.crc32(f"{salt}|{lang}|{fact}".encode()) % len(options)]
        try:
            line = template.format_map(values)
        except KeyError as exc:
            raise Clamp3Error(
                f"templates.json: {lang}/{fact} uses {{{exc.args[0]}}}, which is not known"
            ) from None
        lines.append((fact, line[:1].upper() + line[1:]))
    return lines


def describe(facts: Facts, lang: str, templates: Templates, salt: str = "") -> list[str]:
    """The description lines of ``facts`` in language ``lang`` (see :func:`describe_facts`)."""
    return [line for _, line in describe_facts(facts, lang, templates, salt)]


def _facts_present(facts: Facts) -> list[str]:
    present = {
        "alt_titles": len(facts.titles) > 1,
        "type_key": bool(facts.tune_type and facts.key_tonic),
        "type": bool(facts.tune_type and not facts.key_tonic),
        "key": bool(facts.key_tonic and not facts.tune_type),
        "genre_book": bool(facts.genre and facts.book and facts.year),
        "genre_book_undated": bool(facts.genre and facts.book and not facts.year),
        "genre": bool(facts.genre and not facts.book and not facts.bach_chorale),
        "bach_chorale": facts.bach_chorale,
        "catalogue": bool(facts.bach_chorale and facts.bwv and facts.number),
        "origin": bool(facts.origin),
        "origin_text": bool(facts.origin_text),
        "composer": bool(facts.composer),
        "collector": bool(facts.collector),
        "character": bool(facts.character),
        "metronome": bool(facts.metronome_beat),
        "tempo_class": bool(facts.tempo_class),
        "meter": bool(facts.meter),
        "texture_monophonic": facts.texture == "monophonic",
        "texture_chords": facts.texture == "chords",
        "texture_voices": facts.texture == "voices" and not facts.satb,
        "texture_satb": facts.texture == "voices" and facts.satb,
        "range": facts.semitones is not None and facts.parts == 1,
        "range_voices": facts.semitones is not None and facts.parts > 1,
        "size": bool(facts.notes and facts.bars),
        "scale_pentatonic": facts.scale == "pentatonic",
        "scale_hexatonic": facts.scale == "hexatonic",
        "instruments": bool(facts.instruments),
    }
    return [fact for fact in _FACT_ORDER if present[fact]]


def _values(facts: Facts, lang: str, templates: Templates) -> dict[str, Any]:
    """Every placeholder value the facts allow, in language ``lang``."""
    word = templates.word
    values: dict[str, Any] = {
        "titles": templates.joined([templates.quoted(t, lang) for t in facts.titles[1:]], lang, "or"),
        "book": facts.book,
        "year": facts.year,
        "origin_text": facts.origin_text,
        "composer": facts.composer,
        "collector": facts.collector,
        "bwv": facts.bwv,
        "number": facts.number,
        "bpm": facts.metronome_bpm,
        "meter": facts.meter,
        "parts": facts.parts,
        "low": facts.lowest,
        "high": facts.highest,
        "semitones": facts.semitones,
        "notes": facts.notes,
        "bars": facts.bars,
    }
    if facts.tune_type:
        values["tune_type"] = word("tune_type", facts.tune_type, lang)
        values["a_tune_type"] = word("tune_type", facts.tune_type, lang, article=True)
    if facts.genre:
        values["genre"] = word("genre", facts.genre, lang)
        values["a_genre"] = word("genre", facts.genre, lang, article=True)
    if facts.key_tonic and facts.key_mode:
        values["key"] = templates.key_name(facts.key_tonic, facts.key_mode, lang)
    if facts.origin:
        values["origin"] = word("origin", facts.origin, lang)
    if facts.character:
        values["character"] = templates.joined([word("character", c, lang) for c in facts.character], lang)
    if facts.metronome_beat:
        values["note_value"] = word("note_value", facts.metronome_beat, lang)
    if facts.tempo_class:
        values["tempo_class"] = word("tempo_class", facts.tempo_class, lang)
    if facts.instruments:
        values["instruments"] = templates.joined(
            [word("instrument", i, lang) for i in facts.instruments], lang, "or"
        )
    return values
