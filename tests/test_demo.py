"""``clamp3 demo`` on the example library shipped with the package, with the bundled default model."""

from __future__ import annotations

import re

from click.testing import CliRunner

from clamp3.cli import main
from clamp3.cli.demo import DEFAULT_LIBRARY as LIBRARY
from clamp3.cli.demo import DEFAULT_QUERIES as QUERIES
from clamp3.modality import FileKind, collect_files

LABELS = {"reel", "jig", "hornpipe", "chorale", "air"}
SECTIONS = (
    '1. English text search: "a lively Irish reel for the fiddle"',
    '2. German text search: "ein ruhiger vierstimmiger Choral"',
    "3. MIDI -> music: the-alhambra-reel.transcribed.mid",
    "4. Audio -> score: the-men-from-ulster.accordion.ogg",
    "5. Zero-shot classification of the scores: reel, jig, hornpipe, chorale, air",
    "6. Image -> music (through its caption): images/organ-pipes.png",
)


def table_rows(output: str) -> dict[str, list[list[str]]]:
    """The body rows of the table under each section title, as lists of cell texts."""
    sections: dict[str, list[list[str]]] = {}
    current = None
    for line in output.splitlines():
        if line in SECTIONS:
            current = sections.setdefault(line, [])
        elif current is not None and line.startswith("│"):
            current.append([cell.strip() for cell in line.strip("│").split("│")])
    return sections


def library_scores() -> int:
    return sum(kind in (FileKind.ABC, FileKind.MUSICXML) for _, kind in collect_files([LIBRARY]).files)


def test_library_readme_lists_exactly_the_library_and_query_files():
    readme = (LIBRARY / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    library = {p.relative_to(LIBRARY).as_posix() for p in LIBRARY.rglob("*") if p.is_file()}
    queries = {p.relative_to(QUERIES.parent).as_posix() for p in QUERIES.iterdir()}
    assert listed == library - {"README.md"} | queries
    assert len(collect_files([LIBRARY]).files) == 18  # caption files are part of their images


def test_every_query_and_audio_file_has_its_score_in_the_library():
    scores = {p.name.split(".")[0] for p in (LIBRARY / "scores").iterdir()}
    recordings = [*QUERIES.iterdir(), *(LIBRARY / "audio").iterdir()]
    assert recordings and all(p.name.split(".")[0] in scores for p in recordings)


def test_demo_prints_six_ranked_tables_of_library_files(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the demo's files come from the package, not the current directory
    result = CliRunner().invoke(main, ["demo", "--model", "default"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    sections = table_rows(result.output)
    assert list(sections) == list(SECTIONS)
    searches = [sections[title] for title in (*SECTIONS[:4], SECTIONS[5])]
    zero_shot = sections[SECTIONS[4]]
    assert [len(rows) for rows in searches] == [5, 5, 5, 5, 5]
    for rows in searches:
        assert [rank for rank, _, _ in rows] == ["1", "2", "3", "4", "5"]
        scores = [float(score) for _, score, _ in rows]
        assert all(-1.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
        assert all((LIBRARY / file).is_file() for _, _, file in rows)
    assert all(re.fullmatch(r"scores/.+\.(abc|musicxml)", file) for _, _, file in searches[3])
    assert len(zero_shot) == library_scores() == 10
    for file, label, probability in zero_shot:
        assert (LIBRARY / file).is_file() and label in LABELS and 0.2 <= float(probability) <= 1.0
    # the bundled model's answers (MODEL_CARD.md, "Example")
    english, german, midi, audio, _image = searches
    assert english[0][2] == "scores/the-alhambra-reel.abc"
    assert all("bwv" in file for _, _, file in german[:4])
    assert midi[0][2] == "scores/the-alhambra-reel.abc"
    assert audio[0][2] == "scores/the-men-from-ulster.abc"
    labels = {file: label for file, label, _ in zero_shot}
    chorales = [label for file, label in labels.items() if "bwv" in file]
    assert len(chorales) == 3 and chorales.count("chorale") >= 2
    dances = {
        "the-alhambra-reel": "reel",
        "the-blue-garters": "reel",
        "the-custom-house-jig": "jig",
        "the-rakes-of-clonmel": "jig",
        "globe-hornpipe": "hornpipe",
        "the-men-from-ulster": "hornpipe",
    }
    assert all(labels[f"scores/{name}.abc"] == label for name, label in dances.items())
