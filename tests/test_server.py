"""The HTTP API (FastAPI's test client over the real app and a real library): every endpoint and every
error path, tokens, upload limits, no path from a client ever opened, no stack trace ever sent."""

from __future__ import annotations

import io
import shutil
import wave

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from clamp3.cli import main
from clamp3.library import Library
from clamp3.pipeline import PipelineOptions
from clamp3.server import ServerSettings, create_app
from tests.test_library import THREE_TUNES
from tests.tiny import tiny_model_with_tokenizer

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def served(reference_dir, tmp_path_factory):
    """A library of every media kind, and the pipeline options that embed it with tiny models."""
    root = tmp_path_factory.mktemp("served")
    model_dir = tiny_model_with_tokenizer(reference_dir, root / "model")
    music = root / "music"
    music.mkdir()
    (music / "tunes.abc").write_text(THREE_TUNES)
    shutil.copy(reference_dir / "xml2abc" / "xml" / "chorale_bwv66_6.mxl", music / "bwv66.mxl")
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", music / "bwv66.mid")
    shutil.copy(reference_dir / "mert" / "audio" / "main_24k_mono.wav", music / "mono.wav")
    (music / "calm.txt").write_text("a calm chorale for four voices\n")
    options = PipelineOptions(mert=str(reference_dir / "mert" / "model"))
    library = Library.create(root / "lib", model=str(model_dir))
    library.add([music], options=options)
    return root / "lib", options, music


