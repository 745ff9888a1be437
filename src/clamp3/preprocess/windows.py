"""Windows of a piece: the passages that segment-level search embeds, each an input of its own.

A piece's model input is cut into overlapping windows, every one a valid input of the same tower, so a
window's vector lives in the space of texts and whole pieces:

* interleaved ABC by bars: the header, then the body lines of bars ``a..b`` (each body line of
  interleaved ABC is one bar of every voice, as written in the file; a pickup is bar 1);
* MTF by time: the state in force at the window's start (tempo, time and key signature, programs and
  controllers, delta 0), the events that start inside the window, the notes still sounding at its end
  closed there, and ``end_of_track``; seconds follow the file's tempo map;
* audio features by time: the rows of the window (one row per ``seconds_per_row``).

Several window sizes may be used at once (:class:`WindowSettings`), so that short queries find short
windows and long ones long windows. A piece shorter than a window is one window, the whole piece.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BAR = "bar"
SECOND = "second"
DEFAULT_TEMPO = 500_000
"""Microseconds per beat before the first ``set_tempo`` (120 beats per minute)."""
_STATE_METAS = frozenset({"set_tempo", "time_signature", "key_signature"})


@dataclass(frozen=True)
class WindowSettings:
    """Window sizes and hops: bars for sheet music, seconds for MIDI and audio."""

    bars: tuple[tuple[int, int], ...] = ((4, 2), (8, 4))
    """``(size, hop)`` pairs in bars."""
    seconds: tuple[tuple[float, float], ...] = ((6.0, 3.0), (12.0, 6.0))
    """``(size, hop)`` pairs in seconds."""

    def __post_init__(self) -> None:
        for size, hop in (*self.bars, *self.seconds):
            if not (size > 0 and 0 < hop <= size):
                raise ValueError(f"a window needs 0 < hop <= size, got size {size} and hop {hop}")
        if not self.bars or not self.seconds:
            raise ValueError("give at least one window size in bars and one in seconds")

    @classmethod
    def from_dict(cls, data: dict) -> WindowSettings:
        return cls(
            tuple((int(s), int(h)) for s, h in data["bars"]),
            tuple((float(s), float(h)) for s, h in data["seconds"]),
        )

    def to_dict(self) -> dict:
        return {"bars": [list(pair) for pair in self.bars], "seconds": [list(pair) for pair in self.seconds]}


@dataclass(frozen=True)
class Span:
    """Where a window is: bars ``start..end`` (numbered from 1, ``end`` inclusive) or seconds."""

    start: float
    end: float
    unit: str

    def overlap(self, other: Span) -> float:
        """Intersection over union of two spans of the same unit (bars count whole)."""
        if self.unit != other.unit:
            raise ValueError(f"cannot compare a span in {self.unit}s with one in {other.unit}s")
        extra = 1 if self.unit == BAR else 0  # bars 3..4 are two bars long
        inter = min(self.end, other.end) - max(self.start, other.start) + extra
        union = max(self.end, other.end) - min(self.start, other.start) + extra
        return max(0.0, inter) / union if union > 0 else 0.0

    def __str__(self) -> str:
        if self.unit == BAR:
            return f"bars {self.start:g}-{self.end:g}"
        return f"{self.start:.1f}-{self.end:.1f} s"


@dataclass(frozen=True)
class Window:
    span: Span
    data: str | np.ndarray
    """The window's model input: interleaved ABC, MTF, or feature rows ``[n, D]``."""


def window_starts(length: float, size: float, hop: float) -> list[float]:
    """Starts of windows ``size`` long every ``hop`` over ``[0, length)``; the last one ends at
    ``length``; one window at 0 when the piece is no longer than ``size``."""
    if length <= size:
        return [0]
    starts = []
    start = 0
    while start + size < length:
        starts.append(start)
        start += hop
    starts.append(length - size)
    return sorted(set(starts))


# ---------------------------------------------------------------------------- interleaved ABC


