"""HTTP API toolkit shared by every package: problems, declared routes, OpenAPI.

It lives in `storage` (infrastructure) because every package may import
`storage` and none may import `live`, yet all of them serve HTTP endpoints.
"""

from storage.web.inputs import parse_body, validate
from storage.web.problems import PROBLEM_JSON, Problem
from storage.web.routes import BEARER, ApiRoutes, Operation, SecurityScheme

__all__ = [
    "BEARER",
    "PROBLEM_JSON",
    "ApiRoutes",
    "Operation",
    "Problem",
    "SecurityScheme",
    "parse_body",
    "validate",
]
