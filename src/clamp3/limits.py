"""Size limits on one input, so that no single file can take a batch's memory or hours of its time.

Every limit is checked before the expensive step it protects (reading, converting, encoding) and a
file past one fails alone, with a reason naming the limit; nothing is truncated, because a cut input
would give a different vector than the whole one. The defaults let through every real piece we know
of; raise them through :class:`~clamp3.pipeline.PipelineOptions` for unusual collections.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

from clamp3.errors import InputError


@dataclass(frozen=True)
class InputLimits:
    """The largest input of each kind clamp3 embeds (``None`` switches a limit off)."""

    max_file_bytes: int | None = 1 << 30
    """Any file (1 GiB: an hour of 16-bit stereo WAV at 96 kHz fits)."""
    max_text_chars: int | None = 100_000
    """A text or caption: about 200 of the text tower's 128-token segments."""
    max_abc_chars: int | None = 200_000
    """One ABC tune before conversion (the converters take about 40 s for this much)."""
    max_abc_line_chars: int | None = 10_000
    """One line of an ABC tune; abc2xml's time grows with the square of a line without bar lines."""
    max_symbolic_patches: int | None = 1_000_000
    """Converted symbolic music (interleaved ABC or MTF): about 2,000 of the M3 tower's segments (the
    longest piece of the bundled model's test set, a MIDI file, has 102,024)."""
    max_audio_seconds: float | None = 3600.0
    """An audio file's duration."""

    def with_settings(self, settings: Iterable[str]) -> InputLimits:
        """These limits changed by ``NAME=VALUE`` strings (``max_text_chars=500000``; ``none`` switches a
        limit off). :class:`ValueError` names a bad setting and the choices."""
        kinds = {field.name: (float if "seconds" in field.name else int) for field in fields(self)}
        changes: dict[str, float | int | None] = {}
        for setting in settings:
            name, _, value = setting.partition("=")
            name = name.strip()
            if name not in kinds or not value.strip():
                raise ValueError(f"{setting!r}: give NAME=VALUE with NAME one of {', '.join(kinds)}")
            try:
                number = None if value.strip().lower() == "none" else kinds[name](value)
            except ValueError:
                raise ValueError(f"{setting!r}: {value!r} is not a number (or none)") from None
            if number is not None and number <= 0:
                raise ValueError(f"{setting!r}: a limit must be positive (or none)")
            changes[name] = number
        return replace(self, **changes)

    def check_file(self, path: Path) -> None:
        """Refuse a file larger than :attr:`max_file_bytes` (``OSError`` if it cannot be read)."""
        size = path.stat().st_size
        if self.max_file_bytes is not None and size > self.max_file_bytes:
            raise InputError(path, f"{size} bytes, over the limit of {self.max_file_bytes} bytes")

    def check_text(self, source: str | Path, text: str) -> None:
        _check_count(source, len(text), self.max_text_chars, "characters of text")

    def check_abc_tune(self, source: str | Path, tune: str) -> None:
        _check_count(source, len(tune), self.max_abc_chars, "characters of ABC")
        if self.max_abc_line_chars is not None:
            longest = max(map(len, tune.split("\n")), default=0)
            _check_count(source, longest, self.max_abc_line_chars, "characters on one ABC line")

    def check_patches(self, source: str | Path, patches: int) -> None:
        _check_count(source, patches, self.max_symbolic_patches, "patches of symbolic music")


def _check_count(source: str | Path, count: int, limit: int | None, what: str) -> None:
    if limit is not None and count > limit:
        raise InputError(source, f"{count} {what}, over the limit of {limit}")
