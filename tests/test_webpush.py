"""Web push: the test plays the browser's push service on loopback.

It checks what a real push service and browser would: the VAPID signature (RFC 8292)
with the server's public key, and the payload decrypted with the subscription's private
key and auth secret by the test's own RFC 8291 code (not the library that encrypted it).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import time
from urllib.parse import urlsplit

import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from commerce.notifications import kinds
from commerce.notifications.channels import Notification, Recipient
from commerce.notifications.push import MAX_PAYLOAD, PushChannel, encode
from commerce.notifications.push_routes import PUSH, PUSH_SUBSCRIPTIONS, VAPID
from commerce.notifications.push_subscriptions import PublicResolver
from commerce.notifications.routes import NOTIFICATIONS
from commerce.notifications.service import Delivery
from tests.commerce_support import buyer
from tests.test_auth import assert_problem, bearer

SUBJECT = "mailto:ops@example.com"
SUBSCRIPTIONS = "/api/me/push-subscriptions"


@pytest.fixture
def api_settings() -> dict:
    return {"vapid_subject": SUBJECT, "webpush_allow_loopback_http": True}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A subscription's secrets, as a browser keeps them."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def subscription(self) -> dict:
        keys = {"p256dh": b64url(self.public), "auth": b64url(self.auth)}
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3 with the aes128gcm header of RFC 8188 section 2.1."""
        salt, record_size, id_length = body[:16], int.from_bytes(body[16:20]), body[20]
        sender = body[21 : 21 + id_length]
        ciphertext = body[21 + id_length :]
        assert len(ciphertext) <= record_size  # one record
        shared = self.key.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        )
        ikm = hkdf(self.auth, shared, b"WebPush: info\0" + self.public + sender, 32)
        cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\0", 16)
        nonce = hkdf(salt, ikm, b"Content-Encoding: nonce\0", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None).rstrip(b"\0")
        assert padded.endswith(b"\x02")  # the last record's delimiter
        return padded[:-1]


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class PushService:
    """Answers each post with the next status of `answers` (201 once they run out),
    pointing elsewhere, which a redirect would follow."""

    def __init__(self) -> None:
        self.received: list[tuple[web.Request, bytes]] = []
        self.answers: list[int] = []
        self.url = ""  # where subscriptions point: the server's /push/ (+ a token)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request, await request.read()))
        status = self.answers.pop(0) if self.answers else 201
        return web.Response(status=status, headers={"Location": "/push/elsewhere"})


@pytest.fixture
async def push_service(aiohttp_server):
    service = PushService()
    app = web.Application()
    app.router.add_post("/push/{token}", service.handle)
    server = await aiohttp_server(app)
    service.url = str(server.make_url("/push/"))
    return service


def received_urls(push_service: PushService) -> list:
    return [request.url for request, _ in push_service.received]


