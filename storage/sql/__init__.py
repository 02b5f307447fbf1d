"""Relational storage: engine, sessions, shared declarative base and migrations."""

from storage.sql.engine import (
    Base,
    UtcDateTime,
    driver_connection,
    make_engine,
    ping,
    session_factory,
)

__all__ = ["Base", "UtcDateTime", "driver_connection", "make_engine", "ping", "session_factory"]
