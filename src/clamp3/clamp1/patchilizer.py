"""CLaMP 1's bar patches: ABC text -> ``[n_patches, 64]`` character ids (reference ``MusicPatchilizer``).

* The text is transliterated to ASCII (Unidecode 1.3.4, see :mod:`clamp3.clamp1.text`), split on ``\\n``
  only, and the first empty line (only that one) is removed.
* A header line (a letter and ``:``, or ``%%score...``) is one patch, after the body collected so far has
  been cut into bars. Every other line is appended to the body **without** a separator.
* Bars: the body is split at the barlines ``|: :: :| [| || |] |`` (tried in that order), empty pieces are
  removed, a leading barline joins the piece after it, and pieces are paired as (content, barline). So
  consecutive barlines shift the pairing, and text after the last barline is dropped.
* A patch is the first 64 characters (32..126 -> 1..95, anything else -> 0), then the eos id 97 if there
  is room, then zeros. One all-eos patch may be appended; the result is cut to ``music_length`` patches.
"""

from __future__ import annotations

import re

import numpy as np

from clamp3.clamp1.text import ascii_text

PATCH_LENGTH = 64
PATCH_CLASSES = 98
"""Ids 0..97: 0 pad (and every non-printable character), 1..95 printable ASCII, 96 mask, 97 eos."""
PAD_ID = 0
MASK_ID = 96
EOS_ID = 97

BARLINES = ("|:", "::", ":|", "[|", "||", "|]", "|")
_BARLINE_SPLIT = re.compile("(" + "|".join(map(re.escape, BARLINES)) + ")")


def is_header_line(line: str) -> bool:
    """A field line such as ``K:C`` or a ``%%score`` directive: encoded whole, as one patch."""
    return len(line) > 1 and ((line[0].isalpha() and line[1] == ":") or line.startswith("%%score"))


def split_bars(body: str) -> list[str]:
    """The bars of a non-empty body, each ending in its barline (the unpaired tail is dropped).

    Raises ``ValueError`` for a body that is one barline and nothing else, where the reference fails.
    """
    pieces = [piece for piece in _BARLINE_SPLIT.split(body) if piece]
    if pieces[0] in BARLINES:
        if len(pieces) == 1:
            raise ValueError(f"the music body is a lone barline {pieces[0]!r}, which CLaMP 1 cannot encode")
        pieces = [pieces[0] + pieces[1], *pieces[2:]]
    return [pieces[2 * i] + pieces[2 * i + 1] for i in range(len(pieces) // 2)]


def bar_patch(bar: str, patch_length: int = PATCH_LENGTH) -> list[int]:
    """The ids of one bar (or header line): cut to ``patch_length``, eos-terminated when shorter."""
    ids = [code - 31 if 32 <= (code := ord(char)) < 127 else PAD_ID for char in bar[:patch_length]]
    if len(ids) < patch_length:
        ids.append(EOS_ID)
    return ids + [PAD_ID] * (patch_length - len(ids))


def encode_music(
    music: str, music_length: int, *, add_eos_patch: bool = True, patch_length: int = PATCH_LENGTH
) -> np.ndarray:
    """``int64 [n, patch_length]`` patch ids of an ABC text, at most ``music_length`` of them."""
    lines = ascii_text(music).split("\n")
    if "" in lines:
        lines.remove("")
    patches: list[list[int]] = []
    body: list[str] = []
    for line in lines:
        if is_header_line(line):
            patches.extend(_body_patches(body, patch_length))
            body = []
            patches.append(bar_patch(line, patch_length))
        else:
            body.append(line)
    patches.extend(_body_patches(body, patch_length))
    if add_eos_patch:
        patches.append([EOS_ID] * patch_length)
    return np.array(patches[:music_length], dtype=np.int64).reshape(-1, patch_length)


def _body_patches(body: list[str], patch_length: int) -> list[list[int]]:
    text = "".join(body)
    return [bar_patch(bar, patch_length) for bar in split_bars(text)] if text else []
