"""Who keeps access: the login throttle under concurrency, disabled and deleted users,
re-used refresh tokens, and authentication while Redis is down."""

from __future__ import annotations

import asyncio

import pytest
import socketio
from sqlalchemy import delete, select, update

from commerce.accounts.auth import ACCOUNTS
from commerce.accounts.models import AccountAudit, Role, User
from commerce.accounts.revocations import POLL_SECONDS
from live.app import build_app
from tests.backends import REDIS_URL
from tests.commerce_support import account, create_product, seller_with_shop
from tests.hub_support import Socket, socket_url
from tests.tcp_proxy import TcpProxy
from tests.test_auth import PASSWORD, assert_problem, bearer, logged_in, login

LIMIT = 5
PER_IP = 8  # above LIMIT, so the address's limit is the one that holds


@pytest.fixture
def api_settings() -> dict:
    return {"login_max_failures_per_account": LIMIT, "password_time_cost": 2}


async def test_parallel_guesses_verify_at_most_the_limit(api):
    """40 wrong passwords at once: only the first LIMIT are checked (401), the rest 429."""
    await logged_in(api)
    answers = await asyncio.gather(*(login(api, password=f"guess-{i}") for i in range(40)))
    statuses = sorted(answer.status for answer in answers)
    assert statuses.count(401) == LIMIT, statuses
    assert statuses.count(429) == 40 - LIMIT
    assert (await login(api)).status == 429  # the right password waits for the window too


async def test_parallel_guesses_across_accounts_verify_at_most_the_ip_limit(
    aiohttp_client, sql_engine, sql_url, settings_for, api_settings
):
    """30 wrong passwords for 30 accounts at once from one address: each account is
    under its own limit, yet only the first PER_IP are checked (401), the rest 429, and
    the address then waits even with a right password."""
    settings = settings_for(sql_url, **api_settings, login_max_failures_per_ip=PER_IP)
    api = await aiohttp_client(build_app(settings))
    emails = [f"guess-{i}@example.com" for i in range(30)]
    for email in emails:
        await api.app[ACCOUNTS].create_user(email, PASSWORD, "Guess", Role.BUYER)
    answers = await asyncio.gather(*(login(api, email, "wrong password") for email in emails))
    statuses = sorted(answer.status for answer in answers)
    assert statuses.count(401) == PER_IP, statuses
    assert statuses.count(429) == len(emails) - PER_IP
    await assert_problem(await login(api, emails[0]), 429, "too-many-login-attempts")


async def test_a_good_login_gives_its_attempt_back(api):
    await logged_in(api)
    for _ in range(LIMIT + 2):
        assert (await login(api)).status == 200


async def shopping_buyer(api) -> tuple[dict, dict]:
    """A buyer with a product in reach, and an admin."""
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(api, seller["token"], seller["shop"]["id"])
    buyer = await account(api, "buyer@example.com")
    admin = await account(api, "admin@example.com", Role.ADMIN)
    return {**buyer, "product": product}, admin


async def refused_everywhere(api, token: str) -> None:
    """The token gets 401 on reads, cart, checkout and shop creation, and on Socket.IO."""
    headers = bearer(token)
    for method, path, body in (
        ("GET", "/api/auth/me", None),
        ("GET", "/api/cart", None),
        ("POST", "/api/cart/items", {"product_id": "p", "quantity": 1}),
        ("POST", "/api/orders/checkout", {}),
        ("POST", "/api/shops", {"name": "Mine"}),
    ):
        response = await api.request(method, path, json=body, headers=headers)
        await assert_problem(response, 401, "invalid-token")
    socket = Socket()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket.connect(socket_url(api), {"token": token})
    assert socket.refusal["data"]["code"] == "invalid-token", socket.refusal


async def test_a_disabled_user_is_refused_at_once_and_audited(api, sql_engine, connect):
    buyer, admin = await shopping_buyer(api)
    watching = await connect(buyer["token"])
    add = {"product_id": buyer["product"]["id"], "quantity": 1}
    assert (await api.post("/api/cart/items", json=add, headers=bearer(buyer["token"]))).ok
    response = await api.post(
        f"/api/users/{buyer['user']['id']}/disable", headers=bearer(admin["token"])
    )
    assert response.status == 200 and (await response.json())["is_active"] is False
    await refused_everywhere(api, buyer["token"])
    await ended(watching, "account-disabled")
    await assert_problem(await login(api, "buyer@example.com"), 401, "invalid-credentials")
    async with sql_engine.connect() as connection:
        audit = (await connection.execute(select(AccountAudit.action))).scalars().all()
    assert audit == ["disable"]


async def test_enabling_lets_new_logins_in_but_not_old_tokens(api):
    buyer, admin = await shopping_buyer(api)
    user_path = f"/api/users/{buyer['user']['id']}"
    assert (await api.post(f"{user_path}/disable", headers=bearer(admin["token"]))).ok
    await asyncio.sleep(1.1)  # tokens carry whole seconds: the next one is newer than this
    assert (await api.post(f"{user_path}/enable", headers=bearer(admin["token"]))).ok
    fresh = await login(api, "buyer@example.com")
    assert fresh.status == 200
    token = (await fresh.json())["access_token"]
    assert (await api.get("/api/auth/me", headers=bearer(token))).status == 200
    await assert_problem(
        await api.get("/api/auth/me", headers=bearer(buyer["token"])), 401, "invalid-token"
    )


