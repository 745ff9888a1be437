"""The HTTP API and the web page over one :class:`~clamp3.library.Library` (FastAPI).

Every endpoint calls the library's Python API; the server adds only what HTTP needs: uploads (size
limit, kind check, private temporary files), tokens, time limits, and errors as JSON ``{"detail": ...}``
with a 4xx status and a one-line reason. A failure nobody anticipated answers 500 with a generic
message; its traceback goes to the server's log, never to the client.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from clamp3.errors import Clamp3Error, InputError, UnknownItemError
from clamp3.library import Library
from clamp3.modality import FileKind, kinds_from_names
from clamp3.server.batching import ModelWorker
from clamp3.server.media import item_media, media_kind, parse_bars
from clamp3.server.uploads import UploadRejected, received

STATIC = Path(__file__).resolve().parent / "static"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_FORM_BOOLEANS = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}
log = logging.getLogger("clamp3.server")
T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    token: str | None = None
    """Required for writes (``POST /api/library/add``); for every request when ``token_everywhere``."""
    token_everywhere: bool = False
    max_upload_mb: int = 50
    request_timeout_s: float = 120.0
    cors_origins: tuple[str, ...] = ()
    max_k: int = 200
    pipeline: dict[str, Any] = field(default_factory=dict)
    """``cache``, ``options``, ``device`` for the library's model (see :meth:`Library.session`)."""


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _hit(hit: Any) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "id": hit.id,
        "path": hit.path,
        "kind": hit.kind,
        "score": round(hit.score, 6),
        "title": hit.title,
        "composer": hit.composer,
        "caption": hit.caption,
        "media": media_kind(hit.kind),
        "span": None if hit.span is None else _span(hit.span),
    }


def _span(span: Any) -> dict[str, Any]:
    """A passage as JSON: ``start``, ``end`` (bars from 1, the end included; or seconds) and ``unit``."""
    return {"start": span.start, "end": span.end, "unit": span.unit}


def _segment_options(segments: Any, combine: Any) -> dict[str, Any]:
    """The keywords of a segment-level :meth:`Library.search` (none without ``segments``), from JSON
    (a boolean) or a form (``true``/``false``)."""
    if isinstance(segments, str):
        segments = _FORM_BOOLEANS.get(segments.strip().lower(), segments)
    if segments is None:
        segments = False
    if not isinstance(segments, bool):
        raise HttpError(422, "'segments' must be true or false")
    if combine is None:
        return {"segments": True} if segments else {}
    if not segments:
        raise HttpError(422, "'combine' is used only with 'segments': true")
    if not isinstance(combine, str):
        raise HttpError(422, "'combine' must be a string: max, global, window or mean")
    return {"segments": True, "combine": combine}


def _ranged(content: bytes, media_type: str, range_header: str | None) -> Response:
    """Bytes made for the request (a MIDI file rendered to audio, an engraved score) answered like a file:
    one ``bytes=`` range of them with 206, the whole with 200. A player seeks only in what it can ask
    ranges of."""
    size = len(content)
    headers = {"accept-ranges": "bytes"}
    found = _RANGE.fullmatch((range_header or "").strip())
    if found is None or not (found[1] or found[2]):
        return Response(content, media_type=media_type, headers=headers)
    if found[1]:
        start, end = int(found[1]), min(int(found[2]) if found[2] else size - 1, size - 1)
    else:  # the last N bytes
        start, end = max(0, size - int(found[2])), size - 1
    if start > end:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    headers["content-range"] = f"bytes {start}-{end}/{size}"
    return Response(content[start : end + 1], status_code=206, media_type=media_type, headers=headers)


def _kinds(values: list[str] | str | None) -> set[FileKind] | None:
    """``kinds`` from JSON (a list) or a form (comma-separated): towers (symbolic...) or file kinds."""
    if not values:
        return None
    try:
        return kinds_from_names(values.split(",") if isinstance(values, str) else values)
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None


def _k(value: Any, settings: ServerSettings) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise HttpError(422, f"k must be a whole number, got {value!r}") from None
    if not 1 <= k <= settings.max_k:
        raise HttpError(422, f"k must be between 1 and {settings.max_k}")
    return k


