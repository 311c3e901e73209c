"""The web dashboard served at ``/``: plain HTML, CSS and JavaScript shipped in this package.

No CDN and no build step, so the node serves the same bytes offline that were reviewed here.
The page reads only the public GET routes, so it works without the API token and cannot
change anything; every answer carries a strict Content-Security-Policy (this origin only,
no inline script or style) so that text from peers or jobs can never run as code.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

ASSETS = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def static_routes(package: str, index: str, assets_at: str, assets: dict[str, str], what: str) -> list[web.RouteDef]:
    """GET ``index`` (the package's index.html) and ``assets_at`` + ``/{asset}`` (a fixed list:
    no path from the URL reaches the disk), each with the strict headers above. Shared by the
    dashboard and the /docs page. Files are read once, then served from memory (no disk read on
    the event loop per request)."""

    @functools.cache
    def body(name: str) -> bytes:
        return resources.files(package).joinpath(name).read_bytes()

    def send(name: str) -> web.Response:
        return web.Response(body=body(name), content_type=assets[name], charset="utf-8", headers=HEADERS)

    async def get_index(request: web.Request) -> web.Response:
        return send("index.html")

    async def get_asset(request: web.Request) -> web.Response:
        name = request.match_info["asset"]
        if name not in assets or name == "index.html":
            raise web.HTTPNotFound(text=f"no {what} asset {name!r}")
        return send(name)

    for name in assets:  # read at start-up, not on the event loop while serving
        body(name)
    return [web.get(index, get_index), web.get(assets_at + "/{asset}", get_asset)]


def routes() -> list[web.RouteDef]:
    return static_routes(__name__, "/", "/dashboard", ASSETS, "dashboard")
