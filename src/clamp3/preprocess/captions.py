"""Caption files: an image described by the text of ``<image stem>.caption.txt`` beside it needs no
captioner (and none of the image packages)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from clamp3.errors import InputError
from clamp3.modality import caption_sidecar


def read_caption_sidecar(image: str | Path) -> str | None:
    """The caption written in ``image``'s caption file (``<image stem>.caption.txt`` beside it), stripped
    and NFC-normalised; ``None`` when there is no such file or it holds only white space.

    Raises :class:`InputError` naming the caption file when it cannot be read or is not UTF-8.
    """
    sidecar = caption_sidecar(image)
    try:
        data = sidecar.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(sidecar, f"cannot read the caption file ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(sidecar, f"the caption file is not UTF-8 text (byte {exc.start})") from exc
    return unicodedata.normalize("NFC", text).strip() or None
