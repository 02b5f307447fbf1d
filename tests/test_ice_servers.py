"""STUN/TURN servers handed to WebRTC viewers: URL parsing, TURN credentials (time-limited
as coturn's use-auth-secret checks them, or static), the WHEP `Link` headers, the
`GET /api/webrtc/ice-servers` endpoint, and that no credential reaches the logs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import shutil
import time
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aioice import stun, turn

from live.app import STREAMS, build_app
from live.http.metrics import Metrics
from live.http.middleware import make_middlewares
from media.registry import StreamRegistry
from signaling import WhepService
from signaling.ice_servers import (
    IceServer,
    IceServers,
    IceUrl,
    link_headers,
    parse_ice_url,
    split_list,
)
from signaling.routes import ICE_SERVERS, WHEP, routes
from tests.backends import IN_CI
from tests.netns_support import Coturn
from tests.test_auth import bearer, logged_in
from tests.test_whep import SESSION, Server
from tests.webrtc_support import DecodingViewer, free_webrtc_port, keep_ice_on_loopback

SECRET = "ice-test-secret-7f3a9c2e"  # distinctive, so a leak into the logs is found
TTL = 3600
URLS = (
    "stun:stun.example.net:3478, turn:turn.example.net:3478?transport=udp,"
    " turns:turn.example.net:5349?transport=tcp"
)
ICE_PATH = "/api/webrtc/ice-servers"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    keep_ice_on_loopback(monkeypatch)


# --- URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed", "canonical"),
    [
        ("stun:stun.example.net", IceUrl("stun", "stun.example.net"), None),
        ("stun:stun.example.net:3478", IceUrl("stun", "stun.example.net", 3478), None),
        ("stuns:stun.example.net:5349", IceUrl("stuns", "stun.example.net", 5349), None),
        ("STUN:203.0.113.7", IceUrl("stun", "203.0.113.7"), "stun:203.0.113.7"),
        ("turn:turn.example.net", IceUrl("turn", "turn.example.net"), None),
        (
            "turn:turn.example.net:3478?transport=udp",
            IceUrl("turn", "turn.example.net", 3478, "udp"),
            None,
        ),
        (
            "turns:turn.example.net?transport=TCP",
            IceUrl("turns", "turn.example.net", None, "tcp"),
            "turns:turn.example.net?transport=tcp",
        ),
        ("turn:[2001:DB8::1]:3478", IceUrl("turn", "2001:db8::1", 3478), "turn:[2001:db8::1]:3478"),
        ("stun:[::1]", IceUrl("stun", "::1"), None),
        ("turn:relay-1.eu.example.net.", IceUrl("turn", "relay-1.eu.example.net."), None),
    ],
)
def test_parses_stun_and_turn_urls(text, parsed, canonical):
    assert parse_ice_url(text) == parsed
    assert str(parse_ice_url(text)) == (canonical or text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("http://turn.example.net", "must start with stun:, stuns:, turn: or turns:"),
        ("turn.example.net:3478", "must start with stun:"),
        ("stun://stun.example.net", "without '//'"),
        ("stun:stun.example.net?transport=udp", "only for turn: and turns:"),
        ("turn:turn.example.net?transport=sctp", "?transport=udp or ?transport=tcp"),
        ("turn:turn.example.net?transport=udp&x=1", "?transport=udp or ?transport=tcp"),
        ("turn:turn.example.net?proto=udp", "?transport=udp or ?transport=tcp"),
        ("turn:turn.example.net?transport", "?transport=udp or ?transport=tcp"),
        ("turn:user:pw@turn.example.net", "user name does not go in the URL"),
        ("turn:turn.example.net:0", "port must be a number from 1 to 65535"),
        ("turn:turn.example.net:65536", "port must be a number from 1 to 65535"),
        ("turn:turn.example.net:", "port must be a number"),
        ("turn:turn.example.net:34x", "port must be a number"),
        ("stun:", "host is missing"),
        ("stun::3478", "host is missing"),
        ("turn:2001:db8::1", "IPv6 address goes in brackets"),
        ("turn:[2001:db8::1", "closing ']'"),
        ("turn:[not-ipv6]:3478", "not an IPv6 address"),
        ("turn:[::1]3478", "only ':port' may follow"),
        ("turn:203.0.113.300", "not an IPv4 address"),
        ("turn:turn example.net", "not a host name"),
        ("turn:-turn.example.net", "not a host name"),
        ("turn:turn_1.example.net", "not a host name"),
        ("turn:tùrn.example.net", "not a host name"),
    ],
)
def test_rejects_malformed_urls_naming_the_setting_and_the_entry(text, reason):
    with pytest.raises(ValueError) as raised:
        parse_ice_url(text)
    message = str(raised.value)
    assert message.startswith("STREAMCART_WEBRTC_ICE_SERVERS: ")
    assert repr(text) in message
    assert reason in message


def test_the_setting_is_split_on_commas():
    assert split_list("") == []
    assert split_list(" stun:a.example , ,turn:b.example?transport=tcp ,") == [
        "stun:a.example",
        "turn:b.example?transport=tcp",
    ]
    assert IceServers(URLS, secret=SECRET).urls == (
        "stun:stun.example.net:3478",
        "turn:turn.example.net:3478?transport=udp",
        "turns:turn.example.net:5349?transport=tcp",
    )
    assert IceServers("").for_viewer("u1").servers == ()
    with pytest.raises(ValueError, match=r"STREAMCART_WEBRTC_ICE_SERVERS: 'stun:ok\.example:x'"):
        IceServers("turn:turn.example.net, stun:ok.example:x", secret=SECRET)


# --- credentials --------------------------------------------------------------------------


def rest_credential(secret: str, username: str) -> str:
    """What coturn computes for a TURN REST username (use-auth-secret)."""
    return base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()


def test_time_limited_credentials_are_what_coturn_checks():
    ice = IceServers(URLS, secret=SECRET, ttl_seconds=TTL)
    now = 1_750_000_000.6
    issued = ice.for_viewer("0190a1b2-user", now=now)
    expiry = 1_750_000_000 + TTL
    assert issued.expires_at == datetime.fromtimestamp(expiry, UTC)
    stun, turn, turns = issued.servers
    assert stun == IceServer(("stun:stun.example.net:3478",))
    assert stun.username is None and stun.credential is None
    for server in (turn, turns):
        assert server.username == f"{expiry}:0190a1b2-user"
        timestamp, user_id = server.username.split(":", 1)
        assert int(timestamp) == expiry and user_id == "0190a1b2-user"
        assert server.credential == rest_credential(SECRET, server.username)
        assert hmac.compare_digest(
            base64.b64decode(server.credential),
            hmac.new(SECRET.encode(), server.username.encode(), hashlib.sha1).digest(),
        )
    assert turn.urls == ("turn:turn.example.net:3478?transport=udp",)
    assert turns.urls == ("turns:turn.example.net:5349?transport=tcp",)

    guest = ice.for_viewer(None, now=now).servers[1]
    assert guest.username == f"{expiry}:guest"
    assert guest.credential == rest_credential(SECRET, guest.username)
    assert ice.for_viewer("", now=now).servers[1] == guest
    other = ice.for_viewer("someone-else", now=now).servers[1]
    assert other.credential != turn.credential
    later = ice.for_viewer("0190a1b2-user", now=now + 60).servers[1]
    assert later.username == f"{expiry + 60}:0190a1b2-user"
    assert ice.per_viewer


def test_time_limited_credentials_default_to_now():
    ice = IceServers("turn:turn.example.net", secret=SECRET, ttl_seconds=TTL)
    before = int(time.time())
    issued = ice.for_viewer("u1")
    after = int(time.time())
    expiry = int(issued.servers[0].username.split(":")[0])
    assert before + TTL <= expiry <= after + TTL
    assert issued.expires_at == datetime.fromtimestamp(expiry, UTC)


def test_static_credentials_go_with_turn_urls_only():
    ice = IceServers(URLS, username="viewer", credential='pa ss"w\\rd')
    issued = ice.for_viewer("u1", now=1000)
    assert issued.expires_at is None
    assert issued.servers == (
        IceServer(("stun:stun.example.net:3478",)),
        IceServer(("turn:turn.example.net:3478?transport=udp",), "viewer", 'pa ss"w\\rd'),
        IceServer(("turns:turn.example.net:5349?transport=tcp",), "viewer", 'pa ss"w\\rd'),
    )
    assert ice.for_viewer(None) == issued  # the same for everyone
    assert not ice.per_viewer
    assert [server.as_rtc() for server in issued.servers] == [
        {"urls": ["stun:stun.example.net:3478"]},
        {
            "urls": ["turn:turn.example.net:3478?transport=udp"],
            "username": "viewer",
            "credential": 'pa ss"w\\rd',
        },
        {
            "urls": ["turns:turn.example.net:5349?transport=tcp"],
            "username": "viewer",
            "credential": 'pa ss"w\\rd',
        },
    ]


def test_the_secret_wins_over_static_credentials():
    ice = IceServers("turn:turn.example.net", secret=SECRET, username="viewer", credential="pw")
    server = ice.for_viewer("u1", now=0).servers[0]
    assert server.username == f"{TTL * 24}:u1"
    assert server.credential == rest_credential(SECRET, server.username)


def test_stun_only_needs_no_credentials():
    for ice in (IceServers("stun:stun.example.net"), IceServers(["stun:stun.example.net"])):
        issued = ice.for_viewer("u1", now=0)
        assert issued.servers == (IceServer(("stun:stun.example.net",)),)
        assert issued.expires_at is None
        assert issued.servers[0].as_rtc() == {"urls": ["stun:stun.example.net"]}
    with_secret = IceServers("stun:stun.example.net", secret=SECRET)
    assert with_secret.for_viewer("u1").servers[0].username is None
    assert with_secret.for_viewer("u1").expires_at is None  # nothing to expire
    assert not with_secret.per_viewer


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "STREAMCART_TURN_SECRET"),
        ({}, "STREAMCART_TURN_USERNAME and STREAMCART_TURN_CREDENTIAL"),
        ({"username": "viewer"}, "need credentials"),
        ({"credential": "pw"}, "need credentials"),
        ({"username": "viewer", "credential": "p\r\nw"}, "STREAMCART_TURN_CREDENTIAL may hold"),
        ({"username": "vi\x00ewer", "credential": "pw"}, "STREAMCART_TURN_USERNAME may hold"),
        ({"secret": SECRET, "ttl_seconds": 0}, "STREAMCART_TURN_CREDENTIAL_TTL"),
    ],
)
def test_turn_urls_without_usable_credentials_are_refused(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        IceServers("stun:stun.example.net, turn:turn.example.net", **options)


def test_half_static_credentials_are_refused_even_without_turn():
    with pytest.raises(ValueError, match="set both STREAMCART_TURN_USERNAME"):
        IceServers("stun:stun.example.net", username="viewer")


def test_no_repr_shows_a_credential():
    for ice in (
        IceServers(URLS, secret=SECRET),
        IceServers(URLS, username="static-user", credential="static-password"),
    ):
        issued = ice.for_viewer("u1")
        secrets_ = {SECRET, "static-user", "static-password"}
        secrets_ |= {s.credential for s in issued.servers if s.credential}
        secrets_ |= {s.username for s in issued.servers if s.username}
        shown = " ".join([repr(ice), repr(issued), str(issued), *map(repr, issued.servers)])
        assert "turn:turn.example.net:3478?transport=udp" in shown  # the URLs are shown
        assert "<hidden>" in shown
        for secret in secrets_:
            assert secret not in shown


@pytest.fixture
async def coturn(tmp_path):
    """Debian's turnserver on loopback, checking time-limited credentials against SECRET
    (the configuration docs/webrtc.md gives): its address."""
    if shutil.which("turnserver") is None:
        if IN_CI:
            pytest.fail("turnserver (Debian coturn) is not installed (required under CI=true)")
        pytest.skip("turnserver (Debian coturn) is not installed")
    address = ("127.0.0.1", free_webrtc_port())
    async with Coturn(None, tmp_path, SECRET, address) as server:
        yield server.address


async def allocates(address: tuple[str, int], server: IceServer) -> bool:
    """Whether the TURN server grants `server`'s credentials a relayed address."""
    try:
        relay, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol, address, server.username, server.credential
            ),
            5,
        )
    except stun.TransactionFailed as error:
        assert error.response.attributes["ERROR-CODE"][0] == 401
        return False
    relay.close()
    return True


