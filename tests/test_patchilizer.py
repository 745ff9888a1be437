import json

import numpy as np
import pytest

from clamp3.model.patchilizer import M3Patchilizer


def _cases(reference_dir):
    return json.loads((reference_dir / "patchilizer" / "cases.json").read_text(encoding="utf-8"))


def test_every_reference_case_matches_exactly(reference_dir):
    patchilizer = M3Patchilizer()
    cases = _cases(reference_dir)
    assert len(cases) == 32
    for case in cases:
        options = case["options"]
        got = patchilizer.encode(
            case["input"], add_special_patches=options["add_special_patches"], truncate=options["truncate"]
        )
        expected = np.array(case["patches"], dtype=np.int64)
        assert got.shape == (case["num_patches"], 64), case["name"]
        np.testing.assert_array_equal(got, expected, err_msg=case["name"])


def test_special_patches_and_padding():
    patches = M3Patchilizer().encode("X:1\nK:C\nabc|\n")
    assert patches.shape == (5, 64)
    assert (patches[0] == 1).all()
    assert patches[-1][0] == 1 and (patches[-1][1:] == 2).all()
    assert list(patches[1][:6]) == [1, ord("X"), ord(":"), ord("1"), ord("\n"), 2]
    assert (patches[1][6:] == 0).all()


def test_decode_inverts_encode_for_short_bars():
    text = "X:1\nK:C\nabc|def|\n"
    assert M3Patchilizer.decode(M3Patchilizer().encode(text)) == text


def test_lone_barline_line_is_dropped_instead_of_crashing():
    # the reference raises IndexError on a last line that is only a barline
    assert len(M3Patchilizer().encode("X:1\nabc|\n|", add_special_patches=False)) == 2


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        M3Patchilizer().encode("")
