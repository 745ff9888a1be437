"""How much of the notes each offline audio front end keeps, and what it costs.

Renders held-out open-data tunes with FluidSynth (FluidR3_GM, varied instrument/tempo/reverb), computes
each front end's frames and fits a ridge regression from a frame (with its two neighbours) to the
piano roll of the notes sounding in it, on the first half of the tunes; reports the micro-averaged
average precision of that prediction on the second half, and each front end's speed in times real time.

    python benchmarks/audio_frontends.py --data /work/build/opendata --pieces 160
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from clamp3.preprocess.frontends import FRONT_ENDS, HOP, SAMPLE_RATE
from clamp3.preprocess.synth import FLUID_R3, render
from clamp3.train.opendata.render import choose_variation, piano_roll, vary_midi

SECONDS = 24.0


def with_context(frames: np.ndarray) -> np.ndarray:
    padded = np.pad(frames, ((1, 1), (0, 0)))
    return np.concatenate([padded[:-2], padded[1:-1], padded[2:], np.ones((len(frames), 1), np.float32)], 1)


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve, summed at each true item (ties broken by order)."""
    order = np.argsort(-scores, kind="stable")
    hits = truth[order] > 0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    gram = x.T @ x + alpha * np.eye(x.shape[1], dtype=x.dtype)
    return np.linalg.solve(gram, x.T @ y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="open-data build folder")
    parser.add_argument("--pieces", type=int, default=160)
    parser.add_argument("--split", default="validation")
    args = parser.parse_args()
    records = [json.loads(line) for line in (args.data / f"{args.split}.jsonl").open()][: args.pieces]
    frame_seconds = HOP / SAMPLE_RATE
    features = {name: [] for name in FRONT_ENDS}
    rolls, cost, audio_seconds = [], dict.fromkeys(FRONT_ENDS, 0.0), 0.0
    for record in records:
        midi_path = args.data / Path(record["filepaths"][0]).with_suffix(".mid")
        variation = choose_variation(record["id"], seed=0)
        midi = vary_midi(midi_path.read_bytes(), variation, SECONDS, str(midi_path))
        samples = render(midi, FLUID_R3, SAMPLE_RATE, SECONDS, variation.reverb, str(midi_path))
        audio_seconds += len(samples) / SAMPLE_RATE
        count = int(np.ceil(len(samples) / HOP))
        for name, front in FRONT_ENDS.items():
            start = time.perf_counter()
            frames = front.frames(samples)
            cost[name] += time.perf_counter() - start
            features[name].append(np.pad(frames[:count], ((0, max(0, count - len(frames))), (0, 0))))
        rolls.append(piano_roll(midi, frame_seconds, count))
    half = len(records) // 2
    y_fit, y_test = np.concatenate(rolls[:half]), np.concatenate(rolls[half:])
    print(f"{len(records)} tunes, {audio_seconds / 60:.1f} min of audio, {y_test.mean():.3f} of cells sound")
    print(f"{'front end':16} {'note AP':>8} {'x real time':>12}")
    for name in FRONT_ENDS:
        fit = np.concatenate([with_context(f) for f in features[name][:half]])
        test = np.concatenate([with_context(f) for f in features[name][half:]])
        weights = ridge(fit, y_fit)
        score = average_precision(y_test.ravel(), (test @ weights).ravel())
        print(f"{name:16} {score:8.3f} {audio_seconds / cost[name]:12.0f}")


if __name__ == "__main__":
    main()
