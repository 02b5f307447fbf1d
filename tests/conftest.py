"""Shared fixtures: a migrated database per backend (SQLite file, PostgreSQL database)."""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from live.schema import metadata
from storage.sql import make_engine
from storage.sql.migrate import upgrade
from tests.backends import POSTGRES_URL, fresh_redis_prefix, require

SQL_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_database():
    """A throw-away PostgreSQL database for this test run, dropped at the end."""
    require(POSTGRES_URL, "PostgreSQL")
    name = f"streamcart_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_url(POSTGRES_URL)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(
            host=admin.host,
            port=admin.port or 5432,
            user=admin.username,
            password=admin.password,
            database=admin.database,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    import asyncio

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield admin.set(database=name).render_as_string(hide_password=False)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request, tmp_path) -> str:
    """A database URL for each SQL backend; PostgreSQL is emptied before each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
async def sql_engine(sql_url):
    """A migrated, empty database and its engine."""
    engine = make_engine(sql_url)
    await upgrade(engine)
    if engine.dialect.name == "postgresql":
        tables = ", ".join(t.name for t in metadata().sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
def settings_for(tmp_path):
    """Settings for an app on a given database URL, isolated in a temp data dir."""
    from live.settings import Settings
    from tests.webrtc_support import loopback_webrtc_settings

    def build(database_url: str, **overrides) -> Settings:
        return Settings.from_env(
            {},
            data_dir=tmp_path / "data",
            database_url=database_url,
            log_format="text",
            **{
                "password_time_cost": 1,
                "password_memory_kib": 1024,
                "rtmp_port": 0,  # every test app gets its own RTMP port
                **loopback_webrtc_settings(),  # and its own WebRTC port
                **overrides,
            },
        )

    return build


@pytest.fixture
def api_settings() -> dict:
    """Setting overrides for the `api` app; a test module overrides this fixture."""
    return {}


@pytest.fixture
async def api(aiohttp_client, sql_engine, sql_url, settings_for, api_settings):
    """A test client for the full app on each SQL backend (the database already migrated),
    marking the requests it serves for `statements` (Socket.IO events ride on theirs)."""
    from live.app import build_app
    from tests.sql_counting import mark_serving

    app = build_app(settings_for(sql_url, **api_settings))
    app.middlewares.insert(0, mark_serving)
    return await aiohttp_client(app)


@pytest.fixture
def statements(api, monkeypatch):
    """The SQL `api` sends while serving requests and events, as it sends it (background
    jobs, which query too, are not counted): see tests.sql_counting."""
    from tests.sql_counting import record_statements

    with record_statements(api.app, monkeypatch) as seen:
        yield seen


@pytest.fixture
async def opened():
    """Socket.IO clients a test opened (see tests.hub_support.open_socket), closed after it."""
    sockets: list = []
    yield sockets
    for socket in sockets:
        await socket.client.disconnect()


@pytest.fixture
def connect(api, opened):
    """Open Socket.IO clients on the app (with a token, or as a guest), closed after it."""
    from tests.hub_support import open_socket

    async def open_(token: str | None = None):
        return await open_socket(api, token, opened)

    return open_


@pytest.fixture
async def show(api):
    """A seller live with a product on show (10 in stock; live price 90,000 VND)."""
    from tests.hub_support import seller_on_air

    return await seller_on_air(api)


@pytest.fixture
async def ann(api):
    from tests.commerce_support import buyer

    return await buyer(api, "ann@example.com")


@pytest.fixture
async def bob(api):
    from tests.commerce_support import buyer

    return await buyer(api, "bob@example.com")


@pytest.fixture(scope="module")
def stream_tags(tmp_path_factory):
    """A 3 s 320x240 30 fps test pattern with AAC, one keyframe a second, as FLV tags."""
    from tests.media_support import read_flv_tags, write_test_flv

    path = tmp_path_factory.mktemp("whep") / "pattern.flv"
    return list(read_flv_tags(write_test_flv(path, seconds=3.0, fps=30, gop=30)))


@pytest.fixture
async def redis_prefix():
    """A Redis key prefix of this test's own (required: fails under CI without Redis)."""
    async with fresh_redis_prefix() as prefix:
        yield prefix
