"""The HTTP API (FastAPI's test client over the real app and a real library): every endpoint and every
error path, tokens, upload limits, no path from a client ever opened, no stack trace ever sent."""

from __future__ import annotations

import io
import shutil
import wave
import xml.etree.ElementTree as ET

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
SVG = "http://www.w3.org/2000/svg"


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
    # rendered audio answers ranges like a file, so that a player can seek in it
    assert rendered.headers["accept-ranges"] == "bytes"
    for asked, first, last in (
        ("bytes=100-199", 100, 199),
        ("bytes=-50", -50, -1),
        ("bytes=1000-", 1000, -1),
    ):
        part = client.get(
            f"/api/items/{ids['midi']}/media", params={"render": "audio"}, headers={"Range": asked}
        )
        size = len(rendered.content)
        first, last = first % size, last % size
        assert part.status_code == 206 and part.content == rendered.content[first : last + 1]
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
    beyond = client.get(
        f"/api/items/{ids['midi']}/media", params={"render": "audio"}, headers={"Range": "bytes=99999999-"}
    )
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(rendered.content)}"
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


# ---------------------------------------------------------------------- segment-level search (issue 20)


def _long_tune(bars: int) -> str:
    """An ABC reel of ``bars`` bars, long enough for Verovio to engrave on several pages."""
    notes = ["DFAd", "fdAF", "GBdg", "edcB", "Acea", "gfed", "dcBA", "d4"]
    body = " ".join(f"{notes[i % 8]} {notes[(i * 3 + 1) % 8]}|" for i in range(bars))
    return f"X:1\nT:A Long Reel\nM:4/4\nL:1/8\nK:D\n{body}]\n"


def segment_library(root, demo_files, more: dict[str, str] | None = None) -> Library:
    """A library made with segments by the bundled model at ``root / "lib"`` over copies of
    ``demo_files`` (paths under the demo library) and the files ``more`` (name -> text); every file is
    embedded, one item each."""
    from clamp3.cli.demo import DEMO_DATA
    from clamp3.preprocess.windows import WindowSettings

    music = root / "music"
    music.mkdir()
    for name in demo_files:
        shutil.copy(DEMO_DATA / "library" / name, music)
    for name, text in (more or {}).items():
        (music / name).write_text(text)
    library = Library.create(root / "lib", model="default", segments=WindowSettings())
    report = library.add([music])
    assert not report.failures and report.embedded == len(demo_files) + len(more or {})
    return library


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """A library made with segments by the bundled model over a few demo files (tunes, chorales, MIDI,
    audio), a long tune and a text; its client and the items' ids by file name."""
    root = tmp_path_factory.mktemp("segmented")
    demo_files = (
        "scores/the-alhambra-reel.abc",
        "scores/the-blue-garters.abc",
        "scores/bwv324-meine-seel-erhebet-den-herrn.musicxml",
        "midi/the-grey-plover.mid",
        "audio/the-custom-house-jig.ogg",
    )
    more = {"long.abc": _long_tune(120), "notes.txt": "a lively reel for the fiddle\n"}
    library = segment_library(root, demo_files, more)
    client = TestClient(create_app(Library.open(root / "lib")), raise_server_exceptions=False)
    hits = client.post("/api/search", json={"text": "x", "k": 20}).json()["hits"]
    ids = {hit["path"].rsplit("/", 1)[-1].split("#")[0]: hit["id"] for hit in hits}
    return client, ids, library


@pytest.fixture(scope="module")
def alhambra_bars_9_12(segmented) -> bytes:
    """Bars 9-12 of the Alhambra reel's interleaved ABC (the model's input), as an ABC file."""
    from clamp3.cli.demo import DEMO_DATA
    from clamp3.modality import FileKind
    from clamp3.preprocess.windows import abc_excerpt

    _, _, library = segmented
    path = DEMO_DATA / "library" / "scores" / "the-alhambra-reel.abc"
    items, _ = library.session().pipeline.items_from_files([(path, FileKind.ABC)])
    return abc_excerpt(items[0].data, 9, 12).encode()


