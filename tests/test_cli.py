"""The `streamcart` command as an operator runs it: serve, migrate, demo, config."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time

import aiohttp
import pytest

from live import stack_dumps
from tests.backends import REDIS_URL
from tests.server_process import STREAMCART, ServerProcess, clean_env, free_port


async def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *STREAMCART,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_serve_on_embedded_defaults_answers_and_shuts_down_gracefully(tmp_path):
    port = free_port()
    env = clean_env(tmp_path, STREAMCART_HTTP_PORT=str(port), STREAMCART_HTTP_HOST="127.0.0.1")
    proc = await asyncio.create_subprocess_exec(
        *STREAMCART,
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession() as http:
            while True:
                assert time.monotonic() - started < 15, "no /healthz answer within 15 s"
                assert proc.returncode is None, (await proc.stderr.read()).decode()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200, await response.text()
            async with http.get(f"http://127.0.0.1:{port}/swagger") as response:
                assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert (tmp_path / "data" / "streamcart.sqlite3").exists()
    secret_file = tmp_path / "data" / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert "STREAMCART_JWT_SECRET is not set" in err.decode()
    assert secret_file.read_text().strip() not in err.decode()


LOGIN_LINE = re.compile(r"^  (\w+)\s+(\S+@\S+)  password: (\S+)", re.MULTILINE)


async def logins_work(env: dict[str, str], printed: str, tmp_path) -> dict[str, str]:
    """Log in over HTTP with every login `printed`; each role and the role it got."""
    logins = LOGIN_LINE.findall(printed)
    assert logins, printed
    served = {**env, "STREAMCART_RTMP_PORT": "0"}  # the demo's 1935 is only printed
    server = ServerProcess(served, tmp_path / "demo-server.log")
    roles = {}
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait_ready(http)
            for role, email, password in logins:
                async with http.post(
                    server.make_url("/api/auth/login"),
                    json={"email": email, "password": password},
                ) as response:
                    assert response.status == 200, (email, await response.text())
                    roles[role] = (await response.json())["user"]["role"]
    finally:
        await server.stop()
    return roles


async def test_demo_logins_log_in_and_reset_prints_new_ones(tmp_path):
    env = clean_env(tmp_path, STREAMCART_RTMP_PORT="1935")  # only printed, never bound
    code, _, err = await run("migrate", env=env)
    assert code == 0, err
    code, out, err = await run("demo", env=env)
    assert code == 0, err
    assert "OBS Server:  rtmp://localhost:1935/live" in out
    assert "OBS WHIP:    http://localhost:8080/api/whip" in out
    assert "Demo shop:   Demo Live Shop" in out and "with 3 products" in out
    roles = await logins_work(env, out, tmp_path)
    assert roles == {"seller": "seller", "buyer": "buyer", "admin": "admin"}

    code, again, _ = await run("demo", env=env)
    assert code == 0 and "already created" in again and not LOGIN_LINE.search(again)
    code, reset, _ = await run("demo", "--reset", env=env)
    assert code == 0 and reset.count("(reset)") == 3
    assert set(LOGIN_LINE.findall(reset)).isdisjoint(LOGIN_LINE.findall(out))
    assert await logins_work(env, reset, tmp_path) == roles


async def test_demo_prints_urls_on_the_configured_ports(tmp_path):
    """The printed URLs carry the HTTP port set, and an RTMP port of 0 (chosen only as
    the server starts) is said to be so rather than printed as a URL on port 0."""
    env = clean_env(tmp_path, STREAMCART_HTTP_PORT="8123", STREAMCART_RTMP_PORT="0")
    code, _, err = await run("migrate", env=env)
    assert code == 0, err
    code, out, err = await run("demo", env=env)
    assert code == 0, err
    assert "API docs:    http://localhost:8123/swagger" in out
    assert "OBS WHIP:    http://localhost:8123/api/whip" in out
    assert "rtmp://" not in out and ":0/" not in out
    assert "the RTMP port is chosen as the server starts (STREAMCART_RTMP_PORT=0)" in out


async def test_bad_setting_is_a_clear_error(tmp_path):
    code, _, err = await run("serve", env=clean_env(tmp_path, STREAMCART_HTTP_PORT="eighty"))
    assert code == 2
    assert "STREAMCART_HTTP_PORT" in err and "number" in err


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("STREAMCART_WEBRTC_ICE_SERVERS", "http://turn.example", "STREAMCART_WEBRTC_ICE_SERVERS"),
        ("STREAMCART_WEBRTC_PUBLIC_HOSTS", "not a host name", "STREAMCART_WEBRTC_PUBLIC_HOSTS"),
    ],
)
async def test_bad_webrtc_setting_is_a_clear_error(tmp_path, name, value, said):
    env = clean_env(tmp_path, STREAMCART_HTTP_PORT=str(free_port()), **{name: value})
    code, _, err = await run("serve", env=env)
    assert code == 2, err
    assert err.splitlines()[-1].startswith(f"configuration error: {said}: "), err
    assert "Traceback" not in err


async def test_config_lists_every_variable(tmp_path):
    code, out, _ = await run("config", env=clean_env(tmp_path))
    assert code == 0
    for name in (
        "STREAMCART_HTTP_PORT",
        "STREAMCART_DATABASE_URL",
        "STREAMCART_JWT_SECRET",
        "STREAMCART_SEPAY_API_KEY",
        "STREAMCART_PUBLIC_URL",
        "STREAMCART_MONGO_URL",
    ):
        assert name in out


@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)
async def test_serve_exits_with_a_clear_error_when_its_webrtc_port_is_taken(
    tmp_path, sql_engine, sql_url, redis_prefix
):
    """A second server on one machine with the same WebRTC port: it must say so and exit,
    not hang with its hub, sweepers and bus started (as it did with Redis configured)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 (as the server binds it)
        port = taken.getsockname()[1]
        env = clean_env(
            tmp_path,
            STREAMCART_DATABASE_URL=sql_url,
            STREAMCART_REDIS_URL=REDIS_URL,
            STREAMCART_REDIS_PREFIX=redis_prefix,
            STREAMCART_WEBRTC_UDP_PORT=str(port),
            STREAMCART_WEBRTC_TCP_PORT=str(port),
        )
        code, _, err = await run("serve", env=env)
    assert code == 2, err
    assert f"the WebRTC port {port} (UDP)" in err
    assert "STREAMCART_WEBRTC_UDP_PORT" in err


async def test_sigusr1_logs_where_a_running_server_is(tmp_path):
    """An operator's SIGUSR1 (and the tests', before they kill a server that ignored
    SIGTERM) writes the stack of every thread and asyncio task, and the server runs on."""
    server = ServerProcess(clean_env(tmp_path), tmp_path / "server.log")
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait_ready(http)
            server.process.send_signal(stack_dumps.SIGNAL)
            deadline = time.monotonic() + 10
            while "dumped the stacks of" not in server.log_path.read_text():
                assert time.monotonic() < deadline, server.explain("no task stacks logged")
                await asyncio.sleep(0.1)
            async with http.get(server.make_url("/readyz")) as response:
                assert response.status == 200
    finally:
        code = await server.stop()
    logged = server.log_path.read_text()
    assert "Current thread" in logged and "hub-ticker" in logged
    assert code == 0, server.explain(f"exit code {code}")
