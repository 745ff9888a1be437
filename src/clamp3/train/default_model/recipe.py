"""``clamp3 train default-model``: the bundled model, rebuilt from nothing but open data.

Stages, each resumable (re-running the command continues where it stopped):

1. the open-data set (:mod:`clamp3.train.opendata.build`) unless ``--data`` names a built one;
2. derived inputs (:mod:`.inputs`): renderings' front-end features, noisy MIDI, basic-pitch
   transcriptions of the renderings, text vectors; with ``transposed_share`` > 0 also for the training
   pieces' transposed copies (off by default);
3. with ``m3_epochs`` > 0, M3 pretraining of the symbolic tower (:mod:`.pretrain`) with checkpoints
   in ``work/pretraining`` (off by default: it lowered validation MRR at the budget tried);
4. contrastive training (:mod:`.task`), from the pretrained symbolic tower if there is one, with
   checkpoints in ``work/training``;
5. the best model, exported (float32 weights) to ``work/model``.

Every random choice comes from the seed, so two runs with the same settings give the same model on
the same hardware and library versions.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from clamp3.encoder import CLaMP3
from clamp3.model.m3 import load_m3_encoder_into
from clamp3.train.default_model import inputs
from clamp3.train.default_model.pretrain import check_freedoom, pretrain_symbolic, symbolic_texts
from clamp3.train.default_model.settings import DefaultModelSettings, bundled_config
from clamp3.train.default_model.task import SYMBOLIC_TOWER, AlignTask, TuneViews
from clamp3.train.loop import Trainer, TrainState
from clamp3.train.opendata.build import original_id


def prepare(settings: DefaultModelSettings, encoder: CLaMP3) -> dict[str, list[TuneViews]]:
    """Build what is missing and return the training and validation tunes, and (``transposed``) the
    transposed copies unless ``settings.transposed_share`` is 0."""
    if not (settings.data / "manifest.json").is_file():
        from clamp3.train.opendata.build import BuildSettings, build

        options = BuildSettings(
            seed=settings.seed, transposed=settings.transposed_share > 0, workers=settings.workers
        )
        build(settings.data, settings=options)
    failures: dict[str, list[str]] = {}
    tunes: dict[str, list[TuneViews]] = {}
    copies = (inputs.TRANSPOSED,) if settings.transposed_share else ()
    for split in (*inputs.SPLITS, *copies):
        pieces = inputs.read_pieces(settings.data, split)
        failures[f"audio {split}"] = inputs.build_audio(settings, split, pieces)
        failures[f"midi {split}"] = inputs.build_midi(settings, split, pieces)
        if split not in (*inputs.TRAINING_SPLITS, *copies):
            continue
        if split in inputs.TRAINING_SPLITS:
            failures[f"transcription {split}"] = inputs.build_transcriptions(settings, split, pieces)
        inputs.build_text(settings, split, pieces, encoder)
        text = np.load(inputs.text_path(settings, split))
        tunes[split] = [
            _views(settings, split, piece, vectors)
            for piece, vectors in zip(pieces, text, strict=True)
            if inputs.audio_path(settings, split, piece).is_file()
            and all(path.is_file() for path in inputs.midi_paths(settings, split, piece))
        ]
    inputs.write_summary(settings, failures)
    for stage, failed in failures.items():
        for failure in failed:
            print(f"skipped ({stage}): {failure}", file=sys.stderr)
    return tunes


def _views(settings: DefaultModelSettings, split: str, piece: inputs.Piece, text: np.ndarray) -> TuneViews:
    return TuneViews(
        id=piece.id,
        text=text,
        eval_text=piece.example.eval_text,
        abc=piece.abc.read_text(encoding="utf-8"),
        midi=tuple(path.read_text(encoding="utf-8") for path in inputs.midi_paths(settings, split, piece)),
        audio=np.load(inputs.audio_path(settings, split, piece)),
    )


def train_default_model(settings: DefaultModelSettings, device: str | None = None) -> TrainState:
    """Run every stage; the model ends up in ``settings.model``."""
    if settings.m3_epochs:
        check_freedoom(settings)
    torch.manual_seed(settings.seed)
    encoder = CLaMP3.new(bundled_config(), device=device or "cpu")
    tunes = prepare(settings, encoder)
    if settings.m3_epochs:
        texts = symbolic_texts(settings, encoder.config, tunes["train"], tunes["validation"])
        pretrained = pretrain_symbolic(settings, encoder.config, *texts, encoder.device)
        load_m3_encoder_into(encoder.model, pretrained)
    copies = {original_id(tune.id): tune for tune in tunes.get(inputs.TRANSPOSED, [])}
    task = AlignTask(
        encoder,
        tunes["train"],
        tunes["validation"],
        settings.batch_size,
        settings.seed,
        copies=copies,
        copy_share=settings.transposed_share,
    )
    train = settings.trainer(
        settings.training,
        settings.epochs,
        settings.learning_rate,
        max_steps=settings.max_steps,
        lr_scales={SYMBOLIC_TOWER: settings.symbolic_lr_scale},
    )
    state = Trainer(task, train).fit()
    if state.finished:
        CLaMP3.from_pretrained(settings.training / "best", device="cpu").save_pretrained(settings.model)
    return state
