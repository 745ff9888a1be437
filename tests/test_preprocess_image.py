"""Images -> captions, with a tiny randomly initialised BLIP built locally (no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clamp3.errors import CheckpointError, InputError
from clamp3.preprocess.image import BlipCaptioner, CaptionResult, caption_files, load_image
from tests.tiny import BLIP_WORDS as WORDS
from tests.tiny import build_tiny_blip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="module")
def captioner(blip_dir: Path) -> BlipCaptioner:
    return BlipCaptioner.from_pretrained(blip_dir, device="cpu")


def _noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five valid images of different formats and modes."""
    directory = tmp_path_factory.mktemp("images")
    specs = [
        ("rgb.png", Image.fromarray(_noise(1, (40, 50, 3)), "RGB")),
        ("photo.jpeg", Image.fromarray(_noise(2, (48, 48, 3)), "RGB")),
        ("lossless.webp", Image.fromarray(_noise(3, (30, 60, 3)), "RGB")),
        ("alpha.png", Image.fromarray(_noise(4, (32, 32, 4)), "RGBA")),
        ("grey.jpg", Image.fromarray(_noise(5, (64, 32)), "L")),
    ]
    paths = []
    for name, image in specs:
        path = directory / name
        image.save(path, lossless=True) if name.endswith(".webp") else image.save(path)
        paths.append(path)
    return paths


def _captions(results: Sequence[CaptionResult]) -> list[str | None]:
    return [result.caption for result in results]


def test_captions_are_deterministic_vocabulary_strings(
    blip_dir: Path, captioner: BlipCaptioner, image_files: list[Path]
) -> None:
    first = caption_files(image_files, captioner, batch_size=5)
    again = caption_files(image_files, BlipCaptioner.from_pretrained(blip_dir, device="cpu"), batch_size=5)
    assert _captions(first) == _captions(again)
    assert [r.path for r in first] == image_files
    assert all(r.error is None and isinstance(r.caption, str) for r in first)
    assert len({r.caption for r in first}) > 1, "different images should get different captions"
    for result in first:
        words = result.caption.split()
        assert words and set(words) <= set(WORDS), result.caption
        assert len(words) == 19  # max_length 20 counts the start token; "[DEC]" is skipped


def test_same_caption_alone_and_in_a_batch(captioner: BlipCaptioner, image_files: list[Path]) -> None:
    batched = caption_files(image_files, captioner, batch_size=5)
    alone = caption_files(image_files, captioner, batch_size=1)
    assert _captions(alone) == _captions(batched)
    assert caption_files(image_files[2:3], captioner, batch_size=4)[0].caption == batched[2].caption


def test_jpeg_and_webp_are_captioned_like_their_decoded_pixels(
    captioner: BlipCaptioner, image_files: list[Path]
) -> None:
    webp = image_files[2]
    expected = captioner.caption([Image.fromarray(_noise(3, (30, 60, 3)), "RGB")])
    assert caption_files([webp], captioner)[0].caption == expected[0]  # lossless: identical pixels
    jpeg = caption_files([image_files[1]], captioner)[0]
    assert jpeg.error is None and jpeg.caption


def test_rgba_and_grayscale_are_converted_to_rgb(image_files: list[Path]) -> None:
    for path in image_files[3:]:
        loaded = load_image(path)
        assert loaded.mode == "RGB"
        with Image.open(path) as original:
            assert original.mode in {"RGBA", "L"}
            assert loaded.size == original.size
            np.testing.assert_array_equal(np.asarray(loaded), np.asarray(original.convert("RGB")))
    grey = np.asarray(load_image(image_files[4]))
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])


def test_captioner_converts_non_rgb_images_itself(captioner: BlipCaptioner, image_files: list[Path]) -> None:
    with Image.open(image_files[3]) as rgba:
        rgba.load()
        assert captioner.caption([rgba]) == captioner.caption([rgba.convert("RGB")])


def test_corrupt_and_missing_files_are_reported_without_stopping_others(
    tmp_path: Path, captioner: BlipCaptioner, image_files: list[Path]
) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(image_files[4].read_bytes()[:200])
    missing = tmp_path / "missing.webp"
    paths = [image_files[0], corrupt, image_files[1], truncated, missing]
    progress: list[int] = []
    results = caption_files(paths, captioner, batch_size=2, on_progress=progress.append)
    expected = caption_files([image_files[0], image_files[1]], captioner)
    assert [r.path for r in results] == paths
    assert [results[0].caption, results[2].caption] == _captions(expected)
    for index, bad in ((1, corrupt), (3, truncated), (4, missing)):
        error = results[index].error
        assert results[index].caption is None
        assert isinstance(error, InputError)
        assert error.path == str(bad)
        assert str(error).startswith(f"{bad}: ") and "\n" not in str(error)
    assert "no such file" in str(results[4].error)
    assert progress == [2, 2, 1]


class _RecordingCaptioner:
    """Returns scripted captions and records the size of every batch it receives."""

    def __init__(self, captions: dict[tuple[int, int], str]) -> None:
        self.captions = captions
        self.batches: list[int] = []

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        self.batches.append(len(images))
        assert all(image.mode == "RGB" for image in images)
        return [self.captions.get(image.size, "  a picture  ") for image in images]


def test_batching_order_and_empty_captions_with_a_plugged_in_captioner(tmp_path: Path) -> None:
    paths = []
    for index in range(7):
        path = tmp_path / f"{index}.png"
        Image.new("L", (10 + index, 10)).save(path)
        paths.append(path)
    fake = _RecordingCaptioner({(12, 10): "", (15, 10): "a red dog"})
    results = caption_files(paths, fake, batch_size=3)
    assert fake.batches == [3, 3, 1]
    assert _captions(results) == [
        "a picture",
        "a picture",
        None,
        "a picture",
        "a picture",
        "a red dog",
        "a picture",
    ]
    assert str(results[2].error) == f"{paths[2]}: the captioner produced an empty caption"


def test_max_length_limits_the_caption(blip_dir: Path, image_files: list[Path]) -> None:
    short = BlipCaptioner.from_pretrained(blip_dir, device="cpu", max_length=4)
    for result in caption_files(image_files, short, batch_size=5):
        assert result.caption is not None and len(result.caption.split()) == 3


def test_bad_arguments_and_checkpoints(tmp_path: Path, captioner: BlipCaptioner) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        caption_files([], captioner, batch_size=0)
    assert caption_files([], captioner) == []
    assert captioner.caption([]) == []
    with pytest.raises(CheckpointError, match=str(tmp_path / "nowhere")):
        BlipCaptioner.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="cannot load a BLIP captioning model"):
        BlipCaptioner.from_pretrained(tmp_path)