def create_app(library: Library, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``library`` (the model is loaded when the app is created)."""
    settings = settings or ServerSettings()
    model = ModelWorker(lambda batch: library.session().embed_texts(batch))
    library.session(**settings.pipeline)
    log.info("serving %s: %d item(s), model %s", library.uri, len(library), library.model_name)
    app = FastAPI(title="clamp3", description="Search a music library by text, music or similarity.")
    app.state.model_worker = model
    app.router.on_shutdown.append(model.close)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"])

    def token_ok(request: Request) -> bool:
        if settings.token is None:
            return False
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), settings.token.encode())

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable) -> Any:
        # the page's scripts and styles hold no library data; the page loads them without its token
        public = request.url.path.startswith("/static/")
        if settings.token_everywhere and not public and not token_ok(request):
            return JSONResponse({"detail": "a valid token is required (Authorization: Bearer ...)"}, 401)
        try:
            return await call_next(request)
        except Exception:  # the last line of defence: log it, tell the client nothing of it
            log.exception("unexpected error answering %s %s", request.method, request.url.path)
            return JSONResponse({"detail": "internal error (see the server's log)"}, 500)

    def require_token(request: Request) -> None:
        if settings.token is None:
            raise HttpError(403, "writes are disabled: start the server with --token to allow them")
        if not token_ok(request):
            raise HttpError(401, "a valid token is required (Authorization: Bearer ...)")

    @app.exception_handler(HttpError)
    async def http_error(_: Request, exc: HttpError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status)

    @app.exception_handler(UploadRejected)
    async def upload_rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, exc.status)

    @app.exception_handler(Clamp3Error)
    async def clamp3_error(_: Request, exc: Clamp3Error) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownItemError) else 422 if isinstance(exc, InputError) else 400
        return JSONResponse({"detail": " ".join(str(exc).split())}, status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"detail": f"invalid request: {where}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code)

    async def limited(work: Callable[[], T]) -> T:
        """Run blocking work in a thread, bounded by the request time limit."""
        try:
            return await asyncio.wait_for(run_in_threadpool(work), settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise HttpError(504, f"the request took longer than {settings.request_timeout_s:g} s") from None

    def locked(work: Callable[[], T]) -> Callable[[], T]:
        """``work`` as a turn on the model thread (for anything that may run the model)."""
        return lambda: model.run(work)

    async def form_and_file(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        """A multipart request's plain fields and file fields (size-checked as they are read)."""
        limit = settings.max_upload_mb << 20
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + (1 << 20):
            raise UploadRejected(413, f"the upload is larger than {settings.max_upload_mb} MB")
        form = await request.form(max_part_size=limit + 1)
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        files = {k: v for k, v in form.multi_items() if not isinstance(v, str)}
        return fields, files

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HttpError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HttpError(422, "the body must be a JSON object")
        return body

    def is_multipart(request: Request) -> bool:
        return request.headers.get("content-type", "").startswith("multipart/form-data")

    def query_of_upload(upload: Any) -> Callable[[], tuple[str, Any]]:
        def run() -> tuple[str, Any]:
            with received(upload, settings.max_upload_mb << 20) as (path, _kind):
                try:
                    return path.name, library.query_vector(path=path)[1]
                except InputError as exc:  # name the upload, not the server's temporary folder
                    raise InputError(path.name, exc.reason) from None

        return locked(run)

    async def the_query(request: Request, what: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The query of a search or a locate: its label, :meth:`Library.search`'s keywords for it (a
        text or an uploaded file as its vector, or ``like``) and the request's other fields."""
        if is_multipart(request):
            fields, files = await form_and_file(request)
            if "file" not in files:
                raise HttpError(422, f"a multipart {what} needs a 'file' field")
            label, vector = await limited(query_of_upload(files["file"]))
            return label, {"vector": vector}, fields
        fields = await json_body(request)
        given = [key for key in ("text", "like") if fields.get(key) is not None]
        if len(given) != 1:
            raise HttpError(422, "give either 'text' or 'like' (or upload a 'file')")
        key = given[0]
        if not isinstance(fields[key], str) or not fields[key].strip():
            raise HttpError(422, f"'{key}' must be a non-empty string")
        if key == "like":
            return fields[key], {"like": fields[key]}, fields
        text = fields[key]
        return text, {"vector": await limited(lambda: model.embed_text(text))}, fields

    # ------------------------------------------------------------------ search

    @app.post("/api/search")
    async def search(request: Request) -> dict[str, Any]:
        """``{"text": "...", "k": 10, "kinds": [...]}`` (or ``"like": id``), or multipart with a ``file``
        field and form fields ``k`` and ``kinds``. With ``"segments": true`` (a library made with
        segments) each hit names its best passage (``span``) and ``combine`` (max, global, window,
        mean) says how its score is made."""
        label, query, fields = await the_query(request, "search")
        k, kinds = _k(fields.get("k", 10), settings), _kinds(fields.get("kinds"))
        segments = _segment_options(fields.get("segments"), fields.get("combine"))
        hits = await limited(lambda: library.search(**query, k=k, kinds=kinds, **segments))
        return {"query": label, "candidates": len(library), "hits": [_hit(h) for h in hits]}

    @app.post("/api/items/{item_id}/locate")
    async def locate(item_id: str, request: Request) -> dict[str, Any]:
        """Where in the item the query matches: ``{"text": "..."}`` or ``{"like": id}`` (and ``"k"``), or
        multipart with a ``file`` field (and ``k``): the item's passages, best first."""
        await limited(lambda: library.get(item_id))  # an unknown item before the query is embedded
        label, query, fields = await the_query(request, "locate")
        k = _k(fields["k"], settings) if fields.get("k") is not None else None
        _, spans = await limited(lambda: library.locate(item_id, **query))
        return {"query": label, "spans": [span.to_dict() for span in spans[:k]]}

    @app.get("/api/items/{item_id}")
    async def item(item_id: str) -> dict[str, Any]:
        row = await limited(lambda: library.get(item_id))
        row["added_at"] = row["added_at"].isoformat() if row.get("added_at") else None
        row.pop("file_path", None)
        return {**row, "media": media_kind(row.get("kind"))}

    @app.get("/api/items/{item_id}/similar")
    async def similar(
        item_id: str,
        k: int = 10,
        kinds: str | None = None,
        segments: bool = False,
        combine: str | None = None,
    ) -> dict[str, Any]:
        k, chosen = _k(k, settings), _kinds(kinds)
        options = _segment_options(segments, combine)
        hits = await limited(lambda: library.search(like=item_id, k=k, kinds=chosen, **options))
        return {"query": item_id, "candidates": len(library), "hits": [_hit(h) for h in hits]}

    @app.get("/api/items/{item_id}/media")
    async def media(
        item_id: str,
        request: Request,
        render: str | None = None,
        page: int | None = None,
        bars: str | None = None,
    ) -> Any:
        """The item's file (or its MIDI rendered to audio, ``render=audio``; its score engraved to SVG,
        ``page``; with ``bars=9-12`` those bars highlighted, on the page holding bar 9 unless ``page``)."""
        if render not in (None, "audio"):
            raise HttpError(422, "render can only be 'audio' (for MIDI items)")
        try:
            span = parse_bars(bars) if bars is not None else None
        except ValueError as exc:
            raise HttpError(422, str(exc)) from None
        found = await limited(lambda: item_media(library.get(item_id), render, page, span))
        if found.path is not None:
            return FileResponse(found.path, media_type=found.media_type)
        return _ranged(found.content or b"", found.media_type, request.headers.get("range"))

    # ------------------------------------------------------------------ other tasks

    @app.post("/api/classify")
    async def classify(request: Request) -> dict[str, Any]:
        """``{"labels": [...], "ids": [...]}`` or multipart with a ``file`` and a ``labels`` field
        (comma-separated): zero-shot probabilities of the caller's labels."""
        if is_multipart(request):
            fields, files = await form_and_file(request)
            if "file" not in files:
                raise HttpError(422, "a multipart classification needs a 'file' field")
            labels = [part.strip() for part in fields.get("labels", "").split(",") if part.strip()]
            label, vector = await limited(query_of_upload(files["file"]))
            queries, names = [{"vector": vector}], [label]
        else:
            body = await json_body(request)
            labels, ids = body.get("labels"), body.get("ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise HttpError(422, "'ids' must be a non-empty list of item ids")
            queries, names = [{"like": i} for i in ids], ids
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) and x.strip() for x in labels)
        ):
            raise HttpError(422, "'labels' must be a non-empty list of strings")
        labels = [x.strip() for x in labels]
        results = await limited(locked(lambda: library.classify(labels, queries)))
        return {
            "labels": labels,
            "results": [
                {"item": name, "top": max(probs, key=probs.get), "probabilities": probs}
                for name, probs in zip(names, results, strict=True)
            ],
        }

    @app.post("/api/score")
    async def score(request: Request) -> dict[str, Any]:
        """Cosine similarity of two items: ``{"a": id, "b": id}``, or multipart with files (or ids as
        form fields) ``a`` and ``b``."""
        sides: dict[str, dict[str, Any]] = {}
        if is_multipart(request):
            fields, files = await form_and_file(request)
            for name in ("a", "b"):
                if name in files:
                    sides[name] = {"vector": (await limited(query_of_upload(files[name])))[1]}
                elif fields.get(name):
                    sides[name] = {"like": fields[name]}
        else:
            body = await json_body(request)
            sides = {name: {"like": body[name]} for name in ("a", "b") if isinstance(body.get(name), str)}
        if set(sides) != {"a", "b"}:
            raise HttpError(422, "give two items 'a' and 'b' (ids, or uploaded files)")
        value = await limited(lambda: library.similarity(sides["a"], sides["b"]))
        return {"score": round(value, 6)}

    @app.get("/api/stats")
    async def stats() -> dict[str, Any]:
        return await limited(library.stats)

    @app.get("/api/map")
    async def map_points(limit: int = 5000) -> dict[str, Any]:
        if not 2 <= limit <= 20000:
            raise HttpError(422, "limit must be between 2 and 20000")
        return {"points": await limited(lambda: library.map(limit))}

    @app.post("/api/library/add")
    async def add(request: Request) -> dict[str, Any]:
        """``{"paths": ["/srv/music"], "prune": false}``: index server-side folders (needs the token)."""
        require_token(request)
        body = await json_body(request)
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise HttpError(422, "'paths' must be a non-empty list of server-side paths")
        missing = [p for p in paths if not Path(p).is_absolute() or not Path(p).exists()]
        if missing:
            raise HttpError(422, f"not an existing absolute path on the server: {missing[0]}")
        report = await limited(
            locked(lambda: library.add(paths, prune=bool(body.get("prune")), **settings.pipeline))
        )
        return {
            "embedded": report.embedded,
            "reused": report.reused,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "failures": [str(failure) for failure in report.failures],
            "skipped": [str(path) for path in report.skipped],
            "rows": len(library),
        }

    # ------------------------------------------------------------------ the page

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
