"""Write the bad-input corpus of ``tests/data/bad/`` (see README.md there for what each file is).

Run from the repository root: ``.venv/bin/python tests/data/bad/make_corpus.py``. The files are committed;
this script documents how they were made and rebuilds them. Random content comes from fixed seeds, so the
output is the same on every run except the Ogg stream serial number and the time stamp of the float WAVs'
``PEAK`` chunk, which libsndfile sets. The zip bomb takes about 10 seconds to compress (1 GiB of zeros
through bzip2). :func:`write_large_cases` writes the two cases too large to commit (the test calls it).
"""

from __future__ import annotations

import bz2
import io
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from PIL import Image

HERE = Path(__file__).resolve().parent
ZIP_TIME = (2024, 1, 1, 0, 0, 0)
BOMB_BYTES = 1 << 30
DEFLATE_BOMB_BYTES = 512 << 20
LARGE_WAV_SECONDS = 30

PUBLIC_DTD = (
    '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN"\n'
    '  "http://www.musicxml.org/dtds/partwise.dtd">'
)
SCORE = """<?xml version="1.0" encoding="UTF-8"?>
{doctype}
<score-partwise version="3.1">
  <work><work-title>{title}</work-title></work>
  <part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>1</divisions><key><fifths>0</fifths></key>
        <time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef>
      </attributes>
      <note><pitch><step>C</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
      <note><pitch><step>E</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
    </measure>
  </part>
</score-partwise>
"""
ABC = "X:1\nT:{title}\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|\nGABc dedB|dedB dedB|]\n"
MTF = (
    "ticks_per_beat 480\nprogram_change 0 0 0\nnote_on 0 0 60 80\nnote_on 480 0 60 0\n"
    "note_on 0 0 64 80\nnote_on 480 0 64 0\nend_of_track 0\n"
)
EXTERNAL_ENTITY = '<!DOCTYPE score-partwise [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
CONTAINER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<container><rootfiles>'
    '<rootfile full-path="score.xml" media-type="application/vnd.recordare.musicxml+xml"/>'
    "</rootfiles></container>\n"
)


def random_bytes(seed: int, size: int = 2048) -> bytes:
    """Random bytes; the first is below 0x80, so they never start like an MP3 frame (0xFF) by chance."""
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    data[0] &= 0x7F
    return data.tobytes()


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def midi_bytes() -> bytes:
    track = mido.MidiTrack([mido.Message("program_change", program=0, time=0)])
    for note in (60, 64, 67):
        track += [
            mido.Message("note_on", note=note, velocity=80, time=0),
            mido.Message("note_off", note=note, time=480),
        ]
    out = io.BytesIO()
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(file=out)
    return out.getvalue()


def midi_with_delta(vlq: bytes) -> bytes:
    """A type 0 file whose first note_on has the delta-time bytes ``vlq`` (a variable-length quantity)."""
    events = vlq + b"\x90\x3c\x50" + b"\x83\x60\x80\x3c\x00" + b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(events)) + events


def vlq(value: int) -> bytes:
    """``value`` as a MIDI variable-length quantity, as many bytes as it takes (more than 4 if need be)."""
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


