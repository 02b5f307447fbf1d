"""Request pipeline: request id, access log, metrics, and errors as problem documents."""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web

from live.http.metrics import Metrics
from storage.ids import new_id
from storage.outages import unavailable
from storage.web.context import request_id
from storage.web.problems import Problem, from_http_exception

log = logging.getLogger("streamcart.http")
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def route_template(request: web.Request) -> str:
    """The route pattern (`/api/orders/{id}`) so metrics do not explode per id."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


def make_middlewares(metrics: Metrics) -> list:
    @web.middleware
    async def observe(request: web.Request, handler):
        incoming = request.headers.get("X-Request-Id", "")
        rid = incoming if SAFE_REQUEST_ID.match(incoming) else new_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        metrics.in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-Id"] = rid
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(request)
            metrics.in_flight.dec()
            metrics.observe(request.method, route, status, elapsed)
            log.info(
                "%s %s %d",
                request.method,
                request.path,
                status,
                extra={"duration_ms": round(elapsed * 1000, 2), "route": route},
            )
            request_id.reset(token)

    @web.middleware
    async def problems(request: web.Request, handler):
        try:
            return await handler(request)
        except Problem as problem:
            return problem.response(request.path)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return from_http_exception(exc).response(request.path)
        except Exception as error:
            problem = unavailable(error)
            if problem is not None:
                log.warning("%s: %r", problem.detail, error)
                return problem.response(request.path)
            log.exception("unhandled error")
            return Problem(
                500, "internal-error", "Something went wrong; quote the X-Request-Id."
            ).response(request.path)

    return [observe, problems]
