"""A seeded mutation fuzzer: damaged, disguised and oversized variants of valid input files.

:func:`write_mutants` turns each seed file into variants by truncation, byte flips, zero length, a
swapped extension (another kind's content under this kind's name), absurd header values (format by
format: a 1 Hz WAV, a MIDI claiming 65535 tracks, a ``.npy`` of the wrong shape ...) and inputs far
past the size limits. The same ``seed`` always gives the same files.
"""

from __future__ import annotations

import random
import struct
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

Patch = Callable[[bytes], bytes]


def _at(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def _wav_field(offset: int, fmt: str, value: int) -> Patch:
    """Set a field of the ``fmt `` chunk (offsets from the chunk's data start)."""

    def patch(data: bytes) -> bytes:
        start = data.find(b"fmt ") + 8
        return _at(data, start + offset, struct.pack(fmt, value))

    return patch


def _wav_data_size(value: int) -> Patch:
    def patch(data: bytes) -> bytes:
        return _at(data, data.find(b"data") + 4, struct.pack("<I", value))

    return patch


def _replace(old: bytes, new: bytes) -> Patch:
    return lambda data: data.replace(old, new)


def _npy(array_header: str, body: bytes = b"\x00" * 64) -> Patch:
    def patch(_: bytes) -> bytes:
        header = array_header.encode("latin1")
        header += b" " * (-(len(header) + 11) % 64) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body

    return patch


def _png_size(width: int, height: int) -> Patch:
    return lambda data: _at(data, 16, struct.pack(">II", width, height))


def _zip_sizes(data: bytes) -> bytes:
    """Every local header of a zip archive claims a 4 GiB uncompressed entry."""
    out = bytearray(data)
    start = out.find(b"PK\x03\x04")
    while start != -1:
        out[start + 22 : start + 26] = struct.pack("<I", 0xFFFFFFFF)
        start = out.find(b"PK\x03\x04", start + 4)
    return bytes(out)


def _zip_entry(name: str, content: bytes) -> Patch:
    def patch(_: bytes) -> bytes:
        buffer = BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, content)
        return buffer.getvalue()

    return patch


ABSURD: dict[str, list[Patch]] = {
    ".wav": [
        _wav_field(4, "<I", 1),  # 1 Hz
        _wav_field(4, "<I", 0),
        _wav_field(4, "<I", 0xFFFFFFFF),
        _wav_field(2, "<H", 0),  # no channels
        _wav_field(2, "<H", 65535),
        _wav_field(14, "<H", 0),  # 0 bits per sample
        _wav_field(14, "<H", 65535),
        _wav_data_size(0xFFFFFFFF),
    ],
    ".mid": [
        lambda d: _at(d, 10, struct.pack(">H", 65535)),  # 65535 tracks
        lambda d: _at(d, 12, struct.pack(">H", 0)),  # 0 ticks per beat
        lambda d: _at(d, 12, struct.pack(">H", 0xE728)),  # SMPTE division
        lambda d: _at(d, 18, struct.pack(">I", 0x7FFFFFFF)),  # first track claims 2 GiB
        lambda d: _at(d, 8, struct.pack(">H", 7)),  # format 7
        lambda d: d[:14] + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00",  # a track with no notes
    ],
    ".npy": [
        _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 100), }", b"\x00" * 1200),
        _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1000000000, 24), }"),
        _npy("{'descr': '<c16', 'fortran_order': False, 'shape': (1, 2, 24), }", b"\x00" * 768),
        _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 24), }", b""),
        _npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"),
        _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 24), }"),
    ],
    ".png": [_png_size(0x7FFFFFFF, 0x7FFFFFFF), _png_size(0, 0), _png_size(100000, 100000)],
    ".mxl": [
        _zip_sizes,
        _zip_entry("score.xml", b"<score-partwise><part id='P1'></part></score-partwise>"),
        _zip_entry("META-INF/container.xml", b"<container/>"),
    ],
    ".xml": [
        _replace(b"<divisions>", b"<divisions>0</divisions><!--"),
        _replace(b"<duration>", b"<duration>99999999999999999999"),
        _replace(b"<beats>", b"<beats>0"),
        _replace(b"<octave>", b"<octave>-999"),
    ],
    ".abc": [
        _replace(b"L:1/8", b"L:1/0"),
        _replace(b"M:", b"M:0/0\n%"),
        _replace(b"K:", b"K:Q\n%"),
        lambda d: d.replace(b"|", b"(999" + b"a" * 50 + b"|", 3),
    ],
    ".mtf": [
        _replace(b"ticks_per_beat", b"ticks_per_beat 0\n%"),
        lambda d: d + b"note_on channel=0 note=60 velocity=64 time=99999999999999999999\n",
        lambda d: d + b"note_on channel=99 note=999 velocity=-1 time=0\n",
    ],
    ".txt": [
        lambda d: b" \n\t\n",  # only whitespace
        lambda d: b"\xff\xfe" + d.decode("utf-8").encode("utf-16-le"),  # UTF-16 with a BOM
        lambda d: b"\x00" * 32,
    ],
}

OVERSIZED: dict[str, Callable[[], bytes]] = {
    ".txt": lambda: b"la " * 200_000,  # one 600,000-character line
    ".abc": lambda: b"X:1\nT:long\nM:4/4\nL:1/8\nK:C\n" + b"ABcd" * 100_000 + b"\n",
    ".mtf": lambda: b"ticks_per_beat 480\n" + b"note_on channel=0 note=60 velocity=64 time=1\n" * 250_000,
}


def _flipped(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, max(1, len(out) // 50))):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def write_mutants(seeds: dict[str, Path], folder: Path, per_seed: int, seed: int = 0) -> list[Path]:
    """``per_seed`` (at least) variants of each seed file in ``folder``; returns their paths.

    ``seeds`` maps a name to a valid file; each variant keeps its seed's extension.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {name: path.read_bytes() for name, path in seeds.items()}
    written: list[Path] = []

    def write(name: str, suffix: str, index: str, data: bytes) -> None:
        path = folder / f"{name}.{index}{suffix}"
        path.write_bytes(data)
        written.append(path)

    for name, path in seeds.items():
        data, suffix = contents[name], path.suffix.lower()
        variants = [(f"absurd{i}", patch(data)) for i, patch in enumerate(ABSURD.get(suffix, []))]
        if suffix in OVERSIZED:
            variants.append(("oversized", OVERSIZED[suffix]()))
        variants.append(("empty", b""))
        others = [other for other in contents if seeds[other].suffix.lower() != suffix]
        variants.append(("disguised", contents[rng.choice(others)]))
        while len(variants) < per_seed:
            if rng.random() < 0.4:
                variants.append((f"cut{len(variants)}", data[: rng.randrange(len(data))]))
            else:
                variants.append((f"flip{len(variants)}", _flipped(data, rng)))
        for index, variant in variants:
            write(name, suffix, index, variant)
    return written
