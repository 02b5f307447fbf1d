"""Serves the pages and their assets from `static/` as they are (no build step), each
response under a Content-Security-Policy that lets a page load only from this origin:
even the VietQR image is drawn here (commerce/payments/qr_image.py).

Plain aiohttp routes, not API operations: they return HTML, CSS and JavaScript, so
they stay out of the OpenAPI document and its contract tests.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
ASSET_NAME = re.compile(r"^[a-z0-9-]+\.(?:css|js)$")
CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidated (Last-Modified): a deploy shows at once
}
PAGES = {
    "/": "index.html",
    "/live/{live_session_id}": "viewer.html",
    "/studio": "studio.html",
}


def add_routes(app: web.Application) -> None:
    """The pages at their addresses, and their assets under /assets/."""
    for path, name in PAGES.items():
        app.router.add_get(path, _serving(name))
    app.router.add_get("/assets/{name}", _asset)


def _serving(name: str):
    async def page(request: web.Request) -> web.FileResponse:
        return _file(STATIC / name)

    return page


async def _asset(request: web.Request) -> web.FileResponse:
    """Only this directory's own stylesheets and scripts, by plain name."""
    name = request.match_info["name"]
    path = STATIC / name
    if not ASSET_NAME.match(name) or not path.is_file():
        raise web.HTTPNotFound()
    return _file(path)


def _file(path: Path) -> web.FileResponse:
    headers = {**SECURITY_HEADERS, "Content-Type": CONTENT_TYPES[path.suffix]}
    return web.FileResponse(path, headers=headers)
