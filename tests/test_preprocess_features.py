"""``.npy`` MERT feature files: what :func:`load_feature_file` accepts (refusals: test_bad_inputs.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clamp3.errors import InputError
from clamp3.preprocess.features import load_feature_file

FEATURES = np.arange(3 * 8, dtype=np.float32).reshape(3, 8) / 7


@pytest.mark.parametrize(
    "stored",
    [
        FEATURES,
        FEATURES[None],
        FEATURES.astype(np.float64),
        FEATURES.astype(">f4"),
        np.asfortranarray(FEATURES),
        np.asfortranarray(FEATURES[None]),
    ],
    ids=["n_D", "1_n_D", "float64", "big_endian", "fortran_n_D", "fortran_1_n_D"],
)
def test_layouts_and_float_types_load_as_n_by_d_float32(tmp_path: Path, stored: np.ndarray) -> None:
    path = tmp_path / "clip.npy"
    np.save(path, stored)
    loaded = load_feature_file(path)
    assert loaded.dtype == np.float32 and loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, FEATURES)


def test_half_precision_is_widened(tmp_path: Path) -> None:
    np.save(tmp_path / "half.npy", FEATURES.astype(np.float16))
    np.testing.assert_allclose(load_feature_file(tmp_path / "half.npy"), FEATURES, rtol=1e-3)


def test_missing_files_and_folders_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.npy: no such file$"):
        load_feature_file(tmp_path / "missing.npy")
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(InputError, match=r"folder\.npy: not a readable \.npy file \(.*Is a directory"):
        load_feature_file(tmp_path / "folder.npy")


@pytest.mark.parametrize("stored", [np.zeros((3, 100), np.float32), np.zeros((1, 3, 100), np.float32)])
def test_features_of_another_width_than_the_tower_reads_are_refused_on_reading(
    tmp_path: Path, stored: np.ndarray
) -> None:
    path = tmp_path / "narrow.npy"
    np.save(path, stored)
    shape = list(stored.shape)
    with pytest.raises(
        InputError,
        match=rf"narrow\.npy: shape \{shape}: features of size 100, but the audio tower reads 768$",
    ):
        load_feature_file(path, expected_dim=768)
    assert load_feature_file(path, expected_dim=100).shape == (3, 100)
    assert load_feature_file(path).shape == (3, 100)
