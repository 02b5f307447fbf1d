"""RFC 9457 problem documents: the one error shape every HTTP endpoint answers with."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a handler to answer with a problem document.

    `code` is a stable machine-readable slug (also the tail of `type`), so clients
    can branch on it without parsing the human-readable title or detail.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def document(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> web.Response:
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.document(instance)),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )


def from_http_exception(exc: web.HTTPException) -> Problem:
    """Turn aiohttp's own errors (404, 405, 413...) into problems."""
    code = HTTPStatus(exc.status).phrase.lower().replace(" ", "-").replace("'", "")
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    return Problem(exc.status, code, detail, headers=headers)
