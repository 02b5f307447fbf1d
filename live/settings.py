"""Settings: one immutable object read from `STREAMCART_*` environment variables.

Every field documents its default; `streamcart config` prints them, and
`streamcart config --markdown` the README's table. With no variable set, everything
runs embedded in one process.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "STREAMCART_"


def _setting(default, doc: str):
    """A field with its documentation attached, for `streamcart config` and the README."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    http_host: str = _setting("0.0.0.0", "Address the HTTP server listens on.")  # noqa: S104
    http_port: int = _setting(8080, "HTTP port (REST, Socket.IO, WHEP, Swagger UI).")
    rtmp_host: str = _setting("0.0.0.0", "Address the RTMP ingest listens on.")  # noqa: S104
    rtmp_port: int = _setting(1935, 'RTMP ingest port (OBS "Server"); 0 = any free port.')
    stream_grace_period: float = _setting(
        30.0,
        "Seconds a session stays live after its publisher leaves, so a reconnecting OBS "
        "resumes it.",
    )
    webrtc_max_viewers: int = _setting(
        600,
        "WebRTC viewers one server process accepts; past it WHEP answers 503. One core "
        "carried 679 - 798 viewers of a 720p30 2 Mbps stream, paced on the shared port "
        "as `streamcart serve` sends, at 100 viewers (`bench/webrtc_fanout.py`, "
        "2026-12-03: its newest run at that load; the 2026-12-04 run, a WHIP source "
        "beside RTMP on a loaded machine, held delivery only up to 50); the default "
        "stays under that, leaving the process room for chat, checkouts and the "
        "stream's ingest and transcoding.",
    )
    webrtc_udp_port: int = _setting(
        8189,
        "UDP port every WebRTC peer of the process shares (ICE, DTLS, SRTP); open it to "
        "viewers. 0 = an ephemeral port per peer on interface addresses (tests).",
    )
    webrtc_tcp_port: int = _setting(
        8189,
        "TCP port for ICE-TCP (passive candidates, RFC 6544) for viewers whose network "
        "blocks UDP; 0 = off.",
    )
    webrtc_public_hosts: str = _setting(
        "",
        "Comma-separated IPs or host names (resolved at start) offered to viewers as host "
        "candidates on those ports: the address viewers reach this replica at (behind "
        "NAT, its public address).",
    )
    webrtc_interface_candidates: bool = _setting(
        True,
        "Also offer the machine's interface addresses (never loopback or link-local); "
        "turn off when only the public hosts are reachable.",
    )
    webrtc_pacing: bool = _setting(
        True,
        "Spread each video frame's packets over time (at 2.5 times the stream's bitrate) "
        "instead of sending a keyframe as one burst that a viewer's link or browser may "
        "drop; see `docs/webrtc.md`.",
    )
    webrtc_ice_servers: str = _setting(
        "",
        "Comma-separated `stun:`, `turn:` and `turns:` URLs handed to viewers in the WHEP "
        "answer's `Link` headers and by `GET /api/webrtc/ice-servers`.",
    )
    turn_secret: str = _setting(
        "",
        "Shared secret for time-limited TURN credentials (the TURN REST scheme of "
        "coturn's `use-auth-secret`); wins over the static ones. Never logged.",
    )
    turn_username: str = _setting("", "Static TURN username handed out with `turn:`/`turns:` URLs.")
    turn_credential: str = _setting(
        "", "Static TURN password handed out with `turn:`/`turns:` URLs. Never logged."
    )
    turn_credential_ttl: int = _setting(
        86400, "Seconds a time-limited TURN credential stays valid."
    )
    replica_url: str = _setting(
        "",
        "URL the other replicas reach this one's HTTP port at (e.g. `http://app1:8080`): "
        "a WHEP viewer on any replica is served there, that replica pulling the stream "
        "from the one that ingests it. Empty = `http://127.0.0.1:<http port>` (replicas "
        "on one machine). Replicas must share `STREAMCART_JWT_SECRET` and Redis.",
    )
    relay_idle_seconds: float = _setting(
        5.0,
        "Seconds a replica keeps pulling another's stream after its last viewer of it left.",
    )
    record_streams: bool = _setting(
        True,
        "Record every live stream to MP4 (no re-encode) under `recordings/` in the data dir.",
    )
    hls_part_hold_back: float = _setting(
        3.0,
        "LL-HLS PART-HOLD-BACK in parts (0.5 s each): how far behind the live edge players "
        "hold. 3 is what the HLS specification recommends, 2 the least it allows; 2 took "
        "hls.js 0.15 - 0.55 s closer to live (`bench/hls.py`, 2026-12-04).",
    )
    stream_health_interval: float = _setting(
        3.0, "Seconds between `stream:health` pushes to the seller."
    )
    data_dir: Path = _setting(  # noqa: RUF009 (Path is immutable)
        Path("./data"),
        "SQLite file, recordings and generated secrets live here.",
    )
    database_url: str = _setting(
        "",
        "SQLAlchemy URL; empty = SQLite file in the data dir. `postgresql://...` uses asyncpg.",
    )
    redis_url: str = _setting("", "Redis for cache, pub/sub and Socket.IO; empty = in-process.")
    redis_prefix: str = _setting(
        "streamcart:",
        "Prefix of every Redis key and channel (cache, pub/sub, Socket.IO), so deployments "
        "or test runs can share one Redis.",
    )
    database_pool_size: int = _setting(
        10,
        "PostgreSQL connections per process: up to 4 x this (3 x for SQLAlchemy, 1 x for "
        "the express checkout and the bus's idempotency records), opened on demand and "
        "kept once opened; keep replicas x 4 x this under the server's `max_connections`.",
    )
    amqp_url: str = _setting("", "RabbitMQ for the event bus; empty = in-process bus.")
    mongo_url: str = _setting(
        "",
        "MongoDB for documents (chat history, chat bans and blocked words); empty = SQL.",
    )
    mongo_database: str = _setting("streamcart", "MongoDB database name.")
    jwt_secret: str = _setting(
        "",
        "HS256 secret (32+ bytes); empty = generated once into the data dir, with a "
        "warning. Set it when running more than one server.",
    )
    access_token_ttl: int = _setting(900, "Access token lifetime, seconds.")
    refresh_token_ttl: int = _setting(30 * 24 * 3600, "Refresh token lifetime, seconds.")
    password_time_cost: int = _setting(3, "argon2id passes per password hash.")
    password_memory_kib: int = _setting(
        65536, "argon2id memory per hash, KiB; older hashes are upgraded at login."
    )
    login_max_failures_per_account: int = _setting(
        5, "Login attempts per account in the window before 429 (a success resets it)."
    )
    login_max_failures_per_ip: int = _setting(
        20,
        "Login attempts per client IP in the window before 429, counting those in flight "
        "(each success gives its attempt back).",
    )
    login_failure_window: int = _setting(900, "Login failure window, seconds.")
    smtp_host: str = _setting(
        "", "SMTP server for email (password reset, codes, notifications); empty = no email."
    )
    smtp_port: int = _setting(587, "SMTP server port.")
    smtp_username: str = _setting("", "SMTP login; empty = no authentication.")
    smtp_password: str = _setting("", "SMTP password. Never logged.")
    smtp_from: str = _setting("Stream Cart <no-reply@localhost>", "Sender of every mail.")
    smtp_starttls: bool = _setting(True, "Upgrade the SMTP connection with STARTTLS.")
    smtp_retry_seconds: float = _setting(
        10.0,
        "Seconds before a mail the SMTP server did not take is tried again; each further "
        "try waits twice as long, at most an hour.",
    )
    vapid_subject: str = _setting(
        "",
        "Contact that push services see in the VAPID claim (`mailto:` or `https:` URL); "
        "empty = web push off. See `docs/notifications.md`.",
    )
    vapid_private_key: str = _setting(
        "",
        "VAPID private key (base64url of the raw P-256 key, as `web-push "
        "generate-vapid-keys` prints it); empty = generated once into the data dir. Set "
        "it when running more than one server. Never logged.",
    )
    webpush_allow_loopback_http: bool = _setting(
        False,
        "Accept `http://` push endpoints on loopback addresses (tests only); browsers' "
        "push services are always `https://`.",
    )
    notification_retention_days: int = _setting(
        90,
        "Days an in-app notification is kept after it is stored; every server deletes "
        "older ones (a few batches a minute). 0 = kept forever. See `docs/notifications.md`.",
    )
    sepay_api_key: str = _setting("", "Sepay webhook key (`Authorization: Apikey <key>`).")
    sepay_account: str = _setting("", "Bank account number shown in VietQR codes.")
    sepay_bank: str = _setting(
        "",
        "Bank of that account for VietQR codes: its short name as Sepay and VietQR spell it "
        "(e.g. `MBBank`) or its 6-digit NAPAS BIN (e.g. `970422`).",
    )
    shop_approval_required: bool = _setting(
        False, "New shops stay pending until an admin approves them."
    )
    payment_window: int = _setting(
        900,
        "Seconds a bank-transfer order waits for payment before it expires and its stock returns.",
    )
    sweep_interval: float = _setting(5.0, "Seconds between sweeps for expired unpaid orders.")
    flash_pending_seconds: float = _setting(
        30.0,
        "Seconds after which a flash-sale claim won but never written (its process died) "
        "goes back to the sale.",
    )
    public_url: str = _setting("", "Public base URL; empty = `http://localhost:<port>`.")
    max_body_bytes: int = _setting(1024 * 1024, "Largest accepted request body (413 above).")
    log_format: str = _setting("auto", "`json`, `text`, or `auto` (JSON unless a terminal).")
    log_level: str = _setting("INFO", "Python log level.")
    trust_forwarded: bool = _setting(
        False, "Take the client IP from `X-Forwarded-For` (only behind a trusted proxy)."
    )
    shutdown_timeout: float = _setting(10.0, "Seconds to finish in-flight requests on SIGTERM.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Build settings from the environment; overrides win (used by tests)."""
        env = os.environ if env is None else env
        values = {}
        for f in dataclasses.fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw)
        values.update(overrides)
        return cls(**values)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://localhost:{self.http_port}").rstrip("/")

    @property
    def effective_replica_url(self) -> str:
        return (self.replica_url or f"http://127.0.0.1:{self.http_port}").rstrip("/")

    @property
    def rtmp_url(self) -> str | None:
        """What OBS calls "Server": the public host on the RTMP port, application `live`;
        None when the port is 0, chosen only as the server starts (a live session's
        `stream.server_url` then has it)."""
        return self.rtmp_url_on(self.rtmp_port) if self.rtmp_port else None

    def rtmp_url_on(self, port: int) -> str:
        """The same on the port actually bound (the setting may say 0: any free port)."""
        host = self.effective_public_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        return f"rtmp://{host}:{port}/live"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streamcart.sqlite3').resolve()}"

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """(variable, default, description) for every setting; the default as the
        variable would be written, so setting it to that changes nothing."""
        return [
            (PREFIX + f.name.upper(), _shown(f.default), f.metadata["doc"])
            for f in dataclasses.fields(cls)
        ]


EMPTY = "(empty)"


def markdown_table() -> str:
    """The README's settings table (`streamcart config --markdown`), so it cannot drift
    from the fields: tests/test_settings_docs.py compares the two."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, default, doc in Settings.documented():
        shown = default if default == EMPTY else f"`{default}`"
        lines.append(f"| `{name}` | {shown} | {doc} |")
    return "\n".join(lines) + "\n"


def _shown(default) -> str:
    if default == "":
        return EMPTY
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, Path) and not default.is_absolute():
        return os.path.join(".", default)
    return str(default)


def _parse(f: dataclasses.Field, raw: str):
    kind = type(f.default)
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{PREFIX}{f.name.upper()}: expected true/false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{PREFIX}{f.name.upper()}: expected a number, got {raw!r}") from None
    if isinstance(f.default, Path):
        return Path(raw)
    return raw
