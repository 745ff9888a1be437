"""M3 patchilizer: interleaved ABC or MTF text -> ``[n_patches, patch_size]`` character-id patches.

Reproduces the reference ``M3Patchilizer.encode`` exactly, quirks included (see
``docs/reference-facts.md`` section 2): ``L:1/8\\n`` removal, unidecode, one patch per header line,
one patch per bar (text after the last barline of a line is dropped), merged MTF messages of one type.
"""

from __future__ import annotations

import re

import numpy as np
from unidecode import unidecode

PAD, BOS, EOS, MASK = 0, 1, 2, 3
_BARLINES = ("|:", "::", ":|", "[|", "||", "|]", "|")
_BARLINE_SPLIT = re.compile("(" + "|".join(re.escape(b) for b in _BARLINES) + ")")
_LINE_SPLIT = re.compile(r"(?<=\n)")


class M3Patchilizer:
    """Turns symbolic text into patches of ``patch_size`` ids (``[BOS] + chars + [EOS]``, 0-padded)."""

    def __init__(self, patch_size: int = 64, max_patches: int = 512) -> None:
        self.patch_size = patch_size
        self.max_patches = max_patches

    @staticmethod
    def is_mtf(text: str) -> bool:
        first = text.split("\n", 1)[0].split()
        return bool(first) and first[0] == "ticks_per_beat"

    def split(self, text: str) -> list[str]:
        """The patch strings of ``text`` (before special patches and id conversion)."""
        lines = [line for line in _LINE_SPLIT.split(unidecode(text.replace("L:1/8\n", ""))) if line]
        if not lines:
            raise ValueError("empty symbolic input")
        if self.is_mtf(lines[0]):
            return self._split_mtf(lines)
        return [patch for line in lines for patch in self._split_abc_line(line)]

    def _split_mtf(self, lines: list[str]) -> list[str]:
        limit = self.patch_size - 2
        patches: list[str] = []
        current = ""
        for line in lines:
            kind, _, rest = line.partition(" ")
            if current.startswith(kind) and len(current) + len(rest) <= limit:
                current = current[:-1] + "\t" + rest
            else:
                if current:
                    patches.append(current)
                current = line
        if current:
            patches.append(current)
        return patches

    @staticmethod
    def _split_abc_line(line: str) -> list[str]:
        if len(line) > 1 and ((line[0].isalpha() and line[1] == ":") or line.startswith("%%")):
            return [line]
        parts = [p for p in _BARLINE_SPLIT.split(line) if p]
        if len(parts) > 1 and parts[0] in _BARLINES:
            parts = [parts[0] + parts[1], *parts[2:]]
        bars = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
        if bars:
            bars[-1] += "\n"
        return bars

    def encode(self, text: str, add_special_patches: bool = True, truncate: bool = False) -> np.ndarray:
        """Patch ids ``[n, patch_size]`` (int64). ``truncate`` keeps the first ``max_patches`` patches."""
        patches = self.split(text)
        if add_special_patches:
            patches = [chr(BOS) * self.patch_size, *patches, chr(EOS) * self.patch_size]
        if truncate:
            patches = patches[: self.max_patches]
        out = np.zeros((len(patches), self.patch_size), dtype=np.int64)
        for row, patch in zip(out, patches, strict=True):
            ids = [BOS, *patch.encode("ascii"), EOS][: self.patch_size]
            row[: len(ids)] = ids
        return out

    @staticmethod
    def decode(patches: np.ndarray) -> str:
        """Inverse of :meth:`encode` (special and padding ids dropped)."""
        return "".join(chr(i) for row in patches for i in row if i > MASK)
