"""A user's own account: password reset, email verification, password change, profile
and shipping addresses, against a real SMTP server on loopback, on each SQL backend."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from commerce.accounts.self_routes import SELF_SERVICE
from tests.commerce_support import account, create_product, seller_with_shop
from tests.smtp_support import smtp
from tests.test_auth import PASSWORD, assert_problem, bearer, logged_in, login, register

NEW_PASSWORD = "another long passphrase"
__all__ = ["smtp"]  # fixture

ADDRESS = {"recipient": "Ann", "phone": "0901234567", "line1": "1 Le Loi", "city": "HCMC"}


@pytest.fixture
def api_settings(smtp) -> dict:
    return smtp.settings()


def later(api, minutes: float) -> None:
    """Move the account actions' clock forward (codes and tokens expire by it)."""
    now = api.app[SELF_SERVICE].clock()
    api.app[SELF_SERVICE].clock = lambda: now + timedelta(minutes=minutes)


async def reset_token(api, smtp, email: str, mails: int = 1) -> str:
    response = await api.post("/api/auth/password-reset", json={"email": email})
    assert response.status == 202
    received = (await smtp.inbox.wait_for(mails))[mails - 1]
    assert received.recipients == [email]
    return re.search(r"#token=([A-Za-z0-9_-]+)", received.body("plain")).group(1)


async def confirm_reset(api, token: str, password: str = NEW_PASSWORD):
    return await api.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


async def verification_code(api, smtp, token: str, mails: int = 1) -> str:
    response = await api.post("/api/auth/me/email-verification", headers=bearer(token))
    assert response.status == 202
    received = (await smtp.inbox.wait_for(mails))[mails - 1]
    return re.search(r"Your code is (\d{6})", received.body("plain")).group(1)


async def confirm_code(api, token: str, code: str):
    return await api.post(
        "/api/auth/me/email-verification/confirm", json={"code": code}, headers=bearer(token)
    )


async def test_password_reset_is_single_use_and_ends_every_login(api, smtp):
    tokens = await logged_in(api)
    token = await reset_token(api, smtp, "ann@example.com")
    assert (await confirm_reset(api, token)).status == 204
    await assert_problem(
        await confirm_reset(api, token, "yet another passphrase"), 400, "invalid-reset-token"
    )
    await assert_problem(await login(api), 401, "invalid-credentials")
    assert (await login(api, password=NEW_PASSWORD)).status == 200
    me = await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    await assert_problem(me, 401, "invalid-token")
    refreshed = await api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await assert_problem(refreshed, 401, "invalid-refresh-token")


async def test_a_reset_token_expires_and_a_newer_one_voids_it(api, smtp):
    assert (await register(api)).status == 201
    first = await reset_token(api, smtp, "ann@example.com")
    second = await reset_token(api, smtp, "ann@example.com", mails=2)
    await assert_problem(await confirm_reset(api, first), 400, "invalid-reset-token")
    later(api, 31)
    await assert_problem(await confirm_reset(api, second), 400, "invalid-reset-token")
    assert (await login(api)).status == 200  # the password never changed


async def test_reset_answers_the_same_for_unknown_emails_and_mails_only_accounts(api, smtp):
    assert (await register(api)).status == 201
    known = await api.post("/api/auth/password-reset", json={"email": "ann@example.com"})
    unknown = await api.post("/api/auth/password-reset", json={"email": "nobody@example.com"})
    assert known.status == unknown.status == 202
    assert await known.json() == await unknown.json()
    received = await smtp.inbox.wait_for(1)
    assert [m.recipients for m in received] == [["ann@example.com"]]


async def test_reset_requests_are_limited_alike_for_known_and_unknown_emails(api, smtp):
    assert (await register(api)).status == 201
    for email in ("ann@example.com", "nobody@example.com"):
        statuses = [
            (await api.post("/api/auth/password-reset", json={"email": email})).status
            for _ in range(11)
        ]
        assert statuses == [202] * 10 + [429]
    guesses = [(await confirm_reset(api, "x" * 43)).status for _ in range(11)]
    assert guesses == [400] * 10 + [429]


async def test_email_verification_by_code(api, smtp):
    tokens = await logged_in(api)
    access = tokens["access_token"]
    assert tokens["user"]["email_verified"] is False
    code = await verification_code(api, smtp, access)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await assert_problem(await confirm_code(api, access, wrong), 400, "invalid-code")
    confirmed = await confirm_code(api, access, code)
    assert confirmed.status == 200 and (await confirmed.json())["email_verified"] is True
    await assert_problem(await confirm_code(api, access, code), 400, "invalid-code")
    me = await (await api.get("/api/auth/me", headers=bearer(access))).json()
    assert me["email_verified"] is True


