"""M3 pretraining of the bundled model's symbolic tower, before the contrastive alignment.

The tower learns to rebuild masked, shuffled or kept patches (:mod:`clamp3.train.m3`) of every
symbolic text the recipe may train on: the training tunes' interleaved ABC, all their MIDI variants
(the score's, the transcription-like ones and basic-pitch's transcription) and Freedoom's game music
(:mod:`clamp3.train.opendata.wad`), which has no score or text and so is used here only. Validation
uses the validation tunes' ABC and score MIDI. The test split is never seen.

A Freedoom piece is thousands of patches long, far more than one training window, so it is cut into
consecutive pieces of about ``max_patches`` patches, each keeping the ``ticks_per_beat`` header line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from clamp3.config import CLaMP3Config
from clamp3.errors import Clamp3Error
from clamp3.model.m3 import M3Config, M3DecoderConfig, M3Model
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.preprocess.midi import midi_to_mtf
from clamp3.progress import progress_bar
from clamp3.train.data import remove_instrument_info
from clamp3.train.default_model.inputs import save_text
from clamp3.train.default_model.settings import DefaultModelSettings
from clamp3.train.default_model.task import TuneViews
from clamp3.train.loop import Trainer
from clamp3.train.m3 import M3PretrainTask, M3TaskSettings
from clamp3.train.opendata.wad import midi_lumps

DECODER = M3DecoderConfig(num_layers=2, num_heads=4, intermediate_size=768)
"""The character decoder that pretraining uses and then discards."""


def check_freedoom(settings: DefaultModelSettings) -> None:
    """Fail before any long work when a Freedoom WAD is missing."""
    for wad in settings.freedoom:
        if not wad.is_file():
            raise Clamp3Error(
                f"{wad}: Freedoom WAD not found; install the Debian package freedoom (or unpack it: "
                "apt-get download freedoom && dpkg-deb -x freedoom_*.deb DIR) and name the WADs with "
                "--freedoom-wad, or pass --m3-epochs 0"
            )


def freedoom_texts(settings: DefaultModelSettings) -> list[str]:
    """The MTF of every MIDI music lump of the Freedoom WADs, cached under ``inputs/freedoom``."""
    texts = []
    for wad in settings.freedoom:
        folder = settings.inputs / "freedoom" / wad.stem
        lumps = midi_lumps(wad)
        with progress_bar(len(lumps), f"freedoom {wad.stem}", settings.show_progress) as bar:
            for lump in lumps:
                path = folder / f"{lump.name}.mtf"
                if path.is_file():
                    text = path.read_text(encoding="utf-8")
                else:
                    text = midi_to_mtf(lump.data, name=f"{wad}:{lump.name}")
                    save_text(path, text)
                texts.append(text)
                bar.advance(1)
    return texts


def split_mtf(text: str, patchilizer: M3Patchilizer) -> list[str]:
    """Consecutive parts of an MTF text of about ``patchilizer.max_patches`` patches each (equal line
    counts), each starting with the text's header line; a short text comes back whole."""
    header, *lines = text.split("\n")
    parts = math.ceil(len(patchilizer.split(text)) / patchilizer.max_patches)
    if parts <= 1 or not lines:
        return [text]
    size = math.ceil(len(lines) / parts)
    return ["\n".join([header, *lines[start : start + size]]) for start in range(0, len(lines), size)]


def pretraining_texts(
    train: Sequence[TuneViews],
    validation: Sequence[TuneViews],
    extra_mtf: Sequence[str],
    patchilizer: M3Patchilizer,
) -> tuple[list[str], list[str]]:
    """(training texts, validation texts) for :class:`~clamp3.train.m3.M3PretrainTask`; ``extra_mtf``
    (Freedoom) is split into parts of the patchilizer's ``max_patches``."""
    training = [remove_instrument_info(tune.abc) for tune in train]
    training += [midi for tune in train for midi in tune.midi]
    training += [part for text in extra_mtf for part in split_mtf(text, patchilizer)]
    held_out = [remove_instrument_info(tune.abc) for tune in validation]
    held_out += [tune.midi[0] for tune in validation]
    return training, held_out


def symbolic_texts(
    settings: DefaultModelSettings,
    config: CLaMP3Config,
    train: Sequence[TuneViews],
    validation: Sequence[TuneViews],
) -> tuple[list[str], list[str]]:
    """:func:`pretraining_texts` of the tunes and Freedoom's music (converted on first use)."""
    patchilizer = M3Patchilizer(config.symbolic.patch_size, config.symbolic.max_patches)
    return pretraining_texts(train, validation, freedoom_texts(settings), patchilizer)


def pretrain_symbolic(
    settings: DefaultModelSettings,
    config: CLaMP3Config,
    texts: Sequence[str],
    held_out: Sequence[str],
    device: torch.device | None = None,
) -> Path:
    """Run (or resume) M3 pretraining on ``texts``, validating on ``held_out`` (see
    :func:`symbolic_texts`); returns the best checkpoint, ``pretraining/best/m3.pth``."""
    best = settings.pretraining / "best" / "m3.pth"
    torch.manual_seed(settings.seed)
    model = M3Model(M3Config(config.symbolic, DECODER)).to(device or "cpu")
    task = M3PretrainTask(
        model,
        list(texts),
        list(held_out),
        M3TaskSettings(
            batch_size=settings.m3_batch_size,
            decoded_per_sequence=settings.m3_decoded_patches,
            seed=settings.seed,
        ),
    )
    train = settings.trainer(
        settings.pretraining, settings.m3_epochs, settings.m3_learning_rate, checkpoint_every=100
    )
    state = Trainer(task, train, device=device).fit()
    if not state.finished:
        raise Clamp3Error(f"M3 pretraining stopped at epoch {state.epoch}; run the command again to resume")
    return best
