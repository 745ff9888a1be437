"""The registry: every model name clamp3 knows, the hub files behind it and their licences.

Entries are plain immutable data; :func:`get_entry` resolves a name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from clamp3.config import CLaMP3Config
from clamp3.errors import ModelNotAvailableError

EntryKind = Literal["clamp3", "clamp1", "tokenizer", "audio-features", "captioner"]

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
"""Models shipped inside the package (``clamp3/bundled/<name>/``)."""

_CLAMP3_SUFFIX = (
    "_h_size_768_t_model_FacebookAI_xlm-roberta-base_t_length_128_a_size_768_a_layers_12"
    "_a_length_128_s_size_768_s_layers_12_p_size_64_p_length_512.pth"
)
SAAS_FILE = "weights_clamp3_saas" + _CLAMP3_SUFFIX
C2_FILE = "weights_clamp3_c2" + _CLAMP3_SUFFIX


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model: a hub repository, the files clamp3 needs from it, and its licence."""

    name: str
    kind: EntryKind
    repo: str
    files: tuple[str, ...]
    licence: str
    summary: str
    revision: str = "main"
    notice: str = ""
    requires: tuple[str, ...] = ()
    config: Callable[[], CLaMP3Config] | None = None
    bundled: bool = False
    """Shipped inside the package (``files`` are in :attr:`local_dir`): nothing to download."""

    @property
    def local_dir(self) -> Path:
        """The folder of a bundled model."""
        return BUNDLED_DIR / self.name


def _official(name: str) -> Callable[[], CLaMP3Config]:
    return lambda: CLaMP3Config.official(name)


REGISTRY: Mapping[str, ModelEntry] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            ModelEntry(
                name="default",
                kind="clamp3",
                repo="",
                files=("model.safetensors", "config.json"),
                licence="MIT",
                summary="clamp3's bundled model, trained on open data only (see MODEL_CARD.md in the "
                "repository); used when the official weights are not in the local cache",
                bundled=True,
            ),
            ModelEntry(
                name="saas",
                kind="clamp3",
                repo="sander-wood/clamp3",
                files=(SAAS_FILE,),
                licence="MIT",
                summary="CLaMP 3 SAAS: the released default, strongest on audio",
                requires=("xlm-roberta-base",),
                config=_official("saas"),
            ),
            ModelEntry(
                name="c2",
                kind="clamp3",
                repo="sander-wood/clamp3",
                files=(C2_FILE,),
                licence="MIT",
                summary="CLaMP 3 C2: strongest on symbolic music (sheet music, MIDI)",
                requires=("xlm-roberta-base",),
                config=_official("c2"),
            ),
            ModelEntry(
                name="xlm-roberta-base",
                kind="tokenizer",
                repo="FacebookAI/xlm-roberta-base",
                files=("config.json", "tokenizer_config.json", "tokenizer.json", "sentencepiece.bpe.model"),
                licence="MIT",
                summary="XLM-R tokenizer of the official CLaMP 3 text tower",
            ),
            ModelEntry(
                name="clamp1-s512",
                kind="clamp1",
                repo="sander-wood/clamp-small-512",
                files=("config.json", "pytorch_model.bin"),
                licence="MIT",
                summary="CLaMP 1 (CLaMP-S/512): English text and ABC notation, up to 512 patches per piece",
                requires=("distilroberta-base",),
            ),
            ModelEntry(
                name="clamp1-s1024",
                kind="clamp1",
                repo="sander-wood/clamp-small-1024",
                files=("config.json", "pytorch_model.bin"),
                licence="MIT",
                summary="CLaMP 1 (CLaMP-S/1024): English text and ABC notation, up to 1024 patches per piece",
                requires=("distilroberta-base",),
            ),
            ModelEntry(
                name="distilroberta-base",
                kind="tokenizer",
                repo="distilbert/distilroberta-base",
                files=("config.json", "vocab.json", "merges.txt", "tokenizer.json"),
                licence="Apache-2.0",
                summary="distilroberta-base tokenizer of the CLaMP 1 text encoder",
            ),
            ModelEntry(
                name="mert-v1-95m",
                kind="audio-features",
                repo="m-a-p/MERT-v1-95M",
                files=("config.json", "preprocessor_config.json", "pytorch_model.bin"),
                licence="CC-BY-NC-4.0",
                summary="MERT audio features that the official CLaMP 3 audio tower reads",
                notice="MERT-v1-95M weights are licensed CC BY-NC 4.0: non-commercial use only.",
            ),
            ModelEntry(
                name="blip-base",
                kind="captioner",
                repo="Salesforce/blip-image-captioning-base",
                files=(
                    "config.json",
                    "preprocessor_config.json",
                    "pytorch_model.bin",
                    "special_tokens_map.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "vocab.txt",
                ),
                licence="BSD-3-Clause",
                summary="BLIP image captioner: images are searched through their captions",
            ),
        )
    }
)


def get_entry(name: str) -> ModelEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise ModelNotAvailableError(f"unknown model name {name!r}; known names: {known}") from None