def abc_bars(text: str) -> tuple[list[str], list[str]]:
    """The header lines and the bar lines (one per bar, ``[V:...`` lines) of an interleaved ABC text."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[V:")), len(lines))
    body = [line for line in lines[first:] if line.lstrip().startswith("[V:")]
    return lines[:first], body


def abc_excerpt(text: str, first_bar: int, last_bar: int) -> str:
    """The header and bars ``first_bar..last_bar`` (from 1, inclusive) of an interleaved ABC text."""
    header, bars = abc_bars(text)
    if not 1 <= first_bar <= last_bar <= len(bars):
        raise ValueError(f"bars {first_bar}-{last_bar} are outside the piece's {len(bars)} bars")
    return "\n".join([*header, *bars[first_bar - 1 : last_bar]]) + "\n"


def abc_windows(text: str, sizes: Sequence[tuple[int, int]]) -> list[Window]:
    """Windows of an interleaved ABC text by bars (none when it has no bar lines)."""
    header, bars = abc_bars(text)
    spans = {
        (start + 1, min(start + size, len(bars)))
        for size, hop in sizes
        for start in window_starts(len(bars), size, hop)
    }
    if not bars:
        return []
    return [Window(Span(a, b, BAR), "\n".join([*header, *bars[a - 1 : b]]) + "\n") for a, b in sorted(spans)]


# ---------------------------------------------------------------------------- MTF


@dataclass(frozen=True)
class _Event:
    tick: int
    seconds: float
    kind: str
    tempo: int
    """Microseconds per beat from this event on."""
    before: str
    """The MTF line is ``before + delta + after``: a new delta goes between them."""
    after: str


def _split_time(line: str, is_channel: bool) -> tuple[str, int, str]:
    """``(text before the delta, delta, text after)`` of an MTF line."""
    if is_channel:
        kind, _, rest = line.partition(" ")
        delta, _, after = rest.partition(" ")
        return kind + " ", int(delta), (" " + after) if after else ""
    before, _, delta = line.rpartition(" ")
    return before + " ", int(delta), ""


@dataclass(frozen=True)
class _Timeline:
    """An MTF text parsed once: its header line and its timed events, with their seconds for bisection."""

    header: str
    ticks_per_beat: int
    events: list[_Event]
    seconds: list[float]

    def index(self, seconds: float) -> int:
        """The first event at or after ``seconds`` (all of them for ``inf``)."""
        return bisect.bisect_left(self.seconds, seconds)

    def tick_at(self, seconds: float) -> int:
        """The tick at a time, by the tempo in force then."""
        last = bisect.bisect_right(self.seconds, seconds) - 1
        if last < 0:
            return round(seconds * 1e6 * self.ticks_per_beat / DEFAULT_TEMPO)
        event = self.events[last]
        return event.tick + round((seconds - event.seconds) * 1e6 * self.ticks_per_beat / event.tempo)


def _timeline(mtf: str) -> _Timeline:
    """The header and the timed events of an MTF text (``end_of_track`` left out)."""
    from mido.messages.specs import SPEC_BY_TYPE

    lines = mtf.splitlines()
    if not lines or not lines[0].startswith("ticks_per_beat "):
        raise ValueError("not MTF: the first line must be 'ticks_per_beat N'")
    ticks_per_beat = int(lines[0].split()[1])
    tempo = DEFAULT_TEMPO
    tick, seconds = 0, 0.0
    events = []
    for line in lines[1:]:
        if not line.strip():
            continue
        kind = line.split(" ", 1)[0]
        before, delta, after = _split_time(line, kind in SPEC_BY_TYPE)
        tick += delta
        seconds += delta * tempo / (1e6 * ticks_per_beat)
        if kind == "set_tempo":
            tempo = int(before.split()[1])
        if kind != "end_of_track":
            events.append(_Event(tick, seconds, kind, tempo, before, after))
    return _Timeline(lines[0], ticks_per_beat, events, [event.seconds for event in events])


def mtf_seconds(mtf: str) -> float:
    """The time of the last event of an MTF text, in seconds."""
    seconds = _timeline(mtf).seconds
    return seconds[-1] if seconds else 0.0


def _note(event: _Event) -> tuple[str, str, bool] | None:
    """``(channel, note, starts)`` of a note event, ``None`` for other events."""
    if event.kind not in ("note_on", "note_off"):
        return None
    channel, note, velocity = event.after.split()
    return channel, note, event.kind == "note_on" and velocity != "0"


def _state_key(event: _Event) -> tuple[str, ...] | None:
    """What a state event sets (a later one of the same key replaces it), ``None`` for other events."""
    if event.kind in _STATE_METAS:
        return (event.kind,)
    if event.kind == "program_change":
        return (event.kind, event.after.split()[0])
    if event.kind == "control_change":
        return (event.kind, *event.after.split()[:2])
    return None


def _fold_state(state: dict[tuple[str, ...], _Event], events: Sequence[_Event]) -> None:
    """Update ``state`` (what is in force) with ``events``, in order."""
    for event in events:
        key = _state_key(event)
        if key is not None:
            state[key] = event


def mtf_excerpt(mtf: str, start: float, end: float) -> str:
    """The MTF of seconds ``[start, end)`` of an MTF text, itself a valid MTF text (see the module)."""
    timeline = _timeline(mtf)
    state: dict[tuple[str, ...], _Event] = {}
    _fold_state(state, timeline.events[: timeline.index(start)])
    return _cut(timeline, state, start, end)


def _cut(timeline: _Timeline, state: dict[tuple[str, ...], _Event], start: float, end: float) -> str:
    """The MTF of seconds ``[start, end)`` (``end`` ``inf``: to the last event), given the ``state`` in
    force at ``start``."""
    inside = timeline.events[timeline.index(start) : timeline.index(end)]
    start_tick = inside[0].tick if inside else 0
    lines = [timeline.header, *(f"{e.before}0{e.after}" for e in state.values())]
    sounding: dict[tuple[str, str], int] = {}
    previous = start_tick
    for event in inside:
        note = _note(event)
        if note is not None:
            channel, pitch, starts = note
            if starts:
                sounding[(channel, pitch)] = sounding.get((channel, pitch), 0) + 1
            elif sounding.get((channel, pitch), 0) > 0:
                sounding[(channel, pitch)] -= 1
            else:
                continue  # the end of a note that started before the window
        lines.append(f"{event.before}{event.tick - previous}{event.after}")
        previous = event.tick
    end_tick = timeline.tick_at(end) if end != float("inf") else previous
    delta = max(0, end_tick - previous)
    for (channel, pitch), count in sounding.items():
        for _ in range(count):
            lines.append(f"note_off {delta} {channel} {pitch} 0")
            delta = 0
    lines.append(f"end_of_track {delta}")
    return "\n".join(lines) + "\n"


def mtf_windows(mtf: str, sizes: Sequence[tuple[float, float]]) -> list[Window]:
    """Windows of an MTF text by seconds (windows without a note are left out). The windows go by
    start, so the state in force at each start is carried from one to the next: linear in the events."""
    timeline = _timeline(mtf)
    length = timeline.seconds[-1] if timeline.seconds else 0.0
    spans = sorted(
        {
            (round(start, 3), round(min(start + size, length), 3))
            for size, hop in sizes
            for start in window_starts(length, size, hop)
        }
    )
    windows = []
    state: dict[tuple[str, ...], _Event] = {}
    folded = 0
    for start, end in spans:
        first = timeline.index(start)
        _fold_state(state, timeline.events[folded:first])
        folded = max(folded, first)
        last = end if end < length else float("inf")  # the last window keeps the final events
        text = _cut(timeline, state, start, last)
        if "\nnote_on " in text:
            windows.append(Window(Span(start, end, SECOND), text))
    return windows


# ---------------------------------------------------------------------------- audio features


def feature_windows(
    features: np.ndarray, seconds_per_row: float, sizes: Sequence[tuple[float, float]]
) -> list[Window]:
    """Windows of audio features ``[n, D]`` by seconds, each a whole number of rows (one at least)."""
    rows = len(features)
    spans = set()
    for size, hop in sizes:
        size_rows = max(1, round(size / seconds_per_row))
        hop_rows = max(1, round(hop / seconds_per_row))
        for start in window_starts(rows, size_rows, hop_rows):
            spans.add((int(start), int(min(start + size_rows, rows))))
    return [
        Window(Span(round(a * seconds_per_row, 3), round(b * seconds_per_row, 3), SECOND), features[a:b])
        for a, b in sorted(spans)
    ]
