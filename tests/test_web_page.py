"""The web page of ``clamp3 serve`` in a real browser: headless Chromium (Playwright) against the real
app served by uvicorn over a small library embedded with the tiny model. Nothing is mocked."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright

from clamp3.library import Library
from clamp3.pipeline import PipelineOptions
from clamp3.server import ServerSettings, create_app
from tests.test_library import THREE_TUNES
from tests.test_server import segment_library
from tests.tiny import tiny_model_with_tokenizer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
K = 10  # the page asks for this many hits
HITS = """() => [...document.querySelectorAll('#results li.hit')].map((li) => ({
    id: li.dataset.itemId,
    kind: li.dataset.kind,
    rank: Number(li.querySelector('.hit-rank').textContent),
    score: li.querySelector('.score-value').textContent,
    title: li.querySelector('.hit-title').textContent,
}))"""


@dataclass(frozen=True)
class Site:
    url: str
    rows: int
    items: dict[str, dict]
    """id -> map point (id, kind, title, path)."""

    def api(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"), data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def of_kind(self, kind: str) -> str:
        return next(i for i, item in self.items.items() if item["kind"] == kind)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


def site_of(url: str, rows: int) -> Site:
    points = json.load(urllib.request.urlopen(url + "api/map", timeout=30))["points"]
    return Site(url, rows, {point["id"]: point for point in points})


@pytest.fixture(scope="module")
def site(reference_dir, tmp_path_factory, one_torch_thread):
    """A library of every kind the page previews, served by uvicorn on a loopback port."""
    root = tmp_path_factory.mktemp("web")
    model_dir = tiny_model_with_tokenizer(reference_dir, root / "model")
    music = root / "music"
    (music / "scores").mkdir(parents=True)
    (music / "scores" / "three.abc").write_text(THREE_TUNES)
    shutil.copy(reference_dir / "xml2abc" / "xml" / "chorale_bwv66_6.mxl", music / "scores" / "bwv66.mxl")
    shutil.copy(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid", music / "bwv66.mid")
    shutil.copy(reference_dir / "mert" / "audio" / "main_24k_mono.wav", music / "mono.wav")
    (music / "calm.txt").write_text("a calm chorale for four voices\n")
    (music / "reel.txt").write_text("an irish reel\n")
    (music / "voices.txt").write_text("four voices\n")
    options = PipelineOptions(mert=str(reference_dir / "mert" / "model"))
    library = Library.create(root / "lib", model=str(model_dir))
    report = library.add([music], options=options)
    assert not report.failures and report.embedded == 9

    app = create_app(Library.open(root / "lib"), ServerSettings(pipeline={"options": options}))
    with serving(app) as url:
        yield site_of(url, len(library))


@pytest.fixture(scope="module")
def segment_site(tmp_path_factory):
    """Demo tunes, a chorale, a MIDI file and recordings in a library made with segments by the bundled
    model, served by uvicorn on a loopback port."""
    root = tmp_path_factory.mktemp("web-segments")
    demo_files = (
        "scores/the-alhambra-reel.abc",
        "scores/the-blue-garters.abc",
        "scores/the-custom-house-jig.abc",
        "scores/bwv369-keinen-hat-gott-verlassen.musicxml",
        "midi/the-grey-plover.mid",
        "audio/the-custom-house-jig.ogg",
        "audio/the-blue-garters.ogg",
    )
    library = segment_library(root, demo_files)
    with serving(create_app(Library.open(root / "lib"))) as url:
        yield site_of(url, len(library))


@pytest.fixture(scope="module")
def browser():
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture()
def page(browser):
    """A fresh page; any JavaScript error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def hits(page) -> list[dict]:
    return page.evaluate(HITS)


def search(page, text: str) -> list[dict]:
    page.fill("#search-input", text)
    page.press("#search-input", "Enter")
    expect(page.locator("#results-heading")).to_have_text(f"Results for “{text}”")
    return hits(page)


def api_ids(result: dict) -> list[str]:
    return [hit["id"] for hit in result["hits"]]


