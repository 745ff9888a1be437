"""The bundled default model's architecture and the settings of the recipe that trains it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig
from clamp3.train.opendata.wad import DEBIAN_FREEDOOM_WADS

if TYPE_CHECKING:
    from clamp3.train.loop import TrainSettings

FRONT_END = "pitchgram-v1"


def bundled_config(name: str = "default") -> CLaMP3Config:
    """The bundled model: frozen e5-small text tower, small M3 symbolic tower, pitchgram audio tower."""
    from clamp3.hub.backbones import E5_SMALL, E5_SMALL_ENCODER  # torch: imported on use, not by the CLI
    from clamp3.preprocess.frontends import FRONT_ENDS

    small = {"hidden_size": 192, "num_heads": 4, "intermediate_size": 768, "pooler": False}
    return CLaMP3Config(
        text=TextConfig(
            E5_SMALL_ENCODER,
            architecture="bert",
            max_length=128,
            tokenizer=None,
            backbone=E5_SMALL,
            prefix="query: ",
        ),
        symbolic=SymbolicConfig(EncoderConfig(num_layers=3, max_positions=96, **small), max_patches=96),
        audio=AudioConfig(
            EncoderConfig(num_layers=2, max_positions=128, **small),
            max_frames=128,
            features=FRONT_END,
            input_size=FRONT_ENDS[FRONT_END].dim,
        ),
        projection_dim=384,
        name=name,
    )


@dataclass(frozen=True)
class DefaultModelSettings:
    """Everything that decides the bundled model; the same settings rebuild the same model."""

    work: Path
    """Folder for the data set, the derived inputs, checkpoints and the final model."""
    opendata: Path | None = None
    """An open-data set built before (default: built into ``work/opendata``)."""
    seed: int = 42
    m3_epochs: int = 0
    """Epochs of M3 pretraining of the symbolic tower before the alignment (0: none, the alignment starts
    from random weights). Off by default: the bundled recipe's best validation mean MRR fell from 0.651
    to 0.624 after 2 epochs and to 0.631 after 8 (MODEL_CARD.md, "M3 pretraining, measured")."""
    m3_batch_size: int = 32
    m3_learning_rate: float = 5e-4
    m3_decoded_patches: int | None = 2
    """Corrupted patches per sequence that the M3 decoder reconstructs (its cost dominates on a CPU)."""
    symbolic_lr_scale: float = 1.0
    """Learning-rate factor of the symbolic tower during the alignment (``lr_scales``); below 1 the
    alignment moves an M3-pretrained tower less than the parts it trains from scratch. Measured once:
    0.2 after 8 epochs of M3 gave a best validation mean MRR of 0.445 (against 0.631 at 1)."""
    freedoom: tuple[Path, ...] = DEBIAN_FREEDOOM_WADS
    """Doom WADs whose MIDI music joins the M3 pretraining (Freedoom's, BSD-3-style licence)."""
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    audio_seconds: float = 24.0
    """Length of each rendering (from the start of the tune)."""
    text_variants: int = 4
    """Texts embedded per record: all English lines, all translated lines, then text-dropout draws."""
    noisy_midi: int = 2
    """Transcription-like MIDI variants per record, besides the score's own MIDI."""
    transposed_share: float = 0.0
    """Chance that a draw of a training tune takes its transposed copy (the open-data set's
    ``transposed.jsonl``: ABC, MIDI, rendering and texts all transposed) instead of the tune itself; 0
    leaves the copies out (they are then neither built, rendered nor embedded). Off by default: at 0.5
    the best validation mean MRR rose from 0.651 to 0.656, but test audio->ABC fell from 0.786 to 0.749
    and performances in another key still did not find their scores (MODEL_CARD.md, "Transposed
    copies, measured")."""
    transcribed_seconds: float = 12.0
    """Length of the rendering's opening that basic-pitch transcribes into one more MIDI variant (longer
    than the symbolic tower's 96-patch window for nearly every tune, at half the cost of the whole)."""
    workers: int = 2
    max_steps: int | None = None
    show_progress: bool = True

    @property
    def data(self) -> Path:
        return self.opendata or self.work / "opendata"

    @property
    def inputs(self) -> Path:
        return self.work / "inputs"

    @property
    def pretraining(self) -> Path:
        return self.work / "pretraining"

    @property
    def training(self) -> Path:
        return self.work / "training"

    @property
    def model(self) -> Path:
        return self.work / "model"

    def trainer(self, output: Path, epochs: int, learning_rate: float, **extra: object) -> TrainSettings:
        """Trainer settings of a stage: warm-up, cosine decay to 5 %, weight decay 0.01, the seed."""
        from clamp3.train.loop import TrainSettings

        return TrainSettings(
            output=output,
            epochs=epochs,
            learning_rate=learning_rate,
            warmup_steps=self.warmup_steps,
            min_lr_ratio=0.05,
            weight_decay=0.01,
            seed=self.seed,
            tensorboard=False,
            show_progress=self.show_progress,
            **extra,
        )
