"""Options that need an optional package stop before any work when it is missing, naming the extra."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import clamp3.api
import clamp3.cli.library
import clamp3.encoder
import clamp3.library
import clamp3.train.recipe
from clamp3.cli import main
from clamp3.errors import MissingDependencyError
from clamp3.extras import missing, require
from clamp3.model.towers import CLaMP3Model
from clamp3.train.lora import LoraSettings, add_lora
from tests.tiny import tiny_tokenizer
from tests.train_toy import WORDS, tiny_config, write_toy_corpus

REPO = Path(__file__).resolve().parents[1]


class ModelWork(Exception):
    """Raised by the stand-ins of the functions that load models or embed."""


def _forbid(monkeypatch, target, name: str) -> list:
    calls = []

    def stand_in(*args, **kwargs):
        calls.append(name)
        raise ModelWork(name)

    monkeypatch.setattr(target, name, stand_in)
    return calls


def _block(monkeypatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_require_names_the_extra_that_installs_the_package(monkeypatch):
    _block(monkeypatch, "matplotlib", "matplotlib.figure")
    assert missing("json", "matplotlib.figure") == "needs the matplotlib package: pip install 'clamp3[plot]'"
    assert missing("json") is None
    with pytest.raises(MissingDependencyError) as error:
        require("--plot", "matplotlib.figure")
    assert str(error.value) == "--plot needs the matplotlib package: pip install 'clamp3[plot]'"


@pytest.mark.parametrize(
    ("args", "api_function", "message"),
    [
        (["eval", "q", "r", "--plot", "ranks.png"], "evaluate", "--plot needs the matplotlib package"),
        (
            ["classify", "a.abc", "--labels", "x,y", "--confusion", "c.png"],
            "zero_shot",
            "--confusion needs the matplotlib package",
        ),
    ],
)
def test_plot_options_without_matplotlib_stop_before_embedding(monkeypatch, args, api_function, message):
    _block(monkeypatch, "matplotlib", "matplotlib.figure")
    calls = _forbid(monkeypatch, clamp3.api, api_function)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"Error: {message}: pip install 'clamp3[plot]'" in result.output
    assert calls == []
    assert "MRR" not in result.output


def test_parquet_output_without_pyarrow_stops_before_the_model_loads(monkeypatch):
    _block(monkeypatch, "pyarrow")
    calls = _forbid(monkeypatch, clamp3.api.Session, "open")
    result = CliRunner().invoke(main, ["embed", "a.abc", "-o", "out.parquet", "--format", "parquet"])
    assert result.exit_code == 1
    assert "--format parquet needs the pyarrow package: pip install 'clamp3[parquet]'" in result.output
    assert calls == []


def test_ray_without_ray_stops_before_the_library_opens(monkeypatch):
    _block(monkeypatch, "ray", "ray.data")
    calls = _forbid(monkeypatch, clamp3.cli.library, "_open")
    result = CliRunner().invoke(main, ["library", "add", "tunes", "--library", "lib", "--ray"])
    assert result.exit_code == 1
    assert "--ray needs the ray package: pip install 'clamp3[ray]'" in result.output
    assert calls == []


def test_serve_without_the_server_extra_stops_before_the_library_opens(monkeypatch):
    _block(monkeypatch, "verovio")
    calls = _forbid(monkeypatch, clamp3.library.Library, "open")
    result = CliRunner().invoke(main, ["serve", "--library", "lib"])
    assert result.exit_code == 1
    assert "clamp3 serve needs the verovio package: pip install 'clamp3[server]'" in result.output
    assert calls == []


def test_lora_without_peft_stops_before_the_model_is_built(monkeypatch, tmp_path):
    _block(monkeypatch, "peft")
    calls = _forbid(monkeypatch, clamp3.train.recipe, "build_encoder")
    (tmp_path / "recipe.toml").write_text(
        '[model]\nconfig = "config.json"\n[data]\ntrain = "corpus.jsonl"\n[lora]\nr = 4\n'
    )
    result = CliRunner().invoke(main, ["train", "contrastive", "--config", str(tmp_path / "recipe.toml")])
    assert result.exit_code == 1
    assert "Error: LoRA needs the peft package: pip install 'clamp3[train]'" in result.output
    assert calls == []
    with pytest.raises(MissingDependencyError, match="LoRA needs the peft package"):
        add_lora(CLaMP3Model(tiny_config()), LoraSettings())


def test_export_with_an_adapter_without_peft_stops_before_the_model_loads(monkeypatch, tmp_path):
    _block(monkeypatch, "peft")
    calls = _forbid(monkeypatch, clamp3.encoder.CLaMP3, "from_pretrained")
    result = CliRunner().invoke(
        main, ["train", "export", str(tmp_path), "-o", "out.pth", "--adapter", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "LoRA needs the peft package: pip install 'clamp3[train]'" in result.output
    assert calls == []


def test_training_without_peft_or_tensorboard_runs_and_says_so_at_the_start(tmp_path):
    write_toy_corpus(tmp_path, per_style=2)
    tiny_config().save(tmp_path / "config.json")
    tiny_tokenizer(WORDS).save_pretrained(tmp_path / "tokenizer")
    (tmp_path / "recipe.toml").write_text(
        '[model]\nconfig = "config.json"\ntokenizer = "tokenizer"\n'
        '[data]\ntrain = "corpus.jsonl"\nvalidation_fraction = 0.25\ncache = false\n'
        "[contrastive]\nbatch_size = 4\n"
        '[train]\noutput = "run"\nepochs = 1\nshow_progress = false\n'
    )
    blocker = (
        "import sys; sys.modules.update(peft=None, tensorboard=None); from clamp3.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker, "train", "contrastive", "--config", "recipe.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first == (
        "warning: TensorBoard logging needs the tensorboard package: pip install 'clamp3[train]'; "
        "training goes on without TensorBoard logs (tensorboard = false in [train] turns them off)"
    )
    assert (tmp_path / "run" / "best").is_dir()
    assert not (tmp_path / "run" / "tensorboard").exists()
