"""Per-patch features of an M3 encoder: what the reference's ``extract_m3.py`` writes.

The input is symbolic model input (interleaved ABC or MTF), patchilized with the special patches
and cut into segments of ``max_patches`` (the last one overlapping, as
:func:`~clamp3.model.segments.split_segments` cuts them). Each segment runs alone, unpadded; its last
hidden states are kept without the overlap, giving
``(1, n_patches, hidden)`` float32. The weights are the encoder half of an M3 checkpoint (official
layout: the clamp2 repository's M3 file, or ``best/m3.pth`` of ``clamp3 train m3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clamp3.config import SymbolicConfig
from clamp3.errors import CheckpointError
from clamp3.model.checkpoint import load_weights_into, read_official_checkpoint
from clamp3.model.m3 import M3Config
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.model.segments import split_segments
from clamp3.model.towers import M3PatchEncoder


@dataclass
class M3FeatureExtractor:
    encoder: M3PatchEncoder
    patchilizer: M3Patchilizer
    device: torch.device

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, config: SymbolicConfig | None = None, device: str | None = None
    ) -> M3FeatureExtractor:
        """The encoder of an M3 checkpoint; ``config`` defaults to the official M3 sizes."""
        config = config or M3Config.official().symbolic
        state = read_official_checkpoint(Path(path))
        weights = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        if not weights:
            raise CheckpointError(f"{path}: not an M3 checkpoint (no encoder.* keys)")
        encoder = M3PatchEncoder(config)
        load_weights_into(encoder, weights, str(path))
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(encoder.eval().to(target), M3Patchilizer(config.patch_size, config.max_patches), target)

    def features(self, text: str) -> np.ndarray:
        """``(1, n_patches, hidden)`` last hidden states of interleaved ABC or MTF ``text``."""
        patches = self.patchilizer.encode(text, add_special_patches=True)
        rows = []
        with torch.inference_mode():
            for segment in split_segments(len(patches), self.patchilizer.max_patches):
                piece = torch.from_numpy(patches[segment.start : segment.stop])[None].to(self.device)
                hidden = self.encoder(piece, torch.ones(piece.shape[:2], device=self.device))[0]
                rows.append(hidden[segment.length - segment.keep :].float().cpu().numpy())
        return np.concatenate(rows)[None].astype(np.float32)
