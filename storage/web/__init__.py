"""HTTP API toolkit shared by every package: problems, declared routes, OpenAPI.

It lives in `storage` (infrastructure) because every package may import
`storage` and none may import `live`, yet all of them serve HTTP endpoints.
"""

from storage.web.problems import PROBLEM_JSON, Problem
from storage.web.routes import ApiRoutes, Operation, parse_body, validate

__all__ = ["PROBLEM_JSON", "ApiRoutes", "Operation", "Problem", "parse_body", "validate"]
