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

Hostile files cannot blow that up: decoded sample rates and channel counts outside plausible bounds are
refused before any sample is read, decoder reads and resampling filters are capped in size, a length
limit (``max_seconds``) is checked against the header before decoding and enforced while decoding, and
what decoders print to stderr is silenced.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import torch

from clamp3.errors import InputError

NORM_EPS = 1e-7
"""Added to the variance before the square root (as ``Wav2Vec2FeatureExtractor`` does)."""

DEFAULT_BLOCK_FRAMES = 1 << 16
"""Frames decoded per read in the streamed path."""

ZERO_CROSSINGS = 6
"""Zero crossings of the resampling filter on each side (torchaudio's default)."""

ROLLOFF = 0.99
"""Cut-off of the resampling filter as a fraction of the lower Nyquist frequency (torchaudio's default)."""

FILTER_BUDGET = 1 << 18
"""The most resampling filter coefficients held at once (see :class:`StreamResampler`)."""

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
"""Decoded sample rates outside these bounds are refused as broken headers: nothing musical is recorded
below 1 kHz (telephone audio has 8 kHz), no recording format goes past 384 kHz, and a header declaring
1 Hz would make every decoded sample 24,000 at the model rate."""

MAX_CHANNELS = 256
"""Decoded channel counts above this are refused (22.2 surround has 24, seventh-order ambisonics 64)."""

MAX_BLOCK_SAMPLES = 1 << 19
"""The most samples (frames x channels) one decoder read returns: 2 MiB of float32."""

_PCM_BYTES = MappingProxyType(
    {
        "PCM_S8": 1,
        "PCM_U8": 1,
        "ULAW": 1,
        "ALAW": 1,
        "PCM_16": 2,
        "PCM_24": 3,
        "PCM_32": 4,
        "FLOAT": 4,
        "DOUBLE": 8,
    }
)
"""Bytes per sample of the uncompressed libsndfile subtypes, whose length is bounded by the file's size."""

_STDERR_LOCK = threading.Lock()

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


def _filter_size(
    orig_rate: int, new_rate: int, zero_crossings: int, rolloff: float
) -> tuple[int, int, float, int]:
    """``(orig, new, cutoff, width)``: the rates over their gcd, the cut-off, the half-width in taps."""
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    cutoff = min(orig, new) * rolloff
    return orig, new, cutoff, math.ceil(zero_crossings * orig / cutoff)


def _windowed_sinc(offsets: np.ndarray, orig: int, cutoff: float, zero_crossings: int) -> np.ndarray:
    """The filter at ``offsets`` (input position minus output position, in units of ``orig`` samples)."""
    t = np.clip(offsets * cutoff, -zero_crossings, zero_crossings)
    window = np.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    sinc = np.divide(np.sin(t), t, out=np.ones_like(t), where=t != 0)
    return sinc * window * (cutoff / orig)


def sinc_kernel(
    orig_rate: int, new_rate: int, zero_crossings: int = ZERO_CROSSINGS, rolloff: float = ROLLOFF
) -> tuple[np.ndarray, int, int]:
    """The polyphase windowed-sinc filter bank that resamples ``orig_rate`` to ``new_rate``.

    With ``o, n`` the two rates divided by their gcd, output sample ``b * n + p`` is the dot product of
    row ``p`` of the returned ``[n, 2 * width + o]`` float32 kernel with input samples
    ``[b * o - width, b * o + o + width)`` (zeros outside the signal). Returns ``(kernel, width, o)``.
    The kernel is computed in float64 and rounded to float32, as ``torchaudio.transforms.Resample`` does.
    """
    orig, new, cutoff, width = _filter_size(orig_rate, new_rate, zero_crossings, rolloff)
    taps = np.arange(-width, width + orig, dtype=np.float64) / orig
    phases = -np.arange(new, dtype=np.float64)[:, None] / new
    return (
        _windowed_sinc(phases + taps[None, :], orig, cutoff, zero_crossings).astype(np.float32),
        width,
        orig,
    )


