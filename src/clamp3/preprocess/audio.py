"""Audio input for MERT: decoding, mono mix-down, resampling, whole-clip normalisation and windows.

The recipe is the one CLaMP 3's ``extract_mert.py`` applies before MERT sees a clip:

1. decode to float32 in [-1, 1] (PCM16 becomes ``int16 / 32768``) and average the channels;
2. resample to the model rate (24 kHz) with a windowed-sinc filter: Hann window, 6 zero crossings
   on each side, cut-off at 0.99 of the lower Nyquist frequency (torchaudio's ``Resample`` defaults);
3. normalise the WHOLE clip once: ``(x - mean) / sqrt(var + 1e-7)`` with the population variance;
4. cut into 5-second windows without overlap; a last window shorter than 1 second is dropped.

Two ways through it give the same numbers: in memory (:func:`load_mono`, :func:`normalize`,
:func:`split_windows`) and streamed (:func:`scan_audio`, then :func:`iter_windows`), which decodes the
file twice, block by block, and never holds more than a few blocks and one window, so an hour-long
recording costs no more memory than a song.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import torch

from clamp3.errors import InputError

NORM_EPS = 1e-7
"""Added to the variance before the square root (as ``Wav2Vec2FeatureExtractor`` does)."""

DEFAULT_BLOCK_FRAMES = 1 << 16
"""Frames decoded per read in the streamed path."""

_SF_BAD_FILE = 7
"""libsndfile's "File does not exist or is not a regular file" error, which its MP3 reader also gives for
data it cannot read (the file is known to exist when it is opened)."""


@dataclass(frozen=True)
class WindowSpec:
    """How a clip is cut into model inputs: the sample rate and the window / minimum lengths in seconds."""

    sample_rate: int = 24000
    window_seconds: float = 5.0
    min_seconds: float = 1.0

    @property
    def window_samples(self) -> int:
        return round(self.sample_rate * self.window_seconds)

    @property
    def min_samples(self) -> int:
        return round(self.sample_rate * self.min_seconds)


@dataclass(frozen=True)
class ClipStats:
    """What the first pass over a clip learns: its length at the model rate and its mean and variance."""

    num_samples: int
    mean: float
    var: float


def window_lengths(num_samples: int, spec: WindowSpec) -> list[int]:
    """The lengths of the windows a clip of ``num_samples`` samples is cut into (the short tail dropped)."""
    full, tail = divmod(num_samples, spec.window_samples)
    return [spec.window_samples] * full + ([tail] if tail >= spec.min_samples else [])


# ----------------------------------------------------------------------------------------- resampling


def sinc_kernel(
    orig_rate: int, new_rate: int, zero_crossings: int = 6, rolloff: float = 0.99
) -> tuple[np.ndarray, int, int]:
    """The polyphase windowed-sinc filter bank that resamples ``orig_rate`` to ``new_rate``.

    With ``o, n`` the two rates divided by their gcd, output sample ``b * n + p`` is the dot product of
    row ``p`` of the returned ``[n, 2 * width + o]`` float32 kernel with input samples
    ``[b * o - width, b * o + o + width)`` (zeros outside the signal). Returns ``(kernel, width, o)``.
    The kernel is computed in float64 and rounded to float32, as ``torchaudio.transforms.Resample`` does.
    """
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    cutoff = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / cutoff)
    taps = np.arange(-width, width + orig, dtype=np.float64) / orig
    phases = -np.arange(new, dtype=np.float64)[:, None] / new
    t = np.clip((phases + taps[None, :]) * cutoff, -zero_crossings, zero_crossings)
    window = np.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    sinc = np.divide(np.sin(t), t, out=np.ones_like(t), where=t != 0)
    kernel = sinc * window * (cutoff / orig)
    return kernel.astype(np.float32), width, orig


class StreamResampler:
    """Resamples a mono signal fed in blocks of any size; the output equals :func:`resample` on the whole.

    ``push(block)`` returns the output samples that are complete so far and ``finish()`` the rest.
    Input is gathered until ``min_chunk`` samples wait, so tiny decoder blocks cost few filter calls.
    """

    def __init__(self, orig_rate: int, new_rate: int, min_chunk: int = 1 << 17) -> None:
        self._identity = orig_rate == new_rate
        kernel, self._width, self._stride = sinc_kernel(orig_rate, new_rate)
        self._kernel = torch.from_numpy(kernel)[:, None, :]
        self._ratio = (new_rate, orig_rate)
        self._min_chunk = min_chunk
        self._pending = [np.zeros(self._width, dtype=np.float32)]
        self._waiting = 0
        self._consumed = 0
        self._emitted = 0

    def _run(self, *tail: np.ndarray) -> np.ndarray:
        """Filter every complete output block of the pending input (plus ``tail``); keep the rest."""
        buffer = np.concatenate([*self._pending, *tail])
        taps = self._kernel.shape[-1]
        blocks = (len(buffer) - taps) // self._stride + 1 if len(buffer) >= taps else 0
        self._pending, self._waiting = [buffer[blocks * self._stride :]], 0
        if not blocks:
            return np.zeros(0, dtype=np.float32)
        signal = torch.from_numpy(buffer[: (blocks - 1) * self._stride + taps])[None, None]
        with torch.inference_mode():
            out = torch.nn.functional.conv1d(signal, self._kernel, stride=self._stride)
        self._emitted += out.numel()
        return out[0].T.reshape(-1).numpy()

    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed the next float32 samples; returns the output samples completed so far (maybe none)."""
        self._consumed += len(block)
        if self._identity:
            return block
        self._pending.append(block)
        self._waiting += len(block)
        return self._run() if self._waiting >= self._min_chunk else np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """Pad the end with zeros and return the rest of the output (``ceil(len * new / orig)`` in all)."""
        if self._identity:
            return np.zeros(0, dtype=np.float32)
        new, orig = self._ratio
        total = -(-self._consumed * new // orig)
        tail = self._run(np.zeros(self._width + self._stride, np.float32))
        return tail[: total - (self._emitted - len(tail))]


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """A mono float32 signal resampled from ``orig_rate`` to ``new_rate`` (see :func:`sinc_kernel`)."""
    resampler = StreamResampler(orig_rate, new_rate)
    samples = np.asarray(samples, dtype=np.float32)
    return np.concatenate([resampler.push(samples), resampler.finish()])


# ------------------------------------------------------------------------------------------- decoding


class AudioReader(Protocol):
    """An open audio file: its rate and channel count, and its samples as float32 ``[frames, channels]``."""

    sample_rate: int
    channels: int

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """The samples in order, about ``frames`` at a time."""
        ...


def _decode_error(path: Path, exc: Exception) -> InputError:
    if getattr(exc, "code", None) == _SF_BAD_FILE:
        return InputError(path, f"cannot decode audio (not a readable {path.suffix[1:].upper()} stream)")
    reason = getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or str(exc)
    reason = " ".join(str(reason).split()) or type(exc).__name__
    return InputError(path, f"cannot decode audio ({reason})")


class _SoundfileReader:
    def __init__(self, path: Path, handle: sf.SoundFile) -> None:
        self._path = path
        self._handle = handle
        self.sample_rate = handle.samplerate
        self.channels = handle.channels

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        while True:
            try:
                block = self._handle.read(frames, dtype="float32", always_2d=True)
            except sf.SoundFileError as exc:
                raise _decode_error(self._path, exc) from exc
            if not len(block):
                return
            yield block


class _PyAVReader:
    def __init__(self, path: Path, container: Any, stream: Any) -> None:
        self._path = path
        self._container = container
        self._stream = stream
        self.sample_rate = stream.codec_context.sample_rate
        self.channels = stream.codec_context.channels

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Decoded frames as they come (the codec decides the block size; ``frames`` is ignored)."""
        import av

        to_float = av.AudioResampler(format="fltp")
        try:
            for frame in itertools.chain(self._container.decode(self._stream), [None]):
                for planar in to_float.resample(frame):
                    yield planar.to_ndarray().T
        except av.FFmpegError as exc:
            raise _decode_error(self._path, exc) from exc


def mix_down(block: np.ndarray) -> np.ndarray:
    """``[frames, channels]`` float32 -> ``[frames]``: the mean over the channels."""
    mono = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    if block.shape[1] > 1:
        mono /= np.float32(block.shape[1])
    return mono


@contextmanager
def open_audio(path: str | Path) -> Iterator[AudioReader]:
    """Open ``path`` with libsndfile when it knows the format (wav, flac, ogg, mp3, aiff, ...), else PyAV.

    PyAV (``pip install av``) is optional; it adds m4a / aac and everything else FFmpeg decodes.
    Raises :class:`InputError` when the file is missing or unreadable, or no decoder is available.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    if not path.stat().st_size:
        raise InputError(path, "the file is empty")
    if path.suffix[1:].upper() in sf.available_formats():
        try:
            handle = sf.SoundFile(path)
        except (sf.SoundFileError, TypeError) as exc:
            raise _decode_error(path, exc) from exc
        with handle:
            yield _SoundfileReader(path, handle)
        return
    try:
        import av
    except ImportError:
        raise InputError(
            path,
            f"no decoder for {path.suffix or 'extension-less'} files: libsndfile does not read them and "
            "PyAV is not installed (pip install av)",
        ) from None
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise _decode_error(path, exc) from exc
    with container:
        if not container.streams.audio:
            raise InputError(path, "no audio stream")
        yield _PyAVReader(path, container, container.streams.audio[0])


def iter_mono(
    path: str | Path, sample_rate: int, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """The decoded file, averaged over channels and resampled to ``sample_rate``, as float32 blocks."""
    with open_audio(path) as reader:
        if reader.channels < 1 or reader.sample_rate < 1:
            raise InputError(path, f"unusable stream: {reader.channels} channels at {reader.sample_rate} Hz")
        resampler = StreamResampler(reader.sample_rate, sample_rate)
        frames = 0
        for block in reader.blocks(block_frames):
            check_finite(path, block, reader.sample_rate, frames)
            frames += len(block)
            out = resampler.push(mix_down(block))
            if len(out):
                yield out
        yield resampler.finish()


def load_mono(path: str | Path, sample_rate: int = 24000) -> np.ndarray:
    """The whole file as one mono float32 signal at ``sample_rate`` (see :func:`iter_mono`)."""
    return np.concatenate(list(iter_mono(path, sample_rate)))


# ------------------------------------------------------------------------------ normalisation, windows


def normalize(samples: np.ndarray) -> np.ndarray:
    """``(x - mean) / sqrt(var + 1e-7)`` over the whole clip, in float32 (population variance)."""
    samples = np.asarray(samples, dtype=np.float32)
    return (samples - samples.mean()) / np.sqrt(samples.var() + np.float32(NORM_EPS))


def split_windows(samples: np.ndarray, spec: WindowSpec) -> list[np.ndarray]:
    """Consecutive windows of ``samples`` (see :func:`window_lengths`)."""
    step = spec.window_samples
    return [samples[i * step : i * step + n] for i, n in enumerate(window_lengths(len(samples), spec))]


def check_finite(path: str | Path, samples: np.ndarray, sample_rate: int, first_frame: int = 0) -> None:
    """Raise :class:`InputError` naming the first frame that holds a NaN or infinite value (which would make
    every feature NaN). ``samples`` is ``[frames]`` or ``[frames, channels]``, its frames counted from
    ``first_frame``.
    """
    finite = np.isfinite(samples).reshape(len(samples), -1).all(axis=1)
    if not finite.all():
        frame = first_frame + int(np.argmin(finite))
        raise InputError(path, f"NaN or infinite sample at frame {frame} ({frame / sample_rate:.3f} s)")


def check_length(path: str | Path, num_samples: int, spec: WindowSpec) -> None:
    """Raise :class:`InputError` when a clip has no samples or is too short to give a single window."""
    if not num_samples:
        raise InputError(path, "no audio samples")
    if num_samples < spec.min_samples:
        raise InputError(
            path,
            f"shorter than {spec.min_seconds:g} second{'s' * (spec.min_seconds != 1)} "
            f"({num_samples / spec.sample_rate:.3f} s): too short for MERT features",
        )


def scan_audio(path: str | Path, spec: WindowSpec, block_frames: int = DEFAULT_BLOCK_FRAMES) -> ClipStats:
    """First streamed pass: the clip's length at the model rate and its mean and population variance.

    Raises :class:`InputError` for undecodable files and for clips shorter than ``spec.min_seconds``.
    """
    count, mean, m2 = 0, 0.0, 0.0
    for block in iter_mono(path, spec.sample_rate, block_frames):
        if not len(block):
            continue
        values = block.astype(np.float64)
        block_mean = float(values.mean())
        block_m2 = float(((values - block_mean) ** 2).sum())
        total = count + len(block)
        delta = block_mean - mean
        mean += delta * len(block) / total
        m2 += block_m2 + delta * delta * count * len(block) / total
        count = total
    check_length(path, count, spec)
    return ClipStats(count, mean, m2 / count)


def iter_windows(
    path: str | Path, spec: WindowSpec, stats: ClipStats, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """Second streamed pass: the normalised windows of the clip whose :func:`scan_audio` gave ``stats``."""
    mean = np.float32(stats.mean)
    scale = np.sqrt(np.float32(stats.var) + np.float32(NORM_EPS))
    lengths = iter(window_lengths(stats.num_samples, spec))
    wanted = next(lengths, 0)
    pending: list[np.ndarray] = []
    have = 0
    for block in iter_mono(path, spec.sample_rate, block_frames):
        pending.append((block - mean) / scale)
        have += len(block)
        while wanted and have >= wanted:
            joined = np.concatenate(pending)
            yield joined[:wanted]
            pending, have = [joined[wanted:]], have - wanted
            wanted = next(lengths, 0)
    if wanted:
        raise InputError(path, "the audio changed between the two decoding passes")


def stream_windows(
    path: str | Path, spec: WindowSpec, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """The normalised windows of a file, streamed (two decoding passes, bounded memory)."""
    stats = scan_audio(path, spec, block_frames)
    yield from iter_windows(path, spec, stats, block_frames)
