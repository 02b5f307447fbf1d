"""Real `streamcart serve` processes for tests.

Each server runs on a free port of 127.0.0.1 with the environment a test gives it, counts
as started once /readyz answers, writes its output to a file (whose end explains a
failure) and is always stopped: SIGTERM, then SIGKILL if it does not exit in time, even
when the test fails or is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from commerce.accounts.auth import ACCOUNTS
from commerce.accounts.models import Role
from live import stack_dumps
from tests.backends import REDIS_URL, require
from tests.test_auth import register
from tests.webrtc_support import loopback_webrtc_settings

HOST = "127.0.0.1"
STREAMCART = [sys.executable, "-m", "live.cli"]
READY_WITHIN = 30.0
STOP_WITHIN = 15.0
DUMP_WITHIN = 1.0
STUCK_TAIL = 200  # lines of a killed server's log: its stack dumps
POLL_EVERY = 0.1
PROBE = aiohttp.ClientTimeout(total=1.0)
EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(: |$)")  # how a traceback names what was raised


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any `STREAMCART_*` of the developer's, plus a
    data dir of its own under `tmp_path`, JSON logs and any free RTMP port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCART_")}
    env.update(
        STREAMCART_DATA_DIR=str(tmp_path / "data"),
        STREAMCART_LOG_FORMAT="json",
        STREAMCART_RTMP_PORT="0",  # never the shared default 1935
    )
    env.update(  # nor the shared default WebRTC port
        {f"STREAMCART_{k.upper()}": str(v) for k, v in loopback_webrtc_settings().items()}
    )
    env.update(extra)
    return env


def replica_settings(sql_url: str, **extra: str) -> dict[str, str]:
    """Environment for replicas of one deployment streaming to each other: a shared
    database and JWT secret, Redis under a prefix of their own, cheap password hashing,
    quick shutdown and stream end, and no recordings; `extra` adds or overrides."""
    return {
        "STREAMCART_DATABASE_URL": sql_url,
        "STREAMCART_DATABASE_POOL_SIZE": "3",
        "STREAMCART_REDIS_URL": require(REDIS_URL, "Redis"),
        "STREAMCART_REDIS_PREFIX": f"test-{secrets.token_hex(4)}:",
        "STREAMCART_JWT_SECRET": secrets.token_urlsafe(32),
        "STREAMCART_PASSWORD_TIME_COST": "1",
        "STREAMCART_PASSWORD_MEMORY_KIB": "1024",
        "STREAMCART_SHUTDOWN_TIMEOUT": "2",
        "STREAMCART_STREAM_GRACE_PERIOD": "1",
        "STREAMCART_RECORD_STREAMS": "false",
        **extra,
    }


class ServerProcess:
    """One `streamcart serve` on 127.0.0.1, its stdout and stderr in `log_path`.

    Elsewhere too: `prefix` goes before the command (e.g. `ip netns exec NAME`), and it
    listens on `host`:`port` (a free port of the host's loopback when 0)."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        prefix: Sequence[str] = (),
        host: str = HOST,
        port: int = 0,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        served = {**env, "STREAMCART_HTTP_HOST": host, "STREAMCART_HTTP_PORT": str(self.port)}
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*prefix, *STREAMCART, "serve"],
                env=served,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def make_url(self, path: str = "/") -> URL:
        return URL.build(scheme="http", host=HOST, port=self.port).join(URL(path))

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def logged_errors(self) -> list[str]:
        """Each error record of its JSON log, as its message and the exception it names."""
        errors = []
        for line in self.log_lines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("level") in {"error", "critical"}:
                    errors.append(" / ".join([str(record.get("msg")), *_raised(record)]))
        return errors

    def explain(self, what: str, tail: int = 8) -> str:
        """`what` went wrong, with the errors the server logged (the last few, how many
        of each) and the end of its output."""
        errors = Counter(self.logged_errors())
        return "\n".join(
            [
                f"server on port {self.port}: {what}",
                f"--- {errors.total()} errors logged ---",
                *(f"{count} x {error}" for error, count in errors.most_common(5)),
                "--- end of its output ---",
                *self.log_lines()[-tail:],
            ]
        )

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        """Poll /readyz until it answers 200; fail, with the log, if the server exits or
        is not ready within READY_WITHIN seconds."""
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.explain(
                f"exited with {self.process.returncode} while starting"
            )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(self.make_url("/readyz"), timeout=PROBE) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(POLL_EVERY)
        raise AssertionError(self.explain(f"/readyz not 200 within {READY_WITHIN:.0f} s"))

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_WITHIN seconds; the exit code (0 = graceful).
        The kill also happens when this coroutine is cancelled half-way."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(self.process.wait, STOP_WITHIN)
        finally:
            if self.process.poll() is None:
                self.process.send_signal(stack_dumps.SIGNAL)  # where it is stuck, in its log
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(self.process.wait, DUMP_WITHIN)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _raised(record: dict[str, Any]) -> list[str]:
    """The traceback's last `Type: message` line (SQLAlchemy adds lines after it)."""
    raised = [line for line in str(record.get("exc", "")).splitlines() if EXCEPTION.match(line)]
    return [raised[-1][:300]] if raised else []


class SignUpOverHttp:
    """Stands in for the accounts service in the shared helpers (`commerce_support.account`
    calls `api.app[ACCOUNTS].create_user`): on a real server, buyers and sellers get in
    by signing up over HTTP."""

    def __init__(self, api: ServerApi) -> None:
        self._api = api

    async def create_user(self, email: str, password: str, name: str, role: Role) -> None:
        response = await register(self._api, email, password, role.value, name)
        assert response.status == 201, await response.text()


class ServerApi:
    """An HTTP client for one server process, shaped like aiohttp's `TestClient` where the
    shared helpers (tests/*_support.py) touch it: `get`, `post`, `server.make_url` and
    `app[ACCOUNTS]`, so they drive real processes unchanged."""

    def __init__(self, server: ServerProcess, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.app = {ACCOUNTS: SignUpOverHttp(self)}
        self._http = http

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        """The response with its body already read, so its connection is free at once and
        the helpers may read it at leisure (as with `TestClient`)."""
        response = await self._http.request(method, self.server.make_url(path), **kwargs)
        await response.read()
        return response

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kwargs)


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, names: tuple[str, ...], settings: Mapping[str, str]
) -> AsyncIterator[tuple[ServerApi, ...]]:
    """One ready server per name, all with `settings` (each with a data dir and log of its
    own under `tmp_path`), and one HTTP client without a connection limit for them all.
    On the way out every server is stopped; a server that did not exit cleanly fails the
    test with the end of its output."""
    processes: list[ServerProcess] = []
    try:
        for name in names:
            env = clean_env(tmp_path / name, **settings)
            processes.append(ServerProcess(env, tmp_path / f"{name}.log"))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for process in processes:  # all are starting already; wait for each in turn
                await process.wait_ready(http)
            yield tuple(ServerApi(p, http) for p in processes)
    finally:
        codes = await asyncio.gather(*(p.stop() for p in processes))
        for process in processes:  # pytest shows this only when the test fails
            print(process.explain("stopped"))
    unclean = [
        p.explain(f"exit code {code}", tail=STUCK_TAIL if code == -signal.SIGKILL else 8)
        for p, code in zip(processes, codes, strict=True)
        if code
    ]
    assert not unclean, "\n\n".join(unclean)
