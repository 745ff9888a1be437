"""Per-patch M3 features (the reference's ``extract_m3.py``): ``clamp3 convert symbolic2m3``."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clamp3.cli import main
from clamp3.convert import ConvertOptions, convert
from clamp3.encoder import CLaMP3
from clamp3.m3_features import M3FeatureExtractor
from clamp3.model.checkpoint import save_official
from clamp3.model.m3 import M3Config, M3DecoderConfig, M3Model, load_m3_encoder_into
from clamp3.model.towers import CLaMP3Model
from clamp3.preprocess.midi import midi_to_mtf
from tests.train_toy import tiny_config


@pytest.fixture(scope="module")
def m3_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("m3")
    config = tiny_config(dropout=0.0)
    config.save(root / "config.json")
    torch.manual_seed(0)
    save_official(M3Model(M3Config(config.symbolic, M3DecoderConfig(1, 2, 64))), root / "m3.pth")
    return root


def _clamp3_local_features(m3_files, text: str) -> np.ndarray:
    """The same encoder weights inside a CLaMP 3 model, through its own per-position forward pass."""
    model = CLaMP3Model(tiny_config(dropout=0.0))
    load_m3_encoder_into(model, m3_files / "m3.pth")
    return CLaMP3(model.eval(), device="cpu").encode_symbolic([text], global_features=False)[0]


@pytest.mark.parametrize("name", ["chorale_bwv66_6.abc", "mtf"])
def test_features_are_the_encoders_last_hidden_states_per_patch(m3_files, reference_dir, name):
    if name == "mtf":
        text = midi_to_mtf(sorted((reference_dir / "midi2mtf" / "midi").iterdir())[0])
    else:
        text = (reference_dir / "xml2abc" / "int_abc" / name).read_text()
    extractor = M3FeatureExtractor.from_checkpoint(m3_files / "m3.pth", tiny_config().symbolic, device="cpu")
    features = extractor.features(text)
    patches = extractor.patchilizer.encode(text, add_special_patches=True)
    assert len(patches) > 32 and len(patches) % 32  # two or more segments, the last overlapping
    assert features.shape == (1, len(patches), 32) and features.dtype == np.float32
    np.testing.assert_allclose(features[0], _clamp3_local_features(m3_files, text), atol=1e-5)
    with torch.inference_mode():  # the first segment alone, straight through the encoder
        first = torch.from_numpy(patches[:32])[None]
        expected = extractor.encoder(first, torch.ones(1, 32))[0].numpy()
    np.testing.assert_allclose(features[0, :32], expected, atol=1e-6)


def test_convert_writes_one_array_per_file_and_refuses_plain_abc(m3_files, reference_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    text = (reference_dir / "xml2abc" / "int_abc" / "chorale_bwv66_6.abc").read_text()
    (inputs / "chorale.abc").write_text(text)
    (inputs / "plain.abc").write_text("X:1\nT:plain\nK:C\nCDEF|GABc|\n")
    options = ConvertOptions(m3=m3_files / "m3.pth", m3_config=m3_files / "config.json", device="cpu")
    report = convert("symbolic2m3", [inputs], tmp_path / "out", options)
    assert report.written == [tmp_path / "out" / "chorale.npy"]
    assert [str(f) for f in report.failures] == [
        f"{inputs / 'plain.abc'}: not interleaved ABC: convert it with abc2interleaved first"
    ]
    extractor = M3FeatureExtractor.from_checkpoint(m3_files / "m3.pth", tiny_config().symbolic, "cpu")
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "chorale.npy"), extractor.features(text))

    without = CliRunner().invoke(main, ["convert", "symbolic2m3", str(inputs), "-o", str(tmp_path / "o2")])
    assert without.exit_code == 1
    assert "symbolic2m3 needs the M3 weights: give --m3 CHECKPOINT" in without.output
