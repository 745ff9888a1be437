"""Preprocessing throughput: files/s of each converter serial and parallel, MERT windows/s at batch 1
against batched.

Converters run through ``clamp3.convert.convert`` on copies of the reference fixture files
(MusicXML, folk ABC, MIDI, MTF) in a temporary folder, once with ``jobs=1`` and once with one
worker per CPU. MERT runs the MERT-v1-95M architecture (random weights, built locally) on
synthetic audio. Usage: ``python benchmarks/preprocess_throughput.py [--copies 20] [--audio-seconds 60]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clamp3.convert import ConvertOptions, convert

# Worker processes start by importing this module (spawn), so torch and transformers are imported
# only where MERT needs them.

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SOURCES = {
    "xml2interleaved": ("reference/xml2abc/xml", "*"),
    "abc2interleaved": ("reference/xml2abc/folk_abc", "*.abc"),
    "midi2mtf": ("reference/midi2mtf/midi", "*.mid"),
    "mtf2midi": ("reference/midi2mtf/mtf_full", "*.mtf"),
}


def corpus(converter: str, folder: Path, copies: int) -> Path:
    source, pattern = SOURCES[converter]
    target = folder / converter
    for copy in range(copies):
        for file in sorted((FIXTURES / source).glob(pattern)):
            destination = target / f"{copy:03d}" / file.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, destination)
    return target


def time_convert(converter: str, source: Path, out: Path, jobs: int) -> tuple[int, float]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = convert(converter, [source], out, ConvertOptions(jobs=jobs))
    seconds = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"{converter}: {report.failures[0]}")
    return len(report.written), seconds


def mert_extractor():
    """MERT-v1-95M's architecture with random weights (the real weights are not needed for speed)."""
    import torch
    from transformers import HubertConfig, HubertModel

    from clamp3.preprocess.mert import MertExtractor

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        feat_extract_norm="group",
        conv_dim=[512] * 7,
        conv_kernel=[10, 3, 3, 3, 3, 2, 2],
        conv_stride=[5, 2, 2, 2, 2, 2, 2],
        conv_bias=False,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        do_stable_layer_norm=False,
        layer_norm_eps=1e-5,
    )
    config.sample_rate = 24000
    return MertExtractor(HubertModel(config).eval(), device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=20, help="copies of each fixture file per converter")
    parser.add_argument(
        "--audio-seconds", type=float, default=60.0, help="length of each of the 2 audio files"
    )
    args = parser.parse_args()
    jobs = os.cpu_count() or 1
    print(f"{jobs} CPUs")
    print(f"| converter | files | serial files/s | {jobs} workers files/s | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for converter in SOURCES:
            source = corpus(converter, folder / "in", args.copies)
            count, serial = time_convert(converter, source, folder / "serial", 1)
            _, parallel = time_convert(converter, source, folder / "parallel", jobs)
            rates = f"{count / serial:.1f} | {count / parallel:.1f} | {serial / parallel:.2f}x"
            print(f"| {converter} | {count} | {rates} |")

        extractor = mert_extractor()
        rng = np.random.default_rng(0)
        paths = []
        for i in range(2):
            path = folder / f"audio{i}.wav"
            sf.write(
                path, (0.1 * rng.standard_normal(int(args.audio_seconds * 44100))).astype(np.float32), 44100
            )
            paths.append(path)
        windows = sum(len(r.features) for r in extractor.extract(paths[:1], batch_size=1))  # warm-up
        print("\n| MERT-v1-95M (random weights), 44.1 kHz input | windows | windows/s |")
        print("| --- | --- | --- |")
        for batch_size in (1, 4):
            start = time.perf_counter()
            results = extractor.extract(paths, batch_size=batch_size)
            seconds = time.perf_counter() - start
            windows = sum(len(r.features) for r in results)
            print(f"| batch {batch_size} | {windows} | {windows / seconds:.2f} |")


if __name__ == "__main__":
    main()
