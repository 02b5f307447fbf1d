"""Relational storage: engine, sessions, shared declarative base and migrations."""

from storage.sql.engine import Base, UtcDateTime, make_engine, ping, session_factory

__all__ = ["Base", "UtcDateTime", "make_engine", "ping", "session_factory"]