async def test_coturn_accepts_the_time_limited_credentials(coturn):
    url = f"turn:{coturn[0]}:{coturn[1]}?transport=udp"
    ice = IceServers(url, secret=SECRET, ttl_seconds=TTL)
    assert await allocates(coturn, ice.for_viewer("0190a1b2-user").servers[0])
    assert await allocates(coturn, ice.for_viewer(None).servers[0])
    expired = ice.for_viewer("0190a1b2-user", now=time.time() - TTL - 60).servers[0]
    assert not await allocates(coturn, expired)
    other_secret = IceServers(url, secret="another-secret", ttl_seconds=TTL)
    assert not await allocates(coturn, other_secret.for_viewer("0190a1b2-user").servers[0])


# --- Link headers -------------------------------------------------------------------------

TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
LINK_VALUE = re.compile(rf'<([^>]*)>((?:\s*;\s*{TOKEN}\s*=\s*(?:"(?:[^"\\]|\\.)*"|{TOKEN}))*)')
LINK_PARAM = re.compile(rf'\s*;\s*({TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({TOKEN}))')


def parse_link(value: str) -> tuple[str, dict[str, str]]:
    """One RFC 8288 link-value: its target and its parameters (quoted-strings unescaped)."""
    match = LINK_VALUE.fullmatch(value)
    assert match is not None, f"not a link-value: {value!r}"
    params = {}
    for name, quoted, token in LINK_PARAM.findall(match.group(2)):
        assert name not in params
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted or not token else token
    return match.group(1), params


