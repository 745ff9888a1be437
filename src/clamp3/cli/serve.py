"""``clamp3 serve``: the HTTP API and the web page over a library (uvicorn, one process)."""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from clamp3.cli.common import friendly_errors, model_options


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--library", "library_dir", envvar="CLAMP3_LIBRARY", required=True, help="The library [$CLAMP3_LIBRARY]."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--token",
    envvar="CLAMP3_TOKEN",
    default=None,
    help="Token for writes, and for everything off loopback [$CLAMP3_TOKEN].",
)
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    help="Seconds a request may take.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="Allow browser pages from this origin (CORS is off by default).",
)
@model_options
@friendly_errors
def serve_command(
    library_dir: str,
    host: str,
    port: int,
    token: str | None,
    max_upload_mb: int,
    timeout_s: float,
    cors_origins: tuple[str, ...],
    model_args: dict[str, Any],
) -> None:
    """Serve a library: search it from a browser (http://HOST:PORT/) or over its HTTP API (/docs)."""
    loopback = is_loopback(host)
    if not loopback and not token:
        raise click.ClickException(
            f"refusing to serve on {host} without a token: give --token or set CLAMP3_TOKEN "
            "(or bind 127.0.0.1)"
        )
    from clamp3.extras import require

    require("clamp3 serve", "fastapi", "uvicorn", "multipart", "verovio")
    import uvicorn

    from clamp3.library import Library
    from clamp3.server import ServerSettings, create_app

    library = Library.open(library_dir, model=model_args["model"])
    settings = ServerSettings(
        token=token,
        token_everywhere=not loopback,
        max_upload_mb=max_upload_mb,
        request_timeout_s=timeout_s,
        cors_origins=cors_origins,
        pipeline={
            "cache": model_args["cache"],
            "options": model_args["options"],
            "device": model_args["device"],
        },
    )
    app = create_app(library, settings)
    click.echo(f"serving {library.uri} ({len(library)} items) on http://{host}:{port}/", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