async def subscribed(api, push_service, email: str = "ann@example.com") -> tuple[dict, Browser]:
    account = await buyer(api, email)
    browser = Browser(push_service.url + email.split("@")[0])
    response = await api.post(
        SUBSCRIPTIONS, json=browser.subscription(), headers=bearer(account["token"])
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["endpoint"] == browser.endpoint
    return account, browser


def notification(user_id: str, kind: str = kinds.ORDER_SHIPPED, body: str = "") -> Notification:
    return Notification(
        id=f"n-{kind}",
        user_id=user_id,
        kind=kind,
        title="Đơn hàng đã gửi",
        body=body or "Your order SC-123 is on its way.",
        data={"order_id": "o-1"},
        created_at="2026-12-04T05:00:00+00:00",
    )


async def push(channel: PushChannel, account: dict, kind: str = kinds.ORDER_SHIPPED) -> dict:
    user = account["user"]
    sent = notification(user["id"], kind)
    await channel.deliver(Recipient(user["id"], user["email"], user["display_name"]), sent)
    await channel.idle()
    return sent.to_document()


def check_vapid(request: web.Request, server_key: str) -> None:
    scheme, _, params = request.headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(param.split("=", 1) for param in params.split(","))
    assert fields["k"] == server_key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    url = urlsplit(str(request.url))
    claims = jwt.decode(
        fields["t"], public, algorithms=["ES256"], audience=f"{url.scheme}://{url.netloc}"
    )
    assert claims["sub"] == SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600


async def test_a_notification_reaches_the_browser_signed_and_encrypted(api, push_service):
    response = await api.get("/api/webpush/vapid-public-key")
    server_key = (await response.json())["public_key"]
    account, browser = await subscribed(api, push_service)

    sent = await push(api.app[PUSH], account)

    [(request, body)] = push_service.received
    check_vapid(request, server_key)
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert (request.headers["TTL"], request.headers["Urgency"]) == ("86400", "normal")
    assert orjson.loads(browser.decrypt(body)) == sent
    # Another browser's keys cannot read it.
    with pytest.raises(InvalidTag):
        Browser(browser.endpoint).decrypt(body)


async def test_the_notification_service_pushes_what_the_user_wants_pushed(api, push_service):
    account, browser = await subscribed(api, push_service)
    user = account["user"]
    recipient = Recipient(user["id"], user["email"], user["display_name"])
    wanted = notification(user["id"], kinds.ORDER_PAID)
    unwanted = notification(user["id"], kinds.ORDER_SHIPPED)
    await api.app[NOTIFICATIONS].deliver(
        [
            Delivery(recipient, kinds.default_choice(wanted.kind), wanted),
            Delivery(recipient, kinds.Choice(in_app=True, email=False, push=False), unwanted),
        ]
    )
    await api.app[NOTIFICATIONS].close()
    await api.app[PUSH].idle()
    [(_, body)] = push_service.received
    assert orjson.loads(browser.decrypt(body)) == wanted.to_document()


async def test_a_live_starting_is_urgent_and_short_lived(api, push_service):
    account, browser = await subscribed(api, push_service)
    sent = await push(api.app[PUSH], account, kinds.SHOP_LIVE)
    [(request, body)] = push_service.received
    assert (request.headers["TTL"], request.headers["Urgency"]) == ("3600", "high")
    assert orjson.loads(browser.decrypt(body)) == sent


async def test_a_subscription_the_push_service_forgot_is_deleted(api, push_service):
    account, _ = await subscribed(api, push_service)
    push_service.answers = [410]
    await push(api.app[PUSH], account)
    assert len(push_service.received) == 1
    assert await api.app[PUSH_SUBSCRIPTIONS].of_user(account["user"]["id"]) == []
    await push(api.app[PUSH], account)
    assert len(push_service.received) == 1  # nothing left to send to


async def test_failures_are_retried_then_given_up(api, push_service):
    account, browser = await subscribed(api, push_service)
    channel = PushChannel(api.app[PUSH_SUBSCRIPTIONS], api.app[VAPID], retry_delays=(0, 0))
    try:
        push_service.answers = [500, 503]
        sent = await push(channel, account)
        assert len(push_service.received) == 3
        assert orjson.loads(browser.decrypt(push_service.received[-1][1])) == sent
        push_service.answers = [500, 500, 500, 500]
        await push(channel, account)
        assert len(push_service.received) == 6  # the first try and two retries
        push_service.answers = [400, 307]  # the same again would be refused again
        await push(channel, account)
        await push(channel, account)  # and a redirect is not followed
        assert len(push_service.received) == 8
        assert not any(url.path.endswith("elsewhere") for url in received_urls(push_service))
    finally:
        await channel.stop()
    assert len(await api.app[PUSH_SUBSCRIPTIONS].of_user(account["user"]["id"])) == 1


async def test_push_services_are_reached_on_public_addresses_only(api, push_service):
    with pytest.raises(OSError):
        await PublicResolver().resolve("localhost")
    found = await PublicResolver(allow_loopback=True).resolve("localhost")
    assert found and all(ipaddress.ip_address(r["host"]).is_loopback for r in found)

    account = await buyer(api, "ann@example.com")
    browser = Browser(push_service.url.replace("127.0.0.1", "localhost") + "ann")
    response = await api.post(
        SUBSCRIPTIONS, json=browser.subscription(), headers=bearer(account["token"])
    )
    assert response.status == 201  # a name: checked where it leads when posting
    channel = PushChannel(api.app[PUSH_SUBSCRIPTIONS], api.app[VAPID], retry_delays=())
    try:
        await push(channel, account)
    finally:
        await channel.stop()
    assert push_service.received == []
    await push(api.app[PUSH], account)  # the app's channel lets the test's loopback through
    assert len(push_service.received) == 1


async def test_unsubscribing_stops_pushes_and_leaves_others_alone(api, push_service):
    ann, ann_browser = await subscribed(api, push_service)
    bob, bob_browser = await subscribed(api, push_service, "bob@example.com")
    endpoint = {"endpoint": ann_browser.endpoint}

    response = await api.delete(SUBSCRIPTIONS, json=endpoint, headers=bearer(bob["token"]))
    assert response.status == 204
    assert len(await api.app[PUSH_SUBSCRIPTIONS].of_user(ann["user"]["id"])) == 1
    for _ in range(2):  # idempotent
        response = await api.delete(SUBSCRIPTIONS, json=endpoint, headers=bearer(ann["token"]))
        assert response.status == 204
    await push(api.app[PUSH], ann)
    await push(api.app[PUSH], bob)
    assert [str(url) for url in received_urls(push_service)] == [bob_browser.endpoint]


async def test_the_browser_goes_to_whoever_subscribes_it_last(api, push_service):
    ann, browser = await subscribed(api, push_service)
    bob = await buyer(api, "bob@example.com")
    renewed = Browser(browser.endpoint)  # same endpoint, new keys
    response = await api.post(
        SUBSCRIPTIONS, json=renewed.subscription(), headers=bearer(bob["token"])
    )
    assert response.status == 201
    await push(api.app[PUSH], ann)
    assert push_service.received == []
    sent = await push(api.app[PUSH], bob)
    assert orjson.loads(renewed.decrypt(push_service.received[0][1])) == sent


async def test_bad_subscriptions_are_refused(api, push_service):
    account = await buyer(api, "ann@example.com")
    good = Browser(push_service.url + "x").subscription()
    headers = bearer(account["token"])
    await assert_problem(await api.post(SUBSCRIPTIONS, json=good), 401, "unauthenticated")
    for endpoint in (
        "http://push.example.com/x",
        "https://10.0.0.8/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "ftp://push.example.com/x",
    ):
        response = await api.post(
            SUBSCRIPTIONS, json={**good, "endpoint": endpoint}, headers=headers
        )
        await assert_problem(response, 422, "unsafe-push-endpoint")
    for keys, field in (
        ({**good["keys"], "p256dh": b64url(b"\x04" + bytes(64))}, "p256dh"),  # not on the curve
        ({**good["keys"], "auth": b64url(bytes(8))}, "auth"),
        ({"p256dh": good["keys"]["p256dh"]}, "auth"),
    ):
        response = await api.post(SUBSCRIPTIONS, json={**good, "keys": keys}, headers=headers)
        problem = await assert_problem(response, 422, "validation-error")
        assert [error["loc"] for error in problem["errors"]] == [f"body.keys.{field}"]
    assert await api.app[PUSH_SUBSCRIPTIONS].of_user(account["user"]["id"]) == []


def test_a_long_body_is_cut_to_fit_one_push_message():
    payload = encode(notification("u-1", body="ư" * 5000))
    document = orjson.loads(payload)
    assert len(payload) <= MAX_PAYLOAD and document["body"] == "ư" * len(document["body"])
    assert len(payload) > MAX_PAYLOAD - 10  # cut, not emptied


async def test_web_push_is_off_without_a_contact_and_loopback_needs_the_setting(
    aiohttp_client, sql_engine, sql_url, settings_for, push_service
):
    from live.app import build_app

    client = await aiohttp_client(build_app(settings_for(sql_url)))
    await assert_problem(await client.get("/api/webpush/vapid-public-key"), 404, "web-push-off")
    account = await buyer(client, "ann@example.com")
    subscription = Browser(push_service.url + "x").subscription()
    response = await client.post(SUBSCRIPTIONS, json=subscription, headers=bearer(account["token"]))
    await assert_problem(response, 404, "web-push-off")

    client = await aiohttp_client(build_app(settings_for(sql_url, vapid_subject=SUBJECT)))
    response = await client.post(SUBSCRIPTIONS, json=subscription, headers=bearer(account["token"]))
    await assert_problem(response, 422, "unsafe-push-endpoint")


async def test_the_vapid_key_is_kept_in_the_data_dir_or_set(settings_for, tmp_path):
    from live.app import build_app

    settings = settings_for("sqlite:///" + str(tmp_path / "db.sqlite3"), vapid_subject=SUBJECT)
    first, again = build_app(settings)[VAPID], build_app(settings)[VAPID]
    assert first.public_key == again.public_key
    key_file = settings.data_dir / "vapid-private-key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    configured = ec.generate_private_key(ec.SECP256R1())
    raw = configured.private_numbers().private_value.to_bytes(32, "big")
    public = configured.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    app = build_app(
        settings_for(settings.database_url, vapid_subject=SUBJECT, vapid_private_key=b64url(raw))
    )
    assert app[VAPID].public_key == b64url(public) != first.public_key
