import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from clamp3 import CLaMP3
from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig
from clamp3.errors import CheckpointError, Clamp3Error
from clamp3.model.checkpoint import WEIGHTS_FILE, save_weights
from clamp3.model.patchilizer import M3Patchilizer
from clamp3.model.towers import CLaMP3Model
from clamp3.train.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LoraSettings,
    add_lora,
    load_adapter,
    merge_adapter,
    save_adapter,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TUNES = [
    f"X:{i}\nL:1/8\nM:4/4\nK:C\n{'CDEFGAB'[i]} D E F | G A B c | d e f g |\n[V:1]c B A G | F E D C |\n"
    for i in range(4)
]
TEXT_IDS = [[0, 5 + i, 9, 12 + 2 * i, 30 - i, 2] for i in range(4)]
SETTINGS = LoraSettings(r=4, alpha=8.0, dropout=0.1, towers=("text", "symbolic"))


def _encoder(**overrides) -> EncoderConfig:
    return EncoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, **overrides)


def _config() -> CLaMP3Config:
    text = _encoder(vocab_size=40, max_positions=18, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)
    return CLaMP3Config(
        text=TextConfig(encoder=text, max_length=16, tokenizer=None),
        symbolic=SymbolicConfig(encoder=_encoder(max_positions=32), max_patches=32),
        audio=AudioConfig(encoder=_encoder(max_positions=16), max_frames=16),
        projection_dim=16,
    )


def _batch() -> tuple[torch.Tensor, ...]:
    patches = [M3Patchilizer().encode(t) for t in TUNES]
    longest = max(len(p) for p in patches)
    symbolic = torch.zeros(len(patches), longest, 64, dtype=torch.long)
    symbolic_mask = torch.zeros(len(patches), longest)
    for row, p in enumerate(patches):
        symbolic[row, : len(p)] = torch.from_numpy(p)
        symbolic_mask[row, : len(p)] = 1
    text = torch.tensor(TEXT_IDS)
    return text, torch.ones_like(text, dtype=torch.float), symbolic, symbolic_mask


def _train(model: CLaMP3Model, steps: int = 6) -> None:
    text, text_mask, symbolic, symbolic_mask = _batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = (
            model.global_features("text", text, text_mask)
            @ model.global_features("symbolic", symbolic, symbolic_mask).t()
        )
        labels = torch.arange(len(logits))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _vectors(model: CLaMP3Model) -> tuple[np.ndarray, np.ndarray]:
    encoder = CLaMP3(model, device="cpu")
    return encoder.encode_symbolic(TUNES), encoder.encode_text_ids(TEXT_IDS)


@pytest.fixture()
def base_dir(tmp_path):
    torch.manual_seed(0)
    directory = tmp_path / "base"
    save_weights(CLaMP3Model(_config()), _config(), directory)
    return directory


def _base(base_dir) -> CLaMP3Model:
    return CLaMP3.from_pretrained(base_dir, device="cpu").model