UNITS = {"abc": "bar", "musicxml": "bar", "midi": "second", "audio": "second", "text": None}


def test_search_with_segments_names_each_hits_passage(segmented):
    client, ids, _ = segmented
    stats = client.get("/api/stats").json()
    assert stats["segments"]["bars"] == [[4, 2], [8, 4]] and stats["segments"]["seconds"] == [[6, 3], [12, 6]]
    assert stats["segments"]["rows"] > 100
    plain = client.post("/api/search", json={"text": "a lively Irish reel", "k": 20}).json()["hits"]
    assert len(plain) == 7 and all(hit["span"] is None for hit in plain)
    found = client.post("/api/search", json={"text": "a lively Irish reel", "k": 20, "segments": True}).json()
    hits = found["hits"]
    assert found["candidates"] == 7 and len(hits) == 7
    assert [hit["rank"] for hit in hits] == list(range(1, 8))
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
    plain_scores = {hit["id"]: hit["score"] for hit in plain}
    for hit in hits:
        assert hit["score"] >= plain_scores[hit["id"]] - 1e-6  # "max": never below the global score
        unit = UNITS[hit["kind"]]
        if unit is None:
            assert hit["span"] is None
            continue
        span = hit["span"]
        assert set(span) == {"start", "end", "unit"} and span["unit"] == unit
        if unit == "bar":
            bars = client.get(f"/api/items/{hit['id']}").json()["bars"]
            assert 1 <= span["start"] <= span["end"] <= bars and span["start"] == int(span["start"])
        else:
            assert 0 <= span["start"] < span["end"] <= 40
    # by example, with another way to combine: the seed is left out, every hit still has its passage
    seed = ids["the-blue-garters.abc"]
    like = client.post("/api/search", json={"like": seed, "k": 3, "segments": True, "combine": "window"})
    like_hits = like.json()["hits"]
    assert len(like_hits) == 3 and seed not in {hit["id"] for hit in like_hits}
    assert [(hit["span"] or {}).get("unit") for hit in like_hits] == [UNITS[hit["kind"]] for hit in like_hits]
    similar = client.get(
        f"/api/items/{seed}/similar", params={"k": 3, "segments": "true", "combine": "window"}
    ).json()
    assert similar["hits"] == like_hits


def test_an_uploaded_abc_excerpt_finds_its_tune_at_its_bars(segmented, alhambra_bars_9_12):
    client, ids, _ = segmented
    for combine in (None, "window"):
        form = {"segments": "true", "k": "3", **({"combine": combine} if combine else {})}
        answer = client.post(
            "/api/search", files={"file": ("bars-9-12.abc", alhambra_bars_9_12)}, data=form
        ).json()
        best = answer["hits"][0]
        assert answer["query"] == "bars-9-12.abc" and best["id"] == ids["the-alhambra-reel.abc"]
        assert best["span"] == {"start": 9, "end": 12, "unit": "bar"}
        assert best["score"] == pytest.approx(1.0, abs=1e-4)
    whole = client.post("/api/search", files={"file": ("q.abc", alhambra_bars_9_12)}, data={"k": "1"})
    assert whole.json()["hits"][0]["span"] is None  # without segments: no passage


