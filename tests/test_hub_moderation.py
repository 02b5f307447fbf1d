"""A muted or banned viewer hears of it at once, with real Socket.IO clients: the mute or
ban (and its end) reaches every socket of that user, joined to the session or not, on
whichever server process they are, and nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.hub_support import Socket, joining, one_stream_on_two
from tests.test_hub import chat, joined
from tests.test_hub_scaleout import apps

__all__ = ["apps"]  # two server processes, a fixture of the scale-out tests

ON_SQLITE = pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
MUTE_SECONDS = 300


async def nobody_else_heard(seller: Socket, others: list[Socket], live_id: str) -> None:
    """A room message sent after the moderation reaches each of `others` after anything
    the moderation would have sent them: they got no moderation event."""
    text = f"after {datetime.now(UTC).isoformat()}"
    await seller.ok("chat:send", chat(live_id, text))
    for socket in others:
        await socket.wait_for("chat:message", lambda message: message["text"] == text)
        for event in ("chat:muted", "chat:banned", "chat:unbanned"):
            assert socket.received(event) == [], event


@ON_SQLITE
async def test_a_mute_and_its_end_reach_every_socket_of_the_muted_user(connect, show, ann, bob):
    live_id = show["live_id"]
    watching, _ = await joined(connect, live_id, ann["token"])
    other_tab = await connect(ann["token"])  # signed in, not watching this session
    bob_watching, _ = await joined(connect, live_id, bob["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    mute = {"live_session_id": live_id, "user_id": ann["user"]["id"], "seconds": MUTE_SECONDS}

    before = datetime.now(UTC)
    await seller.ok("chat:mute", mute)
    after = datetime.now(UTC)
    for socket in (watching, other_tab):
        notice = await socket.wait_for("chat:muted")
        assert notice["live_session_id"] == live_id and notice["seconds"] == MUTE_SECONDS
        until = datetime.fromisoformat(notice["until"])
        assert before + timedelta(seconds=MUTE_SECONDS) <= until
        assert until <= after + timedelta(seconds=MUTE_SECONDS)
    await watching.refused("chat:send", chat(live_id, "hello?"), "muted")

    await seller.ok("chat:mute", {**mute, "seconds": 0})
    lifted = {"live_session_id": live_id, "seconds": 0, "until": None}
    for socket in (watching, other_tab):
        assert await socket.wait_for("chat:muted") == lifted
    await watching.ok("chat:send", chat(live_id, "thanks"))
    await nobody_else_heard(seller, [bob_watching, seller], live_id)


@ON_SQLITE
async def test_a_ban_and_its_end_reach_the_banned_user_naming_the_shop(connect, show, ann, bob):
    live_id = show["live_id"]
    watching, _ = await joined(connect, live_id, ann["token"])
    bob_watching, _ = await joined(connect, live_id, bob["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    ban = {"live_session_id": live_id, "user_id": ann["user"]["id"]}
    notice = {"live_session_id": live_id, "shop_id": show["shop"]["id"]}

    await seller.ok("chat:ban", ban)
    assert await watching.wait_for("chat:banned") == notice
    await watching.refused("chat:send", chat(live_id, "let me talk"), "banned")
    await seller.ok("chat:unban", ban)
    assert await watching.wait_for("chat:unbanned") == notice
    await watching.ok("chat:send", chat(live_id, "sorry"))
    await nobody_else_heard(seller, [bob_watching], live_id)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)
async def test_a_ban_on_one_process_reaches_the_viewer_on_another(apps, opened):
    a, b = apps
    shared = await one_stream_on_two(a, b, opened)
    live_id = shared.show["live_id"]
    ban = {"live_session_id": live_id, "user_id": shared.ann["user"]["id"]}
    await shared.seller_b.ok("chat:ban", ban)
    banned = await shared.viewer_a.wait_for("chat:banned")
    assert banned == {"live_session_id": live_id, "shop_id": shared.show["shop"]["id"]}
    await shared.viewer_a.refused("chat:send", chat(live_id, "from A"), "banned")
    await shared.viewer_a.ok("session:leave", joining(live_id))  # not watching: still told
    await shared.seller_b.ok("chat:unban", ban)
    await shared.viewer_a.wait_for("chat:unbanned")
