"""The web dashboard served at ``/``: plain HTML, CSS and JavaScript shipped in this package.

No CDN and no build step, so the node serves the same bytes offline that were reviewed here.
The page reads only the public GET routes, so it works without the API token and cannot
change anything; every answer carries a strict Content-Security-Policy (this origin only,
no inline script or style) so that text from peers or jobs can never run as code.
"""

from __future__ import annotations

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


def routes() -> list[web.RouteDef]:
    return [web.get("/", get_index), web.get("/dashboard/{asset}", get_asset)]


def _send(name: str) -> web.Response:
    body = resources.files(__name__).joinpath(name).read_bytes()
    return web.Response(body=body, content_type=ASSETS[name], charset="utf-8", headers=HEADERS)


async def get_index(request: web.Request) -> web.Response:
    return _send("index.html")


async def get_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS or name == "index.html":  # a fixed list: no path from the URL reaches the disk
        raise web.HTTPNotFound(text=f"no dashboard asset {name!r}")
    return _send(name)
