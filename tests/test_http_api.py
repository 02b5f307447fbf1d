"""The HTTP surface: problem documents for bad input, health, metrics, OpenAPI, Swagger UI."""

from __future__ import annotations

import json
import logging
import re

import pytest

from live.logs import JsonFormatter, RequestIdFilter
from tests.test_auth import PASSWORD, assert_problem, bearer, logged_in, register

pytestmark = pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)


async def test_malformed_json_is_400(api):
    response = await api.post(
        "/api/auth/register",
        data=b'{"email": "a@b.c", ',
        headers={"Content-Type": "application/json"},
    )
    await assert_problem(response, 400, "malformed-json")


async def test_empty_and_non_utf8_bodies_are_400(api):
    for data in (b"", b"\xff\xfe{}"):
        response = await api.post(
            "/api/auth/login", data=data, headers={"Content-Type": "application/json"}
        )
        await assert_problem(response, 400, "malformed-json")


async def test_wrong_content_type_is_415(api):
    response = await api.post("/api/auth/login", data="email=a&password=b")
    await assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": 42, "password": PASSWORD, "display_name": "A"}, "body.email"),
        ({"email": "a@example.com", "password": 12345678, "display_name": "A"}, "body.password"),
        ({"email": "not-an-email", "password": PASSWORD, "display_name": "A"}, "body.email"),
        ({"password": PASSWORD, "display_name": "A"}, "body.email"),
        ({"email": "a@example.com", "password": "short", "display_name": "A"}, "body.password"),
        (
            {"email": "a@example.com", "password": PASSWORD, "display_name": "x" * 101},
            "body.display_name",
        ),
        ({"email": "a@example.com", "password": "p" * 129, "display_name": "A"}, "body.password"),
        (
            {"email": "a@example.com", "password": PASSWORD, "display_name": "   "},
            "body.display_name",
        ),
        (
            {"email": "a@example.com", "password": PASSWORD, "display_name": "A", "admin": True},
            "body.admin",
        ),
    ],
)
async def test_invalid_fields_are_422_and_never_echo_input(api, body, field):
    response = await api.post("/api/auth/register", json=body)
    problem = await assert_problem(response, 422, "validation-error")
    assert field in [error["loc"] for error in problem["errors"]]
    text = json.dumps(problem)
    assert PASSWORD not in text and "p" * 129 not in text


async def test_json_that_is_not_an_object_is_422(api):
    for body in ([], "text", 3, None):
        response = await api.post(
            "/api/auth/login",
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        await assert_problem(response, 422, "validation-error")


async def test_oversized_body_is_413_problem(api):
    huge = {"email": "a@example.com", "password": "x" * (2 * 1024 * 1024)}
    response = await api.post("/api/auth/login", json=huge)
    await assert_problem(response, 413, "request-entity-too-large")


async def test_unknown_route_and_method_are_problems(api):
    await assert_problem(await api.get("/api/nope"), 404, "not-found")
    response = await api.delete("/api/auth/login")
    await assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


async def test_request_id_is_echoed_or_generated(api):
    response = await api.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    generated = (await api.get("/healthz", headers={"X-Request-Id": "bad id;<script>"})).headers
    assert (
        generated["X-Request-Id"] not in ("bad id;<script>", "")
        and " " not in generated["X-Request-Id"]
    )


async def test_health_and_readiness(api):
    assert await (await api.get("/healthz")).json() == {"status": "ok"}
    response = await api.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ok"
    assert {name: check["backend"] for name, check in body["checks"].items()} == {
        "sql": "sqlite",
        "cache": "memory",
        "bus": "memory",
        "documents": "sql",
    }


async def test_readiness_names_the_failing_backend(
    aiohttp_client, sql_engine, sql_url, settings_for
):
    from live.app import build_app

    settings = settings_for(sql_url, redis_url="redis://127.0.0.1:1/0")
    api = await aiohttp_client(build_app(settings))
    response = await api.get("/readyz")
    body = await response.json()
    assert response.status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"]["ok"] is False and body["checks"]["cache"]["backend"] == "redis"
    assert body["checks"]["sql"]["ok"] is True


async def test_metrics_count_requests_by_route_template(api):
    await api.get("/healthz")
    await api.get("/api/auth/me")
    text = await (await api.get("/metrics")).text()
    assert 'streamcart_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/auth/me",status="401"' in text
    assert "streamcart_http_request_duration_seconds_bucket" in text
    assert "streamcart_outbox_pending_events" in text
    tasks = re.search(r"^streamcart_asyncio_tasks (\d+)", text, re.MULTILINE)
    assert tasks is not None and int(tasks.group(1)) > 0


async def test_openapi_describes_every_route(api):
    spec = await (await api.get("/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    for route in api.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/") and route.method != "OPTIONS":  # CORS preflights
            assert (route.method, path) in documented
    register_op = spec["paths"]["/api/auth/register"]["post"]
    schema_ref = register_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"email", "password", "display_name"} <= set(schema["required"])
    assert "422" in register_op["responses"] and "409" in register_op["responses"]
    assert spec["paths"]["/api/auth/me"]["get"]["security"] == [{"bearerAuth": []}]


async def test_swagger_ui_is_served_locally(api):
    page = await (await api.get("/swagger")).text()
    assert "/openapi.json" in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    for asset in ("/swagger/static/swagger-ui-bundle.js", "/swagger/static/swagger-ui.css"):
        response = await api.get(asset)
        assert response.status == 200 and len(await response.read()) > 10_000


async def test_no_password_or_token_reaches_any_log_line(api, caplog):
    caplog.set_level(logging.DEBUG)
    formatter = JsonFormatter()
    request_ids = RequestIdFilter()
    tokens = await logged_in(api, email="logs@example.com")
    secrets = [PASSWORD, tokens["access_token"], tokens["refresh_token"]]
    await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await api.post("/api/auth/login", json={"email": "logs@example.com", "password": "bad " * 3})
    await register(api, email="bad", password=PASSWORD)
    await api.post(
        "/api/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert len(caplog.records) > 5
    for record in caplog.records:
        request_ids.filter(record)
        line = formatter.format(record)
        for secret in secrets:
            assert secret not in line
        assert "bad bad bad" not in line


async def test_credentials_are_checked_before_the_body(api):
    """A caller without a valid token learns nothing about what it sent."""
    for headers in ({}, {"Authorization": "Bearer forged.token.value"}):
        response = await api.post(
            "/api/orders/checkout",
            data=b"{not json",
            headers={"Content-Type": "application/json", **headers},
        )
        assert response.status == 401, await response.text()
