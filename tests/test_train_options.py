"""Training options: the audio stage, a learned logit scale, accumulation, early stopping, bf16,
per-part learning rates."""

import numpy as np
import pytest
import torch

from clamp3.errors import Clamp3Error
from clamp3.train.contrastive import ContrastiveSettings, ContrastiveTask
from clamp3.train.data import Example
from clamp3.train.loop import Trainer, TrainSettings
from tests.train_toy import tiny_encoder


def _audio_examples(count: int, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    words = ["reel", "jig", "waltz", "march"]
    centres = rng.normal(size=(len(words), 32)).astype(np.float32)
    return [
        Example(
            id=str(i),
            texts=(f"a {words[i % 4]}",),
            translations=(),
            eval_text=f"a {words[i % 4]}",
            music=(
                (centres[i % 4] + 0.3 * rng.normal(size=(int(rng.integers(2, 12)), 32))).astype(np.float32),
            ),
        )
        for i in range(count)
    ]


def _audio_task(**settings) -> ContrastiveTask:
    encoder = tiny_encoder(seed=1)
    options = {"tower": "audio", "batch_size": 4, **settings}
    return ContrastiveTask(
        encoder, _audio_examples(16), _audio_examples(4, seed=1), ContrastiveSettings(**options)
    )


def test_audio_stage_freezes_the_symbolic_tower_and_learns_the_logit_scale(tmp_path):
    task = _audio_task(learn_logit_scale=True, logit_scale=2.0)
    symbolic = {k: v.clone() for k, v in task.encoder.model.symbolic_model.state_dict().items()}
    audio = {k: v.clone() for k, v in task.encoder.model.audio_model.state_dict().items()}
    settings = TrainSettings(
        output=tmp_path, epochs=2, learning_rate=1e-2, show_progress=False, tensorboard=False
    )
    state = Trainer(task, settings).fit()
    assert state.step == 8
    assert all(torch.equal(v, task.encoder.model.symbolic_model.state_dict()[k]) for k, v in symbolic.items())
    assert not all(torch.equal(v, task.encoder.model.audio_model.state_dict()[k]) for k, v in audio.items())
    assert float(task.model.log_logit_scale.detach().exp()) != 2.0
    assert 0.0 < state.history[-1]["val_mrr"] <= 1.0


def test_accumulation_takes_one_optimizer_step_per_group_of_batches(tmp_path):
    task = _audio_task()
    settings = TrainSettings(
        output=tmp_path, epochs=1, accumulation=2, show_progress=False, tensorboard=False
    )
    assert Trainer(task, settings).fit().step == 2  # 4 batches of 4


def test_patience_stops_training_without_improvement(tmp_path):
    task = _audio_task(freeze=("text",))
    settings = TrainSettings(
        output=tmp_path, epochs=20, learning_rate=1e-12, patience=2, show_progress=False, tensorboard=False
    )
    state = Trainer(task, settings).fit()
    assert state.finished and state.epoch == 3  # the first epoch sets the best, two more do not beat it


def test_bf16_autocast_trains_on_cpu(tmp_path):
    task = _audio_task()
    settings = TrainSettings(
        output=tmp_path, epochs=1, precision="bf16", show_progress=False, tensorboard=False
    )
    state = Trainer(task, settings).fit()
    assert state.step == 4 and np.isfinite(state.history[-1]["train_loss"])


def test_lr_scales_slow_a_tower_down_and_survive_a_resume(tmp_path):
    task = _audio_task()
    audio = {k: v.clone() for k, v in task.encoder.model.audio_model.named_parameters()}
    projection = {k: v.clone() for k, v in task.encoder.model.audio_proj.named_parameters()}

    def settings(max_steps):
        return TrainSettings(
            output=tmp_path,
            epochs=2,
            learning_rate=1e-2,
            lr_scales={"clamp3.audio_model.": 0.01, "clamp3.audio_model.encoder.layer.0.": 0.001},
            max_steps=max_steps,
            show_progress=False,
            tensorboard=False,
        )

    Trainer(task, settings(3)).fit()
    trainer = Trainer(task, settings(None))
    state = trainer.fit()
    assert state.step == 8 and trainer.state.finished
    learning_rates = trainer.scheduler.get_last_lr()
    np.testing.assert_allclose(sorted(learning_rates), np.array([0.001, 0.01, 1.0]) * learning_rates[0])

    def moved(before, module):
        return max(
            (p - before[k]).abs().max().item() for k, p in module.named_parameters() if p.requires_grad
        )

    model = task.encoder.model
    # Adam moves each parameter by about its learning rate per step
    assert 0 < moved(audio, model.audio_model) < 0.02 * moved(projection, model.audio_proj)


def test_lr_scales_that_match_nothing_or_are_not_positive_are_refused(tmp_path):
    task = _audio_task()
    bad = TrainSettings(output=tmp_path, lr_scales={"clamp3.audio_modle.": 0.1})
    with pytest.raises(
        Clamp3Error, match=r"lr_scales: no trainable parameter name starts with clamp3.audio_modle."
    ):
        Trainer(task, bad)
    with pytest.raises(Clamp3Error, match="lr_scales must be positive"):
        TrainSettings(output=tmp_path, lr_scales={"clamp3.": 0.0})


def test_resuming_with_other_optimizer_settings_is_refused_by_name(tmp_path):
    def settings(**changes):
        options = {"output": tmp_path, "epochs": 2, "learning_rate": 1e-2, "max_steps": 2}
        return TrainSettings(**{**options, **changes}, show_progress=False, tensorboard=False)

    Trainer(_audio_task(), settings(lr_scales={"clamp3.audio_model.": 0.1})).fit()
    with pytest.raises(
        Clamp3Error, match=r"checkpoint\.pt: written with other training settings \(lr_scales"
    ):
        Trainer(_audio_task(), settings(lr_scales={"clamp3.audio_model.": 0.5}, max_steps=None)).fit()
    with pytest.raises(Clamp3Error, match=r"learning_rate 0\.01 -> 0\.001"):
        Trainer(_audio_task(), settings(learning_rate=1e-3, lr_scales={"clamp3.audio_model.": 0.1})).fit()
    # what only says how long to run may change
    state = Trainer(_audio_task(), settings(lr_scales={"clamp3.audio_model.": 0.1}, max_steps=None)).fit()
    assert state.step == 8 and state.finished
