"""``clamp3 serve``: an HTTP API and a web page over a library (see :func:`create_app`)."""

from clamp3.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
