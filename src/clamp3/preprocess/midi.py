"""MIDI input: Standard MIDI Files <-> MTF (MIDI Text Format), the text the M3 symbolic tower reads.

MTF has one line per MIDI event. Line 1 is ``ticks_per_beat <n>``; then every event of the file, all
tracks merged into one stream ordered by time, is written as the values of mido's ``msg.dict()`` joined
by single spaces, with the delta time in ticks since the previous line:

* channel messages and sysex: ``type time fields...`` (``note_on 5 1 60 90``, ``sysex 0 [1, 2, 3]``);
* meta messages: ``type fields... time`` (``set_tempo 500000 0``, ``sequencer_specific (5,) 0``);
* the line is passed through Python's ``unicode_escape`` codec, so it is ASCII and has no tab or newline.
  Meta text is decoded as latin-1, so UTF-8 text shows as ``\\xNN`` pairs.

This is byte for byte what the reference (``batch_midi2mtf.py`` with mido 1.3.0) writes, including its
quirks: tracks are merged by a stable sort on absolute ticks; every ``end_of_track`` is removed, its delta
added to the next event, and one ``end_of_track`` closes the stream; with ``m3_compatible=True`` (what
CLaMP 3 uses) the text-like metas in :data:`M3_DROPPED_META_TYPES` are removed **together with their delta
times**, so later events move earlier when such a meta had a non-zero delta. mido itself gives unknown meta
events a delta of 0.

Beyond the reference:

* type 2 files (independent sequences) are played one after another: each track starts where the previous
  one ended (its ``end_of_track``), then the merge works as for type 0/1;
* broken files (data bytes above 127, truncated or non-MIDI data, undecodable meta events, unsupported
  formats, delta times over :data:`MAX_DELTA_TICKS`, over :data:`MAX_TRACKS` tracks) raise
  :class:`~clamp3.errors.InputError` with a one-line reason, and so do files without notes when the MTF is
  to be embedded (``require_notes=True``);
* :func:`mtf_to_midi` reads MTF back into a one-track MIDI file, including sequencer-specific and unknown
  meta events with one or no data bytes, which the reference's converter cannot read.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import mido

from clamp3.errors import InputError

MIDI_SUFFIXES = (".mid", ".midi")
"""File name endings taken as MIDI, compared case-insensitively."""

M3_DROPPED_META_TYPES = frozenset(
    {"text", "copyright", "track_name", "instrument_name", "lyrics", "marker", "cue_marker", "device_name"}
)
"""Meta events left out of MTF with ``m3_compatible=True`` (their delta times are lost with them)."""

MAX_DELTA_TICKS = 0x0FFFFFFF
"""The largest delta time a Standard MIDI File can hold: a variable-length quantity of at most 4 bytes."""

MAX_TRACKS = 0x7FFF
"""The most tracks a file may declare: mido reads the 16-bit count as signed, so more would read as none."""

_TEXT_FIELDS = frozenset({"text", "name"})
_TOKEN = re.compile(r"\[[^\]]*\]|\([^)]*\)|\S+")

Source = str | os.PathLike[str] | bytes
Event = tuple[int, mido.Message | mido.MetaMessage]
"""A delta time in ticks and the message it belongs to."""


def is_midi_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a MIDI file: it ends in ``.mid`` or ``.midi`` in any letter case."""
    return Path(path).suffix.lower() in MIDI_SUFFIXES