def test_typing_a_query_and_enter_shows_ranked_hits_and_a_shareable_url(page, site):
    page.goto(site.url)
    expect(page.locator("#library-size")).to_contain_text(f"{site.rows} items")
    expect(page.locator("#passages-toggle")).to_be_hidden()  # a library without segments
    shown = search(page, "a calm chorale for four voices")
    expect(page.locator("#results .span-chip")).to_have_count(0)
    assert len(shown) == min(K, site.rows) == 9
    assert [hit["rank"] for hit in shown] == list(range(1, 10))
    expected = site.api("api/search", {"text": "a calm chorale for four voices", "k": K})
    assert [hit["id"] for hit in shown] == api_ids(expected)
    scores = [float(hit["score"]) for hit in shown]
    assert all(len(hit["score"].split(".")[1]) == 3 for hit in shown)
    assert scores == sorted(scores, reverse=True)
    assert shown[0]["id"] == next(i for i, item in site.items.items() if item["path"].endswith("calm.txt"))
    assert shown[0]["score"] == "1.000"  # the same words as the file's text
    for hit in shown:
        item = site.items[hit["id"]]
        assert hit["title"] == (item["title"] or Path(item["path"]).name)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert query == {"q": ["a calm chorale for four voices"]}


def test_a_query_in_the_url_runs_on_load(page, site):
    page.goto(site.url + "?q=" + urllib.parse.quote("an irish reel"))
    expect(page.locator("#results-heading")).to_have_text("Results for “an irish reel”")
    expect(page.locator("#search-input")).to_have_value("an irish reel")
    shown = hits(page)
    assert len(shown) == 9 and shown[0]["kind"] == "text" and shown[0]["score"] == "1.000"
    # a text item shows its text, fetched from its media
    expect(page.locator(f'li.hit[data-item-id="{shown[0]["id"]}"] pre.text-preview')).to_have_text(
        "an irish reel"
    )


def test_an_audio_hit_streams_with_range_requests_and_plays(page, site):
    media: list[tuple[str, int]] = []
    page.on("response", lambda response: media.append((response.url, response.status)))
    page.goto(site.url + "?kind=audio")
    shown = search(page, "a calm chorale")
    assert [hit["kind"] for hit in shown] == ["audio"]  # the kind filter
    audio = page.locator(f'li.hit[data-item-id="{shown[0]["id"]}"] audio')
    assert audio.get_attribute("preload") == "metadata"
    page.evaluate("(audio) => audio.play()", audio.element_handle())
    page.wait_for_function(
        "(audio) => audio.currentTime > 0 && audio.readyState >= 2", arg=audio.element_handle()
    )
    streamed = [status for url, status in media if f"/api/items/{shown[0]['id']}/media" in url]
    assert 206 in streamed
    assert page.evaluate("(audio) => audio.duration", audio.element_handle()) > 0


def test_score_hits_are_engraved_svg(page, site):
    types: dict[str, str] = {}
    page.on(
        "response",
        lambda response: (
            types.update({response.url: response.headers.get("content-type", "")})
            if "/media" in response.url
            else None
        ),
    )
    page.goto(site.url)
    page.select_option("#kind-filter", "sheet")
    shown = search(page, "a calm chorale")
    assert sorted(hit["kind"] for hit in shown) == ["abc", "abc", "abc", "musicxml"]
    assert "kind=sheet" in page.url
    images = page.locator("#results img.score")
    assert images.count() == 4
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img.score')].every((img) => img.complete)"
    )
    widths = page.evaluate(
        "() => [...document.querySelectorAll('#results img.score')].map((img) => img.naturalWidth)"
    )
    assert all(width > 0 for width in widths), widths
    for hit in shown:
        (url,) = [url for url in types if f"/api/items/{hit['id']}/media" in url]
        assert types[url] == "image/svg+xml"


def test_a_midi_file_picked_or_dropped_finds_its_own_item_first(page, site, reference_dir):
    midi_id = site.of_kind("midi")
    page.goto(site.url)
    page.set_input_files("#query-file", str(reference_dir / "midi2mtf" / "midi" / "chorale_bwv66_6.mid"))
    expect(page.locator("#results-heading")).to_have_text("Like chorale_bwv66_6.mid")
    shown = hits(page)
    assert len(shown) == 9 and shown[0]["id"] == midi_id and shown[0]["score"] == "1.000"
    assert "q=" not in page.url

    # the same bytes, fetched from the item's media and dropped on the page as a file
    dropped = page.evaluate(
        """async (id) => {
            const bytes = await (await fetch(`api/items/${id}/media`)).arrayBuffer();
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped take.mid", { type: "audio/midi" }));
            window.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer }));
            const highlighted = !document.getElementById("drop-zone").hidden;
            document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
            return { highlighted, size: bytes.byteLength };
        }""",
        midi_id,
    )
    assert dropped["highlighted"] and dropped["size"] > 0
    expect(page.locator("#drop-zone")).to_be_hidden()
    expect(page.locator("#results-heading")).to_have_text("Like dropped take.mid")
    shown = hits(page)
    assert len(shown) == 9 and shown[0]["id"] == midi_id and shown[0]["score"] == "1.000"


