"""The interactive API reference served at ``/docs``: plain HTML, CSS and JavaScript shipped here.

It reads ``/v1/openapi.json`` from the same node, lists every operation with its parameters,
request body and response schemas, and sends a request the user fills in (with the token, for
writes) by ``fetch()`` to this origin. No CDN and no build step: the node serves these reviewed
bytes offline. The dashboard's headers apply (a Content-Security-Policy allowing only this
origin, no inline script), so text from the spec or an answer can never run as code.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from node.api.dashboard import HEADERS

ASSETS = {"index.html": "text/html", "docs.js": "text/javascript", "docs.css": "text/css"}


def routes() -> list[web.RouteDef]:
    return [web.get("/docs", get_index), web.get("/docs/{asset}", get_asset)]


def _send(name: str) -> web.Response:
    body = resources.files(__name__).joinpath(name).read_bytes()
    return web.Response(body=body, content_type=ASSETS[name], charset="utf-8", headers=HEADERS)


async def get_index(request: web.Request) -> web.Response:
    return _send("index.html")


async def get_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS or name == "index.html":  # a fixed list: no path from the URL reaches the disk
        raise web.HTTPNotFound(text=f"no docs asset {name!r}")
    return _send(name)