def test_only_adapter_parameters_require_grad(base_dir):
    model = add_lora(_base(base_dir), SETTINGS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    pattern = re.compile(
        r"(text_model|symbolic_model\.base)\.encoder\.layer\.[01]\.attention\.self\.(query|value)"
        r"\.lora_[AB]\.default\.weight"
    )
    assert len(trainable) == 2 * 2 * 2 * 2
    assert all(pattern.fullmatch(n) for n in trainable)
    with pytest.raises(Clamp3Error, match="already has LoRA adapters"):
        add_lora(model, SETTINGS)

    with_projections = add_lora(_base(base_dir), LoraSettings(towers=("audio",), train_projections=True))
    trainable = {n for n, p in with_projections.named_parameters() if p.requires_grad}
    assert {"audio_proj.weight", "audio_proj.bias"} <= trainable
    assert all(n.startswith("audio_") for n in trainable) and len(trainable) == 2 + 8


def test_settings_are_validated():
    with pytest.raises(Clamp3Error, match="towers"):
        LoraSettings(towers=("video",))
    with pytest.raises(Clamp3Error, match="layers"):
        LoraSettings(layers=("qkv",))
    with pytest.raises(Clamp3Error, match="rank"):
        LoraSettings(r=0)


def test_training_changes_only_adapters_and_save_load_merge_reproduce_the_vectors(base_dir, tmp_path):
    torch.manual_seed(1)
    model = add_lora(_base(base_dir), SETTINGS)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    base_vectors = _vectors(_base(base_dir))
    _train(model)

    for name, before in frozen.items():
        assert torch.equal(dict(model.named_parameters())[name], before), name
    after = dict(model.named_parameters())
    assert all(not torch.equal(after[n], before) for n, before in adapters.items())
    trained = _vectors(model)
    assert not np.allclose(trained[0], base_vectors[0], atol=1e-3)
    assert not np.allclose(trained[1], base_vectors[1], atol=1e-3)

    adapter_dir = tmp_path / "adapter"
    save_adapter(model, adapter_dir)
    state = load_file(adapter_dir / ADAPTER_WEIGHTS)
    pattern = re.compile(
        r"(text_model|symbolic_model\.base)\.encoder\.layer\.[01]\.attention\.self\.(query|value)\.lora_[AB]\.weight"
    )
    assert len(state) == 16 and all(pattern.fullmatch(k) for k in state)
    assert (adapter_dir / ADAPTER_WEIGHTS).stat().st_size < 0.1 * (base_dir / WEIGHTS_FILE).stat().st_size
    assert json.loads((adapter_dir / ADAPTER_CONFIG).read_text())["r"] == 4

    loaded = load_adapter(_base(base_dir), adapter_dir)
    for actual, expected in zip(_vectors(loaded), trained, strict=True):
        np.testing.assert_array_equal(actual, expected)

    merged = merge_adapter(loaded)
    assert type(merged) is CLaMP3Model
    assert merged.state_dict().keys() == CLaMP3Model(_config()).state_dict().keys()
    assert all(p.requires_grad for p in merged.parameters())
    for actual, expected in zip(_vectors(merged), trained, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)

    save_weights(merged, _config(), tmp_path / "merged")
    for actual, expected in zip(_vectors(_base(tmp_path / "merged")), trained, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_trained_projections_are_saved_and_restored(base_dir, tmp_path):
    torch.manual_seed(2)
    settings = LoraSettings(
        r=2, towers=("text", "symbolic"), layers=("key", "output"), train_projections=True
    )
    model = add_lora(_base(base_dir), settings)
    _train(model, steps=3)
    save_adapter(model, tmp_path / "adapter")
    state = load_file(tmp_path / "adapter" / ADAPTER_WEIGHTS)
    assert {
        "text_proj.weight",
        "text_proj.bias",
        "symbolic_proj.weight",
        "symbolic_proj.bias",
    } <= state.keys()
    assert any(".output.dense.lora_A." in k for k in state) and any(".self.key.lora_B." in k for k in state)
    loaded = load_adapter(_base(base_dir), tmp_path / "adapter")
    for actual, expected in zip(_vectors(loaded), _vectors(model), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_an_adapter_that_does_not_fit_is_named_and_leaves_the_base_untouched(base_dir, tmp_path):
    model = add_lora(_base(base_dir), SETTINGS)
    save_adapter(model, tmp_path / "adapter")
    other = _config()
    wide = CLaMP3Config(
        text=other.text,
        symbolic=SymbolicConfig(
            encoder=EncoderConfig(
                hidden_size=64, num_layers=2, num_heads=2, intermediate_size=64, max_positions=32
            )
        ),
        audio=other.audio,
        projection_dim=16,
    )
    base = CLaMP3Model(wide)
    keys = base.state_dict().keys()
    with pytest.raises(
        CheckpointError, match=r"adapter does not fit the model; wrong shapes: symbolic_model"
    ):
        load_adapter(base, tmp_path / "adapter")
    assert base.state_dict().keys() == keys
    assert all(p.requires_grad for p in base.parameters())
    with pytest.raises(CheckpointError, match="adapter.json: missing"):
        load_adapter(base, tmp_path)
    with pytest.raises(Clamp3Error, match="no LoRA adapters"):
        save_adapter(base, tmp_path / "nothing")
