"""The pages in a real browser: headless Chromium (in a network namespace of the test's
own, see tests/chromium_support.py, so every packet stays on loopback) opens the viewer
page while the ffmpeg CLI publishes over RTMP and plays the stream over WHEP; two
buyers chat through it; the seller pins, starts a flash sale and moderates in the
studio; a buyer pays (the Sepay webhook arrives) and the page and the studio show it
without a reload; another, on a 390 x 844 phone, chats and buys with the keyboard
alone. What people typed and what a seller named a product show as text, never as
HTML; the pages fit a 390 px phone; every page response carries a
Content-Security-Policy that lets it load only from this origin (the VietQR image
too), and nothing on the pages is refused by it.

Screenshots of each page are saved in test-artifacts/<test name>/ (git-ignored), for CI
to collect.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from yarl import URL

from live.app import RTMP_SERVER
from tests.chromium_support import INTERFACE_PERMISSIONS, app_namespace, chromium_browser
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.media_support import write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_auth import PASSWORD, bearer
from tests.test_orders import SEPAY_KEY, transfer, webhook
from tests.test_streaming import push, show

__all__ = ["show"]  # the seller's session, a fixture of the OBS end-to-end tests

WAIT = 15.0
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# From the seller's click on Pin to the card on each viewer's page: 34 and 37 ms in this
# module's viewers test on 2026-12-04 (2 cores, ffmpeg publishing, three pages open).
PIN_SHOWN_WITHIN_MS = 1000
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1">'
PHONE = {"width": 390, "height": 844}
A_YEAR_AGO = datetime.now(UTC) - timedelta(days=365)  # a phone's clock: countdowns ignore it
PAGES = (
    "/",
    "/live/0193a8c2-0000-7000-8000-000000000000",
    "/studio",
    "/assets/viewer.js",
    "/assets/pages.css",
)
# Only this origin, without exception (docs/pages.md).
ALLOWED_SOURCES = {"'self'", "'none'"}

# Every RTCPeerConnection the page makes, for the test to read its getStats(), and every
# load or run the Content-Security-Policy refused.
PROBES = """
window.peers = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.peers.push(this); }
};
window.refused = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.refused.push(`${event.effectiveDirective} ${event.blockedURI}`));
"""

# When the pinned card first shows `name` (a MutationObserver sees the change), and when
# the studio is next clicked, both on this machine's clock (Date.now()).
CARD_SHOWN_AT = """
(name) => {
  window.cardShownAt = null;
  const card = document.querySelector("#product");
  new MutationObserver((_, observer) => {
    if (card.hidden || document.querySelector("#product-name").textContent !== name) return;
    window.cardShownAt = Date.now();
    observer.disconnect();
  }).observe(card, { attributes: true, childList: true, characterData: true, subtree: true });
}
"""
CLICKED_AT = """
() => document.addEventListener(
  "click", () => { window.clickedAt = Date.now(); }, { capture: true, once: true })
"""

# Playing: more than `since` video frames decoded, a picture, audio packets arriving.
PLAYING_JS = """
async (since) => {
  const pc = window.peers.at(-1);
  if (!pc) return false;
  const report = { frames: 0, audioPackets: 0,
    videoWidth: document.querySelector("video").videoWidth };
  (await pc.getStats()).forEach((stat) => {
    if (stat.type !== "inbound-rtp") return;
    if (stat.kind === "video") report.frames = stat.framesDecoded ?? 0;
    if (stat.kind === "audio") report.audioPackets = stat.packetsReceived ?? 0;
  });
  return report.frames > since && report.videoWidth > 0 && report.audioPackets > 0 && report;
}
"""


@pytest.fixture
def api_settings():
    """Peers with sockets of their own, which the test binds inside Chromium's namespace;
    a bank account for VietQR codes and a key for Sepay's webhook."""
    return {
        "stream_grace_period": 0.5,
        "stream_health_interval": 0.5,
        "webrtc_udp_port": 0,
        "sepay_api_key": SEPAY_KEY,
        "sepay_account": "0123456789",
        "sepay_bank": "MBBank",
    }


