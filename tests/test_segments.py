import json

import pytest

from clamp3.model.segments import plan_batches, split_segments


def test_weights_match_reference_cases(reference_dir):
    index = json.loads((reference_dir / "tiny_model" / "index.json").read_text())
    for case in index:
        segments = split_segments(case["sequence_length"], case["max_length"])
        assert [s.weight for s in segments] == case["segment_weights"], case["case"]
        assert len(segments) == case["num_segments"]


@pytest.mark.parametrize("length", [1, 5, 15, 16, 17, 31, 32, 33, 47, 100])
def test_segments_cover_the_input_and_local_rows_add_up(length):
    segments = split_segments(length, 16)
    assert segments[0].start == 0 and segments[-1].stop == length
    assert all(s.length <= 16 for s in segments)
    assert sum(s.keep for s in segments) == length
    assert sum(s.weight for s in segments) == length
    if length > 16:
        assert segments[-1].length == 16  # the last segment is taken from the end


def test_empty_input_is_rejected():
    with pytest.raises(ValueError):
        split_segments(0, 16)


def test_batches_are_sorted_bounded_and_never_pad_more_than_twice():
    lengths = [512, 30, 60, 512, 45, 200, 120, 33, 20, 7]
    batches = plan_batches(lengths, batch_size=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 3 for batch in batches)
    for batch in batches:
        longest = lengths[batch[0]]
        assert all(lengths[i] <= longest < 2 * lengths[i] + 1 for i in batch)
    assert [[lengths[i] for i in batch] for batch in batches] == [
        [512, 512],
        [200, 120],
        [60, 45, 33],
        [30, 20],
        [7],
    ]
    with pytest.raises(ValueError):
        plan_batches(lengths, 0)