def test_locate_ranks_the_passages_of_an_item(segmented, alhambra_bars_9_12):
    client, ids, _ = segmented
    reel = ids["the-alhambra-reel.abc"]
    answer = client.post(f"/api/items/{reel}/locate", json={"text": "a lively Irish reel"})
    assert answer.status_code == 200
    body = answer.json()
    spans = body["spans"]
    assert body["query"] == "a lively Irish reel"
    # 16 bars in 4-bar windows every 2 bars and 8-bar windows every 4: 7 + 3 passages
    assert len(spans) == 10 and all(
        set(span) == {"rank", "score", "start", "end", "unit", "id"} for span in spans
    )
    assert [span["rank"] for span in spans] == list(range(1, 11))
    assert [span["score"] for span in spans] == sorted((span["score"] for span in spans), reverse=True)
    assert {span["id"] for span in spans} == {reel} and {span["unit"] for span in spans} == {"bar"}
    assert {(span["start"], span["end"]) for span in spans} >= {(1, 4), (13, 16), (1, 8), (9, 16)}
    top = client.post(f"/api/items/{reel}/locate", json={"text": "a lively Irish reel", "k": 3}).json()
    assert top["spans"] == spans[:3]

    uploaded = client.post(
        f"/api/items/{reel}/locate", files={"file": ("bars-9-12.abc", alhambra_bars_9_12)}, data={"k": "2"}
    ).json()
    assert uploaded["query"] == "bars-9-12.abc" and len(uploaded["spans"]) == 2
    assert (uploaded["spans"][0]["start"], uploaded["spans"][0]["end"]) == (9, 12)
    assert uploaded["spans"][0]["score"] == pytest.approx(1.0, abs=1e-4)

    midi = ids["the-grey-plover.mid"]
    by_example = client.post(
        f"/api/items/{midi}/locate", json={"like": ids["the-custom-house-jig.ogg"]}
    ).json()
    assert by_example["query"] == ids["the-custom-house-jig.ogg"]
    # the 32-second piece in 6-second windows every 3 s and 12-second windows every 6 s
    assert len(by_example["spans"]) == 15 and {span["unit"] for span in by_example["spans"]} == {"second"}
    assert max(span["end"] for span in by_example["spans"]) == 32.0


def _segment_errors(segmented):
    _, ids, _ = segmented
    text, audio, reel = ids["notes.txt"], ids["the-custom-house-jig.ogg"], ids["the-alhambra-reel.abc"]
    return [
        ("post", "/api/items/nope/locate", {"text": "x"}, 404, "no item with id 'nope'"),
        ("post", f"/api/items/{text}/locate", {"text": "x"}, 400, "item "),
        (
            "post",
            f"/api/items/{reel}/locate",
            {"text": "x", "like": reel},
            422,
            "give either 'text' or 'like'",
        ),
        ("post", f"/api/items/{reel}/locate", {"text": "x", "k": 0}, 422, "k must be between 1 and 200"),
        ("post", f"/api/items/{reel}/locate", {"like": "nope"}, 404, "no item with id 'nope'"),
        ("post", "/api/search", {"text": "x", "segments": "yes"}, 422, "'segments' must be true or false"),
        ("post", "/api/search", {"text": "x", "combine": "max"}, 422, "'combine' is used only with"),
        (
            "post",
            "/api/search",
            {"text": "x", "segments": True, "combine": "best"},
            400,
            "unknown way to combine",
        ),
        ("get", f"/api/items/{reel}/similar?segments=maybe", None, 422, "invalid request: query.segments"),
        (
            "get",
            f"/api/items/{reel}/media?bars=nine",
            None,
            422,
            "bars must look like 9-12 (or 9), got 'nine'",
        ),
        (
            "get",
            f"/api/items/{reel}/media?bars=12-9",
            None,
            422,
            "bars must count from 1 and end at or after",
        ),
        ("get", f"/api/items/{reel}/media?bars=0-3", None, 422, "bars must count from 1"),
        (
            "get",
            f"/api/items/{reel}/media?bars=17-20",
            None,
            400,
            "the score has 16 bar(s): there is no bar 17",
        ),
        ("get", f"/api/items/{audio}/media?bars=1-4", None, 400, f"item {audio} is not a score"),
    ]


