"""The symmetric contrastive (CLIP) loss over a batch gathered from every process."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clamp3.train.distributed import ProcessGroup, gather_with_grad


def clip_loss(
    text: torch.Tensor, music: torch.Tensor, logit_scale: torch.Tensor, group: ProcessGroup
) -> torch.Tensor:
    """Mean of the text->music and music->text cross-entropies, pair ``i`` being the positive of ``i``.

    Features of all processes are gathered with gradients, so every process computes the loss of the
    whole global batch (as the reference does); like the reference, the dot products are not normalised.
    """
    text = gather_with_grad(text, group)
    music = gather_with_grad(music, group)
    logits = logit_scale * text.float() @ music.float().t()
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
