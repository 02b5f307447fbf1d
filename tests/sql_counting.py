"""Which SQL the app sends while serving a request or a Socket.IO event, to show that a
path (a refused flash claim, a viewer's join) never reaches the database.

`mark_serving` (put first in the test app's middlewares by the `api` fixture) marks
everything a request does, a websocket's events included; `record_statements` lists
the statements SQLAlchemy sends, and the asyncpg connections taken (the express
checkout's), while marked. Background jobs (announcers, sweepers, batched writers
started outside a request) are not marked.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from aiohttp import web
from sqlalchemy import event

from live.http.system import BACKENDS

SERVING = contextvars.ContextVar("serving", default=False)


@web.middleware
async def mark_serving(request: web.Request, handler):
    token = SERVING.set(True)
    try:
        return await handler(request)
    finally:
        SERVING.reset(token)


@contextlib.contextmanager
def record_statements(app: web.Application, monkeypatch) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if SERVING.get():
            seen.append(statement)

    engine = app[BACKENDS].engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    pool = app[BACKENDS].driver_pool
    if pool is not None:
        acquire = pool.acquire

        def recording_acquire(*args, **kwargs):
            if SERVING.get():
                seen.append("an asyncpg connection")
            return acquire(*args, **kwargs)

        monkeypatch.setattr(pool, "acquire", recording_acquire)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