def test_an_unsupported_upload_shows_the_servers_reason(page, site):
    page.goto(site.url)
    with page.expect_response(lambda r: r.url.endswith("/api/search")) as answer:
        page.set_input_files(
            "#query-file",
            files=[{"name": "noise.bin", "mimeType": "application/octet-stream", "buffer": os.urandom(512)}],
        )
    assert answer.value.status == 415
    detail = answer.value.json()["detail"]
    assert "noise.bin" in detail
    expect(page.locator("#error-banner")).to_be_visible()
    expect(page.locator("#error-text")).to_have_text(detail)
    page.click("#error-close")
    expect(page.locator("#error-banner")).to_be_hidden()


def test_more_like_this_replaces_the_results_without_the_item(page, site):
    page.goto(site.url)
    first = search(page, "a calm chorale")[1]
    page.locator(f'li.hit[data-item-id="{first["id"]}"] button.more-like').click()
    expect(page.locator("#results-heading")).to_have_text(f"More like {first['title']}")
    shown = hits(page)
    assert len(shown) == site.rows - 1
    assert first["id"] not in {hit["id"] for hit in shown}
    assert [hit["id"] for hit in shown] == api_ids(site.api(f"api/items/{first['id']}/similar?k={K}"))
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {"like": [first["id"]]}


def test_zero_shot_labels_every_shown_hit_with_one_of_the_users_labels(page, site):
    page.goto(site.url)
    shown = search(page, "an irish reel")
    page.fill("#zs-labels", "calm, lively")
    with page.expect_response(lambda r: r.url.endswith("/api/classify")) as answer:
        page.click("#zs-run")
    results = answer.value.json()["results"]
    assert [result["item"] for result in results] == [hit["id"] for hit in shown]
    expect(page.locator("#results .zs-label:not([hidden])")).to_have_count(len(shown))
    labels = page.evaluate(
        """() => [...document.querySelectorAll('#results li.hit')].map((li) => {
            const chip = li.querySelector('.zs-label');
            return [li.dataset.itemId, chip.dataset.label, chip.textContent];
        })"""
    )
    for (item_id, label, text), result in zip(labels, results, strict=True):
        assert label in {"calm", "lively"} and label == result["top"]
        assert text == f"{label} · {round(result['probabilities'][label] * 100)}%"
        assert item_id == result["item"]
    counts = page.evaluate(
        "() => [...document.querySelectorAll('#zs-summary .zs-count')].map((c) => +c.textContent)"
    )
    assert sum(counts) == len(shown)


def test_the_map_has_one_point_per_item_and_opens_a_preview(page, site):
    page.goto(site.url)
    page.click("#tab-map")
    points = page.locator("#map circle.point")
    expect(points).to_have_count(site.api("api/stats")["rows"])
    assert set(
        page.evaluate(
            "() => [...document.querySelectorAll('#map circle.point')].map((c) => c.dataset.itemId)"
        )
    ) == set(site.items)
    legend = page.locator("#map-legend li:not([hidden])")
    assert legend.count() == len({item["kind"] for item in site.items.values()})

    audio_id = site.of_kind("audio")
    point = page.locator(f'#map circle.point[data-item-id="{audio_id}"]')
    point.hover()
    expect(page.locator("#map-tooltip")).to_be_visible()
    expect(page.locator("#map-tooltip")).to_contain_text(Path(site.items[audio_id]["path"]).name)
    point.click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail).to_have_attribute("data-item-id", audio_id)
    expect(detail.locator("audio")).to_have_attribute("src", f"api/items/{audio_id}/media")
    expect(detail.locator(".facts")).to_contain_text("mono.wav")

    score_id = site.of_kind("musicxml")
    page.locator(f'#map circle.point[data-item-id="{score_id}"]').click()
    expect(detail).to_have_attribute("data-item-id", score_id)
    page.wait_for_function("() => document.querySelector('#detail img.score')?.naturalWidth > 0")
    detail.locator("button.more-like").click()
    expect(page.locator("#view-results")).to_be_visible()
    item = site.api(f"api/items/{score_id}")
    expect(page.locator("#results-heading")).to_have_text(
        f"More like {item['title'] or Path(item['path']).name}"
    )
    assert score_id not in {hit["id"] for hit in hits(page)}


