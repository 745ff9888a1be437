"""``Library.add`` and ``clamp3 embed`` on Ray Data (a local runtime of 2 CPUs): the same rows and
vectors as the single-process paths, failures listed (and in the library's ``errors`` table), no Ray
work on a re-run, the CLI's ``--ray``, input files at ``file://`` URLs; the library's actors write
Lance fragments (no vector reaches the driver) and an add stopped between commits resumes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clamp3.cli import main
from clamp3.library import Library, LibrarySettings, distributed
from clamp3.library.store import Store, item_schema, vectors_of
from clamp3.pipeline import PipelineOptions
from clamp3.preprocess.windows import WindowSettings
from tests.test_library import _rows, mixed_music
from tests.tiny import tiny_model_with_tokenizer

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3 server (moto's, on a free loopback port) with test credentials in the environment,
    started before Ray so that its workers inherit them; ``None`` without moto and s3fs."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError:
        yield None
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**settings, "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"}.items():
            env.setenv(name, value)
        yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def ray_runtime(s3_endpoint):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(reference_dir, tmp_path_factory):
    return tiny_model_with_tokenizer(reference_dir, tmp_path_factory.mktemp("tiny-ray-model"))


@pytest.fixture()
def music(reference_dir, tmp_path):
    return mixed_music(reference_dir, tmp_path / "music")


class _Kept:
    """A Ray dataset that keeps the blocks the driver takes from it."""

    def __init__(self, dataset, blocks: list) -> None:
        self.dataset, self.blocks = dataset, blocks

    def iter_batches(self, **kwargs):
        for block in self.dataset.iter_batches(**kwargs):
            self.blocks.append(block)
            yield block


def _keep_returned_blocks(monkeypatch) -> list:
    """The blocks that the driver's commit loop receives from the actors, from now on."""
    blocks: list = []
    commit_stream = distributed._commit_stream
    monkeypatch.setattr(
        distributed,
        "_commit_stream",
        lambda library, dataset, *args: commit_stream(library, _Kept(dataset, blocks), *args),
    )
    return blocks


def test_ray_add_matches_the_single_process_add(
    ray_runtime, model_dir, music, reference_dir, tmp_path, monkeypatch
):
    here = Library.create(tmp_path / "here", model=str(model_dir))
    mert = str(reference_dir / "mert" / "model")
    options = PipelineOptions(mert=mert)
    expected = here.add([music], options=options, cache=False)
    returned = _keep_returned_blocks(monkeypatch)
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
    # the actors wrote the rows as fragments: the driver got ids, failures and fragment metadata only
    assert returned and all(block.schema == distributed.CALL_SCHEMA for block in returned)
    calls = [call for block in returned for call in block.to_pylist()]
    assert sorted(f for call in calls for f in call["files"]) == sorted(
        str(p) for p in music.rglob("*") if p.is_file()
    )
    assert sorted(i for call in calls for i in call["ids"]) == sorted(rows)
    assert [f["path"] for call in calls for f in call["failures"]] == [broken]
    written = {
        data["path"]
        for call in calls
        for fragment in call["fragments"]
        for data in json.loads(fragment)["files"]
    }
    data_files = {
        f.path for fragment in on_ray._store.items.to_lance().get_fragments() for f in fragment.data_files()
    }
    assert written and written <= data_files

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


def _parquet(path) -> dict[str, tuple[str, str, np.ndarray]]:
    table = pq.read_table(path)
    assert table.schema.metadata[b"model"] and table.schema.field("vector").type.value_type == "float"
    rows = table.to_pylist()
    return {r["id"]: (r["path"], r["modality"], np.array(r["vector"], np.float32)) for r in rows}


def test_embed_on_ray_writes_the_single_process_parquet(
    ray_runtime, model_dir, music, reference_dir, tmp_path
):
    model = [
        "--model",
        str(model_dir),
        "--mert",
        str(reference_dir / "mert" / "model"),
        "--quiet",
        "--no-cache",
    ]
    runner = CliRunner()
    here, there = tmp_path / "here.parquet", tmp_path / "ray.parquet"
    single = runner.invoke(main, ["embed", str(music), "-o", str(here), "--format", "parquet", *model])
    on_ray = runner.invoke(main, ["embed", str(music), "-o", str(there), *model, "--ray"])
    broken = str(music / "broken.mid")
    for result in (single, on_ray):
        assert result.exit_code == 1, result.output  # broken.mid fails, the rest is written
        assert f"failed: {broken}: " in result.output and "7 item(s) embedded" in result.output
    expected, rows = _parquet(here), _parquet(there)
    assert (
        sorted(rows)
        == sorted(expected)
        == [
            "bwv66.mid",
            "calm.txt",
            "mono.wav",
            "reel.txt",
            "scores/three.abc#1",
            "scores/three.abc#2",
            "scores/three.abc#3",
        ]
    )
    for id_, (path, kind, vector) in expected.items():
        assert rows[id_][:2] == (path, kind)
        np.testing.assert_allclose(rows[id_][2], vector, atol=1e-6)
    assert pq.read_table(there).column("id").to_pylist() == pq.read_table(here).column("id").to_pylist()
    assert pq.read_schema(there).metadata == pq.read_schema(here).metadata


