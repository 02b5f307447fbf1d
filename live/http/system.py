"""Operational endpoints: liveness, readiness, metrics, OpenAPI and Swagger UI."""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from aiohttp import web
from pydantic import BaseModel

from live.http.metrics import METRICS
from storage.backends import Backends
from storage.web import ApiRoutes

routes = ApiRoutes()
TAGS = ("system",)
BACKENDS = web.AppKey("backends", Backends)
OPENAPI = web.AppKey("openapi", dict)
SWAGGER_STATIC = Path(swagger_ui.__file__).resolve().parent / "static"

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stream Cart API</title>
<link rel="stylesheet" href="/swagger/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/swagger/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  deepLinking: true, persistAuthorization: true});</script>
</body></html>
"""


class Health(BaseModel):
    status: str


class BackendCheck(BaseModel):
    backend: str
    ok: bool
    error: str | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, BackendCheck]


@routes.route(
    "GET",
    "/healthz",
    summary="Liveness: the process is serving",
    tags=TAGS,
    response=Health,
    reaches_backends=False,
)
async def healthz(request: web.Request) -> Health:
    return Health(status="ok")


@routes.route(
    "GET",
    "/readyz",
    summary="Readiness: every configured backend answers",
    tags=TAGS,
    response=Readiness,
    errors=(503,),
    reaches_backends=False,  # a backend that fails its check is reported, not raised
)
async def readyz(request: web.Request) -> web.Response:
    """503 with the failing backends named when any check fails."""
    checks = await request.app[BACKENDS].check()
    ready = all(check["ok"] for check in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return web.json_response(body.model_dump(exclude_none=True), status=200 if ready else 503)


@routes.route(
    "GET", "/metrics", summary="Prometheus metrics", tags=TAGS, response_media_type="text/plain"
)
async def metrics(request: web.Request) -> web.Response:
    backends = request.app[BACKENDS]
    request.app[METRICS].outbox_pending.set(await backends.relay.pending())
    return request.app[METRICS].render()


def add_docs_routes(app: web.Application) -> None:
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(request.app[OPENAPI])

    async def swagger(request: web.Request) -> web.Response:
        return web.Response(text=SWAGGER_PAGE, content_type="text/html")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/swagger", swagger)
    app.router.add_static("/swagger/static", SWAGGER_STATIC)