def mxl(entries: dict[str, bytes]) -> bytes:
    """A zip archive (deflate) holding ``entries``, with MusicXML's ``META-INF/container.xml`` first."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("META-INF/container.xml", ZIP_TIME), CONTAINER)
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def deflate_zeros(size: int) -> tuple[bytes, int]:
    """``size`` zero bytes (a multiple of 1 MiB) as raw deflate data, and their CRC-32, made in a moment.

    After a full flush the compressor starts afresh, so every MiB of zeros compresses to the same bytes.
    """
    compressor, crc, zeros = zlib.compressobj(9, zlib.DEFLATED, -15), 0, bytes(1 << 20)
    piece = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(size >> 20):
        crc = zlib.crc32(zeros, crc)
    return piece * (size >> 20) + compressor.flush(), crc


def bzip2_zeros(size: int) -> tuple[bytes, int]:
    """``size`` zero bytes compressed with bzip2, and their CRC-32."""
    compressor, crc, zeros = bz2.BZ2Compressor(9), 0, bytes(1 << 20)
    parts = []
    for _ in range(size >> 20):
        parts.append(compressor.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    return b"".join(parts) + compressor.flush(), crc


def one_entry_zip(name: str, method: int, data: bytes, crc: int, declared_size: int) -> bytes:
    """A zip archive of one entry, written field by field so its uncompressed size can be anything."""
    encoded = name.encode()
    date = (ZIP_TIME[0] - 1980) << 9 | ZIP_TIME[1] << 5 | ZIP_TIME[2]
    sizes = (crc, len(data), declared_size, len(encoded))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 46, 0, method, 0, date, *sizes, 0) + encoded
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 46, 46, 0, method, 0, date, *sizes, 0, 0, 0, 0, 0, 0
    )
    central += encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def laughs() -> bytes:
    """The "billion laughs": nine levels of ten references each, 10**9 copies of "lol" if expanded."""
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    doctype = "<!DOCTYPE score-partwise [\n  " + "\n  ".join(entities) + "\n]>"
    return SCORE.format(doctype=doctype, title="&lol9;").encode()


def tone(seconds: float, rate: int) -> np.ndarray:
    """A 330 Hz sine with a little noise, mono float32 ``[frames, 1]``."""
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * 330 * t) + 0.01 * np.random.default_rng(1).standard_normal(len(t))
    return wave[:, None].astype(np.float32)


def audio_bytes(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def image_bytes(fmt: str, **options: object) -> bytes:
    """A 48 x 32 gradient with noise (so that the encoded data is more than a few bytes)."""
    y, x = np.mgrid[0:32, 0:48]
    noise = np.random.default_rng(3).integers(0, 40, (32, 48, 3))
    pixels = (np.stack([x * 4, y * 6, (x + y) * 2], axis=-1) + noise).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, fmt, **options)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` RGB pixels; it holds 100 bytes of them."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b"")


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A version 1.0 ``.npy`` header for ``shape`` (the data is up to the caller)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode() + b" "
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def corpus() -> dict[str, bytes]:
    """Every committed file of the corpus, by name."""
    score = SCORE.format(doctype=PUBLIC_DTD, title="Two notes").encode()
    archive = mxl({"score.xml": score})
    midi = midi_bytes()
    wav = audio_bytes(tone(1.2, 4000), 4000, "WAV", "PCM_U8")
    flac = audio_bytes(tone(2.0, 8000), 8000, "FLAC", "PCM_16")
    ogg = audio_bytes(tone(2.0, 8000), 8000, "OGG", "VORBIS")
    mp3 = audio_bytes(tone(4.0, 8000), 8000, "MP3", "MPEG_LAYER_III")
    short, frame = tone(0.2, 8000)[:, 0], np.arange(1600)
    features = np.random.default_rng(2).standard_normal((1, 3, 8)).astype(np.float32)
    nan_features = features.copy()
    nan_features[0, 1, 4] = np.nan
    bomb, bomb_crc = bzip2_zeros(BOMB_BYTES)
    npz = io.BytesIO()
    np.savez(npz, features=features)
    text = "A slow piano piece — sad, with a quiet ending.\n".encode()
    return {
        # text
        "text_empty.txt": b"",
        "text_latin1.txt": "Café au lait, ganz schön traurig\n".encode("latin-1"),
        "text_truncated.txt": text[: text.index("—".encode()) + 1],
        "text_random.txt": random_bytes(1),
        "text_is_midi.txt": midi,
        # ABC
        "abc_empty.abc": b"",
        "abc_truncated.abc": ABC.format(title="Cut short").encode()[:60],
        "abc_random.abc": random_bytes(2),
        "abc_latin1.abc": ABC.format(title="Schöne Grüße").encode("latin-1"),
        "abc_is_musicxml.abc": score,
        # MusicXML
        "xml_empty.xml": b"",
        "xml_truncated.xml": half(score),
        "xml_random.xml": random_bytes(3),
        "xml_latin1.xml": SCORE.format(doctype=PUBLIC_DTD, title="Schöne Grüße").encode("latin-1"),
        "xml_billion_laughs.xml": laughs(),
        "xml_external_entity.xml": SCORE.format(doctype=EXTERNAL_ENTITY, title="&secret;").encode(),
        "xml_is_abc.xml": ABC.format(title="Named as XML").encode(),
        "musicxml_not_a_score.musicxml": b"<?xml version='1.0'?>\n<html><body>Not music</body></html>\n",
        "musicxml_timewise.musicxml": b"<?xml version='1.0'?>\n<score-timewise version='3.1'>"
        b"<part-list/><measure number='1'/></score-timewise>\n",
        "mxl_empty.mxl": b"",
        "mxl_truncated.mxl": half(archive),
        "mxl_random.mxl": random_bytes(4),
        "mxl_no_score.mxl": mxl({"README.txt": b"The score is missing."}),
        "mxl_zip_bomb.mxl": one_entry_zip("score.xml", zipfile.ZIP_BZIP2, bomb, bomb_crc, BOMB_BYTES),
        "mxl_zip_bomb_small_size.mxl": one_entry_zip("score.xml", zipfile.ZIP_BZIP2, bomb, bomb_crc, 2000),
        # MIDI
        "mid_empty.mid": b"",
        "mid_truncated.mid": midi[: len(midi) - 9],
        "mid_random.mid": random_bytes(5),
        "mid_huge_delta.mid": midi_with_delta(vlq(10**9)),
        "mid_long_vlq.mid": midi_with_delta(b"\xff" * 3000 + b"\x7f"),
        "mid_is_text.mid": b"This is not a MIDI file, only a text with a .mid name.\n",
        # MTF
        "mtf_empty.mtf": b"",
        "mtf_truncated.mtf": MTF.encode()[: MTF.index("note_on 480 0 60") + 16],
        "mtf_latin1.mtf": MTF.replace("end_of_track", "track_name Grüße 0\nend_of_track").encode("latin-1"),
        "mtf_random.mtf": random_bytes(6),
        "mtf_huge_delta.mtf": MTF.replace("note_on 480 0 60 0", "note_on 1000000000 0 60 0").encode(),
        "mtf_bad_ticks.mtf": MTF.replace("ticks_per_beat 480", "ticks_per_beat 70000").encode(),
        "mtf_is_midi.mtf": midi,
        # audio
        "wav_empty.wav": b"",
        "wav_zero_samples.wav": audio_bytes(np.zeros((0, 1), np.float32), 8000, "WAV", "PCM_16"),
        "wav_truncated.wav": wav[: len(wav) * 9 // 10],
        "wav_random.wav": random_bytes(7),
        "wav_nan.wav": audio_bytes(np.where(frame == 900, np.nan, short), 8000, "WAV", "FLOAT"),
        "wav_inf.wav": audio_bytes(np.where(frame >= 1500, np.inf, short), 8000, "WAV", "DOUBLE"),
        "wav_is_text.wav": b"RIFF? No, just a text file with a .wav name.\n",
        "flac_empty.flac": b"",
        "flac_truncated.flac": half(flac),
        "flac_random.flac": random_bytes(8),
        "ogg_empty.ogg": b"",
        "ogg_truncated.ogg": half(ogg),
        "ogg_random.ogg": random_bytes(9),
        "mp3_empty.mp3": b"",
        "mp3_truncated.mp3": half(mp3),
        "mp3_random.mp3": random_bytes(10),
        # images
        "png_empty.png": b"",
        "jpg_empty.jpg": b"",
        "webp_empty.webp": b"",
        "png_truncated.png": half(image_bytes("PNG")),
        "jpg_truncated.jpg": half(image_bytes("JPEG", quality=90)),
        "webp_truncated.webp": half(image_bytes("WEBP", quality=80)),
        "png_random.png": random_bytes(11),
        "jpg_random.jpg": random_bytes(12),
        "webp_random.webp": random_bytes(13),
        "png_pixel_bomb.png": png_claiming(100_000, 100_000),
        "jpg_is_png.jpg": image_bytes("PNG"),
        # MERT features
        "npy_empty.npy": b"",
        "npy_truncated.npy": npy(features)[:-40],
        "npy_random.npy": random_bytes(14),
        "npy_object_array.npy": npy(np.array([features[0], "windows"], dtype=object)),
        "npy_is_pickle.npy": pickle.dumps({"features": features.tolist()}),
        "npy_nan.npy": npy(nan_features),
        "npy_int.npy": npy(np.arange(24, dtype=np.int32).reshape(1, 3, 8)),
        "npy_wrong_shape.npy": npy(features.reshape(3, 1, 8)),
        "npy_no_windows.npy": npy(np.zeros((1, 0, 8), np.float32)),
        "npy_huge_shape.npy": npy_header((10**12, 768)) + bytes(16),
        "npy_negative_shape.npy": npy_header((-1, 8)) + features.tobytes(),
        "npy_float64_overflow.npy": npy(features.astype(np.float64) * 1e300),
        "npy_is_npz.npy": npz.getvalue(),
        "npy_is_wav.npy": wav,
    }


def write_large_cases(folder: Path) -> list[Path]:
    """Write the cases too large to commit into ``folder``: an 8-channel 192 kHz WAV and a deflate bomb."""
    wav, archive = folder / "wav_8ch_192k.wav", folder / "mxl_deflate_bomb.mxl"
    rate = 192_000
    chord = np.sin(np.arange(rate)[:, None] * (2 * np.pi / rate) * np.arange(110, 990, 110)[None, :])
    with sf.SoundFile(wav, "w", rate, 8, "PCM_16") as out:
        for _ in range(LARGE_WAV_SECONDS):
            out.write(0.1 * chord)
    stream, crc = deflate_zeros(DEFLATE_BOMB_BYTES)
    archive.write_bytes(one_entry_zip("score.xml", zipfile.ZIP_DEFLATED, stream, crc, DEFLATE_BOMB_BYTES))
    return [wav, archive]


def main() -> None:
    for name, data in corpus().items():
        (HERE / name).write_bytes(data)
        print(f"{len(data):>7}  {name}")


if __name__ == "__main__":
    main()
