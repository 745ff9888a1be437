import json

import numpy as np
import pytest

from clamp3.errors import Clamp3Error, InputError
from clamp3.train.data import (
    Example,
    item_rng,
    random_window,
    read_jsonl,
    remove_instrument_info,
    training_text,
)


def test_reference_layout_fields_translations_and_validation_text(tmp_path):
    record = {
        "id": "t1",
        "filepaths": ["abc/t1.abc", "mtf/t1.mtf"],
        "title": "The Tune",
        "artists": ["Anon"],
        "genres": ["Folk", ""],
        "analysis": "A lively reel in D major.",
        "language": "en",
        "translations": {"language": "de", "title": "Die Melodie", "analysis": "Ein lebhafter Reel."},
        "year": 1850,
    }
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(record) + "\n\n")
    (parsed,) = read_jsonl(path)
    assert parsed.id == "t1"
    assert parsed.files == (tmp_path / "abc/t1.abc", tmp_path / "mtf/t1.mtf")
    assert parsed.texts == ("The Tune", "Anon", "Folk", "A lively reel in D major.")
    assert parsed.translations == ("Die Melodie", "Ein lebhafter Reel.")
    assert parsed.eval_text == "A lively reel in D major."


def test_simple_layout_and_errors(tmp_path):
    path = tmp_path / "simple.jsonl"
    path.write_text(json.dumps({"path": "a.abc", "texts": ["first", "second"]}) + "\n")
    (record,) = read_jsonl(path)
    assert record.files == (tmp_path / "a.abc",) and record.eval_text == "first"
    path.write_text('{"path": "a.abc"}\n')
    with pytest.raises(Clamp3Error, match=r"simple.jsonl:1: needs at least one non-empty text"):
        read_jsonl(path)
    path.write_text('{"texts": ["x"]}\n')
    with pytest.raises(Clamp3Error, match=r"simple.jsonl:1: needs music files"):
        read_jsonl(path)
    path.write_text("not json\n")
    with pytest.raises(InputError, match=r"simple.jsonl: line 1: not JSON"):
        read_jsonl(path)


def _example(**kwargs) -> Example:
    defaults = {"id": "x", "texts": ("a\nb", "c"), "translations": (), "eval_text": "a", "music": ("X:1\n",)}
    return Example(**{**defaults, **kwargs})


def test_text_dropout_is_seeded_per_item_and_keeps_at_least_one_line():
    example = _example(texts=("one\ntwo\nthree", "four", "two"))
    first = training_text(example, item_rng(1, 0, 5))
    assert first == training_text(example, item_rng(1, 0, 5))  # same item, same epoch: same text
    seen = {tuple(training_text(example, item_rng(1, epoch, 5))) for epoch in range(40)}
    assert len(seen) > 5
    assert all(lines and set(lines) <= {"one", "two", "three", "four"} for lines in seen)
    assert all(len(set(lines)) == len(lines) for lines in seen)  # de-duplicated
    full = training_text(example, item_rng(1, 0, 5), dropout=False)
    assert sorted(full) == ["four", "one", "three", "two"]


def test_translations_are_used_about_half_of_the_time():
    example = _example(texts=("english",), translations=("deutsch",))
    picks = [training_text(example, item_rng(0, epoch, 0), dropout=False)[0] for epoch in range(200)]
    assert 70 < picks.count("deutsch") < 130


def test_instrument_names_are_removed_from_abc_and_mtf():
    abc = 'X:1\nV:1 treble nm="Violin" snm="Vln."\nV:2 bass snm="Vc."\n[V:1]abc|\n'
    assert remove_instrument_info(abc) == "X:1\nV:1 treble\nV:2 bass\n[V:1]abc|\n"
    mtf = "ticks_per_beat 480\nprogram_change 0 1 40\nnote_on 0 1 60 90"
    assert remove_instrument_info(mtf) == "ticks_per_beat 480\nprogram_change 0 1 0\nnote_on 0 1 60 90"


def test_random_window_head_tail_middle():
    assert random_window(10, 16, np.random.default_rng(0)) == (0, 10)
    assert random_window(40, 16, None) == (0, 16)
    windows = {random_window(40, 16, np.random.default_rng(seed)) for seed in range(60)}
    assert (0, 16) in windows and (24, 40) in windows
    assert all(stop - start == 16 and 0 <= start <= 24 for start, stop in windows)
    assert any(0 < start < 24 for start, _ in windows)
