"""Accounts and auth through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
import pytest

from commerce.accounts.revocations import POLL_SECONDS
from live.app import SETTINGS, build_app

PASSWORD = "correct horse battery staple"


async def register(api, email="ann@example.com", password=PASSWORD, role="buyer", name="Ann"):
    return await api.post(
        "/api/auth/register",
        json={"email": email, "password": password, "display_name": name, "role": role},
    )


async def login(api, email="ann@example.com", password=PASSWORD):
    return await api.post("/api/auth/login", json={"email": email, "password": password})


async def logged_in(api, **kwargs) -> dict:
    assert (await register(api, **kwargs)).status == 201
    response = await login(api, kwargs.get("email", "ann@example.com"))
    assert response.status == 200
    return await response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def assert_problem(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == status and body["code"] == code and body["title"]
    return body


async def test_register_login_me(api):
    response = await register(api, email="  Ann@Example.COM ", role="seller")
    assert response.status == 201
    user = await response.json()
    assert user["email"] == "ann@example.com" and user["role"] == "seller"
    assert "password" not in json.dumps(user) and PASSWORD not in json.dumps(user)

    tokens = await (await login(api, "ANN@example.com")).json()
    assert tokens["token_type"] == "Bearer" and tokens["user"]["id"] == user["id"]
    me = await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status == 200 and (await me.json())["id"] == user["id"]


async def test_duplicate_email_is_409(api):
    assert (await register(api)).status == 201
    await assert_problem(await register(api, email="ANN@example.com"), 409, "email-taken")


async def test_self_service_cannot_become_admin(api):
    body = await assert_problem(await register(api, role="admin"), 422, "validation-error")
    assert body["errors"][0]["loc"] == "body.role"


async def test_wrong_password_and_unknown_email_look_the_same(api):
    await register(api)
    wrong = await login(api, password="not the password")
    unknown = await login(api, email="nobody@example.com")
    wrong_body = await assert_problem(wrong, 401, "invalid-credentials")
    unknown_body = await assert_problem(unknown, 401, "invalid-credentials")
    for body in (wrong_body, unknown_body):
        body.pop("instance", None)
    assert wrong_body == unknown_body


async def test_me_requires_a_token(api):
    response = await api.get("/api/auth/me")
    await assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_expired_and_alg_none_tokens_are_rejected(api):
    tokens = await logged_in(api)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    now = int(time.time())
    forged = jwt.encode(claims, "another secret that is long enough!!", algorithm="HS256")
    expired_claims = {**claims, "iat": now - 3600, "exp": now - 60}
    promoted = {**claims, "role": "admin"}
    header, _, signature = tokens["access_token"].split(".")
    tampered = ".".join([header, _b64(promoted), signature])
    alg_none = ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(promoted), ""])
    secret = (api.app[SETTINGS].data_dir / "jwt-secret").read_text().strip()
    expired = jwt.encode(expired_claims, secret, algorithm="HS256")
    for bad in (forged, expired, tampered, alg_none, "not.a.jwt", "garbage"):
        response = await api.get("/api/auth/me", headers=bearer(bad))
        await assert_problem(response, 401, "invalid-token")
    assert (await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))).status == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(api):
    first = await logged_in(api)
    response = await api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]

    # The first token was spent: presenting it again is theft or replay.
    replay = await api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    await assert_problem(replay, 401, "invalid-refresh-token")
    # ...which revokes the whole family, including the newest token.
    after = await api.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    await assert_problem(after, 401, "invalid-refresh-token")


async def test_other_logins_survive_a_revoked_family(api):
    a = await logged_in(api)
    b = await (await login(api)).json()
    await api.post("/api/auth/refresh", json={"refresh_token": a["refresh_token"]})
    await api.post("/api/auth/refresh", json={"refresh_token": a["refresh_token"]})
    ok = await api.post("/api/auth/refresh", json={"refresh_token": b["refresh_token"]})
    assert ok.status == 200


async def test_logout_revokes_refresh_family_and_access_token(api):
    tokens = await logged_in(api)
    response = await api.post(
        "/api/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status == 204
    me = await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    await assert_problem(me, 401, "invalid-token")
    refresh = await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await assert_problem(refresh, 401, "invalid-refresh-token")


async def test_logout_without_body_denies_the_access_token(api):
    tokens = await logged_in(api)
    response = await api.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status == 204
    assert (await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))).status == 401


async def test_failed_logins_are_throttled_per_account(api):
    await register(api)
    for _ in range(5):
        await assert_problem(
            await login(api, password="wrong password"), 401, "invalid-credentials"
        )
    blocked = await login(api)  # even the right password waits out the window
    await assert_problem(blocked, 429, "too-many-login-attempts")
    assert int(blocked.headers["Retry-After"]) > 0


@pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
async def test_failed_logins_are_throttled_per_ip(
    aiohttp_client, sql_engine, sql_url, settings_for
):
    from live.app import build_app

    api = await aiohttp_client(build_app(settings_for(sql_url, login_max_failures_per_ip=3)))
    for i in range(3):
        await assert_problem(
            await login(api, email=f"u{i}@example.com"), 401, "invalid-credentials"
        )
    await assert_problem(
        await login(api, email="other@example.com"), 429, "too-many-login-attempts"
    )


async def test_a_logout_holds_on_every_process_within_the_poll_interval(
    aiohttp_client, sql_engine, sql_url, settings_for
):
    """Two processes sharing the database: the one that logged out refuses the token at
    once, the other once it has read the new revocation (within a second)."""
    settings = settings_for(sql_url)
    here = await aiohttp_client(build_app(settings))
    there = await aiohttp_client(build_app(settings))
    token = (await logged_in(here))["access_token"]
    assert (await there.get("/api/auth/me", headers=bearer(token))).status == 200  # remembered
    response = await here.post("/api/auth/logout", headers=bearer(token))
    assert response.status == 204
    assert (await here.get("/api/auth/me", headers=bearer(token))).status == 401
    refused_at = None
    deadline = time.monotonic() + POLL_SECONDS + 2
    while refused_at is None and time.monotonic() < deadline:
        if (await there.get("/api/auth/me", headers=bearer(token))).status == 401:
            refused_at = time.monotonic()
        else:
            await asyncio.sleep(0.05)
    assert refused_at is not None, "the other process still accepts a revoked token"