def read_midi(source: Source, name: str | None = None) -> mido.MidiFile:
    """Parse a Standard MIDI File given as a path or as its bytes (mido defaults: strict, latin-1 text).

    ``name`` is the file named in errors; it defaults to the path, or ``<bytes>``.
    Raises :class:`InputError` when the file cannot be read, is not a valid type 0, 1 or 2 MIDI file, or
    declares more than :data:`MAX_TRACKS` tracks.
    """
    name = name or _source_name(source)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise InputError(name, exc.strerror or str(exc)) from exc
    if not data:
        raise InputError(name, "empty file")
    tracks = int.from_bytes(data[10:12], "big") if data.startswith(b"MThd") else 0
    if tracks > MAX_TRACKS:  # mido reads the count as signed: it would read no track at all
        raise InputError(name, f"the header declares {tracks} tracks; more than {MAX_TRACKS} are not read")
    stream = io.BytesIO(data)
    try:
        midi = mido.MidiFile(file=stream)
    except EOFError as exc:
        raise InputError(name, f"truncated MIDI file: data ends at byte {len(data)}") from exc
    except (OSError, ValueError, TypeError, KeyError, IndexError, mido.KeySignatureError) as exc:
        raise InputError(name, f"invalid MIDI file near byte {stream.tell()}: {_describe(exc)}") from exc
    if midi.type not in (0, 1, 2):
        raise InputError(name, f"unsupported MIDI file format {midi.type} (only 0, 1 and 2 exist)")
    for number, track in enumerate(midi.tracks):
        for index, msg in enumerate(track):
            if msg.time > MAX_DELTA_TICKS:  # the value itself may have thousands of digits: not shown
                raise InputError(
                    name,
                    f"track {number}, event {index}: delta time over the MIDI maximum of {MAX_DELTA_TICKS} "
                    "ticks (a variable-length quantity longer than 4 bytes)",
                )
    return midi


def _source_name(source: Source) -> str:
    """How errors name a source given without a name: its path, or ``<bytes>``."""
    return "<bytes>" if isinstance(source, bytes) else os.fspath(source)


def _describe(exc: Exception) -> str:
    """A one-line reason for a parse error from mido."""
    if isinstance(exc, KeyError | IndexError):
        return "malformed event data"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def merged_events(midi: mido.MidiFile) -> list[Event]:
    """All messages of ``midi`` in one stream, as mido 1.3.0's ``merged_track`` builds it.

    Tracks go to absolute ticks, are concatenated in order and stable-sorted by tick; every
    ``end_of_track`` is removed with its delta carried to the next message, and one ``end_of_track``
    with the remaining delta ends the stream. In a type 2 file each track starts at the end of the
    previous one.
    """
    timeline: list[tuple[int, mido.Message | mido.MetaMessage]] = []
    start = 0
    for track in midi.tracks:
        tick = start
        for msg in track:
            tick += msg.time
            timeline.append((tick, msg))
        if midi.type == 2:
            start = tick
    timeline.sort(key=lambda item: item[0])

    events: list[Event] = []
    now = carried = 0
    for tick, msg in timeline:
        delta, now = tick - now, tick
        if msg.type == "end_of_track":
            carried += delta
        else:
            events.append((delta + carried, msg))
            carried = 0
    events.append((carried, mido.MetaMessage("end_of_track")))
    return events


def event_line(delta: int, msg: mido.Message | mido.MetaMessage) -> str:
    """One MTF line: the values of ``msg.dict()`` with ``time=delta``, space-joined and unicode-escaped.

    The copy puts the fields in constructor order (``type time channel ...``), as mido's merge does; a
    message decoded from a file holds ``channel`` last.
    """
    fields = msg.copy(time=delta).dict()
    return " ".join(str(value) for value in fields.values()).encode("unicode_escape").decode("ascii")


def midi_to_mtf(
    source: Source, m3_compatible: bool = True, *, name: str | None = None, require_notes: bool = False
) -> str:
    """The MTF text of a MIDI file (path or bytes), exactly as the reference writes it.

    ``m3_compatible=True`` drops the metas in :data:`M3_DROPPED_META_TYPES` (and their delta times).
    Raises :class:`InputError` for a file that is not valid MIDI, and with ``require_notes`` (for
    embedding: the MTF of such a file describes silence) for one without a ``note_on`` of velocity above 0.
    """
    midi = read_midi(source, name)
    if require_notes and not has_notes(midi):
        raise InputError(
            name or _source_name(source), "no notes (no note_on with a velocity): nothing to embed"
        )
    lines = [f"ticks_per_beat {midi.ticks_per_beat}"]
    for delta, msg in merged_events(midi):
        if not (m3_compatible and msg.type in M3_DROPPED_META_TYPES):
            lines.append(event_line(delta, msg))
    return "\n".join(lines)


def has_notes(midi: mido.MidiFile) -> bool:
    """Whether any track of ``midi`` starts a note (a ``note_on`` with a velocity above 0)."""
    return any(msg.type == "note_on" and msg.velocity for track in midi.tracks for msg in track)


