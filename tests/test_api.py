"""The task API's model dispatch and CLaMP 1 route through the pipeline."""

import shutil

import numpy as np

import clamp3
from clamp3.clamp1 import CLaMP1, load_music
from tests.tiny import tiny_dir


def test_load_model_picks_the_family(reference_dir, clamp1_dir):
    assert isinstance(clamp3.load_model(str(tiny_dir(reference_dir))), clamp3.CLaMP3)
    assert isinstance(clamp3.load_model(str(clamp1_dir / "tiny_model")), CLaMP1)
    model = clamp3.load_model(str(tiny_dir(reference_dir)))
    assert clamp3.load_model(model) is model


def test_clamp1_reads_sheet_music_its_own_way_and_refuses_midi(reference_dir, clamp1_dir, tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    shutil.copy(clamp1_dir / "abc_filter" / "inputs" / "bach_bwv66_6.mxl", folder / "bach.mxl")
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", folder / "bach.mid")
    model_dir = str(clamp1_dir / "tiny_model")
    result = clamp3.search(folder / "bach.mxl", [folder], k=5, model=model_dir, cache=False)
    assert result.hits == [] and result.candidates == 0  # the query is not its own hit...
    result = clamp3.search(
        folder / "bach.mxl", [folder], k=5, model=model_dir, cache=False, include_query=True
    )
    assert [hit.path for hit in result.hits] == [str(folder / "bach.mxl")]  # ...unless asked for
    assert abs(result.hits[0].score - 1.0) < 1e-5
    (failure,) = result.failures
    assert (
        str(failure) == f"{folder / 'bach.mid'}: CLaMP 1 reads text, images and sheet music only; "
        "midi needs default, saas or c2"
    )
    embedded = clamp3.embed([folder / "bach.mxl"], model=model_dir, cache=False)
    direct = CLaMP1.from_pretrained(model_dir).encode_symbolic([load_music(folder / "bach.mxl")])
    np.testing.assert_allclose(embedded.vectors, direct, atol=1e-6)
