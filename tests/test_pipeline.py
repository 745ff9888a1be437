import shutil

import numpy as np
import pytest
from PIL import Image

from clamp3 import CLaMP3
from clamp3.cache import FeatureCache
from clamp3.modality import FileKind
from clamp3.pipeline import Pipeline, PipelineOptions
from tests.tiny import build_tiny_blip, tiny_model_with_tokenizer

ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny_with_tokenizer"))


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    return build_tiny_blip(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def library(reference_dir, tmp_path_factory):
    """A mixed folder: sheet music, MIDI, MTF, audio, text, an image, a bad file and an unknown one."""
    root = tmp_path_factory.mktemp("library")
    ref = reference_dir
    (root / "scores").mkdir()
    shutil.copy(ref / "xml2abc" / "xml" / "chorale_bwv66_6.mxl", root / "scores" / "bwv66.mxl")
    folk = ref / "xml2abc" / "folk_abc"
    (root / "scores" / "two_tunes.abc").write_text(
        (folk / "oneills_0002.abc").read_text() + "\n" + (folk / "essen_ballad10_0.abc").read_text()
    )
    shutil.copy(ref / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", root / "bwv66.mid")
    shutil.copy(ref / "midi2mtf" / "mtf_m3" / "tempo_changes.mtf", root / "tempo.mtf")
    shutil.copy(ref / "mert" / "audio" / "main_44k1_stereo.wav", root / "stereo.wav")
    (root / "notes.txt").write_text("a calm chorale\nfor four voices\na calm chorale\n")
    Image.fromarray(np.full((40, 40, 3), 120, dtype=np.uint8)).save(root / "cover.png")
    (root / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    (root / "data.bin").write_bytes(bytes(range(256)))
    return root


def _pipeline(model_dir, reference_dir, blip_dir, cache_dir):
    options = PipelineOptions(
        mert=str(reference_dir / "mert" / "model"), captioner=str(blip_dir), batch_size=4
    )
    return Pipeline(CLaMP3.from_pretrained(model_dir), FeatureCache(cache_dir), options)


def test_mixed_folder_embeds_every_kind_like_the_direct_api(
    model_dir, reference_dir, blip_dir, library, tmp_path
):
    pipeline = _pipeline(model_dir, reference_dir, blip_dir, tmp_path / "cache")
    result = pipeline.embed_paths([library])
    by_id = {item.id: (item, vector) for item, vector in zip(result.items, result.vectors, strict=True)}
    assert result.vectors.shape == (len(result.items), 24)
    assert [str(e) for e in result.failures] == [
        f"{library / 'broken.mid'}: truncated MIDI file: data ends at byte 10"
    ]
    assert result.skipped == [library / "data.bin"]
    assert sorted(by_id) == sorted(
        [
            str(library / "bwv66.mid"),
            str(library / "cover.png"),
            str(library / "notes.txt"),
            str(library / "scores" / "bwv66.mxl"),
            str(library / "scores" / "two_tunes.abc") + "#2",
            str(library / "scores" / "two_tunes.abc") + "#1",
            str(library / "stereo.wav"),
            str(library / "tempo.mtf"),
        ]
    )
    model = pipeline.model
    ref = reference_dir
    expected = {
        str(library / "scores" / "bwv66.mxl"): model.encode_symbolic(
            [(ref / "xml2abc" / "int_abc" / "chorale_bwv66_6.abc").read_text(encoding="utf-8")]
        ),
        str(library / "bwv66.mid"): model.encode_symbolic(
            [(ref / "midi2mtf" / "mtf_m3" / "chorale_bwv66_6.mtf").read_text(encoding="utf-8")]
        ),
        str(library / "stereo.wav"): model.encode_audio_features(
            [np.load(ref / "mert" / "features" / "main_44k1_stereo.npy")]
        ),
        str(library / "notes.txt"): model.encode_text(["a calm chorale\nfor four voices"]),
    }
    for item_id, vector in expected.items():
        np.testing.assert_allclose(by_id[item_id][1], vector[0], atol=ATOL, rtol=RTOL, err_msg=item_id)
    image, image_vector = by_id[str(library / "cover.png")]
    assert image.kind is FileKind.IMAGE and image.caption and image.data == image.caption
    np.testing.assert_allclose(image_vector, model.encode_text([image.caption])[0], atol=ATOL, rtol=RTOL)


def test_second_run_does_no_model_work(model_dir, reference_dir, blip_dir, library, tmp_path):
    first = _pipeline(model_dir, reference_dir, blip_dir, tmp_path / "cache")
    vectors = first.embed_paths([library]).vectors
    assert first.encoder_calls == 3  # one batched call per tower
    second = _pipeline(model_dir, reference_dir, blip_dir, tmp_path / "cache")
    again = second.embed_paths([library])
    assert second.encoder_calls == 0
    assert second._mert is None and second._captioner is None  # MERT and BLIP were never loaded
    np.testing.assert_array_equal(again.vectors, vectors)
    local = second.embed(again.items[:2], global_features=False)
    assert second.encoder_calls >= 1 and all(v.ndim == 2 and v.shape[1] == 32 for v in local)


def test_changed_file_misses_the_cache(model_dir, reference_dir, blip_dir, tmp_path):
    text = tmp_path / "in" / "a.txt"
    text.parent.mkdir()
    text.write_text("a calm chorale")
    pipeline = _pipeline(model_dir, reference_dir, blip_dir, tmp_path / "cache")
    before = pipeline.embed_paths([text]).vectors
    text.write_text("an irish reel")
    after = pipeline.embed_paths([text]).vectors
    assert pipeline.encoder_calls == 2 and not np.allclose(before, after)


def test_literal_texts_and_missing_paths(model_dir, reference_dir, blip_dir, tmp_path):
    pipeline = _pipeline(model_dir, reference_dir, blip_dir, tmp_path / "cache")
    items = pipeline.items_from_texts(["a calm chorale", "an irish reel"])
    np.testing.assert_array_equal(
        pipeline.embed(items), pipeline.model.encode_text(["a calm chorale", "an irish reel"])
    )
    with pytest.raises(Exception, match="nope: no such file or directory"):
        pipeline.embed_paths([tmp_path / "nope"])