def test_link_headers_as_rfc_9725_writes_them():
    static = IceServers(
        "stun:stun.example.net, turn:turn.example.net?transport=udp",
        username="user",
        credential="pw",
    )
    assert link_headers(static.for_viewer(None).servers) == [
        '<stun:stun.example.net>; rel="ice-server"',
        '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; '
        'credential="pw"; credential-type="password"',
    ]


def test_link_headers_parse_back_with_quotes_and_backslashes():
    awkward = 'a "quoted" pass\\word; rel=x, <evil>'
    servers = IceServers(URLS, username="us;er", credential=awkward).for_viewer(None).servers
    links = [parse_link(value) for value in link_headers(servers)]
    assert links == [
        ("stun:stun.example.net:3478", {"rel": "ice-server"}),
        (
            "turn:turn.example.net:3478?transport=udp",
            {
                "rel": "ice-server",
                "username": "us;er",
                "credential": awkward,
                "credential-type": "password",
            },
        ),
        (
            "turns:turn.example.net:5349?transport=tcp",
            {
                "rel": "ice-server",
                "username": "us;er",
                "credential": awkward,
                "credential-type": "password",
            },
        ),
    ]


def test_one_link_per_url_of_a_server():
    server = IceServer(("turn:a.example", "turn:b.example?transport=tcp"), "u", "c")
    assert [parse_link(link)[0] for link in link_headers([server])] == [
        "turn:a.example",
        "turn:b.example?transport=tcp",
    ]


