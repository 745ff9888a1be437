import json
import shutil

import numpy as np
import pytest
import torch

from clamp3 import CheckpointError, CLaMP3, CLaMP3Config
from clamp3.config import config_from_reference_json
from clamp3.model.checkpoint import infer_config, read_weights
from clamp3.model.towers import CLaMP3Model
from tests.tiny import tiny_dir

SYMBOLIC = "X:1\nL:1/8\nM:4/4\nK:C\nabc d|efg a|bag f|\n"


@pytest.fixture()
def tiny_state(reference_dir):
    return torch.load(tiny_dir(reference_dir) / "tiny_clamp3.pth", map_location="cpu", weights_only=True)


def _directory_with(tmp_path, reference_dir, checkpoint: dict):
    directory = tmp_path / "model"
    directory.mkdir()
    shutil.copy(tiny_dir(reference_dir) / "config.json", directory / "config.json")
    shutil.copy(tiny_dir(reference_dir) / "text_model_config.json", directory / "text_model_config.json")
    torch.save(checkpoint, directory / "tiny_clamp3.pth")
    return directory


def _vector(path):
    return CLaMP3.from_pretrained(path).encode_symbolic([SYMBOLIC])


def test_extra_keys_and_position_id_buffers_are_tolerated(reference_dir, tmp_path, tiny_state):
    baseline = _vector(tiny_dir(reference_dir))
    state = dict(tiny_state["model"])
    for prefix in ("text_model", "symbolic_model.base", "audio_model"):
        state[f"{prefix}.embeddings.position_ids"] = torch.arange(8)[None]
        state[f"{prefix}.embeddings.token_type_ids"] = torch.zeros(1, 8, dtype=torch.long)
    extra = {"optimizer": {"state": {}}, "lr_sched": {}, "modality": "audio"}
    checkpoint = {**tiny_state, "model": state, **extra}
    directory = _directory_with(tmp_path, reference_dir, checkpoint)
    np.testing.assert_array_equal(_vector(directory), baseline)


def test_wrong_shape_missing_and_unexpected_keys_are_all_named(reference_dir, tmp_path, tiny_state):
    state = dict(tiny_state["model"])
    state["text_proj.weight"] = torch.zeros(24, 31)
    del state["audio_proj.bias"]
    state["mystery.weight"] = torch.zeros(1)
    directory = _directory_with(tmp_path, reference_dir, {**tiny_state, "model": state})
    with pytest.raises(CheckpointError) as info:
        CLaMP3.from_pretrained(directory)
    message = str(info.value)
    assert "tiny_clamp3.pth" in message
    assert "missing keys: audio_proj.bias" in message
    assert "unexpected keys: mystery.weight" in message
    assert "wrong shapes: text_proj.weight (checkpoint [24, 31], model [24, 32])" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"this is not a checkpoint", "not a PyTorch checkpoint"), (b"", "not a PyTorch checkpoint")],
)
def test_non_checkpoint_files_are_named(tmp_path, content, reason):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"weights.pth: {reason}"):
        CLaMP3.from_pretrained(path)


def test_a_checkpoint_without_model_weights_is_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="other.pth: not a CLaMP 3 checkpoint"):
        CLaMP3.from_pretrained(path)


def test_unknown_name_or_path(tmp_path):
    with pytest.raises(Exception, match="neither an existing path nor a known model name"):
        CLaMP3.from_pretrained("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors and no .pth checkpoint"):
        CLaMP3.from_pretrained(tmp_path / "empty")


def test_reference_config_without_hf_configs_gives_same_config(reference_dir):
    directory = tiny_dir(reference_dir)
    full = json.loads((directory / "config.json").read_text())
    minimal = {k: full[k] for k in ("config_py_overrides", "num_attention_heads", "text_model")}
    minimal["layer_norm_eps"] = {"text": 1e-5}
    config = config_from_reference_json(minimal, directory)
    assert config == read_weights(directory).config
    assert config.symbolic.encoder.num_heads == 2 and config.symbolic.encoder.intermediate_size == 128
    assert config.symbolic.max_patches == 16 and config.audio.max_frames == 8
    assert config.text.max_length == 16 and config.projection_dim == 24
    assert config.text.encoder.max_positions == 34 and config.text.tokenizer is None


def test_our_format_round_trips(reference_dir, tmp_path):
    model = CLaMP3.from_pretrained(tiny_dir(reference_dir))
    model.save_pretrained(tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["format"] == "clamp3"
    reloaded = CLaMP3.from_pretrained(tmp_path / "ours")
    assert reloaded.config == model.config
    np.testing.assert_array_equal(_vector(tmp_path / "ours"), _vector(tiny_dir(reference_dir)))


def test_our_format_with_corrupt_weights_is_named(reference_dir, tmp_path):
    CLaMP3.from_pretrained(tiny_dir(reference_dir)).save_pretrained(tmp_path / "ours")
    (tmp_path / "ours" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        CLaMP3.from_pretrained(tmp_path / "ours")


def test_sizes_of_an_official_checkpoint_are_inferred_from_shapes():
    official = CLaMP3Config.official()
    with torch.device("meta"):
        model = CLaMP3Model(official)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 457_896_960
    from pathlib import Path

    inferred = infer_config(state, Path("weights_clamp3_saas.pth"))
    assert inferred == official.with_name("weights_clamp3_saas")


def test_small_unknown_sizes_ask_for_a_config(reference_dir, tmp_path, tiny_state):
    path = tmp_path / "bare.pth"
    torch.save(tiny_state, path)
    with pytest.raises(CheckpointError, match="bare.pth: cannot infer attention heads for hidden size 32"):
        CLaMP3.from_pretrained(path)
