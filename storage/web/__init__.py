"""HTTP API toolkit shared by every package: problems, declared routes, OpenAPI.

It lives in `storage` (infrastructure) because `commerce`, `signaling` and `live` all
serve HTTP endpoints and none but `live` may import `live`; `signaling` may import this
part of `storage` alone.
"""

from storage.web.inputs import Input, parse_body, validate
from storage.web.problems import PROBLEM_JSON, Problem
from storage.web.routes import BEARER, ApiRoutes, Operation, SecurityScheme

__all__ = [
    "BEARER",
    "PROBLEM_JSON",
    "ApiRoutes",
    "Input",
    "Operation",
    "Problem",
    "SecurityScheme",
    "parse_body",
    "validate",
]