def test_segment_errors_are_one_line_4xx(segmented, client):
    segment_client = segmented[0]
    for method, url, payload, status, reason in _segment_errors(segmented):
        call = getattr(segment_client, method)
        answer = call(url, json=payload) if payload is not None else call(url)
        assert answer.status_code == status, (url, payload, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith(reason) and "\n" not in detail and "Traceback" not in answer.text, detail
    assert (
        "has no passages to locate"
        in segment_client.post(f"/api/items/{segmented[1]['notes.txt']}/locate", json={"text": "x"}).json()[
            "detail"
        ]
    )
    # a library made without segments says so, for a search and a locate alike
    plain_id = _ids(client)["abc"]
    for url, payload in (
        ("/api/search", {"text": "x", "segments": True}),
        (f"/api/items/{plain_id}/locate", {"text": "x"}),
    ):
        answer = client.post(url, json=payload)
        assert answer.status_code == 400 and "Traceback" not in answer.text
        assert answer.json()["detail"].endswith(
            "this library keeps no segments (make one with `clamp3 library init --segments`)"
        )
    assert client.get("/api/stats").json()["segments"] is None


def _measures(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{{{SVG}}}g") if "measure" in (g.get("class") or "").split()]


def _highlighted(svg: str) -> list[int]:
    """The numbers (from 1, on the page) of the highlighted measures of an engraved page."""
    return [
        n for n, g in enumerate(_measures(svg), start=1) if "highlighted" in (g.get("class") or "").split()
    ]


def test_a_score_is_engraved_with_the_bars_asked_highlighted(segmented):
    client, ids, _ = segmented
    reel = ids["the-alhambra-reel.abc"]
    plain = client.get(f"/api/items/{reel}/media")
    marked = client.get(f"/api/items/{reel}/media", params={"bars": "9-12"})
    assert marked.status_code == 200 and marked.headers["content-type"].startswith("image/svg+xml")
    assert marked.text != plain.text and _highlighted(plain.text) == []
    assert len(_measures(marked.text)) == len(_measures(plain.text)) == 16  # bar n is the n-th measure
    assert _highlighted(marked.text) == [9, 10, 11, 12]
    root = ET.fromstring(marked.text)
    bands = [rect for rect in root.iter(f"{{{SVG}}}rect") if rect.get("class") == "highlight"]
    assert 1 <= len(bands) <= 2 and all(float(rect.get("width")) > 0 for rect in bands)
    top, bottom = float(root.get("data-highlight-top")), float(root.get("data-highlight-bottom"))
    assert 0 < top < bottom < 1
    assert _highlighted(client.get(f"/api/items/{reel}/media", params={"bars": "16"}).text) == [16]
    # a chorale with a pickup: the pickup is bar 1
    chorale = ids["bwv324-meine-seel-erhebet-den-herrn.musicxml"]
    assert _highlighted(client.get(f"/api/items/{chorale}/media", params={"bars": "1-2"}).text) == [1, 2]


def test_highlighted_bars_are_shown_on_the_page_that_holds_them(segmented):
    client, ids, _ = segmented
    tune = ids["long.abc"]
    first = _measures(client.get(f"/api/items/{tune}/media", params={"page": 1}).text)
    second = _measures(client.get(f"/api/items/{tune}/media", params={"page": 2}).text)
    on_first = len(first)
    assert 0 < on_first < 100 < on_first + len(second)  # bars 100-103 are on page 2
    marked = client.get(f"/api/items/{tune}/media", params={"bars": "100-103"}).text
    assert len(_measures(marked)) == len(second)
    assert _highlighted(marked) == [100 - on_first + i for i in range(4)]
    assert (
        _highlighted(client.get(f"/api/items/{tune}/media", params={"bars": "100-103", "page": 1}).text) == []
    )
    ends = client.get(f"/api/items/{tune}/media", params={"bars": f"{on_first - 1}-{on_first + 1}"}).text
    assert _highlighted(ends) == [on_first - 1, on_first]  # from the page of the first bar asked