async def test_a_disabled_users_refresh_tokens_stay_refused_after_enable(api):
    """Both a refresh token tried while disabled and one first tried after the enable
    are refused; only a new login refreshes again."""
    buyer, admin = await shopping_buyer(api)
    user_path = f"/api/users/{buyer['user']['id']}"
    tried, kept = [await (await login(api, "buyer@example.com")).json() for _ in range(2)]

    async def refresh(tokens: dict):
        return await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert (await api.post(f"{user_path}/disable", headers=bearer(admin["token"]))).ok
    await assert_problem(await refresh(tried), 401, "invalid-refresh-token")
    assert (await api.post(f"{user_path}/enable", headers=bearer(admin["token"]))).ok
    for tokens in (tried, kept):
        await assert_problem(await refresh(tokens), 401, "invalid-refresh-token")
    assert (await refresh(await (await login(api, "buyer@example.com")).json())).status == 200


async def test_only_admins_disable_and_not_themselves(api):
    buyer, admin = await shopping_buyer(api)
    path = f"/api/users/{admin['user']['id']}/disable"
    body = await assert_problem(
        await api.post(path, headers=bearer(buyer["token"])), 403, "forbidden"
    )
    assert "admin" in body["detail"] and "buyer" in body["detail"]
    await assert_problem(
        await api.post(path, headers=bearer(admin["token"])), 409, "cannot-disable-self"
    )
    await assert_problem(
        await api.post("/api/users/nobody/disable", headers=bearer(admin["token"])),
        404,
        "user-not-found",
    )


@pytest.mark.parametrize("change", ["deactivate", "delete"])
async def test_a_user_changed_by_hand_in_sql_loses_access(api, sql_engine, change):
    """Database triggers record the revocation, so every process picks it up."""
    buyer, _ = await shopping_buyer(api)
    user_id = buyer["user"]["id"]
    async with sql_engine.begin() as connection:
        if change == "delete":
            await connection.execute(delete(User).where(User.id == user_id))
        else:
            await connection.execute(update(User).where(User.id == user_id).values(is_active=0))
    await asyncio.sleep(POLL_SECONDS + 0.5)
    await refused_everywhere(api, buyer["token"])


async def test_a_reused_refresh_token_cuts_off_the_access_tokens_of_its_login(api, connect):
    tokens = await logged_in(api)
    other = await (await login(api)).json()  # another login of the same user
    stolen_socket = await connect(tokens["access_token"])
    other_socket = await connect(other["access_token"])
    first = await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status == 200
    rotated = await first.json()
    replay = await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await assert_problem(replay, 401, "invalid-refresh-token")
    for stolen in (tokens["access_token"], rotated["access_token"]):
        await assert_problem(
            await api.get("/api/auth/me", headers=bearer(stolen)), 401, "invalid-token"
        )
    assert (await api.get("/api/auth/me", headers=bearer(other["access_token"]))).status == 200
    await ended(stolen_socket, "login-ended")
    assert other_socket.client.connected


async def ended(socket, code: str) -> None:
    """The server told the socket why and closed it."""
    assert (await socket.wait_for("error"))["code"] == code
    async with asyncio.timeout(5):
        await socket.client.wait()  # returns once the server has closed the socket


async def test_logging_out_ends_the_sockets_of_that_login_only(api, connect):
    tokens = await logged_in(api)
    other = await (await login(api)).json()
    sockets = [await connect(tokens["access_token"]) for _ in range(2)]  # two tabs
    other_socket = await connect(other["access_token"])
    response = await api.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status == 204
    for socket in sockets:
        await ended(socket, "login-ended")
    assert other_socket.client.connected
    answer = await other_socket.call("session:join", {"live_session_id": "none"})  # answers
    assert answer["ok"] is False and answer["error"]["code"] == "live-session-not-found"


async def test_a_logged_out_token_stays_refused_on_a_new_process(
    aiohttp_client, sql_engine, sql_url, settings_for, redis_prefix
):
    """The revocation lives in the database: a process started after the logout (with
    a Redis that has forgotten everything) still refuses the token."""
    settings = settings_for(sql_url, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    here = await aiohttp_client(build_app(settings))
    token = (await logged_in(here))["access_token"]
    assert (await here.post("/api/auth/logout", headers=bearer(token))).status == 204
    fresh = await aiohttp_client(build_app(settings_for(sql_url)))
    await assert_problem(
        await fresh.get("/api/auth/me", headers=bearer(token)), 401, "invalid-token"
    )


async def test_while_redis_is_down_reads_and_checkouts_work_and_logins_get_503(
    aiohttp_client, sql_engine, sql_url, settings_for, redis_prefix
):
    proxy = TcpProxy("127.0.0.1", 6379)
    port = await proxy.start()
    try:
        settings = settings_for(
            sql_url, redis_url=f"redis://127.0.0.1:{port}/0", redis_prefix=redis_prefix
        )
        api = await aiohttp_client(build_app(settings))
        buyer, _ = await shopping_buyer(api)
        proxy.cut()
        headers = bearer(buyer["token"])
        assert (await api.get("/api/auth/me", headers=headers)).status == 200
        add = {"product_id": buyer["product"]["id"], "quantity": 1}
        assert (await api.post("/api/cart/items", json=add, headers=headers)).status == 201
        checkout = {"payment_method": "bank_transfer"}
        order = await api.post("/api/orders/checkout", json=checkout, headers=headers)
        assert order.status == 201, await order.text()
        refused = await login(api, "buyer@example.com")
        body = await assert_problem(refused, 503, "dependency-unavailable")
        assert body["backend"] == "cache" and refused.headers["Retry-After"]
        proxy.restore()
        assert (await login(api, "buyer@example.com")).status == 200
    finally:
        await proxy.close()
