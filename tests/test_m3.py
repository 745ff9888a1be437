import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig
from clamp3.errors import CheckpointError, Clamp3Error
from clamp3.model.m3 import IGNORE_INDEX, M3Config, M3DecoderConfig, M3Model, load_m3, load_m3_encoder_into
from clamp3.model.patchilizer import BOS, EOS, MASK, PAD, M3Patchilizer
from clamp3.model.towers import CLaMP3Model
from clamp3.train.m3 import (
    M3PretrainTask,
    M3TaskSettings,
    mask_patches,
    split_texts,
    truncate_patches,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


NOTES = "CDEFGABcdefgab"


def _tune(i: int) -> str:
    bars = [" ".join(NOTES[(i + b + k) % len(NOTES)] for k in range(4)) + " |" for b in range(8)]
    return f"X:{i}\nL:1/8\nM:4/4\nK:C\n" + "".join(bars[:4]) + "\n" + "".join(bars[4:]) + "]\n"


TUNES = [_tune(i) for i in range(12)]


def _encoder(**overrides) -> EncoderConfig:
    return EncoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, **overrides)


def _m3_config() -> M3Config:
    symbolic = SymbolicConfig(encoder=_encoder(max_positions=32), max_patches=32)
    return M3Config(
        symbolic=symbolic, decoder=M3DecoderConfig(num_layers=2, num_heads=2, intermediate_size=64)
    )


def _clamp3_config() -> CLaMP3Config:
    text = _encoder(vocab_size=40, max_positions=18, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)
    return CLaMP3Config(
        text=TextConfig(encoder=text, max_length=16, tokenizer=None),
        symbolic=_m3_config().symbolic,
        audio=AudioConfig(encoder=_encoder(max_positions=16), max_frames=16),
        projection_dim=16,
    )


def _patches() -> np.ndarray:
    return M3Patchilizer().encode(TUNES[0])


# ---------------------------------------------------------------------------- masking


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 20, 33, 512])
def test_selects_ceil_of_ratio_distinct_sorted_positions(n):
    patches = np.random.default_rng(n).integers(4, 128, size=(n, 64))
    masked = mask_patches(patches, np.random.default_rng(0))
    assert len(masked.selected) == math.ceil(0.45 * n)
    assert len(set(masked.selected.tolist())) == len(masked.selected)
    assert (np.diff(masked.selected) > 0).all()
    np.testing.assert_array_equal(masked.targets, patches[masked.selected])


def test_decoded_cap_corrupts_all_selected_but_reconstructs_only_a_subset():
    patches = np.random.default_rng(5).integers(4, 128, size=(40, 64))
    full = mask_patches(patches, np.random.default_rng(9), weights=(1, 0, 0))
    capped = mask_patches(patches, np.random.default_rng(9), weights=(1, 0, 0), decoded=3)
    np.testing.assert_array_equal(capped.patches, full.patches)  # same corruption: 18 masked patches
    assert int((capped.patches == MASK).all(axis=1).sum()) == math.ceil(0.45 * 40)
    assert len(capped.selected) == 3 and set(capped.selected.tolist()) <= set(full.selected.tolist())
    assert (np.diff(capped.selected) > 0).all()
    np.testing.assert_array_equal(capped.targets, patches[capped.selected])
    small = mask_patches(patches[:4], np.random.default_rng(9), decoded=3)
    assert len(small.selected) == 2  # fewer corrupted than the cap: all of them


def test_mask_mode_sets_every_id_of_selected_patches_to_mask():
    patches = _patches()
    masked = mask_patches(patches, np.random.default_rng(1), weights=(1, 0, 0))
    assert masked.mode == "mask"
    assert (masked.patches[masked.selected] == MASK).all()
    unselected = np.setdiff1d(np.arange(len(patches)), masked.selected)
    np.testing.assert_array_equal(masked.patches[unselected], patches[unselected])
    np.testing.assert_array_equal(masked.targets, patches[masked.selected])


def test_shuffle_permutes_chars_between_position_one_and_the_single_eos():
    patches = _patches()
    masked = mask_patches(patches, np.random.default_rng(2), ratio=1.0, weights=(0, 1, 0))
    assert masked.mode == "shuffle"
    changed = 0
    for original, shuffled in zip(patches[1:-1], masked.patches[1:-1], strict=True):
        eos = int(np.flatnonzero(original == EOS)[0])
        assert shuffled[0] == BOS
        np.testing.assert_array_equal(shuffled[eos:], original[eos:])
        assert sorted(shuffled[1:eos]) == sorted(original[1:eos])
        changed += not np.array_equal(shuffled, original)
    assert changed >= len(patches) // 2
    # BOS patch (64 x 1, no eos) and EOS patch ([1] + 63 x 2, several eos) are permuted over 1..63
    np.testing.assert_array_equal(masked.patches[[0, -1]], patches[[0, -1]])