class StreamResampler:
    """Resamples a mono signal fed in blocks of any size; the output equals :func:`resample` on the whole.

    ``push(block)`` returns the output samples that are complete so far and ``finish()`` the rest.
    Input is gathered until ``min_chunk`` samples wait (fewer when upsampling, so that one filter call
    makes at most about ``min_chunk`` outputs), so tiny decoder blocks cost few filter calls.

    Memory stays bounded whatever the rates: the polyphase bank of :func:`sinc_kernel` is used while it
    holds at most :data:`FILTER_BUDGET` coefficients (every common rate: 44.1 kHz -> 24 kHz needs 13,680);
    for rates that share only a small factor (44,101 Hz -> 24 kHz would need a 24,000 x 44,125 bank) the
    same filter is evaluated for each output sample instead, :data:`FILTER_BUDGET` coefficients at a time.
    """

    def __init__(self, orig_rate: int, new_rate: int, min_chunk: int = 1 << 17) -> None:
        self._identity = orig_rate == new_rate
        self._orig, self._new, self._cutoff, self._width = _filter_size(
            orig_rate, new_rate, ZERO_CROSSINGS, ROLLOFF
        )
        self._stride = self._orig
        self._taps = 2 * self._width + self._orig
        self._kernel = None
        if self._new * self._taps <= FILTER_BUDGET:
            self._kernel = torch.from_numpy(sinc_kernel(orig_rate, new_rate)[0])[:, None, :]
        self._min_chunk = max(1, min(min_chunk, min_chunk * orig_rate // new_rate))
        self._pending = [np.zeros(self._width, dtype=np.float32)]
        self._waiting = 0
        self._consumed = 0
        self._emitted = 0

    def _run(self, *tail: np.ndarray) -> np.ndarray:
        """Filter every complete output block of the pending input (plus ``tail``); keep the rest."""
        buffer = np.concatenate([*self._pending, *tail])
        blocks = (len(buffer) - self._taps) // self._stride + 1 if len(buffer) >= self._taps else 0
        self._pending, self._waiting = [buffer[blocks * self._stride :]], 0
        if not blocks:
            return np.zeros(0, dtype=np.float32)
        signal = buffer[: (blocks - 1) * self._stride + self._taps]
        out = (
            self._polyphase(signal) if self._kernel is not None else self._direct(signal, blocks * self._new)
        )
        self._emitted += len(out)
        return out

    def _polyphase(self, signal: np.ndarray) -> np.ndarray:
        """The output blocks of ``signal`` (whole blocks of input) through the polyphase bank."""
        with torch.inference_mode():
            out = torch.nn.functional.conv1d(
                torch.from_numpy(signal)[None, None], self._kernel, stride=self._stride
            )
        return out[0].T.reshape(-1).numpy()

    def _direct(self, signal: np.ndarray, count: int) -> np.ndarray:
        """The first ``count`` outputs of ``signal``, each from the ``2 * width`` inputs around it.

        Output ``r`` sits at input position ``r * o / n + width`` of ``signal``; the filter is zero at
        ``width`` taps or more from it, so inputs ``floor(r * o / n) + 1 + [0, 2 * width)`` are all it reads.
        """
        orig, new, span = self._orig, self._new, 2 * self._width
        out = np.empty(count, dtype=np.float32)
        step = max(1, FILTER_BUDGET // span)
        for first in range(0, count, step):
            outputs = np.arange(first, min(first + step, count), dtype=np.int64)[:, None]
            inputs = outputs * orig // new + 1 + np.arange(span, dtype=np.int64)
            offsets = ((inputs - self._width) * new - outputs * orig) / (orig * new)
            weights = _windowed_sinc(offsets, orig, self._cutoff, ZERO_CROSSINGS).astype(np.float32)
            out[first : first + len(outputs)] = (signal[inputs] * weights).sum(axis=1)
        return out

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
        total = -(-self._consumed * self._new // self._orig)
        tail = self._run(np.zeros(self._width + self._stride, np.float32))
        return tail[: total - (self._emitted - len(tail))]


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """A mono float32 signal resampled from ``orig_rate`` to ``new_rate`` (see :func:`sinc_kernel`)."""
    resampler = StreamResampler(orig_rate, new_rate)
    samples = np.asarray(samples, dtype=np.float32)
    return np.concatenate([resampler.push(samples), resampler.finish()])


# ------------------------------------------------------------------------------------------- decoding


class AudioReader(Protocol):
    """An open audio file: rate, channels and length, and its samples as float32 ``[frames, channels]``."""

    sample_rate: int
    channels: int
    seconds: float | None
    """The length its header declares (``None``: unknown), never more than an uncompressed file can hold."""

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """The samples in order, about ``frames`` at a time."""
        ...


def _decode_error(path: Path, exc: Exception) -> InputError:
    if getattr(exc, "code", None) == _SF_BAD_FILE:
        return InputError(path, f"cannot decode audio (not a readable {path.suffix[1:].upper()} stream)")
    reason = getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or str(exc)
    reason = " ".join(str(reason).split()) or type(exc).__name__
    return InputError(path, f"cannot decode audio ({reason})")


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Drop what C libraries print to stderr meanwhile: libmpg123 (inside libsndfile) reports damaged mp3
    frames there ("Note: Illegal Audio-MPEG-Header ...") on lines that name no file. Decoding errors
    reach clamp3 as exceptions anyway. Anything else written to stderr in the meantime is dropped too.
    Threads take turns (one lock), so that each puts back the real stderr and not another's silence.
    """
    with _STDERR_LOCK:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to silence
            yield
            return
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _declared_frames(handle: sf.SoundFile, size: int) -> int | None:
    """The frames libsndfile's header says the file holds, capped by its size for uncompressed PCM."""
    if not 0 < handle.frames < 1 << 62:  # libsndfile gives SF_COUNT_MAX when it does not know
        return None
    width = _PCM_BYTES.get(handle.subtype)
    return handle.frames if width is None else min(handle.frames, size // (width * max(1, handle.channels)))


class _SoundfileReader:
    def __init__(self, path: Path, handle: sf.SoundFile) -> None:
        self._path = path
        self._handle = handle
        self.sample_rate = handle.samplerate
        self.channels = handle.channels
        frames = _declared_frames(handle, path.stat().st_size)
        self.seconds = None if frames is None or self.sample_rate < 1 else frames / self.sample_rate

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        while True:
            try:
                with _quiet_stderr():
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
        if stream.duration and stream.time_base:
            self.seconds = float(stream.duration * stream.time_base)
        else:
            self.seconds = container.duration / 1_000_000 if container.duration else None  # AV_TIME_BASE

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
            with _quiet_stderr():
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


def check_stream(path: str | Path, reader: AudioReader, max_seconds: float | None = None) -> None:
    """Raise :class:`InputError` for decoded parameters clamp3 does not resample: a sample rate outside
    :data:`MIN_SAMPLE_RATE` - :data:`MAX_SAMPLE_RATE` Hz, no channel or more than :data:`MAX_CHANNELS`,
    or a length over ``max_seconds`` (``None``: no limit) declared by the header.
    """
    if not MIN_SAMPLE_RATE <= reader.sample_rate <= MAX_SAMPLE_RATE:
        raise InputError(
            path,
            f"sample rate of {reader.sample_rate} Hz, outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
            "that are decoded (a broken header?)",
        )
    if not 1 <= reader.channels <= MAX_CHANNELS:
        raise InputError(path, f"{reader.channels} channels, outside the 1-{MAX_CHANNELS} that are decoded")
    if max_seconds is not None and reader.seconds is not None and reader.seconds > max_seconds:
        length = f"{reader.seconds:.1f} s long"
        raise InputError(
            path, f"the audio is {length}, over the limit of {max_seconds:g} s (as its header says)"
        )


def iter_mono(
    path: str | Path,
    sample_rate: int,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    *,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """The decoded file, averaged over channels and resampled to ``sample_rate``, as float32 blocks.

    A file longer than ``max_seconds`` (``None``: no limit) is refused with :class:`InputError` before
    decoding when its header tells its length, else once decoding passes the limit. Decoder reads hold
    at most :data:`MAX_BLOCK_SAMPLES` samples, so a file of many channels is read in shorter blocks.
    """
    with open_audio(path) as reader:
        check_stream(path, reader, max_seconds)
        limit = math.inf if max_seconds is None else max_seconds * reader.sample_rate
        resampler = StreamResampler(reader.sample_rate, sample_rate)
        frames = 0
        for block in reader.blocks(max(1, min(block_frames, MAX_BLOCK_SAMPLES // reader.channels))):
            check_finite(path, block, reader.sample_rate, frames)
            frames += len(block)
            if frames > limit:
                raise InputError(
                    path, f"the audio is longer than the limit of {max_seconds:g} s (decoding stopped there)"
                )
            out = resampler.push(mix_down(block))
            if len(out):
                yield out
        yield resampler.finish()


def load_mono(path: str | Path, sample_rate: int = 24000, *, max_seconds: float | None = None) -> np.ndarray:
    """The whole file as one mono float32 signal at ``sample_rate`` (see :func:`iter_mono`)."""
    return np.concatenate(list(iter_mono(path, sample_rate, max_seconds=max_seconds)))


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


def scan_audio(
    path: str | Path,
    spec: WindowSpec,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    *,
    max_seconds: float | None = None,
) -> ClipStats:
    """First streamed pass: the clip's length at the model rate and its mean and population variance.

    Raises :class:`InputError` for undecodable files, for clips shorter than ``spec.min_seconds`` and for
    clips longer than ``max_seconds`` (``None``: no limit; see :func:`iter_mono`).
    """
    count, mean, m2 = 0, 0.0, 0.0
    for block in iter_mono(path, spec.sample_rate, block_frames, max_seconds=max_seconds):
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
    path: str | Path,
    spec: WindowSpec,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    *,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """The normalised windows of a file, streamed (two decoding passes, bounded memory); ``max_seconds``
    as for :func:`scan_audio`."""
    stats = scan_audio(path, spec, block_frames, max_seconds=max_seconds)
    yield from iter_windows(path, spec, stats, block_frames)