# --- WHEP and the endpoint on a WHEP app ---------------------------------------------------


@pytest.fixture
async def whep_app(aiohttp_client):
    """Like tests/test_whep.py's server, with (or without) ICE servers in the app."""
    made: list[tuple[StreamRegistry, WhepService]] = []

    async def make(ice: IceServers | None) -> Server:
        registry = StreamRegistry()
        service = WhepService(registry.get, max_viewers=10)
        app = web.Application(middlewares=make_middlewares(Metrics()))
        app[WHEP] = service
        if ice is not None:
            app[ICE_SERVERS] = ice
        routes.add_to(app)
        made.append((registry, service))
        return Server(await aiohttp_client(app), service, registry)

    yield make
    for registry, service in made:
        registry.close_all()
        await service.close_all()


async def test_whep_answer_carries_one_link_per_server(whep_app):
    server = await whep_app(IceServers(URLS, secret=SECRET, ttl_seconds=TTL))
    server.open_stream()
    viewer = DecodingViewer()
    try:
        before = int(time.time())
        response = await server.post_offer(await viewer.offer())
        assert response.status == 201, await response.text()
        assert response.headers["Location"].startswith(f"/api/live-sessions/{SESSION}/whep/")
        links = [parse_link(value) for value in response.headers.getall("Link")]
        assert [target for target, _ in links] == [
            "stun:stun.example.net:3478",
            "turn:turn.example.net:3478?transport=udp",
            "turns:turn.example.net:5349?transport=tcp",
        ]
        assert links[0][1] == {"rel": "ice-server"}
        for _, params in links[1:]:
            assert params["rel"] == "ice-server"
            assert params["credential-type"] == "password"
            expiry, user = params["username"].split(":", 1)
            assert user == "guest"
            assert before + TTL <= int(expiry) <= int(time.time()) + TTL
            assert params["credential"] == rest_credential(SECRET, params["username"])
        assert "v=0" in await response.text()  # still the SDP answer
    finally:
        await viewer.close()