def test_ray_add_of_a_file_url_matches_a_local_add(
    ray_runtime, model_dir, music, reference_dir, tmp_path, monkeypatch
):
    options = PipelineOptions(mert=str(reference_dir / "mert" / "model"))
    here = Library.create(tmp_path / "here", model=str(model_dir))
    here.add([music], options=options, cache=False)
    url = music.as_uri()
    on_ray = Library.create(tmp_path / "ray", model=str(model_dir))
    report = on_ray.add([url], options=options, cache=False, ray="local")
    assert (report.embedded, [f.path for f in report.failures]) == (7, [f"{url}/broken.mid"])
    assert on_ray.errors() == {f"{url}/broken.mid": here.errors()[str(music / "broken.mid")]}
    rows = {path: vector for path, vector in _rows(on_ray).values()}
    reference = {path.replace(str(music), url): vector for path, vector in _rows(here).values()}
    assert rows.keys() == reference.keys()
    for path, vector in reference.items():
        np.testing.assert_allclose(rows[path], vector, atol=1e-6)

    def hashes(library, prefix):  # the content hashes, computed by the workers for URLs
        rows = library._store.query(["file_path", "content_hash"]).to_pylist()
        return {r["file_path"].removeprefix(prefix): r["content_hash"] for r in rows}

    assert hashes(on_ray, url) == hashes(here, str(music))

    sent = []
    monkeypatch.setattr(distributed, "_embed_on_ray", lambda lib, fresh, *args: sent.append(fresh))
    (music / "calm.txt").write_text("a calm chorale for three voices\n")  # another size: changed
    again = on_ray.add([url], options=options, cache=False, ray="local")
    assert again.unchanged == 4  # bwv66.mid, mono.wav, reel.txt, three.abc: the stats fsspec reports
    assert sorted(f["file_path"] for fresh in sent for f in fresh) == [f"{url}/broken.mid", f"{url}/calm.txt"]
    (music / "reel.txt").unlink()
    pruned = on_ray.add([url], options=options, cache=False, ray="local", prune=True)
    assert pruned.removed == 1 and f"{url}/reel.txt" not in {p for p, _ in _rows(on_ray).values()}


def test_urls_need_ray(music, tmp_path):
    result = CliRunner().invoke(main, ["embed", music.as_uri(), "-o", str(tmp_path / "out.parquet")])
    assert result.exit_code == 2 and "URLs are read on Ray only" in result.output


def test_embed_on_ray_reads_s3(ray_runtime, s3_endpoint, model_dir, music, reference_dir, tmp_path):
    if s3_endpoint is None:
        pytest.skip("needs moto[server] and s3fs")
    import fsspec

    from clamp3.distributed.embed import embed_on_ray

    fsspec.filesystem("s3").put(str(music), "clamp3-test/music", recursive=True)
    options = PipelineOptions(mert=str(reference_dir / "mert" / "model"))
    here = tmp_path / "here.parquet"
    model = ["--model", str(model_dir), "--mert", options.mert, "--quiet", "--no-cache"]
    assert (
        CliRunner()
        .invoke(main, ["embed", str(music), "-o", str(here), "--format", "parquet", *model])
        .exit_code
        == 1
    )
    report = embed_on_ray(
        ["s3://clamp3-test/music"], tmp_path / "s3.parquet", str(model_dir), cache=False, options=options
    )
    assert (report.items, [f.path for f in report.failures]) == (7, ["s3://clamp3-test/music/broken.mid"])
    expected, rows = _parquet(here), _parquet(tmp_path / "s3.parquet")
    assert rows.keys() == expected.keys()
    for id_, (path, kind, vector) in expected.items():
        assert rows[id_][:2] == (path.replace(str(music), "s3://clamp3-test/music"), kind)
        np.testing.assert_allclose(rows[id_][2], vector, atol=1e-6)