async def test_a_code_dies_after_five_wrong_guesses_or_when_it_expires(api, smtp):
    access = (await logged_in(api))["access_token"]
    code = await verification_code(api, smtp, access)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        await assert_problem(await confirm_code(api, access, wrong), 400, "invalid-code")
    await assert_problem(await confirm_code(api, access, code), 400, "invalid-code")
    code = await verification_code(api, smtp, access, mails=2)
    later(api, 11)
    await assert_problem(await confirm_code(api, access, code), 400, "invalid-code")


async def test_changing_the_password_ends_the_other_logins_only(api, smtp):
    this = await logged_in(api)
    other = await (await login(api)).json()
    wrong = await api.post(
        "/api/auth/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=bearer(this["access_token"]),
    )
    await assert_problem(wrong, 403, "wrong-password")
    changed = await api.post(
        "/api/auth/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(this["access_token"]),
    )
    assert changed.status == 204
    other_me = await api.get("/api/auth/me", headers=bearer(other["access_token"]))
    await assert_problem(other_me, 401, "invalid-token")
    other_refresh = await api.post(
        "/api/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    await assert_problem(other_refresh, 401, "invalid-refresh-token")
    assert (await api.get("/api/auth/me", headers=bearer(this["access_token"]))).status == 200
    this_refresh = await api.post(
        "/api/auth/refresh", json={"refresh_token": this["refresh_token"]}
    )
    assert this_refresh.status == 200
    assert (await login(api, password=NEW_PASSWORD)).status == 200


async def test_profile_changes(api, smtp):
    access = (await logged_in(api))["access_token"]

    async def patch(body):
        return await api.patch("/api/auth/me", json=body, headers=bearer(access))

    for bad in ({"avatar_url": "http://img.example.com/a.png"}, {"language": "xx"}):
        await assert_problem(await patch(bad), 422, "validation-error")
    response = await patch(
        {"display_name": " Annie ", "avatar_url": "https://img.example.com/a.png", "language": "vi"}
    )
    user = await response.json()
    assert (user["display_name"], user["avatar_url"], user["language"]) == (
        "Annie",
        "https://img.example.com/a.png",
        "vi",
    )
    user = await (await patch({"avatar_url": None})).json()
    assert user["avatar_url"] is None and user["language"] == "vi"


async def test_addresses_keep_one_default(api, smtp):
    access = (await logged_in(api))["access_token"]
    headers = bearer(access)
    home = await (await api.post("/api/me/addresses", json=ADDRESS, headers=headers)).json()
    work = await (
        await api.post(
            "/api/me/addresses", json={**ADDRESS, "line1": "2 Hai Ba Trung"}, headers=headers
        )
    ).json()
    assert home["is_default"] and not work["is_default"]
    moved = await api.patch(
        f"/api/me/addresses/{work['id']}", json={"is_default": True}, headers=headers
    )
    assert (await moved.json())["is_default"]
    listed = (await (await api.get("/api/me/addresses", headers=headers)).json())["items"]
    assert [(a["id"], a["is_default"]) for a in listed] == [(work["id"], True), (home["id"], False)]
    assert (await api.delete(f"/api/me/addresses/{work['id']}", headers=headers)).status == 204
    listed = (await (await api.get("/api/me/addresses", headers=headers)).json())["items"]
    assert [(a["id"], a["is_default"]) for a in listed] == [(home["id"], True)]


async def test_checkout_takes_an_address_by_id_and_refuses_someone_elses(api, smtp):
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(api, seller["token"], seller["shop"]["id"])
    ann = await account(api, "ann@example.com")
    bob = await account(api, "bob@example.com")
    ann_address = await (
        await api.post("/api/me/addresses", json=ADDRESS, headers=bearer(ann["token"]))
    ).json()
    bob_address = await (
        await api.post("/api/me/addresses", json=ADDRESS, headers=bearer(bob["token"]))
    ).json()

    async def checkout(address_id):
        return await api.post(
            "/api/orders/checkout",
            json={
                "payment_method": "cod",
                "items": [{"product_id": product["id"], "quantity": 1}],
                "address_id": address_id,
            },
            headers=bearer(ann["token"]),
        )

    await assert_problem(await checkout(bob_address["id"]), 422, "unknown-address")
    response = await checkout(ann_address["id"])
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    assert order["shipping_address"] == "Ann, 0901234567\n1 Le Loi\nHCMC\nVN"
    foreign = await api.patch(
        f"/api/me/addresses/{bob_address['id']}",
        json={"city": "Hanoi"},
        headers=bearer(ann["token"]),
    )
    await assert_problem(foreign, 404, "address-not-found")


async def test_profile_and_address_edits_are_limited(api, smtp):
    headers = bearer((await logged_in(api))["access_token"])
    statuses = [
        (await api.patch("/api/auth/me", json={"language": "en"}, headers=headers)).status
        for _ in range(60)
    ]
    assert statuses == [200] * 60
    await assert_problem(
        await api.post("/api/me/addresses", json=ADDRESS, headers=headers),
        429,
        "too-many-edit-attempts",
    )
