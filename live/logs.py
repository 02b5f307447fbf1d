"""Structured logs: JSON lines in production, readable lines in a terminal.

Every record carries the request id of the request that caused it. Secrets
never reach a formatter: handlers log ids and outcomes, not bodies or headers.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from storage.web.context import request_id

# Loggers whose INFO lines say nothing an operator acts on: every request, every Alembic plug-in.
QUIET_LOGGERS = ("aiohttp.access", "alembic.runtime.plugins")
ALEMBIC_PREAMBLE = ("Context impl", "Will assume")
STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.request_id:
            entry["request_id"] = record.request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = f" [{record.request_id}]" if record.request_id else ""
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}{rid}: "
        line += record.getMessage() + (f" {extras}" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in STANDARD_ATTRS}


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").addFilter(_drop_alembic_preamble)


def _drop_alembic_preamble(record: logging.LogRecord) -> bool:
    """Keep the "Running upgrade" lines an operator wants; drop the dialect chatter before them."""
    return not record.getMessage().startswith(ALEMBIC_PREAMBLE)