def test_screenshots_are_pngs(page, site, tmp_path):
    page.goto(site.url + "?q=" + urllib.parse.quote("a calm chorale"))
    page.wait_for_selector("#results li.hit")
    page.wait_for_function("() => [...document.images].every((img) => img.complete)")
    page.screenshot(path=tmp_path / "search.png")
    page.click("#tab-map")
    page.locator("#map circle.point").first.click()
    expect(page.locator("#detail")).to_be_visible()
    page.screenshot(path=tmp_path / "map.png", full_page=True)
    for name in ("search.png", "map.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        width, height = struct.unpack(">II", data[16:24])
        assert width == 1280 and height >= 900


# ---------------------------------------------------------------------- passages (segment-level search)

REEL_QUERY = "a lively Irish reel"


def clock(seconds: float) -> str:
    total = math.floor(seconds + 0.5)
    return f"{total // 60}:{total % 60:02d}"


def span_text(span: dict) -> str:
    """How the page names a passage."""
    if span["unit"] == "bar":
        return f"bars {span['start']:g}-{span['end']:g}"
    return f"{clock(span['start'])}-{clock(span['end'])}"


def wait_until_playing_from(page, audio, seconds: float) -> float:
    """Waits until ``audio`` plays at ``seconds`` or later; returns how many seconds it had played by
    then (a player that could not seek there played every second before it)."""
    return page.evaluate(
        """([audio, at]) => new Promise((resolve) => {
            const check = () => {
                if (audio.paused || audio.currentTime < at) return requestAnimationFrame(check);
                const ranges = audio.played;
                let played = 0;
                for (let i = 0; i < ranges.length; i++) played += ranges.end(i) - ranges.start(i);
                resolve(played);
            };
            check();
        })""",
        [audio.element_handle(), seconds],
    )


def wait_for_time(page, audio, seconds: float) -> float:
    """Waits until ``audio`` knows its duration and stands at ``seconds``; returns its current time."""
    page.wait_for_function(
        "([audio, at]) => audio.readyState >= 1 && Math.abs(audio.currentTime - at) < 0.01",
        arg=[audio.element_handle(), seconds],
    )
    return page.evaluate("(audio) => audio.currentTime", audio.element_handle())


def test_find_passages_shows_each_hits_passage_in_its_score_and_player(page, segment_site, tmp_path):
    site = segment_site
    page.goto(site.url)
    toggle = page.locator("#passages-toggle")
    expect(toggle).to_be_visible()
    expect(page.locator("#find-passages")).not_to_be_checked()  # off by default
    page.focus("#find-passages")
    page.keyboard.press("Space")  # a switch the keyboard reaches
    expect(page.locator("#find-passages")).to_be_checked()
    shown = search(page, REEL_QUERY)
    expected = site.api("api/search", {"text": REEL_QUERY, "k": K, "segments": True})["hits"]
    assert [hit["id"] for hit in shown] == [hit["id"] for hit in expected] and len(shown) == site.rows
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {
        "q": [REEL_QUERY],
        "passages": ["1"],
    }
    expect(page.locator("#results-status")).to_contain_text("each with the passage that matches best")
    audio_spans = {}
    for hit in expected:
        item = page.locator(f'li.hit[data-item-id="{hit["id"]}"]')
        span = hit["span"]
        assert span is not None and span["unit"] == ("bar" if hit["media"] == "score" else "second")
        expect(item.locator(".span-chip")).to_have_text(span_text(span))
        if hit["media"] == "score":
            src = item.locator("img.score").get_attribute("src")
            assert urllib.parse.parse_qs(urllib.parse.urlparse(src).query) == {
                "bars": [f"{span['start']:g}-{span['end']:g}"]
            }
        elif hit["media"] == "audio":
            audio_spans[hit["id"]] = span
            assert wait_for_time(page, item.locator("audio"), span["start"]) == pytest.approx(
                span["start"], abs=0.01
            )
            expect(item.locator("button.play-from")).to_have_text(f"▶ Play from {clock(span['start'])}")
    assert len(audio_spans) == 2 and max(span["start"] for span in audio_spans.values()) > 1
    # a bar span lower on the page: the score slides up to show it, its band of bars in view
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img.score')].every((img) => img.complete)"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img.score')].some((img) => img.style.transform)"
    )
    page.screenshot(path=tmp_path / "segments-search.png")

    # a MIDI hit plays from its passage, rendered to audio when asked
    midi = next(hit for hit in expected if hit["media"] == "midi")
    item = page.locator(f'li.hit[data-item-id="{midi["id"]}"]')
    assert midi["span"]["start"] >= 3
    item.locator("button.play-from").click()
    assert wait_until_playing_from(page, item.locator("audio"), midi["span"]["start"]) < 1.5

    # "More like this" keeps finding passages
    seed = expected[1]
    page.locator(f'li.hit[data-item-id="{seed["id"]}"] button.more-like').click()
    expect(page.locator("#results-heading")).to_have_text(f"More like {seed['title']}")
    similar = site.api(f"api/items/{seed['id']}/similar?k={K}&segments=true")["hits"]
    assert [hit["id"] for hit in hits(page)] == [hit["id"] for hit in similar]
    chips = page.locator("#results .span-chip")
    expect(chips).to_have_count(len(similar))
    assert chips.all_text_contents() == [span_text(hit["span"]) for hit in similar]
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {
        "like": [seed["id"]],
        "passages": ["1"],
    }