def test_shuffle_without_or_with_several_eos_permutes_positions_one_to_end():
    no_eos = np.concatenate([[BOS], np.arange(4, 67)])
    two_eos = np.array([BOS, 10, 11, EOS, 12, 13, EOS, *[PAD] * 57])
    patches = np.stack([no_eos, two_eos])
    masked = mask_patches(patches, np.random.default_rng(3), ratio=1.0, weights=(0, 1, 0))
    for original, shuffled in zip(patches, masked.patches, strict=True):
        assert shuffled[0] == BOS
        assert sorted(shuffled[1:]) == sorted(original[1:])
        assert not np.array_equal(shuffled, original)
    # several eos: pads move too, which is the reference's behaviour
    assert (masked.patches[1, 7:] != PAD).any()


def test_keep_mode_leaves_input_unchanged_but_still_selects():
    patches = _patches()
    masked = mask_patches(patches, np.random.default_rng(4), weights=(0, 0, 1))
    assert masked.mode == "keep"
    np.testing.assert_array_equal(masked.patches, patches)
    assert len(masked.selected) == math.ceil(0.45 * len(patches))


def test_one_mode_per_sequence_with_the_given_weights_and_bos_eos_selectable():
    patches = np.full((10, 64), 50)
    counts = {"mask": 0, "shuffle": 0, "keep": 0}
    first = last = 0
    for seed in range(4000):
        masked = mask_patches(patches, np.random.default_rng(seed))
        counts[masked.mode] += 1
        first += 0 in masked.selected
        last += 9 in masked.selected
    assert abs(counts["mask"] / 4000 - 0.8) < 0.03
    assert abs(counts["shuffle"] / 4000 - 0.1) < 0.02
    assert abs(counts["keep"] / 4000 - 0.1) < 0.02
    assert abs(first / 4000 - 0.5) < 0.05 and abs(last / 4000 - 0.5) < 0.05


def test_truncation_head_tail_middle():
    patches = np.arange(20)[:, None].repeat(64, axis=1)
    np.testing.assert_array_equal(truncate_patches(patches, 8, None), patches[:8])
    assert truncate_patches(patches, 30, np.random.default_rng(0)) is patches
    starts = {int(truncate_patches(patches, 8, np.random.default_rng(s))[0, 0]) for s in range(300)}
    assert {0, 12} <= starts
    assert starts - {0, 12} <= set(range(1, 13)) and len(starts) > 6


# ---------------------------------------------------------------------------- decoder and checkpoints


def test_decoder_inputs_and_loss_follow_the_reference_construction():
    torch.manual_seed(0)
    model = M3Model(_m3_config()).eval()
    targets = torch.from_numpy(_patches()[[0, 1, 2, -1]])
    features = torch.randn(4, 32)
    inputs = model.decoder.prepare(features, targets)
    wte = model.decoder.base.transformer.wte.weight
    torch.testing.assert_close(inputs.inputs_embeds[:, 0], features, rtol=0, atol=0)
    torch.testing.assert_close(inputs.inputs_embeds[:, 1:], wte[targets[:, 1:]], rtol=0, atol=0)
    assert torch.equal(inputs.attention_mask, (targets != PAD).long())
    assert torch.equal(inputs.labels[targets != PAD], targets[targets != PAD])
    assert (inputs.labels[targets == PAD] == IGNORE_INDEX).all()
    assert (inputs.labels == IGNORE_INDEX).any()  # the tune's patches are padded
    with torch.no_grad():
        logits = model.decoder.base(
            inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask
        ).logits
        loss = model.decoder(features, targets)
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, 128), inputs.labels[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, manual, rtol=1e-6, atol=1e-6)


def test_state_dict_uses_the_reference_m3_layout():
    keys = M3Model(_m3_config()).state_dict().keys()
    prefixes = ("encoder.patch_embedding.", "encoder.base.", "decoder.base.transformer.")
    assert all(k.startswith(prefixes) or k == "decoder.base.lm_head.weight" for k in keys)
    assert "decoder.base.lm_head.weight" in keys
    assert {"encoder.patch_embedding.weight", "decoder.base.transformer.wte.weight"} <= keys
    assert any(k.startswith("decoder.base.transformer.h.1.") for k in keys)


def _official_m3_file(tmp_path):
    torch.manual_seed(1)
    m3 = M3Model(_m3_config()).eval()
    state = dict(m3.state_dict())
    state["encoder.base.embeddings.position_ids"] = torch.arange(32)[None]
    state["decoder.base.transformer.h.0.attn.bias"] = torch.ones(1, 1, 64, 64, dtype=torch.bool)
    path = tmp_path / "weights_m3.pth"
    torch.save({"model": state, "epoch": 3, "optimizer": {}, "min_eval_loss": 1.0}, path)
    return m3, path


