"""Per-request context that log lines pick up without threading it through calls."""

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