def _texts(folder, count: int):
    folder.mkdir()
    words = ["a", "calm", "chorale", "for", "four", "voices", "an", "irish", "reel"]
    for i in range(count):
        (folder / f"{i:02d}.txt").write_text(" ".join(words[i % 5 : i % 5 + 3 + i % 4]) + "\n")
    return folder


def _content(library: Library) -> dict[str, tuple]:
    table = library._store.query(["id", "path", "content_hash", "vector"])
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)) == library._store.count(), "duplicate rows"
    return {
        row["id"]: (row["path"], row["content_hash"], np.array(row["vector"])) for row in table.to_pylist()
    }


def _assert_same(library: Library, reference: Library) -> None:
    rows, expected = _content(library), _content(reference)
    assert rows.keys() == expected.keys()
    for id_, (path, content_hash, vector) in expected.items():
        assert rows[id_][:2] == (path, content_hash)
        np.testing.assert_allclose(rows[id_][2], vector, atol=1e-6)


class _Stopped(Exception):
    """The driver stopping (as if killed) at a commit."""


def test_a_ray_add_stopped_between_commits_resumes_to_the_single_process_library(
    ray_runtime, model_dir, tmp_path, monkeypatch
):
    texts = _texts(tmp_path / "texts", 8)
    here = Library.create(tmp_path / "here", model=str(model_dir))
    here.add([texts], cache=False)
    on_ray = Library.create(tmp_path / "ray", model=str(model_dir), settings=LibrarySettings(batch_files=2))
    commits: list[int] = []
    add_fragments = Store.add_fragments

    def stop_at_the_second_commit(store, fragments, files):
        commits.append(len(files))
        if len(commits) == 2:
            raise _Stopped
        add_fragments(store, fragments, files)

    monkeypatch.setattr(Store, "add_fragments", stop_at_the_second_commit)
    with pytest.raises(_Stopped):
        on_ray.add([texts], cache=False, ray="local")
    monkeypatch.undo()
    committed = _content(on_ray)
    assert len(committed) == commits[0] >= 2  # the first commit only, whole
    dataset = on_ray._store.items.to_lance()
    referenced = {f.path for fragment in dataset.get_fragments() for f in fragment.data_files()}
    on_disk = {p.name for p in (tmp_path / "ray" / "items.lance" / "data").iterdir()}
    assert referenced < on_disk  # the stopped commit's fragments are on disk, referenced by no version

    resumed = on_ray.add([texts], cache=False, ray="local")
    assert (resumed.unchanged, resumed.embedded) == (len(committed), 8 - len(committed))
    _assert_same(on_ray, here)

    (texts / "03.txt").write_text("a lively irish reel\n")  # changed: one transaction replaces its row
    (texts / "05.txt").unlink()
    assert here.add([texts], cache=False, prune=True).removed == 1
    again = on_ray.add([texts], cache=False, ray="local", prune=True)
    assert (again.embedded, again.unchanged, again.removed) == (1, 6, 1)
    _assert_same(on_ray, here)


def test_ray_add_with_segments_writes_the_single_process_windows(
    ray_runtime, model_dir, music, reference_dir, tmp_path
):
    windows = WindowSettings(bars=((2, 1),), seconds=((4.0, 2.0),))
    options = PipelineOptions(mert=str(reference_dir / "mert" / "model"))
    here = Library.create(tmp_path / "here", model=str(model_dir), segments=windows)
    here.add([music], options=options, cache=False)
    on_ray = Library.create(tmp_path / "ray", model=str(model_dir), segments=windows)
    report = on_ray.add([music], options=options, cache=False, ray="local")
    assert report.embedded == 7 and len(report.failures) == 1  # broken.mid

    def windows_of(library: Library) -> dict:
        store = library._store
        table = store.query(["id", "item_id", "path", "start", "end", "unit", "vector"], table=store.segments)
        rows = table.drop(["vector"]).to_pylist()
        assert len({row["id"] for row in rows}) == len(rows)
        return {row["id"]: (row, vector) for row, vector in zip(rows, vectors_of(table), strict=True)}

    expected, found = windows_of(here), windows_of(on_ray)
    assert len(expected) > 7 and found.keys() == expected.keys()
    for id_, (row, vector) in expected.items():
        assert found[id_][0] == row
        np.testing.assert_allclose(found[id_][1], vector, atol=1e-6)