def test_official_m3_checkpoint_loads_and_its_encoder_starts_a_clamp3_model(tmp_path):
    m3, path = _official_m3_file(tmp_path)
    loaded = load_m3(path, _m3_config())
    for key, value in m3.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    torch.manual_seed(2)
    clamp3 = CLaMP3Model(_clamp3_config()).eval()
    load_m3_encoder_into(clamp3, path)
    patches = torch.from_numpy(np.stack([_patches()[:12], _patches()[1:13]]))
    mask = torch.ones(2, 12)
    mask[1, 9:] = 0
    with torch.no_grad():
        expected = m3.encoder(patches, mask)
        actual = clamp3.hidden_states("symbolic", patches, mask)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_bad_m3_checkpoints_are_named(tmp_path):
    state = dict(M3Model(_m3_config()).state_dict())
    del state["decoder.base.transformer.ln_f.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys: decoder\.base\.transformer\.ln_f\.bias"):
        load_m3(state, _m3_config())
    clamp3 = CLaMP3Model(_clamp3_config())
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth: not a PyTorch checkpoint"):
        load_m3_encoder_into(clamp3, garbage)
    with pytest.raises(CheckpointError, match="no encoder"):
        load_m3_encoder_into(clamp3, {"symbolic_model.base.pooler.dense.bias": torch.zeros(32)})
    wide = M3Model(M3Config(SymbolicConfig(encoder=_encoder(max_positions=64)), _m3_config().decoder))
    with pytest.raises(CheckpointError, match=r"wrong shapes: base\.embeddings\.position_embeddings\.weight"):
        load_m3_encoder_into(clamp3, wide.state_dict())


# ---------------------------------------------------------------------------- training task


def _task(**settings) -> M3PretrainTask:
    torch.manual_seed(0)
    return M3PretrainTask(
        M3Model(_m3_config()), TUNES[:8], TUNES[8:], M3TaskSettings(batch_size=2, seed=5, **settings)
    )


def test_seeded_split_is_disjoint_and_independent_of_rank():
    train, val = split_texts(TUNES, 0.25, seed=3)
    assert len(val) == 3 and sorted(train + val) == sorted(TUNES)
    assert split_texts(TUNES, 0.25, seed=3) == (train, val)
    assert split_texts(TUNES, 0.01, seed=3)[1] != [] and len(split_texts(TUNES, 0.01, seed=3)[1]) == 1
    with pytest.raises(Clamp3Error, match="too few"):
        split_texts(TUNES[:1], 0.5, seed=0)


def _targets_per_rank(task, epoch, world_size):
    return [
        [batch.targets.numpy() for batch in task.train_batches(epoch, rank, world_size)]
        for rank in range(world_size)
    ]


def test_batches_are_deterministic_whole_and_sharded():
    task = _task()
    single = _targets_per_rank(task, 0, 1)[0]
    assert len(single) == 4
    for a, b in zip(single, _targets_per_rank(task, 0, 1)[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        a.shape != b.shape or not np.array_equal(a, b)
        for a, b in zip(single, _targets_per_rank(task, 1, 1)[0], strict=True)
    )
    ranks = _targets_per_rank(task, 0, 3)  # 4 batches over 3 ranks: one each, the last is dropped
    assert [len(r) for r in ranks] == [1, 1, 1]
    for rank, batches in enumerate(ranks):
        np.testing.assert_array_equal(batches[0], single[rank])
    batch = next(task.train_batches(0, 0, 1))
    assert batch.patches.shape[0] == 2 and batch.patches.shape[2] == 64
    assert int(batch.selected.sum()) == len(batch.targets)
    assert torch.equal(batch.selected & (batch.mask == 0), torch.zeros_like(batch.selected))
    with pytest.raises(Clamp3Error, match="do not fill one batch"):
        next(task.train_batches(0, 0, 5))


def test_pretraining_lowers_the_loss_and_validation_is_stable():
    task = _task()
    before = task.validate()
    assert before == task.validate()
    assert before["neg_val_loss"] == -before["val_loss"]
    probe = next(task.train_batches(0, 0, 1))
    task.model.eval()
    with torch.no_grad():
        initial = float(task.loss(probe))
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    task.model.train()
    steps = 0
    for epoch in range(10):
        for batch in task.train_batches(epoch, 0, 1):
            optimizer.zero_grad()
            task.loss(batch).backward()
            optimizer.step()
            steps += 1
        if steps >= 30:
            break
    task.model.eval()
    with torch.no_grad():
        final = float(task.loss(probe))
    assert final < 0.7 * initial
    assert task.validate()["val_loss"] < 0.7 * before["val_loss"]
