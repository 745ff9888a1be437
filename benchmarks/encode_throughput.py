"""Symbolic encoding throughput: the reference's method against clamp3's batched encoder.

Both run the full-size official architecture (random weights) on the same synthetic pieces of
realistic lengths (most 20-150 patches, a few longer than one 512-patch segment):

* reference method - one piece at a time, every segment padded to 512 patches, the one-hot
  patch tensor built explicitly, eager attention (what transformers 4.40 used);
* clamp3 - ``CLaMP3.encode_symbolic``: segments of all pieces sorted by length and batched,
  each batch padded to its longest member, one-hot replaced by an embedding-bag sum.

It prints files/s of both, the speed-up, and the largest cosine distance between the two
results (must be < 1e-5 in float32, < 1e-2 under bf16/fp16 autocast). Usage:
``python benchmarks/encode_throughput.py [--pieces 300] [--device cuda] [--dtype bf16]``; the reference
method always runs in float32, on the same device.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from clamp3 import CLaMP3, CLaMP3Config
from clamp3.model.segments import split_segments
from clamp3.model.towers import CLaMP3Model

NOTES = "CDEFGABcdefgab"


def synthetic_piece(rng: np.random.Generator, bars: int, voices: int) -> str:
    """Interleaved ABC with ``bars`` lines of ``voices`` bars: about ``bars * voices + 8`` patches."""
    header = ["X:1", "L:1/8", "Q:1/4=96", "M:4/4", "K:G"]
    header += [f'V:{v + 1} treble nm="Part {v + 1}"' for v in range(voices)]
    lines = []
    for _ in range(bars):
        line = ""
        for v in range(voices):
            notes = "".join(rng.choice(list(NOTES), size=int(rng.integers(4, 9))))
            line += f"[V:{v + 1}]{notes}|"
        lines.append(line)
    return "\n".join(header + lines) + "\n"


def make_corpus(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pieces = []
    for i in range(count):
        long_piece = i % 50 == 7  # 2 % of the pieces exceed one segment
        target = (
            int(rng.integers(520, 1100)) if long_piece else int(np.clip(rng.lognormal(4.2, 0.45), 20, 150))
        )
        voices = int(rng.integers(1, 4))
        pieces.append(synthetic_piece(rng, max(1, (target - 8) // voices), voices))
    return pieces


def reference_method(
    model: CLaMP3Model, patches: np.ndarray, segment_length: int, device: torch.device
) -> np.ndarray:
    """The reference's extraction loop for one piece: batch 1, pad to the maximum, explicit one-hot."""
    encoder = model.symbolic_model
    vectors, weights = [], []
    for segment in split_segments(len(patches), segment_length):
        piece = torch.from_numpy(patches[segment.start : segment.stop]).to(device)
        mask = torch.cat(
            [torch.ones(len(piece), device=device), torch.zeros(segment_length - len(piece), device=device)]
        )
        padded = torch.cat(
            [
                piece,
                torch.zeros(segment_length - len(piece), patches.shape[1], dtype=piece.dtype, device=device),
            ]
        )
        one_hot = F.one_hot(padded, num_classes=encoder.num_classes).float().reshape(1, segment_length, -1)
        embeds = encoder.patch_embedding(one_hot)
        hidden = encoder.base(inputs_embeds=embeds, attention_mask=mask[None]).last_hidden_state
        vectors.append(model.project("symbolic", hidden, mask[None])[0])
        weights.append(segment.weight)
    stacked = torch.stack(vectors)
    weight = torch.tensor(weights, dtype=torch.float32, device=device)[:, None]
    return ((stacked * weight).sum(0) / weight.sum()).cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pieces", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["bf16", "fp16"], help="autocast dtype of clamp3's encoder")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = CLaMP3Config.official("random")
    ours = CLaMP3(CLaMP3Model(config, attn_implementation="sdpa"), device=args.device, dtype=args.dtype)
    reference = CLaMP3Model(config, attn_implementation="eager").to(ours.device).eval()
    reference.load_state_dict(ours.model.state_dict())
    pieces = make_corpus(args.pieces)
    if ours.device.type == "cuda":  # CUDA context, cuBLAS and kernel selection: not part of the timing
        ours.encode_symbolic(pieces[:8], batch_size=args.batch_size)
        with torch.no_grad():
            reference_method(
                reference, ours.patchilizer.encode(pieces[0]), config.symbolic.max_patches, ours.device
            )
    lengths = np.array([len(ours.patchilizer.encode(p)) for p in pieces])
    print(
        f"{len(pieces)} pieces, patches per piece: median {int(np.median(lengths))}, "
        f"min {lengths.min()}, max {lengths.max()}, {int((lengths > 512).sum())} longer than 512; "
        f"torch threads {torch.get_num_threads()}"
    )

    start = time.perf_counter()
    ours_vectors = ours.encode_symbolic(pieces, batch_size=args.batch_size, show_progress=True)
    ours_seconds = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad():
        reference_vectors = np.stack(
            [
                reference_method(
                    reference, ours.patchilizer.encode(p), config.symbolic.max_patches, ours.device
                )
                for p in pieces
            ]
        )
    reference_seconds = time.perf_counter() - start

    cosine = (ours_vectors * reference_vectors).sum(1) / (
        np.linalg.norm(ours_vectors, axis=1) * np.linalg.norm(reference_vectors, axis=1)
    )
    distance = float((1 - cosine).max())
    print(f"reference method: {len(pieces) / reference_seconds:7.2f} files/s ({reference_seconds:.1f} s)")
    print(f"clamp3 batched:   {len(pieces) / ours_seconds:7.2f} files/s ({ours_seconds:.1f} s)")
    print(f"speed-up:         {reference_seconds / ours_seconds:7.2f}x")
    print(f"max cosine distance between the two: {distance:.2e}")
    if distance >= (1e-5 if args.dtype is None else 1e-2):
        raise SystemExit("the two methods disagree")


if __name__ == "__main__":
    main()
