"""M3 pretraining stage of the default-model recipe: Freedoom's WAD music, the texts, the run."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from clamp3.encoder import CLaMP3
from clamp3.errors import Clamp3Error, InputError
from clamp3.model.m3 import load_m3_encoder_into
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.preprocess.midi import midi_to_mtf
from clamp3.train.data import remove_instrument_info
from clamp3.train.default_model.pretrain import (
    check_freedoom,
    freedoom_texts,
    pretrain_symbolic,
    pretraining_texts,
    split_mtf,
    symbolic_texts,
)
from clamp3.train.default_model.settings import DefaultModelSettings
from clamp3.train.opendata.wad import midi_lumps
from tests.test_default_model import tiny_config, tunes
from tests.test_performance_midi import score_midi


def long_midi(count: int, low: int = 48) -> bytes:
    return score_midi(tuple((low + i % 30, i * 120, i * 120 + 100) for i in range(count)))


def write_wad(path, lumps: list[tuple[str, bytes]], magic: bytes = b"IWAD") -> None:
    """A WAD: header, the lumps' bytes, then the directory."""
    body = b"".join(data for _, data in lumps)
    directory, offset = b"", 12
    for name, data in lumps:
        directory += struct.pack("<ii8s", offset, len(data), name.encode())
        offset += len(data)
    path.write_bytes(struct.pack("<4sii", magic, len(lumps), 12 + len(body)) + body + directory)


def test_wad_reader_returns_the_midi_music_lumps_only(tmp_path):
    wad = tmp_path / "music.wad"
    midi = long_midi(20)
    write_wad(
        wad,
        [("MAP01", b"\0" * 30), ("D_RUNNIN", midi), ("D_MUSIC", b"MUS\x1a" + b"\0" * 20), ("DEMO", midi)],
    )
    lumps = midi_lumps(wad)
    assert [lump.name for lump in lumps] == ["D_RUNNIN"]
    assert lumps[0].data == midi
    bad = tmp_path / "bad.wad"
    bad.write_bytes(b"RIFF" + b"\0" * 20)
    with pytest.raises(InputError, match=r"bad\.wad: not a WAD file"):
        midi_lumps(bad)
    cut = tmp_path / "cut.wad"
    cut.write_bytes(wad.read_bytes()[:-8])
    with pytest.raises(InputError, match=r"cut\.wad: the lump directory lies outside the file"):
        midi_lumps(cut)


def test_split_mtf_cuts_long_music_into_window_sized_parts_with_the_header():
    patchilizer = M3Patchilizer(64, 16)
    text = midi_to_mtf(long_midi(200), name="long")
    header, *lines = text.split("\n")
    parts = split_mtf(text, patchilizer)
    total = len(patchilizer.split(text))
    assert len(parts) == -(-total // 16) > 5
    assert all(part.split("\n")[0] == header for part in parts)
    assert [line for part in parts for line in part.split("\n")[1:]] == lines  # nothing lost or repeated
    assert max(len(patchilizer.split(part)) for part in parts) <= 18
    short = midi_to_mtf(long_midi(3), name="short")
    assert split_mtf(short, patchilizer) == [short]


def test_pretraining_texts_use_every_training_view_and_only_validation_scores():
    rng = np.random.default_rng(0)
    train, validation = tunes(3, rng), tunes(2, rng)
    extra = midi_to_mtf(long_midi(200), name="game")
    patchilizer = M3Patchilizer(64, 16)
    texts, held_out = pretraining_texts(train, validation, [extra], patchilizer)
    abc = [remove_instrument_info(t.abc) for t in train]
    assert texts[:3] == abc
    assert texts[3:9] == [m for t in train for m in t.midi]
    assert texts[9:] == split_mtf(extra, patchilizer)
    assert held_out == [remove_instrument_info(t.abc) for t in validation] + [t.midi[0] for t in validation]


def test_missing_freedoom_wad_is_named_before_any_work(tmp_path):
    settings = DefaultModelSettings(work=tmp_path, freedoom=(tmp_path / "freedoom2.wad",))
    with pytest.raises(Clamp3Error, match=r"freedoom2\.wad: Freedoom WAD not found; install"):
        check_freedoom(settings)
    check_freedoom(DefaultModelSettings(work=tmp_path, freedoom=()))


def test_pretraining_runs_resumes_and_feeds_the_alignment(tmp_path, one_torch_thread):
    wad = tmp_path / "freedoom.wad"
    write_wad(wad, [("D_E1M1", long_midi(120)), ("D_E1M2", long_midi(60, low=60))])
    settings = DefaultModelSettings(
        work=tmp_path / "work",
        freedoom=(wad,),
        m3_epochs=1,
        m3_batch_size=4,
        warmup_steps=1,
        show_progress=False,
    )
    assert [t.startswith("ticks_per_beat") for t in freedoom_texts(settings)] == [True, True]
    assert sorted(p.name for p in (settings.inputs / "freedoom" / "freedoom").iterdir()) == [
        "D_E1M1.mtf",
        "D_E1M2.mtf",
    ]
    rng = np.random.default_rng(1)
    config = tiny_config()
    train, validation = tunes(8, rng), tunes(3, rng)
    texts, held_out = symbolic_texts(settings, config, train, validation)
    patchilizer = M3Patchilizer(config.symbolic.patch_size, config.symbolic.max_patches)
    from_tunes = pretraining_texts(train, validation, [], patchilizer)[0]
    assert texts[: len(from_tunes)] == from_tunes and len(texts) >= len(from_tunes) + 2  # and Freedoom's
    best = pretrain_symbolic(settings, config, texts, held_out)
    assert best == settings.pretraining / "best" / "m3.pth" and best.is_file()
    metrics = (settings.pretraining / "metrics.csv").read_text().splitlines()
    assert metrics[0].split(",")[:2] == ["epoch", "step"] and len(metrics) == 2
    val_loss = float(metrics[1].split(",")[metrics[0].split(",").index("val_loss")])
    assert 0.0 < val_loss < np.log(128)  # better than guessing among the character classes

    saved = best.read_bytes()
    assert pretrain_symbolic(settings, config, texts, held_out) == best
    assert best.read_bytes() == saved  # finished: resuming trains nothing more

    torch.manual_seed(0)
    encoder = CLaMP3.new(config, device="cpu")
    before = encoder.model.symbolic_model.base.encoder.layer[0].attention.self.query.weight.clone()
    load_m3_encoder_into(encoder.model, best)
    after = encoder.model.symbolic_model.base.encoder.layer[0].attention.self.query.weight
    state = torch.load(best, weights_only=False)
    weights = state.get("model", state)
    assert torch.equal(after, weights["encoder.base.encoder.layer.0.attention.self.query.weight"])
    assert not torch.equal(after, before)


def test_cli_names_a_missing_freedoom_wad_before_building_anything(tmp_path):
    from click.testing import CliRunner

    from clamp3.cli import main

    missing = tmp_path / "freedoom1.wad"
    arguments = ["train", "default-model", "--work", str(tmp_path / "work"), "--m3-epochs", "2"]
    result = CliRunner().invoke(main, [*arguments, "--freedoom-wad", str(missing)])
    assert result.exit_code != 0
    assert f"{missing}: Freedoom WAD not found" in result.output
    assert not (tmp_path / "work").exists()
