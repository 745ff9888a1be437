"""``Library.add`` on Ray Data (a local runtime of 2 CPUs): the same rows as the single-process path,
failures in the ``errors`` table, no Ray work on a re-run, the CLI's ``--ray``."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from clamp3.cli import main
from clamp3.library import Library, distributed
from clamp3.library.store import item_schema
from clamp3.pipeline import PipelineOptions
from tests.test_library import _rows, mixed_music
from tests.tiny import tiny_model_with_tokenizer

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_runtime():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny-ray-model"))


@pytest.fixture()
def music(reference_dir, tmp_path):
    return mixed_music(reference_dir, tmp_path / "music")


def test_ray_add_matches_the_single_process_add(
    ray_runtime, model_dir, music, reference_dir, tmp_path, monkeypatch
):
    here = Library.create(tmp_path / "here", model=str(model_dir))
    mert = str(reference_dir / "mert" / "model")
    options = PipelineOptions(mert=mert)
    expected = here.add([music], options=options, cache=False)
    # one Ray job (2 actors), through the CLI: `--ray` alone uses the running runtime, or starts one
    lib = str(tmp_path / "ray")
    model = ["--model", str(model_dir), "--mert", mert, "--quiet", "--no-cache"]
    runner = CliRunner()
    assert runner.invoke(main, ["library", "init", lib, "--model", str(model_dir)]).exit_code == 0
    added = runner.invoke(main, ["library", "add", str(music), "--library", lib, *model, "--ray"])
    assert added.exit_code == 1, added.output  # broken.mid fails, the rest is indexed
    broken = str(music / "broken.mid")
    assert f"failed: {broken}: " in added.output and "7 embedded, 0 reused" in added.output

    on_ray = Library.open(lib)
    assert on_ray.errors() == {broken: expected.failures[0].reason}
    rows, reference = _rows(on_ray), _rows(here)
    assert rows.keys() == reference.keys()
    for id_, (path, vector) in reference.items():
        assert rows[id_][0] == path
        np.testing.assert_allclose(rows[id_][1], vector, atol=1e-6)
    columns = [c for c in item_schema(on_ray.dim).names if c not in ("vector", "added_at")]
    assert sorted(on_ray._store.query(columns).to_pylist(), key=str) == sorted(
        here._store.query(columns).to_pylist(), key=str
    )

    sent = []
    monkeypatch.setattr(distributed, "_embed_on_ray", lambda lib, fresh, *args: sent.append(fresh))
    again = on_ray.add([music], options=options, cache=False, ray="local")
    assert (again.embedded, again.unchanged) == (0, 5)
    assert [[f["file_path"] for f in fresh] for fresh in sent] == [[broken]]  # failed files are retried
    (music / "broken.mid").unlink()
    (music / "copy.txt").write_text("an irish reel\n")  # known content: reused on the driver
    last = on_ray.add([music], options=options, cache=False, ray="local")
    assert (last.embedded, last.reused, last.unchanged, last.failures) == (0, 1, 5, [])
    assert len(sent) == 1 and len(on_ray) == 8  # no Ray job the second time


def test_ray_flag_taking_a_path_is_refused(music, tmp_path):
    result = CliRunner().invoke(main, ["library", "add", "--ray", str(music), "--library", str(tmp_path)])
    assert result.exit_code == 2 and "is not a Ray address" in result.output
