"""CLaMP 1 bar patches and Unidecode 1.3.4 transliteration against the reference fixtures."""

import json

import numpy as np
import pytest

from clamp3.clamp1.patchilizer import EOS_ID, encode_music
from clamp3.clamp1.text import UNIDECODE_134_OVERRIDES, ascii_text, text_keys


def test_every_patchilizer_case(clamp1_dir):
    cases = json.loads((clamp1_dir / "patchilizer" / "cases.json").read_text(encoding="utf-8"))
    assert len(cases) == 30
    for case in cases:
        got = encode_music(
            case["input"],
            case["music_length"],
            add_eos_patch=case["add_eos_patch"],
            patch_length=case["patch_length"],
        )
        expected = np.array(case["patches"], dtype=np.int64).reshape(-1, 64)
        assert got.dtype == np.int64 and got.shape == (case["num_patches"], 64), case["name"]
        np.testing.assert_array_equal(got, expected, err_msg=case["name"])


def test_inputs_where_the_reference_fails_raise_a_clear_error(clamp1_dir):
    cases = json.loads((clamp1_dir / "patchilizer" / "error_cases.json").read_text(encoding="utf-8"))
    assert {case["error"] for case in cases} == {"IndexError: list index out of range"}
    for case in cases:
        with pytest.raises(ValueError, match="lone barline"):
            encode_music(case["input"], case["music_length"], add_eos_patch=case["add_eos_patch"])


def test_real_cache_keys_give_the_reference_patch_counts(clamp1_dir):
    info = json.loads((clamp1_dir / "real_cache" / "music_keys.json").read_text())
    for entry in info["entries"]:
        key = (clamp1_dir / "real_cache" / entry["key_file"]).read_text(encoding="utf-8")
        patches = encode_music(key, 512)
        assert len(patches) == entry["num_patches_add_eos_untruncated"], entry["key_file"]
        assert (patches[-1] == EOS_ID).all()


def test_unidecode_134_behaviour_with_any_later_unidecode():
    assert ascii_text("½ ¼ ¾") == " 1/2   1/4   3/4 "
    assert ascii_text("Ŋŋ ẞ ♔℃") == "ngNG Ss "
    assert ascii_text("Café 小星星 — ß") == "Cafe Xiao Xing Xing  -- ss"
    assert all(value.isascii() for value in UNIDECODE_134_OVERRIDES.values())


def test_text_keys_are_read_like_the_reference(clamp1_dir):
    keys = json.loads((clamp1_dir / "real_cache" / "text_keys.json").read_text())["keys"]
    assert text_keys("\n".join(keys) + "\n\n") == keys
    assert text_keys("  It is by Dvořák \r\n\n½\n") == ["It is by Dvorak", "1/2"]