async def test_without_ice_servers_there_is_nothing_to_hand_out(whep_app):
    server = await whep_app(None)
    server.open_stream()
    viewer = DecodingViewer()
    try:
        response = await server.post_offer(await viewer.offer())
        assert response.status == 201, await response.text()
        assert "Link" not in response.headers
    finally:
        await viewer.close()
    response = await server.http.get(ICE_PATH)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {"ice_servers": [], "expires_at": None}


async def test_endpoint_with_static_credentials(whep_app):
    server = await whep_app(IceServers(URLS, username="viewer", credential="pw"))
    response = await server.http.get(ICE_PATH, headers=bearer("not-checked-here"))
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "ice_servers": [
            {"urls": ["stun:stun.example.net:3478"]},
            {
                "urls": ["turn:turn.example.net:3478?transport=udp"],
                "username": "viewer",
                "credential": "pw",
            },
            {
                "urls": ["turns:turn.example.net:5349?transport=tcp"],
                "username": "viewer",
                "credential": "pw",
            },
        ],
        "expires_at": None,
    }


# --- the whole app ------------------------------------------------------------------------


@pytest.fixture
def sql_url(tmp_path) -> str:
    """ICE servers touch no database: the whole app runs on SQLite only here."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def api_settings() -> dict:
    return {"webrtc_ice_servers": URLS, "turn_secret": SECRET, "turn_credential_ttl": TTL}


def expected_body(secret: str, expiry: int, user: str) -> dict:
    username = f"{expiry}:{user}"
    credential = rest_credential(secret, username)
    return {
        "ice_servers": [
            {"urls": ["stun:stun.example.net:3478"]},
            {
                "urls": ["turn:turn.example.net:3478?transport=udp"],
                "username": username,
                "credential": credential,
            },
            {
                "urls": ["turns:turn.example.net:5349?transport=tcp"],
                "username": username,
                "credential": credential,
            },
        ],
        "expires_at": datetime.fromtimestamp(expiry, UTC).isoformat().replace("+00:00", "Z"),
    }


async def get_ice_servers(api, **headers) -> tuple[dict, int]:
    """The endpoint's JSON and the expiry it must carry (read from its username)."""
    before = int(time.time())
    response = await api.get(ICE_PATH, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    expiry = int(body["ice_servers"][1]["username"].split(":")[0])
    assert before + TTL <= expiry <= int(time.time()) + TTL
    return body, expiry


async def test_endpoint_for_a_guest(api):
    body, expiry = await get_ice_servers(api)
    assert body == expected_body(SECRET, expiry, "guest")
    assert datetime.fromisoformat(body["expires_at"]) == datetime.fromtimestamp(expiry, UTC)


async def test_endpoint_for_a_logged_in_user(api):
    login = await logged_in(api)
    user_id = login["user"]["id"]
    body, expiry = await get_ice_servers(api, **bearer(login["access_token"]))
    assert body == expected_body(SECRET, expiry, user_id)

    # a bad token is not refused (watching needs no login): a guest's credentials
    body, expiry = await get_ice_servers(api, **bearer(login["access_token"] + "x"))
    assert body == expected_body(SECRET, expiry, "guest")


async def whep_links_as(api, token: str, live_id: str = "live-ice") -> list[dict[str, str]]:
    """The parameters of each Link header of a 201 answer to a viewer with `token`."""
    api.app[STREAMS].open(live_id)
    viewer = DecodingViewer()
    try:
        response = await api.post(
            f"/api/live-sessions/{live_id}/whep",
            data=(await viewer.offer()).encode(),
            headers={"Content-Type": "application/sdp", **bearer(token)},
        )
        assert response.status == 201, await response.text()
        return [parse_link(value)[1] for value in response.headers.getall("Link")]
    finally:
        await viewer.close()
        api.app[STREAMS].close_all()


async def test_whep_link_carries_the_logged_in_viewers_id(api):
    login = await logged_in(api)
    turn = (await whep_links_as(api, login["access_token"]))[1]
    assert turn["username"].split(":", 1)[1] == login["user"]["id"]
    assert turn["credential"] == rest_credential(SECRET, turn["username"])


async def test_openapi_documents_the_endpoint(api):
    spec = await (await api.get("/openapi.json")).json()
    operation = spec["paths"][ICE_PATH]["get"]
    assert operation["tags"] == ["webrtc"]
    assert "security" not in operation  # open to guests
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"ice_servers", "expires_at"}
    item = schema["properties"]["ice_servers"]["items"]["$ref"].rsplit("/", 1)[1]
    rtc = spec["components"]["schemas"][item]
    assert set(rtc["properties"]) == {"urls", "username", "credential"}
    assert rtc["required"] == ["urls"]
    whep = spec["paths"]["/api/live-sessions/{live_session_id}/whep"]["post"]
    assert 'rel="ice-server"' in whep["description"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"webrtc_ice_servers": "stun:ok.example, turn://bad.example"}, "'turn://bad.example'"),
        ({"webrtc_ice_servers": "turn:turn.example.net"}, "STREAMCART_TURN_SECRET"),
    ],
)
def test_bad_settings_stop_the_app_from_starting(settings_for, sql_url, settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_app(settings_for(sql_url, **settings))


def leaked(records: list[logging.LogRecord], secrets_: set[str]) -> list[str]:
    found = []
    for record in records:
        text = f"{record.getMessage()} {vars(record)!r}"
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        found += [f"{record.name}: {s}" for s in secrets_ if s in text]
    return found


async def test_no_secret_or_credential_is_logged(api, caplog):
    caplog.set_level(logging.DEBUG)
    login = await logged_in(api)
    links = await whep_links_as(api, login["access_token"], "live-logs")
    guest, _ = await get_ice_servers(api)
    user, _ = await get_ice_servers(api, **bearer(login["access_token"]))
    issued = {link["credential"] for link in links if "credential" in link}
    for body in (guest, user):
        issued |= {server["credential"] for server in body["ice_servers"] if "credential" in server}
    assert len(issued) >= 2  # the viewer's and the guest's at least
    messages = [record.getMessage() for record in caplog.records]
    assert any("/api/live-sessions/live-logs/whep 201" in m for m in messages)
    assert any(f"{ICE_PATH} 200" in m for m in messages)
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    assert leaked(caplog.records, {SECRET, *issued}) == []
    # the check itself sees a credential wherever a record carries it
    probe = logging.LogRecord("probe", logging.INFO, __file__, 1, "%s", (SECRET,), None)
    assert leaked([probe], {SECRET}) == ["probe: " + SECRET]