@pytest.fixture
def sql_url(tmp_path) -> str:
    """The pages are under test here, not the database: SQLite only keeps this fast."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def screenshots(request) -> Path:
    """This test's screenshots: test-artifacts/<test name>/ in the repository (git-ignored),
    emptied first, for CI to collect."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    """30 s of a 320x240 test pattern with a tone: longer than any test here watches."""
    return write_test_flv(tmp_path_factory.mktemp("pages") / "pattern.flv", seconds=30)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in filter(None, (part.strip() for part in policy.split(";"))):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


async def test_pages_load_only_from_this_origin(api):
    for path in PAGES:
        response = await api.get(path)
        assert response.status == 200, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        policy = directives(response.headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["connect-src"] == ["'self'"]
        for name, sources in policy.items():
            assert set(sources) <= ALLOWED_SOURCES, name
    assert (await api.get("/assets/socketio.js")).content_type == "text/javascript"
    assert (await api.get("/assets/pages.css")).content_type == "text/css"
    spec = await (await api.get("/openapi.json")).json()
    assert not any(path.startswith(("/live/", "/assets/")) for path in spec["paths"])


@pytest.mark.parametrize(
    "path", ["/assets/viewer.html", "/assets/missing.js", "/assets/..%2Froutes.py", "/assets/"]
)
async def test_only_the_pages_own_assets_are_served(api, path):
    response = await api.get(path)
    assert response.status == 404
    assert response.content_type == "application/problem+json"


async def test_viewers_watch_chat_and_buy_while_the_seller_runs_the_studio(
    api, show, pattern, opened, tmp_path, screenshots, monkeypatch
):
    live_id = show["live"]["id"]
    evil = await create_product(
        api, show["token"], show["shop"]["id"], name=EVIL, base_price=50_000, stock=3
    )
    added = await api.post(
        f"/api/live-sessions/{live_id}/products",
        json={"products": [{"product_id": evil["id"]}]},
        headers=bearer(show["token"]),
    )
    assert added.status == 200, await added.text()
    for email in ("ann@example.com", "bob@example.com"):
        await buyer(api, email)
    origin = api.make_url("/").origin()
    page_url = origin.with_path(f"/live/{live_id}")
    async with (
        publishing(api, pattern, show["key"]),
        app_namespace(origin, monkeypatch) as namespace,
        chromium_browser(namespace, tmp_path) as browser,
    ):
        ann = await open_viewer(browser, page_url, "ann@example.com")
        await expect(ann.locator("#viewers")).to_have_text("1", timeout=WAIT * 1000)
        bob = await open_viewer(browser, page_url, viewport=PHONE)  # chats and buys on a phone
        # bob counts once or, as a guest whose socket and video cannot be matched, twice.
        await expect(ann.locator("#viewers")).to_have_text(
            re.compile(r"^[23]$"), timeout=WAIT * 1000
        )
        await assert_plays(ann)
        await assert_plays(bob)
        await unmute(ann)

        await say(ann, "Chào bob")
        await expect_message(bob, "ann", "Chào bob")
        await say_with_the_keyboard(bob, "bob@example.com", "Chào ann")
        await expect_message(ann, "bob", "Chào ann")
        await say(ann, EVIL)
        await expect_message(bob, "ann", EVIL)

        studio = await open_studio(browser, origin, "seller@example.com", "Lên sóng")
        await assert_shown_as_text(studio, "#room-chat li:last-child span", EVIL)
        await assert_shown_as_text(studio, "#room-products", EVIL)
        delays = await pin_and_time(studio, EVIL, [ann, bob])
        print(f"pinned card shown {delays} ms after the click")
        assert max(delays) <= PIN_SHOWN_WITHIN_MS, delays
        for page in (ann, bob):
            await expect(page.locator("#product-left")).to_have_text("3 left")
            assert await page.locator("main img:not([hidden])").count() == 0
            assert await page.evaluate("window.pwned") is None
        code = await buy_in_the_flash_sale(api, studio, EVIL, ann, bob)
        await expect(studio.locator("#room-revenue")).to_have_text(re.compile(r"^40\.000"))
        await expect(studio.locator("#room-order-list")).to_contain_text(f"{code} · 40.000")
        await expect(studio.locator("#room-order-list")).to_contain_text("paid")
        await buy_from_the_cart_with_the_keyboard(bob)
        await expect(studio.locator("#room-order-list li")).to_have_count(2, timeout=WAIT * 1000)
        await buy_now(ann, "50.000")
        await expect(bob.locator("#product-left")).to_have_text("Sold out", timeout=WAIT * 1000)
        await expect(studio.locator("#room-order-list li")).to_have_count(3, timeout=WAIT * 1000)
        evil_line = studio.locator("#room-products li").filter(has_text=EVIL)
        await expect(evil_line).to_contain_text("· 0 left", timeout=WAIT * 1000)
        await studio.screenshot(path=screenshots / "studio.png", full_page=True)
        await studio.set_viewport_size(PHONE)
        assert await studio.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        await studio.screenshot(path=screenshots / "studio-phone.png", full_page=True)

        await studio.get_by_role("button", name=f"Delete ann: {EVIL}").click()
        await expect(bob.locator("#messages li")).to_have_count(2, timeout=WAIT * 1000)
        await studio.get_by_label("Slow mode").select_option(label="10 s")
        await studio.get_by_role("button", name="Set slow mode").click()
        await expect(ann.locator("#slow-mode")).to_have_text("Slow mode: one message every 10 s.")
        await studio.get_by_role("button", name="Mute 5 min bob: Chào ann").click()
        await expect(bob.locator("#chat-closed")).to_have_text(
            "A moderator muted you for 5 min. You can still watch.", timeout=WAIT * 1000
        )
        await expect(bob.get_by_label("Message")).to_be_disabled()
        await expect(ann.get_by_label("Message")).to_be_enabled()

        await ann.get_by_role("button", name="Heart").click()
        await expect(bob.get_by_role("button", name="Heart")).to_have_text(
            re.compile(r"Heart [1-9]"), timeout=WAIT * 1000
        )
        assert await bob.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        await bob.screenshot(path=screenshots / "viewer-phone-buyer.png", full_page=True)
        await ann.screenshot(path=screenshots / "viewer-desktop.png", full_page=True)

        phone = await open_page(browser, origin, viewport=PHONE, clock=A_YEAR_AGO)
        await expect(phone.locator("#live a")).to_contain_text("Lên sóng", timeout=WAIT * 1000)
        await polled(phone, "() => document.querySelector('#live img')?.naturalWidth > 0")
        assert await phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        await phone.screenshot(path=screenshots / "home-phone.png", full_page=True)
        await phone.locator("#live a").click()
        await expect(phone.locator("#status")).to_have_text("Live", timeout=WAIT * 1000)
        await expect(phone.locator("#product-name")).to_have_text(EVIL)
        await expect(phone.locator("#flash-clock")).to_have_text(re.compile(r"Ends in [012]:\d\d"))
        await playing(phone, since=0)
        assert await phone.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        await phone.screenshot(path=screenshots / "viewer-phone.png", full_page=True)
        await studio.get_by_role("button", name="Unpin").click()
        for page in (ann, bob, phone):
            await expect(page.locator("#product")).to_be_hidden(timeout=WAIT * 1000)
        for page in (ann, bob, phone, studio):
            assert await page.evaluate("window.refused") == []
        assert await studio.evaluate("window.pwned") is None


async def test_a_session_made_in_the_studio_retries_plays_and_replays(
    api, pattern, tmp_path, screenshots, monkeypatch
):
    """The seller creates a session in the studio, reads OBS's key there and goes live by
    hand; nobody publishing yet, the viewer page says so plainly and asks again, later
    and later, until the stream comes and plays (in the studio's preview too); after
    it, the replay."""
    seller = await seller_with_shop(api, "seller@example.com")
    await create_product(
        api, seller["token"], seller["shop"]["id"], name="Áo khoác", base_price=100_000
    )
    origin = api.make_url("/").origin()
    async with (
        app_namespace(origin, monkeypatch) as namespace,
        chromium_browser(namespace, tmp_path) as browser,
    ):
        studio = await open_studio(browser, origin, "seller@example.com")
        await studio.get_by_label("Title").fill("Tối nay sale")
        await studio.get_by_label("Starts at").fill("2030-01-01T20:00")
        await studio.get_by_label("Áo khoác (100.000 ₫)").check()
        await studio.get_by_label("Live price of Áo khoác").fill("90000")
        await studio.get_by_role("button", name="Create").click()
        await expect(studio.get_by_role("heading", name="Tối nay sale")).to_be_focused()
        await expect(studio.locator("#obs-key")).not_to_contain_text(re.compile(r"\w"))
        await studio.get_by_role("button", name="Show key").click()
        first_key = await studio.locator("#obs-key").text_content()
        await studio.get_by_role("button", name="Rotate key").click()
        await expect(studio.locator("#obs-key")).not_to_have_text(first_key or "")
        key = await studio.locator("#obs-key").text_content()
        port = api.app[RTMP_SERVER].port
        assert await studio.locator("#obs-server").text_content() == f"rtmp://localhost:{port}/live"
        await studio.get_by_role("button", name="Go live now").click()
        await expect(studio.locator("#room-status")).to_have_text("live")
        live_id = (await studio.locator("#room-link").get_attribute("href")).split("/")[-1]
        whep = f"/api/live-sessions/{live_id}/whep"

        page = await open_viewer(browser, origin.with_path(f"/live/{live_id}"))
        await expect(page.locator("#video-status")).to_contain_text(
            "The stream has not started yet, or has paused. Trying again in",
            timeout=WAIT * 1000,
        )
        await page.wait_for_event(  # the next try, after the message
            "request", lambda request: request.url.endswith(whep), timeout=WAIT * 1000
        )
        async with publishing(api, pattern, key):
            await playing(page, since=0)
            await expect(page.locator("#video-status")).to_have_text("")
            await playing(studio, since=0)
            await expect(studio.locator("#health")).to_contain_text(
                "320\N{MULTIPLICATION SIGN}240", timeout=WAIT * 1000
            )
            await studio.get_by_role("button", name="Pin Áo khoác").click()
            await expect(page.locator("#product-price")).to_have_text(re.compile(r"^90\.000"))

        # The publisher left: the session ends, and its recording is offered with the
        # moment the product was pinned, shown at its regular price (no more live price).
        await expect(page.locator("#status")).to_have_text("Ended", timeout=WAIT * 1000)
        await expect(page.locator("#replay-video")).to_have_attribute(
            "src", re.compile(rf"^/api/live-sessions/{live_id}/recordings/.+\.mp4$")
        )
        await page.get_by_role("button", name=re.compile(r"· pinned Áo khoác$")).click()
        await expect(page.locator("#product-name")).to_have_text("Áo khoác")
        await expect(page.locator("#product-price")).to_have_text(re.compile(r"^100\.000"))
        await expect(page.locator("#product-regular")).to_have_text("")
        await polled(page, "() => document.querySelector('#replay-video').readyState >= 1")
        await page.screenshot(path=screenshots / "viewer-replay.png", full_page=True)


@contextlib.asynccontextmanager
async def publishing(api, source, key: str):
    """ffmpeg publishing `source` over RTMP, as OBS would, until the block ends."""
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, key)))
    try:
        yield
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher


async def buy_in_the_flash_sale(api, studio: Page, name: str, buyer: Page, watcher: Page) -> str:
    """The seller starts a flash sale in the studio; the buyer takes one and sees how to
    pay; the watcher sees one fewer left; Sepay's webhook arrives and the order shows
    paid. The order's code."""
    await studio.get_by_label("Product", exact=True).select_option(label=name)
    await studio.get_by_label("Flash price (VND)").fill("40000")
    await studio.get_by_label("Quantity").fill("2")
    await studio.get_by_label("Duration (seconds)").fill("120")
    await studio.get_by_role("button", name="Start the flash sale").click()
    await expect(buyer.locator("#flash-clock")).to_have_text(
        re.compile(r"Ends in [12]:\d\d"), timeout=WAIT * 1000
    )
    await expect(buyer.locator("#flash-left")).to_have_text("2 of 2 left")
    await buyer.get_by_role("button", name="Buy at the flash price").click()
    order = buyer.locator(".order")
    await expect(order.locator(".order-status")).to_have_text("Waiting for your transfer")
    qr = order.locator("img.qr")
    assert (await qr.get_attribute("src")).startswith("/api/payments/")
    await expect(qr).to_have_js_property("complete", True)
    assert await qr.evaluate("(img) => img.naturalWidth") > 0  # drawn here, and loaded
    code = await order.locator("dt:text-is('Transfer content') + dd").text_content()
    await expect(watcher.locator("#flash-left")).to_have_text("1 of 2 left", timeout=WAIT * 1000)
    paid = await webhook(api, transfer(f"thanh toan {code}", 40_000))
    assert paid.status == 200, await paid.text()
    await expect(order.locator(".order-status")).to_have_text(
        "Paid. Thank you!", timeout=WAIT * 1000
    )
    return (await order.locator("strong").text_content()) or ""


async def buy_now(page: Page, total: str) -> None:
    """Buy now on the pinned card, with the mouse: the order waits for its transfer."""
    await page.get_by_role("button", name="Buy now").click()
    order = page.locator(".order")
    await expect(order.locator(".order-status")).to_have_text(
        "Waiting for your transfer", timeout=WAIT * 1000
    )
    await expect(order.locator("dt:text-is('Total') + dd")).to_have_text(
        re.compile(rf"^{re.escape(total)}")
    )


async def buy_from_the_cart_with_the_keyboard(page: Page) -> None:
    """Tab to Add to cart, Enter; Tab to Check out, Enter: the order has the focus."""
    await tab_to(page, page.get_by_role("button", name="Add to cart"))
    await page.keyboard.press("Enter")
    await expect(page.locator("#cart-items li")).to_have_count(1, timeout=WAIT * 1000)
    await tab_to(page, page.get_by_role("button", name="Check out"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Pay by bank transfer")).to_be_focused(
        timeout=WAIT * 1000
    )
    await expect(page.locator(".order .order-status")).to_have_text("Waiting for your transfer")


async def tab_to(page: Page, target) -> None:
    """Press Tab until `target` has the focus (it must be reachable by keyboard)."""
    for _ in range(50):
        await page.keyboard.press("Tab")
        if await target.evaluate("(node) => node === document.activeElement"):
            return
    raise AssertionError(f"Tab never reaches {target}")


async def open_page(
    browser: Browser, url: URL, viewport: dict | None = None, clock: datetime | None = None
) -> Page:
    """`url` in a context of its own (cookies, storage), probed (PROBES); `clock` stops
    the device's clock there."""
    context = await browser.new_context(viewport=viewport)
    if clock is not None:
        await context.clock.set_fixed_time(clock)
    await context.grant_permissions(INTERFACE_PERMISSIONS, origin=str(url.origin()))
    await context.add_init_script(PROBES)
    page = await context.new_page()
    await page.goto(str(url))
    return page


async def open_studio(browser: Browser, origin: URL, email: str, title: str | None = None) -> Page:
    """The studio, signed in as the seller through its form; in the control room of the
    session `title` when given."""
    page = await open_page(browser, origin.with_path("/studio"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_label("Shop")).to_be_focused(timeout=WAIT * 1000)
    if title is not None:
        await page.get_by_role("button", name=re.compile(f"^{re.escape(title)} ·")).click()
        await expect(page.get_by_role("heading", name=title)).to_be_focused()
        await expect(page.locator("#room-status")).not_to_be_empty(timeout=WAIT * 1000)
    return page


async def open_viewer(
    browser: Browser, url: URL, email: str | None = None, viewport: dict | None = None
) -> Page:
    """The viewer page, signed in as `email` through the page's own form when given."""
    page = await open_page(browser, url, viewport=viewport)
    await expect(page.locator("#status")).to_have_text("Live", timeout=WAIT * 1000)
    if email is not None:
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#me")).to_have_text(email.split("@")[0])
        await expect(page.locator("#status")).to_have_text("Live")
    return page


async def pin_and_time(studio: Page, name: str, watchers: list[Page]) -> list[int]:
    """The seller pins `name` in the studio: the milliseconds from the click until each
    watcher's page shows its card (every page runs on this machine's clock)."""
    for page in watchers:
        await page.evaluate(CARD_SHOWN_AT, name)
    await studio.evaluate(CLICKED_AT)
    await studio.get_by_role("button", name=f"Pin {name}").click()
    clicked = await studio.evaluate("window.clickedAt")
    delays = []
    for page in watchers:
        delays.append(await polled(page, "window.cardShownAt") - clicked)
    return delays


async def unmute(page: Page) -> None:
    """Unmute: the video has its sound on and goes on playing."""
    await page.get_by_role("button", name="Unmute").click()
    await expect(page.get_by_role("button", name="Mute", exact=True)).to_be_visible()
    sound = await page.evaluate(
        "() => { const v = document.querySelector('#video'); return [v.muted, v.paused]; }"
    )
    assert sound == [False, False], sound


async def assert_shown_as_text(page: Page, where: str, text: str) -> None:
    """`text` shows in `where` as text: no element was made of it and no script ran."""
    await expect(page.locator(where).first).to_contain_text(text, timeout=WAIT * 1000)
    assert await page.locator(f"{where} script, {where} img").count() == 0
    assert await page.evaluate("window.pwned") is None


async def assert_plays(page: Page) -> None:
    """Video frames decoded, and still being decoded, a picture, audio arriving."""
    first = await playing(page, since=0)
    assert first["videoWidth"] == 320, first
    await playing(page, since=first["frames"])


async def playing(page: Page, since: int) -> dict:
    return await polled(page, PLAYING_JS, since, f"no new frames past {since}")


async def polled(page: Page, script: str, arg: Any = None, what: str = "") -> Any:
    """`script`'s first truthy answer, asked from here every 0.1 s. Not `wait_for_function`:
    its polling evaluates strings in the page, which the pages' CSP (no 'unsafe-eval')
    refuses, and it takes the Promise an async predicate returns (getStats()) as truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not (answer := await page.evaluate(script, arg)):
        assert loop.time() < deadline, f"{what or script}: not within {WAIT} s"
        await asyncio.sleep(0.1)
    return answer


async def say(page: Page, text: str) -> None:
    await page.get_by_label("Message").fill(text)
    await page.get_by_label("Message").press("Enter")
    await expect(page.get_by_label("Message")).to_have_value("", timeout=WAIT * 1000)


async def say_with_the_keyboard(page: Page, email: str, text: str) -> None:
    """A guest, keyboard only: the skip link to the chat, type, Enter; asked to sign
    in, the form has the focus; signed in, back to the message, Enter sends it."""
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to chat")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Message")).to_be_focused()
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Email")).to_be_focused()
    await page.keyboard.type(email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Message")).to_be_focused(timeout=WAIT * 1000)
    await expect(page.locator("#status")).to_have_text("Live")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Message")).to_have_value("", timeout=WAIT * 1000)


async def expect_message(page: Page, author: str, text: str) -> None:
    """The newest chat line is `author` saying `text`, as text (no markup ran)."""
    newest = page.locator("#messages li").last
    await expect(newest.locator("strong")).to_have_text(author, timeout=WAIT * 1000)
    await expect(newest.locator("span")).to_have_text(text)
    assert await page.locator("#messages script, #messages img").count() == 0
    assert await page.evaluate("window.pwned") is None