def mtf_to_midi(text: str, *, name: str = "<mtf>") -> mido.MidiFile:
    """A type 1 MIDI file with one track holding the events of an MTF text, delta times as written.

    Blank lines are ignored. Raises :class:`InputError` (naming ``name`` and the line number) for a
    missing ``ticks_per_beat`` header or a line that is not a valid event.
    """
    lines = text.split("\n")
    header = lines[0].strip().split(" ")
    if len(header) != 2 or header[0] != "ticks_per_beat" or not _is_int(header[1]):
        raise InputError(name, "line 1: expected 'ticks_per_beat <integer>'")
    ticks = header[1]
    if len(ticks) > 6 or not -(1 << 15) <= int(ticks) < 1 << 15:
        raise InputError(name, f"line 1: ticks_per_beat {ticks[:12]} does not fit in a MIDI header (16 bits)")
    track = mido.MidiTrack()
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            msg = parse_event_line(line)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(name, f"line {number}: {_describe(exc)}") from exc
        if not 0 <= msg.time <= MAX_DELTA_TICKS:
            raise InputError(
                name, f"line {number}: delta time outside the MIDI range of 0 to {MAX_DELTA_TICKS} ticks"
            )
        track.append(msg)
    return mido.MidiFile(type=1, ticks_per_beat=int(ticks), tracks=[track])


def mtf_to_midi_bytes(text: str, *, name: str = "<mtf>") -> bytes:
    """The Standard MIDI File bytes of :func:`mtf_to_midi`'s result (ready to write to a ``.mid`` file)."""
    midi = mtf_to_midi(text, name=name)
    out = io.BytesIO()
    try:
        midi.save(file=out)
    except (ValueError, TypeError, KeyError, UnicodeEncodeError) as exc:
        raise InputError(name, f"cannot be written as MIDI: {_describe(exc)}") from exc
    return out.getvalue()


def parse_event_line(line: str) -> mido.Message | mido.MetaMessage:
    """The message one MTF line describes (the inverse of :func:`event_line`).

    Raises ``ValueError`` (or mido's ``TypeError``/``KeyError`` for out-of-range values) for a bad line.
    """
    kind, _, rest = line.partition(" ")
    names = _field_names(kind)
    if len(names) == 2 and names[0] in _TEXT_FIELDS:
        body, _, time = rest.rpartition(" ")
        return mido.MetaMessage(kind, **{names[0]: _unescape(body)}, time=_int(time))
    tokens = _TOKEN.findall(rest)
    if len(tokens) != len(names):
        raise ValueError(f"{kind} needs {len(names)} values ({', '.join(names)}), found {len(tokens)}")
    values = {field: _value(field, token) for field, token in zip(names, tokens, strict=True)}
    if kind == "unknown_meta":
        return mido.UnknownMetaMessage(**values)
    if kind in mido.messages.SPEC_BY_TYPE:
        return mido.Message(kind, **values)
    return mido.MetaMessage(kind, **values)


def _field_names(kind: str) -> list[str]:
    """The names of the values after the type on an MTF line of message type ``kind``, in line order."""
    if kind == "unknown_meta":
        return ["type_byte", "data", "time"]
    if kind in mido.messages.SPEC_BY_TYPE:
        return list(mido.Message(kind).dict())[1:]
    try:
        return list(mido.MetaMessage(kind).dict())[1:]
    except KeyError:
        raise ValueError(f"unknown message type {kind!r}") from None


def _value(field: str, token: str) -> int | float | str | tuple[int, ...]:
    """One field's value from its MTF token."""
    if field == "data":
        if token[:1] + token[-1:] not in ("[]", "()"):
            raise ValueError(f"data must be a [...] or (...) list of integers, not {token!r}")
        return tuple(_int(item) for item in token[1:-1].split(",") if item.strip())
    if field == "key":
        return token
    if field == "frame_rate" and not _is_int(token):
        return float(token)
    return _int(token)


def _unescape(text: str) -> str:
    """Undo ``unicode_escape`` on MTF text, which must stay within latin-1 (the MIDI text charset)."""
    decoded = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    if any(ord(char) > 0xFF for char in decoded):
        raise ValueError("meta text has characters outside latin-1")
    return decoded


def _is_int(token: str) -> bool:
    return re.fullmatch(r"\s*-?\d+\s*", token) is not None


def _int(token: str) -> int:
    if not _is_int(token):
        raise ValueError(f"expected an integer, not {token!r}")
    return int(token)
