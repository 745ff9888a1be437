"""Image input: an image is searched through a caption of it, which the text tower then embeds.

The reference captions every image with BLIP (``Salesforce/blip-image-captioning-base``): open
with PIL, convert to RGB, run the BLIP processor, ``generate()`` with the checkpoint's defaults
(greedy search, at most 20 tokens counting the start token) and decode without special tokens.
:class:`BlipCaptioner` does the same, a batch of images at a time. Any other model can be used
through the :class:`Captioner` protocol. An image with a hand-written caption file beside it
(``harp.caption.txt`` for ``harp.jpg``, see :func:`clamp3.preprocess.captions.read_caption_sidecar`)
needs no captioner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image
from transformers import BlipForConditionalGeneration, BlipProcessor

from clamp3.errors import CheckpointError, InputError

# transformers 4.x generated at most ``max_length=20`` tokens, start token included, for a checkpoint
# that sets no limit (the reference's case); transformers 5 would allow 20 *new* tokens instead.
DEFAULT_MAX_LENGTH = 20


class Captioner(Protocol):
    """Anything that turns a batch of RGB images into one caption per image, in order."""

    def caption(self, images: Sequence[Image.Image]) -> list[str]: ...


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BlipCaptioner:
    """BLIP image captioning (``BlipProcessor`` + ``BlipForConditionalGeneration``), greedy decoding."""

    def __init__(
        self,
        model: BlipForConditionalGeneration,
        processor: BlipProcessor,
        *,
        device: str | torch.device | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (start token + one word), got {max_length}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> BlipCaptioner:
        """Load a BLIP captioning checkpoint and its processor from a local ``directory``.

        ``device=None`` picks CUDA when available, else CPU (the reference always uses the CPU).
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: not a directory holding a BLIP captioning model")
        try:
            processor = BlipProcessor.from_pretrained(directory)
            model = BlipForConditionalGeneration.from_pretrained(directory)
        except (OSError, ValueError, KeyError) as exc:
            reason = _first_line(exc)
            raise CheckpointError(f"{directory}: cannot load a BLIP captioning model ({reason})") from exc
        return cls(model, processor, device=device, max_length=max_length)

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, in the order given; images are converted to RGB first."""
        if not images:
            return []
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        inputs = self.processor(images=rgb, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            tokens = self.model.generate(**inputs, max_length=self.max_length)
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file completely and return it in RGB mode.

    Raises :class:`InputError` naming the file when it is missing, unreadable or not a valid image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise InputError(path, "no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise InputError(path, "not a readable image (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(path, f"cannot decode the image ({_first_line(exc)})") from exc


@dataclass(frozen=True)
class CaptionResult:
    """The caption used for one image file, or the reason it has none."""

    path: Path
    caption: str | None = None
    error: InputError | None = None


def _caption_chunk(paths: Sequence[Path], captioner: Captioner) -> list[CaptionResult]:
    """Caption the readable images among ``paths`` in one call; the others get their error."""
    results: list[CaptionResult | None] = [None] * len(paths)
    loaded: list[tuple[int, Image.Image]] = []
    for index, path in enumerate(paths):
        try:
            loaded.append((index, load_image(path)))
        except InputError as exc:
            results[index] = CaptionResult(path, error=exc)
    texts = captioner.caption([image for _, image in loaded]) if loaded else []
    if len(texts) != len(loaded):
        raise RuntimeError(f"the captioner returned {len(texts)} captions for {len(loaded)} images")
    for (index, _), text in zip(loaded, texts, strict=True):
        path = paths[index]
        caption = text.strip()
        error = None if caption else InputError(path, "the captioner produced an empty caption")
        results[index] = CaptionResult(path, caption or None, error)
    return [result for result in results if result is not None]


def caption_files(
    paths: Sequence[str | Path],
    captioner: Captioner,
    batch_size: int = 8,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> list[CaptionResult]:
    """Caption image files, ``batch_size`` files per captioner call; one result per path, in order.

    A file that cannot be read or decoded, or whose caption comes out empty, gets an
    :class:`InputError` in its result and does not stop the others. ``on_progress(n)`` is called
    after each batch with the number of files it settled.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    files = [Path(p) for p in paths]
    results: list[CaptionResult] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        results.extend(_caption_chunk(chunk, captioner))
        if on_progress is not None:
            on_progress(len(chunk))
    return results
