"""File kinds by extension and by content, the kind -> tower map, and the folder walker."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clamp3.errors import InputError
from clamp3.modality import (
    KIND_TOWERS,
    SNIFF_BYTES,
    FileKind,
    collect_files,
    detect_kind,
    extension,
    kind_from_extension,
    sniff_kind,
)

MUSICXML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" '
    '"http://www.musicxml.org/dtds/partwise.dtd">\n'
    '<score-partwise version="4.0"><part-list/></score-partwise>\n'
)
TIMEWISE = '<?xml version="1.0"?>\n<!-- exported -->\n<score-timewise version="3.1"></score-timewise>\n'
ABC = "X:1\nT:Scale\nM:4/4\nL:1/8\nK:C\nCDEF GABc|\n"
INTERLEAVED_ABC = "%%score { 1 | 2 }\r\nL:1/8\r\nM:3/4\r\nK:G\r\nV:1 treble\r\n[V:1]GAB|[V:2]D3|\r\n"
MTF = "ticks_per_beat 480\ntime_signature 0 4 4 24 8\nnote_on 0 0 60 64\n"


def _image(fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (4, 3), color=0).save(buffer, format=fmt)
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 2, 768), dtype=np.float32))
    return buffer.getvalue()


def _mxl(with_container: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if with_container:
            archive.writestr(
                "META-INF/container.xml",
                '<container><rootfiles><rootfile full-path="score.xml"/></rootfiles></container>',
            )
        archive.writestr("score.xml", MUSICXML)
    return buffer.getvalue()


def _zip_of(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


MIDI = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", 4) + b"\x00\xff\x2f\x00"
WAV = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 24000, 48000, 2, 16)
WAV += b"data" + struct.pack("<I", 0)

MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417 bytes

# One sample per kind: (name with the right extension, content).
SAMPLES: dict[str, tuple[str, bytes, FileKind]] = {
    "text": ("desc.txt", "a calm piano piece\nüber ruhig\n".encode(), FileKind.TEXT),
    "abc": ("tune.abc", ABC.encode(), FileKind.ABC),
    "abc_reference_only": ("x1.abc", b"X:1\n", FileKind.ABC),
    "interleaved_abc": ("tune2.abc", INTERLEAVED_ABC.encode(), FileKind.ABC),
    "mtf": ("song.mtf", MTF.encode(), FileKind.MTF),
    "musicxml": ("score.musicxml", MUSICXML.encode(), FileKind.MUSICXML),
    "timewise": ("score.xml", TIMEWISE.encode(), FileKind.MUSICXML),
    "utf16_musicxml": ("score16.xml", MUSICXML.encode("utf-16"), FileKind.MUSICXML),
    "mxl": ("score.mxl", _mxl(), FileKind.MUSICXML),
    "mxl_without_container": ("bare.mxl", _mxl(with_container=False), FileKind.MUSICXML),
    "midi": ("song.mid", MIDI, FileKind.MIDI),
    "wav": ("take.wav", WAV, FileKind.AUDIO),
    "flac": ("take.flac", b"fLaC\x00\x00\x00\x22" + bytes(34), FileKind.AUDIO),
    "ogg": ("take.ogg", b"OggS\x00\x02" + bytes(22), FileKind.AUDIO),
    "mp3_id3": (
        "take.mp3",
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(32),
        FileKind.AUDIO,
    ),
    "mp3_frames": ("bare.mp3", MP3_FRAME * 2, FileKind.AUDIO),
    "m4a": ("take.m4a", struct.pack(">I", 24) + b"ftypM4A \x00\x00\x02\x00M4A isom", FileKind.AUDIO),
    "png": ("pic.png", _image("PNG"), FileKind.IMAGE),
    "jpeg": ("pic.jpeg", _image("JPEG"), FileKind.IMAGE),
    "webp": ("pic.webp", _image("WEBP"), FileKind.IMAGE),
    "npy": ("feat.npy", _npy(), FileKind.FEATURES),
}


def _write(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_every_kind_has_a_tower() -> None:
    assert set(KIND_TOWERS) == set(FileKind)
    assert {kind.value: kind.tower for kind in FileKind} == {
        "text": "text",
        "image": "text",
        "abc": "symbolic",
        "mtf": "symbolic",
        "musicxml": "symbolic",
        "midi": "symbolic",
        "audio": "audio",
        "features": "audio",
    }
    assert FileKind("midi") is FileKind.MIDI and FileKind.MIDI == "midi"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", FileKind.TEXT),
        ("a.abc", FileKind.ABC),
        ("a.mtf", FileKind.MTF),
        ("a.xml", FileKind.MUSICXML),
        ("a.musicxml", FileKind.MUSICXML),
        ("a.mxl", FileKind.MUSICXML),
        ("a.mid", FileKind.MIDI),
        ("a.midi", FileKind.MIDI),
        ("a.wav", FileKind.AUDIO),
        ("a.mp3", FileKind.AUDIO),
        ("a.flac", FileKind.AUDIO),
        ("a.ogg", FileKind.AUDIO),
        ("a.m4a", FileKind.AUDIO),
        ("a.png", FileKind.IMAGE),
        ("a.jpg", FileKind.IMAGE),
        ("a.jpeg", FileKind.IMAGE),
        ("a.webp", FileKind.IMAGE),
        ("a.npy", FileKind.FEATURES),
        ("dir.v2/A.MID", FileKind.MIDI),
        ("PHOTO.JPEG", FileKind.IMAGE),
        ("Score.MusicXML", FileKind.MUSICXML),
        ("a.md", None),
        ("a.gif", None),
        ("README", None),
        ("Op. 2 No. 1", None),
    ],
)
def test_kind_from_extension(name: str, expected: FileKind | None) -> None:
    assert kind_from_extension(name) is expected


def test_extension_is_lower_cased_and_must_be_alphanumeric() -> None:
    assert extension("x/Song.MID") == ".mid"
    assert extension("archive.tar.gz") == ".gz"
    assert extension("Op. 2 No. 1") == ""
    assert extension(".hidden") == ""
    assert extension("noext") == ""


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_each_kind_by_extension_and_by_content(tmp_path: Path, sample: str) -> None:
    name, content, kind = SAMPLES[sample]
    assert detect_kind(_write(tmp_path, name, content)) is kind
    assert sniff_kind(tmp_path / name) is kind
    assert detect_kind(_write(tmp_path, "noext/" + Path(name).stem, content)) is kind
    stem, suffix = name.rsplit(".", 1)
    assert detect_kind(_write(tmp_path, f"upper/{stem}.{suffix.upper()}", content)) is kind


@pytest.mark.parametrize("sample", sorted(set(SAMPLES) - {"text"}))
def test_content_wins_over_a_wrong_extension(tmp_path: Path, sample: str) -> None:
    _, content, kind = SAMPLES[sample]
    wrong = ".txt" if kind is not FileKind.TEXT else ".mid"
    if kind is FileKind.MUSICXML:
        wrong = ".abc"
    assert detect_kind(_write(tmp_path, "liar" + wrong, content)) is kind
    assert detect_kind(_write(tmp_path, "liar.bin", content)) is kind


def test_content_without_a_signature_keeps_the_extension(tmp_path: Path) -> None:
    prose = b"just some words\n"
    assert detect_kind(_write(tmp_path, "a.mid", prose)) is FileKind.MIDI
    assert detect_kind(_write(tmp_path, "a.abc", prose)) is FileKind.ABC
    assert detect_kind(_write(tmp_path, "b.png", bytes(range(256)))) is FileKind.IMAGE
    assert (
        detect_kind(_write(tmp_path, "generic.xml", b"<?xml version='1.0'?><config/>")) is FileKind.MUSICXML
    )
    assert detect_kind(_write(tmp_path, "latin1.txt", "caf\xe9\n".encode("latin-1"))) is FileKind.TEXT
    assert detect_kind(_write(tmp_path, "empty.npy", b"")) is FileKind.FEATURES


def test_plain_text_needs_no_extension_but_a_foreign_extension_stays_unknown(tmp_path: Path) -> None:
    prose = b"a calm piano piece\n"
    assert detect_kind(_write(tmp_path, "description", prose)) is FileKind.TEXT
    assert detect_kind(_write(tmp_path, "README.md", prose)) is None
    assert detect_kind(_write(tmp_path, "meta.json", b'{"k": 1}')) is None


def test_unknown_content_is_none(tmp_path: Path) -> None:
    assert detect_kind(_write(tmp_path, "blob", bytes([0, 1, 2, 200, 255]) * 50)) is None
    assert detect_kind(_write(tmp_path, "blob.bin", bytes(range(256)))) is None
    assert detect_kind(_write(tmp_path, "anim.gif", _image("GIF", "P"))) is None
    assert detect_kind(_write(tmp_path, "latin1", "caf\xe9\n".encode("latin-1"))) is None
    assert detect_kind(_write(tmp_path, "controls", b"abc\x01\x02def")) is None
    assert detect_kind(_write(tmp_path, "empty", b"")) is None
    heic = struct.pack(">I", 24) + b"ftypheic\x00\x00\x00\x00mif1heic"
    assert detect_kind(_write(tmp_path, "photo", heic)) is None
    avi = b"RIFF" + struct.pack("<I", 4) + b"AVI LIST"
    assert detect_kind(_write(tmp_path, "clip", avi)) is None


def test_zip_archives_are_musicxml_only_with_a_score_inside(tmp_path: Path) -> None:
    docx = _zip_of({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w:document/>"})
    epub = _zip_of({"META-INF/container.xml": "<container/>", "content.opf": "<package/>"})
    assert detect_kind(_write(tmp_path, "letter.docx", docx)) is None
    assert detect_kind(_write(tmp_path, "book", epub)) is None
    assert detect_kind(_write(tmp_path, "packed.zip", _mxl())) is FileKind.MUSICXML
    assert detect_kind(_write(tmp_path, "broken", _mxl()[:40])) is None


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32"])
def test_text_with_a_byte_order_mark_is_text_not_mp3(tmp_path: Path, codec: str) -> None:
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}.get(codec, "")
    prose = (bom + "a calm piano piece\nüber ruhig\n").encode(codec)
    assert detect_kind(_write(tmp_path, "desc.txt", prose)) is FileKind.TEXT
    assert detect_kind(_write(tmp_path, "description", prose)) is FileKind.TEXT
    assert detect_kind(_write(tmp_path, "tune.txt", (bom + ABC).encode(codec))) is FileKind.ABC
    assert detect_kind(_write(tmp_path, "song", (bom + MTF).encode(codec))) is FileKind.MTF
    assert detect_kind(_write(tmp_path, "score", (bom + MUSICXML).encode(codec))) is FileKind.MUSICXML


def test_one_mpeg_frame_header_alone_is_not_audio(tmp_path: Path) -> None:
    assert sniff_kind(_write(tmp_path, "one_frame", MP3_FRAME)) is None
    assert sniff_kind(_write(tmp_path, "frame_then_junk", MP3_FRAME + b"\x00\x01" * 300)) is None
    assert sniff_kind(_write(tmp_path, "bom_then_binary", b"\xff\xfe" + bytes(range(256)) * 4)) is None
    other_rate = b"\xff\xfb\x94\x64" + bytes(600)  # the next header announces 48 kHz: another stream
    assert sniff_kind(_write(tmp_path, "rate_change", MP3_FRAME + other_rate)) is None
    mpeg2_layer3 = b"\xff\xf3\x80\x64" + bytes(204)  # 72 * 64 kbit/s / 22.05 kHz: 208 bytes
    assert sniff_kind(_write(tmp_path, "mpeg2", mpeg2_layer3 * 2)) is FileKind.AUDIO
    layer1 = b"\xff\xff\x40\x00" + bytes(132)  # 4 * (12 * 128 kbit/s / 44.1 kHz): 136 bytes
    assert sniff_kind(_write(tmp_path, "layer1", layer1 * 2)) is FileKind.AUDIO
    assert sniff_kind(_write(tmp_path, "layer1_cut", layer1 + layer1[:3])) is None


def test_damaged_mxl_archives_never_raise_and_keep_their_extension(tmp_path: Path) -> None:
    original = _mxl()
    rng = np.random.default_rng(5)
    for trial in range(300):
        damaged = bytearray(original)
        for position in rng.integers(0, len(damaged), size=1 + trial % 3):
            damaged[position] ^= 1 << int(rng.integers(8))
        path = _write(tmp_path, f"damaged{trial}.mxl", bytes(damaged))
        assert detect_kind(path) is FileKind.MUSICXML
        assert sniff_kind(path) in (FileKind.MUSICXML, None)


def test_utf8_cut_at_the_sniff_limit_is_still_text(tmp_path: Path) -> None:
    content = ("x" * (SNIFF_BYTES - 1) + "ü" * 10).encode()
    assert detect_kind(_write(tmp_path, "long", content)) is FileKind.TEXT
    assert detect_kind(_write(tmp_path, "broken", content[:SNIFF_BYTES])) is None


def test_reference_fixtures_by_extension_and_content(reference_dir: Path) -> None:
    expected = {
        ".mid": FileKind.MIDI,
        ".mxl": FileKind.MUSICXML,
        ".xml": FileKind.MUSICXML,
        ".musicxml": FileKind.MUSICXML,
        ".abc": FileKind.ABC,
        ".mtf": FileKind.MTF,
        ".wav": FileKind.AUDIO,
        ".npy": FileKind.FEATURES,
    }
    found = sorted(p for p in reference_dir.rglob("*") if p.suffix in expected and p.is_file())
    features = [p for p in found if p.suffix == ".npy"]
    sample = [p for p in found if p.suffix != ".npy"] + features[::25]  # hundreds of .npy: a sample
    assert len(sample) > 100
    for path in sample:
        assert (detect_kind(path), sniff_kind(path)) == (expected[path.suffix],) * 2, path


def test_collect_files_order_kinds_and_skipping(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for rel, sample in [
        ("b/z.mid", "midi"),
        ("b/a.abc", "abc"),
        ("a.txt", "text"),
        ("c/deep/x.wav", "wav"),
        ("Z.PNG", "png"),
        ("noext", "mtf"),
    ]:
        _write(root, rel, SAMPLES[sample][1])
    _write(root, ".hidden.mid", MIDI)
    _write(root, ".git/objects/x.mid", MIDI)
    _write(root, "notes.md", b"# readme\n")
    _write(root, "blob.bin", bytes(range(256)))

    files, skipped = collect_files([root])
    assert [(p.relative_to(root).as_posix(), k.value) for p, k in files] == [
        ("Z.PNG", "image"),
        ("a.txt", "text"),
        ("b/a.abc", "abc"),
        ("b/z.mid", "midi"),
        ("c/deep/x.wav", "audio"),
        ("noext", "mtf"),
    ]
    assert [p.relative_to(root).as_posix() for p in skipped] == ["blob.bin", "notes.md"]

    flat = collect_files([root], recursive=False)
    assert [p.name for p, _ in flat.files] == ["Z.PNG", "a.txt", "noext"]
    assert collect_files([str(root)]) == collect_files([root])


def test_collect_files_explicit_arguments(tmp_path: Path) -> None:
    midi = _write(tmp_path, "one.mid", MIDI)
    hidden = _write(tmp_path, ".secret.abc", ABC.encode())
    unknown = _write(tmp_path, "mystery.xyz", bytes(range(256)))
    folder = tmp_path / "folder"
    inner = _write(folder, "two.mtf", MTF.encode())
    files, skipped = collect_files([unknown, folder, midi, hidden, inner, midi])
    assert files == [(inner, FileKind.MTF), (midi, FileKind.MIDI), (hidden, FileKind.ABC)]
    assert skipped == [unknown]
    with pytest.raises(InputError, match=r"missing\.mid: no such file or directory"):
        collect_files([midi, tmp_path / "missing.mid"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_collect_files_reports_pipes_and_broken_links(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mid")
    (tmp_path / "dangling.mid").symlink_to(tmp_path / "gone.mid")
    _write(tmp_path, "ok.mid", MIDI)
    files, skipped = collect_files([tmp_path])
    assert [p.name for p, _ in files] == ["ok.mid"]
    assert sorted(p.name for p in skipped) == ["dangling.mid", "pipe.mid"]