def _client(served, **settings) -> TestClient:
    directory, options, _ = served
    app = create_app(Library.open(directory), ServerSettings(pipeline={"options": options}, **settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(served):
    return _client(served, token=TOKEN, max_upload_mb=1)


def _ids(client, **query) -> dict[str, str]:
    """kind -> id of one item of that kind."""
    hits = client.post("/api/search", json={"text": "a calm chorale", "k": 20, **query}).json()["hits"]
    return {hit["kind"]: hit["id"] for hit in hits}


def test_search_by_text_item_and_file(client, served):
    _, _, music = served
    answer = client.post("/api/search", json={"text": "a calm chorale", "k": 3})
    assert answer.status_code == 200
    body = answer.json()
    assert body["candidates"] == 7 and len(body["hits"]) == 3
    scores = [hit["score"] for hit in body["hits"]]
    assert scores == sorted(scores, reverse=True) and body["hits"][0]["path"] == str(music / "calm.txt")
    assert {"id", "path", "kind", "score", "title", "media"} <= set(body["hits"][0])
    audio_only = client.post("/api/search", json={"text": "a calm chorale", "kinds": ["audio"]}).json()
    assert [hit["kind"] for hit in audio_only["hits"]] == ["audio"]
    symbolic = client.post("/api/search", json={"text": "x", "kinds": ["symbolic"], "k": 20}).json()["hits"]
    assert {hit["kind"] for hit in symbolic} == {"abc", "musicxml", "midi"}
    with (music / "bwv66.mid").open("rb") as handle:
        uploaded = client.post("/api/search", files={"file": ("take.mid", handle)}, data={"k": "2"}).json()
    assert uploaded["query"] == "take.mid" and uploaded["hits"][0]["path"] == str(music / "bwv66.mid")
    assert uploaded["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    seed = body["hits"][0]["id"]
    similar = client.get(f"/api/items/{seed}/similar", params={"k": 4}).json()["hits"]
    assert len(similar) == 4 and seed not in {hit["id"] for hit in similar}
    assert client.post("/api/search", json={"like": seed, "k": 4}).json()["hits"] == similar


def test_items_and_media(client):
    ids = _ids(client)
    item = client.get(f"/api/items/{ids['abc']}").json()
    assert item["title"] in {"First Tune", "Second Tune", "Third Tune"} and item["media"] == "score"
    assert "file_path" not in item and "vector" not in item
    whole = client.get(f"/api/items/{ids['audio']}/media")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    part = client.get(f"/api/items/{ids['audio']}/media", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == whole.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole.content)}"
    for kind in ("abc", "musicxml"):
        score = client.get(f"/api/items/{ids[kind]}/media")
        assert score.status_code == 200, score.text
        assert score.headers["content-type"].startswith("image/svg+xml")
        assert score.text.lstrip().startswith("<svg") or "<svg" in score.text[:500]
    midi = client.get(f"/api/items/{ids['midi']}/media")
    assert midi.headers["content-type"] == "audio/midi" and midi.content.startswith(b"MThd")
    rendered = client.get(f"/api/items/{ids['midi']}/media", params={"render": "audio"})
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(rendered.content)) as audio:
        assert audio.getframerate() == 22050 and audio.getnframes() > 22050
    text = client.get(f"/api/items/{ids['text']}/media")
    assert text.text == "a calm chorale for four voices\n"
    assert client.get(f"/api/items/{ids['abc']}/media", params={"page": 99}).status_code == 400
    assert client.get(f"/api/items/{ids['abc']}/media", params={"render": "video"}).status_code == 422


def test_classify_score_stats_and_map(client, served):
    _, _, music = served
    ids = _ids(client)
    classified = client.post(
        "/api/classify", json={"labels": ["calm", "lively"], "ids": [ids["text"], ids["midi"]]}
    )
    results = classified.json()["results"]
    assert [r["item"] for r in results] == [ids["text"], ids["midi"]]
    for result in results:
        assert result["top"] in {"calm", "lively"} and sum(result["probabilities"].values()) == pytest.approx(
            1.0
        )
    with (music / "calm.txt").open("rb") as handle:
        upload = client.post(
            "/api/classify", files={"file": ("q.txt", handle)}, data={"labels": "calm, lively"}
        )
    assert upload.json()["results"][0]["item"] == "q.txt"
    same = client.post("/api/score", json={"a": ids["midi"], "b": ids["midi"]}).json()["score"]
    other = client.post("/api/score", json={"a": ids["midi"], "b": ids["text"]}).json()["score"]
    assert same == pytest.approx(1.0, abs=1e-5) and -1 <= other < 0.9999
    with (music / "bwv66.mid").open("rb") as handle:
        mixed = client.post("/api/score", files={"a": ("x.mid", handle)}, data={"b": ids["midi"]}).json()
    assert mixed["score"] == pytest.approx(1.0, abs=1e-5)
    stats = client.get("/api/stats").json()
    assert stats["rows"] == 7 and stats["by_kind"]["abc"] == 3
    points = client.get("/api/map").json()["points"]
    assert len(points) == 7 and {p["id"] for p in points} == set(_ids(client, k=20).values()) | {
        p["id"] for p in points
    }
    coordinates = np.array([[p["x"], p["y"]] for p in points])
    assert np.abs(coordinates).max() == pytest.approx(1.0) and np.ptp(coordinates, axis=0).min() > 0


@pytest.mark.parametrize(
    ("method", "url", "payload", "status", "reason"),
    [
        ("get", "/api/items/nope", None, 404, "no item with id 'nope'"),
        ("get", "/api/items/nope/similar", None, 404, "no item with id 'nope'"),
        ("get", "/api/items/nope/media", None, 404, "no item with id 'nope'"),
        ("get", "/api/items/..%2F..%2Fetc%2Fpasswd/media", None, 404, "Not Found"),
        ("get", "/api/items/%2Fetc%2Fpasswd", None, 404, "Not Found"),
        ("get", "/api/items/..%5C..%5Cetc/media", None, 404, "no item with id '.."),
        ("get", "/api/items/x/similar?kinds=../../etc", None, 422, "unknown modality '../../etc'"),
        ("post", "/api/search", {"text": "x", "like": "y"}, 422, "give either 'text' or 'like'"),
        ("post", "/api/search", {"like": "../../etc/passwd"}, 404, "no item with id '../../etc/passwd'"),
        ("post", "/api/search", {"text": "x", "k": 0}, 422, "k must be between 1 and 200"),
        ("post", "/api/search", {"text": "x", "kinds": ["video"]}, 422, "unknown modality 'video'"),
        ("post", "/api/search", {"text": ""}, 422, "'text' must be a non-empty string"),
        ("post", "/api/classify", {"labels": [], "ids": ["x"]}, 422, "'labels' must be a non-empty list"),
        ("post", "/api/score", {"a": "/etc/passwd", "b": "x"}, 404, "no item with id '/etc/passwd'"),
        ("post", "/api/score", {"a": "x"}, 422, "give two items 'a' and 'b'"),
        ("get", "/api/map?limit=1", None, 422, "limit must be between 2 and 20000"),
    ],
)
def test_errors_are_one_line_4xx(client, method, url, payload, status, reason):
    answer = (
        getattr(client, method)(url, json=payload) if payload is not None else getattr(client, method)(url)
    )
    assert answer.status_code == status
    detail = answer.json()["detail"]
    assert detail.startswith(reason) and "\n" not in detail and "Traceback" not in answer.text


def test_uploads_are_checked(client, served, tmp_path):
    _, _, music = served
    big = io.BytesIO(b"X:1\nT:big\nK:C\n" + b"c" * (2 << 20))
    assert client.post("/api/search", files={"file": ("big.abc", big)}).status_code == 413
    odd = client.post("/api/search", files={"file": ("data.bin", io.BytesIO(bytes(range(256)) * 4))})
    assert odd.status_code == 415 and odd.json()["detail"].startswith(
        "data.bin: not a supported kind of file"
    )
    broken = client.post("/api/search", files={"file": ("broken.mid", io.BytesIO(b"MThd\x00\x00\x00\x06"))})
    assert broken.status_code == 422 and broken.json()["detail"].startswith("broken.mid: ")
    empty = client.post("/api/search", files={"file": ("e.txt", io.BytesIO(b""))})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    traversal = client.post(
        "/api/search", files={"file": ("../../../tmp/evil.mid", (music / "bwv66.mid").open("rb"))}
    )
    assert traversal.status_code == 200 and traversal.json()["query"] == "evil.mid"
    assert not (tmp_path.parent / "evil.mid").exists()
    assert client.post("/api/search", files={"nofile": ("a.txt", io.BytesIO(b"a"))}).status_code == 422
    assert (
        client.post(
            "/api/search", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


def test_writes_need_the_token(client, served, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "reel.txt").write_text("an irish reel\n")
    body = {"paths": [str(extra)]}
    assert client.post("/api/library/add", json=body).status_code == 401
    assert (
        client.post("/api/library/add", json=body, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    relative = client.post(
        "/api/library/add", json={"paths": ["../extra"]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert relative.status_code == 422 and "not an existing absolute path" in relative.json()["detail"]
    added = client.post("/api/library/add", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert added.status_code == 200 and added.json()["embedded"] == 1 and added.json()["rows"] == 8
    Library.open(served[0]).remove(
        [
            h["id"]
            for h in client.post("/api/search", json={"text": "x", "k": 20}).json()["hits"]
            if h["path"] == str(extra / "reel.txt")
        ]
    )
    without = _client(served)  # no token configured: writes are disabled
    assert without.post("/api/library/add", json=body).status_code == 403


def test_token_everywhere_off_loopback(served):
    guarded = _client(served, token=TOKEN, token_everywhere=True)
    assert guarded.get("/api/stats").status_code == 401
    assert guarded.get("/").status_code == 401
    assert guarded.get("/", params={"token": TOKEN}).status_code == 200
    assert guarded.get("/static/app.js").status_code == 200  # the page's own script, no library data
    assert guarded.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/api/stats", params={"token": TOKEN}).status_code == 200


def test_an_unexpected_failure_is_logged_not_sent(served, caplog, monkeypatch):
    client = _client(served)
    monkeypatch.setattr(Library, "stats", lambda self: 1 / 0)
    answer = client.get("/api/stats")
    assert answer.status_code == 500 and answer.json() == {"detail": "internal error (see the server's log)"}
    assert "ZeroDivisionError" not in answer.text
    assert any("ZeroDivisionError" in (record.exc_text or "") for record in caplog.records)


def test_page_docs_and_cors(served):
    client = _client(served)
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/docs").status_code == 200
    assert "/api/search" in client.get("/openapi.json").json()["paths"]
    no_cors = client.options(
        "/api/stats", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in no_cors.headers
    allowed = _client(served, cors_origins=("http://music.example",))
    preflight = allowed.options(
        "/api/stats", headers={"Origin": "http://music.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.headers["access-control-allow-origin"] == "http://music.example"


def test_serve_refuses_other_addresses_without_a_token(served, monkeypatch):
    monkeypatch.delenv("CLAMP3_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--library", str(served[0]), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: refusing to serve on 0.0.0.0 without a token: give --token or set CLAMP3_TOKEN "
        "(or bind 127.0.0.1)"
    ]


def test_concurrent_text_queries_share_model_calls(served):
    import concurrent.futures

    client = _client(served)
    texts = [f"a calm chorale {i}" for i in range(24)]

    def search(text: str) -> list[str]:
        answer = client.post("/api/search", json={"text": text, "k": 3})
        assert answer.status_code == 200
        return [hit["id"] for hit in answer.json()["hits"]]

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(search, texts))
    worker = client.app.state.model_worker
    assert worker.text_batches < len(texts)  # texts that waited for the model went through together
    assert together == [search(text) for text in texts]  # and got the same answers as alone


def test_a_request_past_its_time_limit_gets_504(served, monkeypatch):
    import time

    client = _client(served, request_timeout_s=0.2)
    monkeypatch.setattr(Library, "stats", lambda self: time.sleep(1.5) or {})
    answer = client.get("/api/stats")
    assert answer.status_code == 504 and answer.json() == {"detail": "the request took longer than 0.2 s"}
