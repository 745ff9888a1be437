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

``--corpus real`` measures real music instead (:mod:`real_corpus`: music21 scores and their MIDI,
multi-line texts, the demo and fixture audio) on the CPU, float32 against int8 in the same run: files/s
of the symbolic and text towers, MERT-v1-95M windows/s (random weights), the min cosine of int8 to
float32 vectors, and the machine's load average before and after; ``--reference`` adds the reference
method's files/s on the scores and MIDI, ``--repeats N`` times float32 and int8 N times each (alternating)
and keeps the best. Building the int8 models turns on :func:`clamp3.precision.keep_freed_memory` for the
whole process, so float32 is timed with it too.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable

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


def _timed(encode: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = encode()
    return result, time.perf_counter() - start


def _min_cosine(first: np.ndarray, second: np.ndarray) -> float:
    norms = np.linalg.norm(first, axis=-1) * np.linalg.norm(second, axis=-1)
    return float(((first * second).sum(-1) / norms).min())


def _compare(name: str, unit: str, encoders: dict[str, Callable[[], np.ndarray]], repeats: int = 1) -> str:
    """Time ``encoders`` (float32, int8, maybe reference); a markdown table row. float32 and int8 run
    ``repeats`` times, alternating, and keep their fastest time (on a shared machine the slower runs
    measure the neighbours); the reference method runs once."""
    outputs, seconds = {}, {}
    for _ in range(repeats):
        for dtype, encode in encoders.items():
            if dtype == "reference" and dtype in seconds:
                continue
            outputs[dtype], elapsed = _timed(encode)
            seconds[dtype] = min(elapsed, seconds.get(dtype, elapsed))
    count = len(outputs["float32"])
    rates = {dtype: count / value for dtype, value in seconds.items()}
    reference = f"{rates['reference']:8.2f}" if "reference" in rates else "       -"
    cosine = _min_cosine(outputs["float32"], outputs["int8"])
    return (
        f"| {name:<20} | {count:5d} | {reference} | {rates['float32']:8.2f} | {rates['int8']:8.2f} | "
        f"{rates['int8'] / rates['float32']:5.2f}x | {cosine:.5f} | {unit} |"
    )


def _describe(name: str, lengths: list[int], unit: str) -> None:
    print(
        f"{name}: {len(lengths)} files, {unit} per file: median {int(np.median(lengths))}, max {max(lengths)}"
    )


def tower_rows(args: argparse.Namespace) -> list[str]:
    """The symbolic tower on scores and MIDI, the text tower on texts: official sizes, random weights."""
    import real_corpus as corpus

    torch.manual_seed(0)
    config = CLaMP3Config.official("random")
    models = {"float32": CLaMP3(CLaMP3Model(config), device="cpu", fingerprint="random")}
    models["int8"] = CLaMP3(
        copy.deepcopy(models["float32"].model), device="cpu", dtype="int8", fingerprint="x"
    )
    exact = models["float32"]
    length = config.symbolic.max_patches
    rows = []
    for name, pieces in (
        ("scores", corpus.scores(args.scores)),
        ("MIDI (MTF)", corpus.midi_texts(args.midi)),
    ):
        _describe(name, [len(exact.patchilizer.encode(p)) for p in pieces], "patches")
        encoders = {
            dtype: lambda m=model, p=pieces: m.encode_symbolic(p, batch_size=args.batch_size)
            for dtype, model in models.items()
        }
        for model in models.values():
            model.encode_symbolic(pieces[:2])  # warm-up
        if args.reference:
            encoders["reference"] = lambda p=pieces: np.stack(
                [reference_method(exact.model, exact.patchilizer.encode(x), length, exact.device) for x in p]
            )
        with torch.no_grad():
            rows.append(_compare(name, "files/s", encoders, args.repeats))
    tokenizer = CLaMP3.from_pretrained("default").tokenizer  # XLM-R's vocabulary; ids past base's are unk
    vocab = config.text.encoder.vocab_size
    rows_ids = tokenizer(corpus.texts(args.texts))["input_ids"]
    ids = [[i if i < vocab else tokenizer.unk_token_id for i in row] for row in rows_ids]
    _describe("texts", [len(row) for row in ids], "tokens")
    for model in models.values():
        model.encode_text_ids(ids[:2])
    encoders = {
        dtype: lambda m=model: m.encode_text_ids(ids, batch_size=args.batch_size)
        for dtype, model in models.items()
    }
    rows.append(_compare("texts", "files/s", encoders, args.repeats))
    return rows


def mert_row(args: argparse.Namespace) -> str:
    """MERT-v1-95M (random weights) on the real audio files: windows/s."""
    import real_corpus as corpus
    from preprocess_throughput import mert_extractor

    from clamp3.preprocess.mert import MertExtractor

    extractors = {"float32": mert_extractor()}
    extractors["int8"] = MertExtractor(copy.deepcopy(extractors["float32"].model), device="cpu", dtype="int8")
    audio = corpus.audio_files()
    for extractor in extractors.values():
        extractor.extract(audio[:1])
    encoders = {
        dtype: lambda e=extractor: np.concatenate(
            [r.features for r in e.extract(audio, batch_size=args.audio_batch_size)]
        )
        for dtype, extractor in extractors.items()
    }
    return _compare(f"MERT ({len(audio)} files)", "windows/s", encoders, args.repeats)


def real_corpus(args: argparse.Namespace) -> None:
    """float32 against int8 on real music, CPU, same weights, same run."""
    load_before = os.getloadavg()
    rows = [*tower_rows(args), mert_row(args)]
    load = ", ".join(f"{x:.2f}" for x in (*load_before, *os.getloadavg()))
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, quantized engine "
        f"{torch.backends.quantized.engine}, best of {args.repeats}; load average 1/5/15 min before, "
        f"then after: {load}\n"
    )
    print("| input | count | reference | float32 | int8 | int8 speed-up | min cosine | unit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pieces", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["bf16", "fp16"], help="autocast dtype of clamp3's encoder")
    parser.add_argument("--corpus", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument(
        "--scores", type=int, default=60, help="real corpus: scores (half chorales, half ABC)"
    )
    parser.add_argument("--midi", type=int, default=30, help="real corpus: chorales as MIDI")
    parser.add_argument("--texts", type=int, default=50, help="real corpus: multi-line texts")
    parser.add_argument("--audio-batch-size", type=int, default=8, help="real corpus: MERT windows per pass")
    parser.add_argument("--reference", action="store_true", help="real corpus: time the reference method too")
    parser.add_argument(
        "--repeats", type=int, default=1, help="real corpus: time float32 and int8 this often, keep the best"
    )
    args = parser.parse_args()
    if args.corpus == "real":
        real_corpus(args)
        return

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