def test_where_does_it_match_lists_the_passages_and_shows_them(page, segment_site, tmp_path):
    site = segment_site
    page.goto(site.url + "?passages=1&q=" + urllib.parse.quote(REEL_QUERY))
    expect(page.locator("#results-heading")).to_have_text(f"Results for “{REEL_QUERY}”")
    expect(page.locator("#find-passages")).to_be_checked()
    reel = next(i for i, item in site.items.items() if item["path"].endswith("the-alhambra-reel.abc#1"))
    page.locator(f'li.hit[data-item-id="{reel}"] .hit-title').click()
    detail = page.locator("#detail")
    expect(detail).to_have_attribute("data-item-id", reel)
    found = site.api(f"api/items/{reel}/locate", {"text": REEL_QUERY, "k": 5})["spans"]
    hit_span = next(
        h for h in site.api("api/search", {"text": REEL_QUERY, "segments": True})["hits"] if h["id"] == reel
    )["span"]
    img = detail.locator("img.score")
    assert f"bars={hit_span['start']:g}-{hit_span['end']:g}" in img.get_attribute("src")  # the hit's passage
    detail.get_by_role("button", name="Where does it match?").click()
    passages = detail.locator("button.passage")
    expect(passages).to_have_count(5)
    expect(detail.locator(".passages-status")).to_have_text(
        f"Passages that match “{REEL_QUERY}”, best first:"
    )
    assert detail.locator(".passage-name").all_text_contents() == [span_text(span) for span in found]
    assert detail.locator(".passage-score").all_text_contents() == [f"{span['score']:.3f}" for span in found]
    chosen = found[2]
    passages.nth(2).focus()
    page.keyboard.press("Enter")
    expect(passages.nth(2)).to_have_attribute("aria-pressed", "true")
    expect(passages.nth(0)).to_have_attribute("aria-pressed", "false")
    expect(img).to_have_attribute("src", re.compile(rf"bars={chosen['start']:g}-{chosen['end']:g}$"))
    page.wait_for_function("() => document.querySelector('#detail img.score').complete")
    assert page.evaluate("() => document.querySelector('#detail img.score').naturalWidth") > 0
    page.screenshot(path=tmp_path / "segments-locate.png")

    # in a recording: the player jumps to the passage clicked and plays from there
    audio_id = next(i for i, item in site.items.items() if item["path"].endswith("the-blue-garters.ogg"))
    page.locator(f'li.hit[data-item-id="{audio_id}"] .hit-title').click()
    expect(detail).to_have_attribute("data-item-id", audio_id)
    seconds = site.api(f"api/items/{audio_id}/locate", {"text": REEL_QUERY, "k": 5})["spans"]
    assert len(seconds) == 4  # 10 s: 0-6, 3-9 and 4-10 s (6-second windows), 0-10 s (12-second ones)
    detail.get_by_role("button", name="Where does it match?").click()
    expect(passages).to_have_count(len(seconds))
    assert detail.locator(".passage-name").all_text_contents() == [span_text(span) for span in seconds]
    later = next(span for span in seconds if span["start"] > 1)
    assert later["start"] >= 3
    passages.nth(seconds.index(later)).click()
    assert wait_until_playing_from(page, detail.locator("audio"), later["start"] - 0.01) < 1.5
    shot = (tmp_path / "segments-locate.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", shot[16:24]) == (1280, 900)
