"""Audio front ends that need no downloaded weights: feature sequences for the bundled model's audio tower.

The official CLaMP 3 reads MERT features (one 768-d vector per 5-second window). MERT is not available
offline, so the bundled model reads one of these instead. Each front end turns a mono clip into a
``[positions, dim]`` float32 array; a position covers ``stack`` consecutive analysis frames, so the
audio tower sees a short stretch of music per position, as it sees a window of MERT.

* ``pitchgram-v1`` (the bundled model's choice): the short-time power spectrum pooled into the 88 piano
  semitones with triangular log-frequency filters, log-compressed relative to the clip's loudest bin.
* ``logmel-v1``: 64 log-mel bands over the same frames (timbre and rhythm, little pitch detail).
* ``basic-pitch-v1``: Spotify basic-pitch's note posteriorgram (ONNX model inside the ``basic-pitch``
  wheel, run with onnxruntime), max-pooled to the same frame rate.

``benchmarks/audio_frontends.py`` measures how much note information each keeps and what it costs;
``MODEL_CARD.md`` records the numbers that chose ``pitchgram-v1``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from clamp3.errors import Clamp3Error, InputError
from clamp3.preprocess.audio import load_mono

SAMPLE_RATE = 22050
N_FFT = 4096
HOP = 2048
"""Analysis frames every 92.9 ms at 22.05 kHz."""
LOWEST_PITCH = 21
PITCHES = 88
MIN_SECONDS = 1.0


@dataclass(frozen=True)
class FrontEnd:
    """One named front end: frame features of ``frame_dim`` values, stacked ``stack`` frames per position."""

    name: str
    frame_dim: int
    stack: int = 4
    sample_rate: int = SAMPLE_RATE

    @property
    def dim(self) -> int:
        """Size of one position's vector (the audio tower's input size)."""
        return self.frame_dim * self.stack

    @property
    def seconds_per_position(self) -> float:
        return self.stack * HOP / self.sample_rate

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """``[n_frames, frame_dim]`` features of a mono clip at ``sample_rate``."""
        return _FRAME_FUNCTIONS[self.name](np.asarray(samples, dtype=np.float32))

    def features(self, samples: np.ndarray, path: str | Path = "<waveform>") -> np.ndarray:
        """``[positions, dim]`` features of a mono clip; raises :class:`InputError` for clips under 1 s."""
        if len(samples) < MIN_SECONDS * self.sample_rate:
            raise InputError(path, f"shorter than {MIN_SECONDS:g} s, too short to embed")
        if not np.all(np.isfinite(samples)):
            raise InputError(path, "the decoded audio holds NaN or infinite samples")
        return stack_frames(self.frames(samples), self.stack)

    def file_features(self, path: str | Path, max_seconds: float | None = None) -> np.ndarray:
        """Decode, mix down and resample a file, then :meth:`features`.

        A file longer than ``max_seconds`` (``None``: no limit) is refused with :class:`InputError`.
        """
        return self.features(load_mono(path, self.sample_rate, max_seconds=max_seconds), path)


def stack_frames(frames: np.ndarray, stack: int) -> np.ndarray:
    """Concatenate each run of ``stack`` frames into one position (the last run zero-padded)."""
    count, dim = frames.shape
    positions = max(1, -(-count // stack))
    padded = np.zeros((positions * stack, dim), dtype=np.float32)
    padded[:count] = frames
    return padded.reshape(positions, stack * dim)


def power_spectrogram(samples: np.ndarray) -> torch.Tensor:
    """``[N_FFT // 2 + 1, n_frames]`` power of a Hann-windowed STFT (frames centred, reflect-padded)."""
    signal = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if len(signal) <= N_FFT // 2:
        signal = torch.nn.functional.pad(signal, (0, N_FFT // 2 + 1 - len(signal)))
    spectrum = torch.stft(
        signal,
        N_FFT,
        HOP,
        window=torch.hann_window(N_FFT),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return spectrum.abs().square()


def _triangles(centres: np.ndarray, frequencies: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``[len(centres), len(frequencies)]`` triangular weights; every filter keeps its nearest bin."""
    weights = np.clip(1.0 - np.abs(frequencies[None, :] - centres[:, None]) / width[:, None], 0.0, None)
    nearest = np.abs(frequencies[None, :] - centres[:, None]).argmin(axis=1)
    weights[np.arange(len(centres)), nearest] = np.maximum(weights[np.arange(len(centres)), nearest], 1.0)
    return weights.astype(np.float32)


def _bin_frequencies() -> np.ndarray:
    return np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT


class _Filterbanks:
    """The two fixed filter matrices, built once per process on first use."""

    @cached_property
    def semitones(self) -> torch.Tensor:
        frequencies = _bin_frequencies()
        pitches = np.arange(LOWEST_PITCH, LOWEST_PITCH + PITCHES)
        centres = 440.0 * 2.0 ** ((pitches - 69) / 12)
        # a triangle spanning one semitone either side of the centre, in Hz
        return torch.from_numpy(_triangles(centres, frequencies, centres * (2 ** (1 / 12) - 1)))

    @cached_property
    def mel(self) -> torch.Tensor:
        frequencies = _bin_frequencies()
        to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
        edges_mel = np.linspace(to_mel(30.0), to_mel(8000.0), 66)
        edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
        return torch.from_numpy(_triangles(edges[1:-1], frequencies, np.diff(edges)[:-1]))


_BANKS = _Filterbanks()


def _log_relative(energy: torch.Tensor) -> np.ndarray:
    """``log(1 + 1000 * e / max(e))``: loudness-invariant compression, 0 for silence."""
    peak = energy.max()
    if peak <= 0:
        return np.zeros(tuple(energy.shape[::-1]), dtype=np.float32)
    return torch.log1p(1000.0 * energy / peak).T.contiguous().numpy()


def pitchgram_frames(samples: np.ndarray) -> np.ndarray:
    """``[n_frames, 88]`` log energy per piano semitone."""
    return _log_relative(_BANKS.semitones @ power_spectrogram(samples))


def logmel_frames(samples: np.ndarray) -> np.ndarray:
    """``[n_frames, 64]`` log mel-band energy."""
    return _log_relative(_BANKS.mel @ power_spectrogram(samples))


class _BasicPitch:
    """basic-pitch's ONNX model, loaded on first use (needs ``onnxruntime`` and the ``basic-pitch`` wheel)."""

    WINDOW = 43844
    OVERLAP_FRAMES = 30
    OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2")
    """The note and onset posteriorgrams among the model's outputs (``:0`` is the pitch contour)."""

    @cached_property
    def session(self):
        # the package's __init__ probes for TensorFlow and logs warnings: find its ONNX file without it
        spec = importlib.util.find_spec("basic_pitch")
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        path = Path(folders[0]) / "saved_models" / "icassp_2022" / "nmp.onnx" if folders else None
        try:
            import onnxruntime
        except ImportError:
            path = None
        if path is None or not path.is_file():
            raise Clamp3Error(
                "the basic-pitch model needs onnxruntime and basic-pitch: pip install 'clamp3[transcribe]' "
                "and pip install --no-deps basic-pitch==0.4.0"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def posteriors(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[n_frames, 88]`` note and onset posteriors at 86.13 frames/s for a 22.05 kHz clip."""
        overlap = self.OVERLAP_FRAMES * 256
        hop = self.WINDOW - overlap
        padded = np.concatenate([np.zeros(overlap // 2, np.float32), samples.astype(np.float32)])
        count = max(1, -(-len(padded) // hop))
        padded = np.pad(padded, (0, count * hop + overlap - len(padded)))
        windows = np.stack([padded[i * hop : i * hop + self.WINDOW] for i in range(count)])[..., None]
        session = self.session
        outputs = session.run(list(self.OUTPUTS), {session.get_inputs()[0].name: windows})
        trim, frames = self.OVERLAP_FRAMES // 2, int(np.ceil(len(samples) / 256))
        note, onset = (output[:, trim:-trim].reshape(-1, PITCHES)[:frames] for output in outputs)
        return note, onset


_BASIC_PITCH = _BasicPitch()


def basic_pitch_posteriors(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """basic-pitch's ``[n_frames, 88]`` note and onset posteriors (86.13 frames/s) of a 22.05 kHz clip."""
    return _BASIC_PITCH.posteriors(np.asarray(samples, dtype=np.float32))


def basic_pitch_frames(samples: np.ndarray) -> np.ndarray:
    """basic-pitch note posteriors, max-pooled onto the :data:`HOP` frame grid: ``[n_frames, 88]``."""
    posteriors, _ = basic_pitch_posteriors(samples)
    frames = -(-len(samples) // HOP) + 1
    step = HOP / 256
    pooled = np.zeros((frames, PITCHES), dtype=np.float32)
    for index in range(frames):
        lo = int(max(0, (index - 0.5) * step))
        hi = int(min(len(posteriors), (index + 0.5) * step))
        if hi > lo:
            pooled[index] = posteriors[lo:hi].max(axis=0)
    return pooled


_FRAME_FUNCTIONS: MappingProxyType[str, Callable[[np.ndarray], np.ndarray]] = MappingProxyType(
    {"pitchgram-v1": pitchgram_frames, "logmel-v1": logmel_frames, "basic-pitch-v1": basic_pitch_frames}
)
FRONT_ENDS: MappingProxyType[str, FrontEnd] = MappingProxyType(
    {
        "pitchgram-v1": FrontEnd("pitchgram-v1", PITCHES),
        "logmel-v1": FrontEnd("logmel-v1", 64),
        "basic-pitch-v1": FrontEnd("basic-pitch-v1", PITCHES),
    }
)


def front_end(name: str) -> FrontEnd:
    """The front end called ``name``; raises :class:`Clamp3Error` naming the known ones."""
    try:
        return FRONT_ENDS[name]
    except KeyError:
        raise Clamp3Error(
            f"unknown audio front end {name!r}; known: mert-v1-95m, {', '.join(FRONT_ENDS)}"
        ) from None
