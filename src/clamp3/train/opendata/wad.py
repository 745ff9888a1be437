"""MIDI music inside Doom WAD files (Freedoom's music, BSD-3-style licence, from Debian's ``freedoom``).

A WAD starts with a 12-byte header: the magic ``IWAD`` or ``PWAD``, the number of lumps and the offset
of the lump directory (little-endian int32s). Each directory entry is 16 bytes: the lump's offset and
size (int32s) and its name (8 bytes, NUL-padded). Music lumps are named ``D_*``; the ones that are
Standard MIDI Files start with ``MThd`` (others use Doom's own MUS format and are skipped).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from clamp3.errors import InputError

DEBIAN_FREEDOOM_WADS = (
    Path("/usr/share/games/doom/freedoom1.wad"),
    Path("/usr/share/games/doom/freedoom2.wad"),
)
"""Where ``apt-get install freedoom`` puts the two WADs."""

_HEADER = struct.Struct("<4sii")
_ENTRY = struct.Struct("<ii8s")


@dataclass(frozen=True)
class MidiLump:
    name: str
    data: bytes


def midi_lumps(path: Path) -> list[MidiLump]:
    """The Standard MIDI File music lumps of a WAD, in directory order."""
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise InputError(path, "too short to be a WAD file")
    magic, count, directory = _HEADER.unpack_from(data)
    if magic not in (b"IWAD", b"PWAD"):
        raise InputError(path, f"not a WAD file (magic {magic!r})")
    if count < 0 or directory < 0 or directory + count * _ENTRY.size > len(data):
        raise InputError(path, "the lump directory lies outside the file")
    lumps = []
    for index in range(count):
        offset, size, raw = _ENTRY.unpack_from(data, directory + index * _ENTRY.size)
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        body = data[offset : offset + size]
        if name.startswith("D_") and body.startswith(b"MThd"):
            lumps.append(MidiLump(name, body))
    return lumps
