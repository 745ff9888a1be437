"""How the reference splits a long input into model-sized segments and recombines their outputs.

An input of ``n`` positions is cut into ``ceil(n / L)`` segments ``x[i:i+L]``; the last one is
replaced by ``x[-L:]`` (so it overlaps its predecessor when ``n % L != 0``). A global vector is the
average of the segment vectors weighted by ``L`` each, except the overlapping last one, which is
weighted by ``n % L``. Local features keep every row of each segment, but only the last
``n % L`` rows of the overlapping last one, giving exactly ``n`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    start: int
    stop: int
    weight: int
    keep: int
    """Trailing rows of this segment that belong to the local feature sequence."""

    @property
    def length(self) -> int:
        return self.stop - self.start


def split_segments(length: int, max_length: int) -> list[Segment]:
    if length <= 0:
        raise ValueError("cannot segment an empty input")
    count = -(-length // max_length)
    remainder = length % max_length
    segments = [
        Segment(start=i * max_length, stop=(i + 1) * max_length, weight=max_length, keep=max_length)
        for i in range(count - 1)
    ]
    last_start = max(length - max_length, 0)
    tail = remainder if remainder else length - last_start
    segments.append(Segment(start=last_start, stop=length, weight=tail, keep=tail))
    return segments


def plan_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Group segment indices into batches: longest first, at most ``batch_size`` per batch, and no
    segment padded to more than twice its own length (a new batch starts instead)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True):
        current = batches[-1] if batches else None
        if current is None or len(current) >= batch_size or 2 * lengths[index] < lengths[current[0]]:
            batches.append([index])
        else:
            current.append(index)
    return batches
