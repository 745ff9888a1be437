"""Screenshots of the web page (``clamp3 serve``) over the example library, for the README.

    python docs/screenshots.py [--url http://127.0.0.1:8000/]

Builds a library of the demo files (``src/clamp3/demo_data/library``) with the bundled ``default`` model in a
temporary folder, keeping their passages (segments), serves it on a free loopback port and, in headless
Chromium at 1280x900, saves:

* ``docs/screenshots/search.png``: a text search, "a lively Irish reel";
* ``docs/screenshots/map.png``: the map of the library with a point clicked;
* ``docs/screenshots/drop.png``: the results of dropping
  the demo query ``the-alhambra-reel.transcribed.mid`` on the page;
* ``docs/screenshots/segments-search.png``: the same text search with "Find passages" on: each hit's
  best passage named, highlighted in its score, its player started there;
* ``docs/screenshots/segments-locate.png``: "Where does it match?" in the panel of The Alhambra, its
  passages ranked and the second one highlighted.

With ``--url`` it photographs a server already running instead (over the same example library).
Needs the server extra and Playwright with a Chromium (``/usr/bin/chromium`` when there is one).
"""

from __future__ import annotations

import argparse
import base64
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clamp3.cli.demo import DEFAULT_LIBRARY, DEFAULT_QUERIES

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
LIBRARY = DEFAULT_LIBRARY
DROPPED = DEFAULT_QUERIES / "the-alhambra-reel.transcribed.mid"
VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SETTLED = (
    "() => [...document.images].every((img) => img.complete) && !document.body.classList.contains('busy')"
)
SLID = "() => [...document.querySelectorAll('#results img.score')].some((img) => img.style.transform)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def example_server() -> Iterator[str]:
    """The example library, built with the default model and served on loopback; yields its URL."""
    import uvicorn

    from clamp3.library import Library
    from clamp3.preprocess.windows import WindowSettings
    from clamp3.server import ServerSettings, create_app

    folder = Path(tempfile.mkdtemp(prefix="clamp3-screenshots-"))
    try:
        library = Library.create(folder / "examples", model="default", segments=WindowSettings())
        report = library.add([str(LIBRARY)])
        print(f"library: {report.embedded} items embedded")
        port = free_port()
        config = uvicorn.Config(
            create_app(Library.open(folder / "examples"), ServerSettings()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def take(url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)

        # a text search, typed and sent with Enter
        page.goto(url)
        page.fill("#search-input", "a lively Irish reel")
        page.press("#search-input", "Enter")
        page.wait_for_selector("#results .hit")
        page.fill("#zs-labels", "reel, jig, hornpipe, chorale, air")
        page.click("#zs-run")
        page.wait_for_selector("#results .hit .zs-label:not([hidden])")
        page.wait_for_function(SETTLED)
        saved.append(OUT / "search.png")
        page.screenshot(path=saved[-1])

        # the map, with a tune's point clicked and another one hovered
        page.click("#tab-map")
        page.wait_for_selector("#map circle.point")
        points = page.evaluate(
            "() => [...document.querySelectorAll('#map circle.point')].map((c) => c.dataset.kind)"
        )
        chosen = next((i for i, kind in enumerate(points) if kind == "abc"), 0)
        page.locator("#map circle.point").nth(chosen).click()
        page.wait_for_selector("#detail .detail-actions")
        page.wait_for_function(SETTLED)
        page.locator("#map circle.point").nth(0 if chosen else 1).hover()
        saved.append(OUT / "map.png")
        page.screenshot(path=saved[-1])

        # a MIDI file dropped on the page
        page.goto(url)
        page.evaluate(
            """([name, data]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type: "audio/midi" }));
                document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
            }""",
            [DROPPED.name, base64.b64encode(DROPPED.read_bytes()).decode()],
        )
        page.wait_for_selector("#results .hit")
        page.wait_for_function(SETTLED)
        saved.append(OUT / "drop.png")
        page.screenshot(path=saved[-1])

        # "Find passages": each hit's best passage
        page.goto(url)
        page.wait_for_selector("#passages-toggle:not([hidden])")
        page.check("#find-passages")
        page.fill("#search-input", "a lively Irish reel")
        page.press("#search-input", "Enter")
        page.wait_for_selector("#results .hit .span-chip")
        page.wait_for_function(SETTLED)
        page.wait_for_function(SLID)
        saved.append(OUT / "segments-search.png")
        page.screenshot(path=saved[-1])

        # "Where does it match?" in the panel of a tune, its second passage clicked
        page.locator("#results .hit", has_text="Alhambra").locator(".hit-title").click()
        page.click("#detail button.locate")
        page.locator("#detail button.passage").nth(1).click()
        page.wait_for_function(SETTLED)
        saved.append(OUT / "segments-locate.png")
        page.screenshot(path=saved[-1])
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="photograph this running server instead of starting one")
    args = parser.parse_args()
    if args.url:
        saved = take(args.url)
    else:
        with example_server() as url:
            saved = take(url)
    for path in saved:
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
