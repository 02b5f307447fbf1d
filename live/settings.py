"""Settings: one immutable object read from `STREAMCART_*` environment variables.

Every field documents its default; `streamcart config` prints the table the README
shows. With no variable set, everything runs embedded in one process.
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
    rtmp_port: int = _setting(1935, "RTMP ingest port (OBS 'Server'); 0 = any free port.")
    stream_grace_period: float = _setting(
        30.0, "Seconds a session stays live after its publisher leaves (OBS reconnects)."
    )
    webrtc_max_viewers: int = _setting(
        250, "WebRTC viewers one server process accepts before answering 503."
    )
    webrtc_udp_port: int = _setting(
        8189,
        "UDP port all WebRTC peers of this process share (ICE, DTLS, SRTP); 0 = an "
        "ephemeral port per peer, offered on interface addresses only.",
    )
    webrtc_tcp_port: int = _setting(
        8189, "TCP port for ICE-TCP (passive candidates) where UDP is blocked; 0 = off."
    )
    webrtc_public_hosts: str = _setting(
        "",
        "Comma-separated IPs or host names (resolved at start) offered to viewers as host "
        "candidates on the WebRTC ports.",
    )
    webrtc_interface_candidates: bool = _setting(
        True,
        "Also offer this machine's interface addresses (never loopback or link-local).",
    )
    webrtc_pacing: bool = _setting(
        True,
        "Spread each video frame's packets over time (at 2.5 times the stream's bitrate) "
        "instead of sending a keyframe as one burst.",
    )
    webrtc_ice_servers: str = _setting(
        "",
        "Comma-separated stun:/turn:/turns: URLs handed to viewers (WHEP Link headers, "
        "GET /api/webrtc/ice-servers).",
    )
    turn_secret: str = _setting(
        "",
        "Shared secret for time-limited TURN credentials (coturn use-auth-secret); "
        "wins over the static ones.",
    )
    turn_username: str = _setting("", "Static TURN username handed out with turn: URLs.")
    turn_credential: str = _setting("", "Static TURN password handed out with turn: URLs.")
    turn_credential_ttl: int = _setting(
        86400, "Seconds a time-limited TURN credential stays valid."
    )
    replica_url: str = _setting(
        "",
        "URL other replicas reach this one's HTTP port at, to pull the streams it ingests "
        "for their viewers; empty = http://127.0.0.1:<http port>.",
    )
    relay_idle_seconds: float = _setting(
        5.0, "Seconds a replica keeps pulling another's stream after its last viewer left."
    )
    record_streams: bool = _setting(True, "Record every live stream to MP4 in the data dir.")
    stream_health_interval: float = _setting(
        3.0, "Seconds between stream:health pushes to the seller."
    )
    data_dir: Path = _setting(  # noqa: RUF009 (Path is immutable)
        Path("./data"),
        "SQLite file, recordings and generated secrets live here.",
    )
    database_url: str = _setting(
        "", "SQLAlchemy URL; empty = SQLite file in the data dir. postgresql://... uses asyncpg."
    )
    redis_url: str = _setting("", "Redis URL for cache, pub/sub and Socket.IO; empty = in-process.")
    redis_prefix: str = _setting(
        "streamcart:",
        "Prefix of every Redis key and channel, so deployments or test runs can share a Redis.",
    )
    database_pool_size: int = _setting(
        10, "PostgreSQL connections per process: up to 3 x this, opened on demand and kept."
    )
    amqp_url: str = _setting("", "RabbitMQ URL for the event bus; empty = in-process bus.")
    mongo_url: str = _setting("", "MongoDB URL for documents; empty = documents in SQL.")
    mongo_database: str = _setting("streamcart", "MongoDB database name.")
    jwt_secret: str = _setting(
        "", "HS256 secret for access tokens; empty = generated and kept in the data dir."
    )
    access_token_ttl: int = _setting(900, "Access token lifetime in seconds.")
    refresh_token_ttl: int = _setting(30 * 24 * 3600, "Refresh token lifetime in seconds.")
    password_time_cost: int = _setting(3, "argon2id passes per password hash.")
    password_memory_kib: int = _setting(
        65536, "argon2id memory per password hash, KiB (raise on big servers)."
    )
    login_max_failures_per_account: int = _setting(
        5, "Login attempts per account within the window before 429 (a success resets it)."
    )
    login_max_failures_per_ip: int = _setting(
        20,
        "Login attempts per client IP within the window before 429, counting those in"
        " flight (each success gives its attempt back).",
    )
    login_failure_window: int = _setting(900, "Login failure window in seconds.")
    sepay_api_key: str = _setting("", "Sepay webhook API key (header 'Authorization: Apikey').")
    sepay_account: str = _setting("", "Bank account number shown in VietQR codes.")
    sepay_bank: str = _setting("", "Bank short name for VietQR codes (e.g. MBBank).")
    shop_approval_required: bool = _setting(
        False, "New shops stay pending until an admin approves them."
    )
    payment_window: int = _setting(
        900, "Seconds a bank-transfer order waits for payment before it expires."
    )
    sweep_interval: float = _setting(5.0, "Seconds between sweeps for expired unpaid orders.")
    flash_pending_seconds: float = _setting(
        30.0,
        "Seconds after which a flash-sale claim won but never written (its process died)"
        " goes back to the sale.",
    )
    public_url: str = _setting(
        "", "Public base URL (e.g. https://shop.example); empty = http://localhost:<port>."
    )
    max_body_bytes: int = _setting(1024 * 1024, "Largest accepted HTTP request body.")
    log_format: str = _setting("auto", "auto (JSON unless a terminal), json or text.")
    log_level: str = _setting("INFO", "Python log level.")
    trust_forwarded: bool = _setting(
        False, "Take the client IP from X-Forwarded-For (only behind a trusted proxy)."
    )
    shutdown_timeout: float = _setting(10.0, "Seconds to finish requests on SIGTERM.")

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
    def rtmp_url(self) -> str:
        """What OBS calls "Server": the public host on the RTMP port, application `live`."""
        return self.rtmp_url_on(self.rtmp_port)

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
        """(variable, default, description) for every setting."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default
            shown = "(empty)" if default == "" else str(default)
            rows.append((PREFIX + f.name.upper(), shown, f.metadata["doc"]))
        return rows


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
