"""A minimal local stand-in for the Hugging Face hub's file endpoint, for download tests."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeHub:
    files: dict[tuple[str, str], bytes]
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""
    cut_first_download_at: int | None = None
    """Drop the connection after this many bytes of the first GET (an interrupted download)."""


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _serve(self, body: bool) -> None:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            match = re.fullmatch(r"/(.+?/.+?)/resolve/[^/]+/(.+)", self.path)
            content = hub.files.get((match.group(1), match.group(2))) if match else None
            if content is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if (wanted := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d+)-", wanted)):
                start = int(m.group(1))
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", '"' + hashlib.sha256(content).hexdigest() + '"')
            self.send_header("Content-Length", str(len(content) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
            self.end_headers()
            if not body:
                return
            if hub.cut_first_download_at is not None:
                cut, hub.cut_first_download_at = hub.cut_first_download_at, None
                self.wfile.write(content[start:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(content[start:])

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

    return Handler


@contextmanager
def serve(files: dict[tuple[str, str], bytes], cut_first_download_at: int | None = None) -> Iterator[FakeHub]:
    hub = FakeHub(files, cut_first_download_at=cut_first_download_at)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
