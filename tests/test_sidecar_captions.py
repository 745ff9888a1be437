"""Hand-written image captions (``<image stem>.caption.txt``): read instead of running a captioner,
and never collected as text inputs of their own when they sit beside their image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clamp3.cache import FeatureCache
from clamp3.errors import InputError
from clamp3.modality import FileKind, caption_sidecar, collect_files
from clamp3.pipeline import Pipeline, PipelineOptions
from clamp3.preprocess.captions import read_caption_sidecar


class RecordingModel:
    """Stands in for CLaMP3: records the texts the text tower is given; vector = (length, 1, 0)."""

    family = "clamp3"
    fingerprint = vector_identity = "recording-model"
    precision = "float32"
    embedding_dim = 3
    device = "cpu"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode_text(self, texts: list[str], **options) -> np.ndarray:
        self.texts.extend(texts)
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)


class FailingCaptioner:
    def caption(self, images):
        raise AssertionError("the captioner must not be called")


class CountingCaptioner:
    def __init__(self) -> None:
        self.images = 0

    def caption(self, images):
        self.images += len(images)
        return ["a blip caption"] * len(images)


def _image(path: Path) -> Path:
    Image.new("RGB", (8, 8), (200, 120, 40)).save(path)
    return path


def _pipeline(captioner, captioner_dir: str = "/no/captioner/here", cache: FeatureCache | None = None):
    pipeline = Pipeline(RecordingModel(), cache, PipelineOptions(captioner=captioner_dir))
    pipeline._captioner = captioner
    return pipeline


def test_sidecar_path_is_the_image_stem_with_caption_txt():
    assert caption_sidecar(Path("art/harp.jpg")) == Path("art/harp.caption.txt")
    assert caption_sidecar("organ.PNG") == Path("organ.caption.txt")


def test_sidecar_text_is_stripped_and_nfc(tmp_path):
    image = _image(tmp_path / "harp.png")
    (tmp_path / "harp.caption.txt").write_bytes("\ufeff  a harp in a cafe\u0301 \n\n".encode())
    assert read_caption_sidecar(image) == "a harp in a caf\u00e9"


def test_missing_or_blank_sidecar_gives_none(tmp_path):
    image = _image(tmp_path / "harp.png")
    assert read_caption_sidecar(image) is None
    (tmp_path / "harp.caption.txt").write_text(" \n\t\n")
    assert read_caption_sidecar(image) is None


def test_non_utf8_sidecar_is_an_input_error_naming_it(tmp_path):
    image = _image(tmp_path / "harp.png")
    sidecar = tmp_path / "harp.caption.txt"
    sidecar.write_bytes(b"a harp \xff")
    with pytest.raises(InputError) as raised:
        read_caption_sidecar(image)
    assert str(raised.value) == f"{sidecar}: the caption file is not UTF-8 text (byte 7)"


def test_unreadable_sidecar_is_an_input_error_naming_it(tmp_path):
    image = _image(tmp_path / "harp.png")
    (tmp_path / "harp.caption.txt").mkdir()
    with pytest.raises(InputError, match=r"harp\.caption\.txt: cannot read the caption file"):
        read_caption_sidecar(image)


def test_sidecar_caption_reaches_the_text_tower_without_a_captioner(tmp_path):
    image = _image(tmp_path / "violin.png")
    (tmp_path / "violin.caption.txt").write_text("a violin on a wooden table\n")
    pipeline = _pipeline(FailingCaptioner())
    result = pipeline.embed_paths([tmp_path])
    assert result.failures == [] and result.skipped == []
    [item] = result.items
    assert (item.id, item.kind, item.data, item.caption) == (
        str(image),
        FileKind.IMAGE,
        "a violin on a wooden table",
        "a violin on a wooden table",
    )
    assert pipeline.model.texts == ["a violin on a wooden table"]
    np.testing.assert_array_equal(result.vectors, [[26.0, 1.0, 0.0]])


def test_only_images_without_a_sidecar_are_captioned(tmp_path):
    _image(tmp_path / "organ.png")
    _image(tmp_path / "violin.png")
    (tmp_path / "violin.caption.txt").write_text("a violin")
    (tmp_path / "organ.caption.txt").write_text("   ")  # blank: the captioner decides
    captioner_dir = tmp_path / "blip"
    captioner_dir.mkdir()
    (captioner_dir / "config.json").write_text("{}")
    captioner = CountingCaptioner()
    pipeline = _pipeline(captioner, str(captioner_dir))
    items, failures = pipeline.items_from_files(
        [(tmp_path / "organ.png", FileKind.IMAGE), (tmp_path / "violin.png", FileKind.IMAGE)]
    )
    assert failures == []
    assert [(Path(item.id).name, item.caption) for item in items] == [
        ("organ.png", "a blip caption"),
        ("violin.png", "a violin"),
    ]
    assert captioner.images == 1


def test_bad_sidecar_fails_only_its_image(tmp_path):
    _image(tmp_path / "organ.png")
    _image(tmp_path / "violin.png")
    (tmp_path / "organ.caption.txt").write_bytes(b"\xfe\xfe")
    (tmp_path / "violin.caption.txt").write_text("a violin")
    items, failures = _pipeline(FailingCaptioner()).items_from_files(
        [(tmp_path / "organ.png", FileKind.IMAGE), (tmp_path / "violin.png", FileKind.IMAGE)]
    )
    assert [item.caption for item in items] == ["a violin"]
    assert [str(f) for f in failures] == [
        f"{tmp_path / 'organ.caption.txt'}: the caption file is not UTF-8 text (byte 0)"
    ]


def test_changed_sidecar_changes_the_vector_through_the_cache(tmp_path):
    (tmp_path / "in").mkdir()
    _image(tmp_path / "in" / "violin.png")
    sidecar = tmp_path / "in" / "violin.caption.txt"
    sidecar.write_text("a violin")
    cache = FeatureCache(tmp_path / "cache")
    first = _pipeline(FailingCaptioner(), cache=cache)
    before = first.embed_paths([tmp_path / "in"]).vectors
    sidecar.write_text("a violin on a wooden table")
    second = _pipeline(FailingCaptioner(), cache=cache)
    after = second.embed_paths([tmp_path / "in"]).vectors
    np.testing.assert_array_equal(before, [[8.0, 1.0, 0.0]])
    np.testing.assert_array_equal(after, [[26.0, 1.0, 0.0]])
    assert second.model.texts == ["a violin on a wooden table"]
    third = _pipeline(FailingCaptioner(), cache=cache)
    third.embed_paths([tmp_path / "in"])
    assert third.encoder_calls == 0


def test_folder_walk_skips_sidecars_of_images_only(tmp_path):
    _image(tmp_path / "harp.jpg")
    (tmp_path / "harp.caption.txt").write_text("a harp")
    (tmp_path / "sub").mkdir()
    _image(tmp_path / "sub" / "Organ.PNG")
    (tmp_path / "sub" / "Organ.caption.txt").write_text("organ pipes")
    (tmp_path / "lone.caption.txt").write_text("no image beside me")
    (tmp_path / "notes.txt").write_text("a calm chorale")
    found = collect_files([tmp_path])
    assert [(p.relative_to(tmp_path).as_posix(), kind) for p, kind in found.files] == [
        ("harp.jpg", FileKind.IMAGE),
        ("lone.caption.txt", FileKind.TEXT),
        ("notes.txt", FileKind.TEXT),
        ("sub/Organ.PNG", FileKind.IMAGE),
    ]
    assert found.skipped == []


def test_sidecar_named_as_an_argument_is_a_text_input(tmp_path):
    _image(tmp_path / "harp.jpg")
    sidecar = tmp_path / "harp.caption.txt"
    sidecar.write_text("a harp")
    assert collect_files([sidecar]).files == [(sidecar, FileKind.TEXT)]
