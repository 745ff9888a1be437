import math

import numpy as np
import pytest
import torch

from clamp3.errors import Clamp3Error
from clamp3.train.contrastive import ContrastiveModel, ContrastiveSettings
from clamp3.train.data import read_jsonl
from clamp3.train.distributed import ProcessGroup
from clamp3.train.loop import Trainer, TrainSettings
from clamp3.train.schedule import warmup_cosine, warmup_cosine_factor
from tests.train_toy import tiny_encoder, toy_task, write_toy_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy")
    return read_jsonl(write_toy_corpus(directory, per_style=4))


def test_warmup_then_cosine_follows_its_formula():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=0.1)
    scheduler = warmup_cosine(optimizer, warmup_steps=10, total_steps=110, min_ratio=0.1)
    seen = {}
    for step in range(120):
        seen[step] = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
    assert seen[0] == 0.0 and seen[5] == pytest.approx(0.05) and seen[10] == pytest.approx(0.1)
    assert seen[60] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert seen[110] == pytest.approx(0.01) and seen[119] == pytest.approx(0.01)
    assert warmup_cosine_factor(35, 10, 110) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_training_lowers_the_loss_and_lifts_validation_mrr_above_chance(corpus, tmp_path):
    task = toy_task(corpus)
    before = task.validate()["val_mrr"]
    settings = TrainSettings(
        output=tmp_path, epochs=15, learning_rate=5e-3, warmup_steps=3, show_progress=False
    )
    state = Trainer(task, settings).fit()
    losses = [row["train_loss"] for row in state.history]
    chance = np.mean(1 / np.arange(1, 9))  # 8 validation tunes
    assert np.mean(losses[-3:]) < 0.8 * losses[0]  # per-epoch losses are noisy: 3 batches of 8
    assert state.history[-1]["val_mrr"] > max(before, chance) + 0.3
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,step,lr,train_loss,val_mrr")
    assert (tmp_path / "best" / "model.safetensors").exists()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def _parameters(task):
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def test_stop_and_resume_gives_bit_identical_parameters(corpus, tmp_path):
    def settings(output, max_steps):
        return TrainSettings(
            output=output,
            epochs=3,
            learning_rate=1e-3,
            warmup_steps=2,
            checkpoint_every=1,
            max_steps=max_steps,
            show_progress=False,
            tensorboard=False,
        )

    straight = toy_task(corpus)
    Trainer(straight, settings(tmp_path / "a", 7)).fit()
    first = toy_task(corpus)
    Trainer(first, settings(tmp_path / "b", 4)).fit()  # stops mid-epoch 2 (3 steps per epoch)
    resumed = toy_task(corpus, seed=99)  # different initial weights: all must come from the checkpoint
    state = Trainer(resumed, settings(tmp_path / "b", 7)).fit()
    assert state.step == 7
    expected, got = _parameters(straight), _parameters(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_the_logit_scale_lives_where_the_model_does(corpus, tmp_path):
    """On a GPU a CPU-side scale made the trainer pick the CPU (and skip CUDA autocast and loss scaling)."""
    meta = ContrastiveModel(tiny_encoder().model.to("meta"), ContrastiveSettings(), ProcessGroup())
    assert meta.log_logit_scale.device.type == "meta"
    task = toy_task(corpus)
    task.model.register_parameter("stray", torch.nn.Parameter(torch.zeros(1, device="meta")))
    with pytest.raises(Clamp3Error, match=r"several devices \(cpu, meta\); move it to one"):
        Trainer(task, TrainSettings(output=tmp_path))
