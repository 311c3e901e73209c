"""The interactive API reference served at ``/docs``: plain HTML, CSS and JavaScript shipped here.

It reads ``/v1/openapi.json`` from the same node, lists every operation with its parameters,
request body and response schemas, and sends a request the user fills in (with the token, for
writes) by ``fetch()`` to this origin. No CDN and no build step: the node serves these reviewed
bytes offline. The dashboard's headers apply (a Content-Security-Policy allowing only this
origin, no inline script), so text from the spec or an answer can never run as code.
"""

from __future__ import annotations

from aiohttp import web

from node.api.dashboard import static_routes

ASSETS = {"index.html": "text/html", "docs.js": "text/javascript", "docs.css": "text/css"}


def routes() -> list[web.RouteDef]:
    return static_routes(__name__, "/docs", "/docs", ASSETS, "docs")
