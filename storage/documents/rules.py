"""What both document adapters accept, checked once so they cannot drift apart.

Documents hold JSON values only (dict with str keys, list, str, int, float, bool,
None). Anything else, datetimes included, is rejected with `TypeError` before it
reaches a driver: MongoDB would keep a datetime (truncated to milliseconds) while
a JSON column cannot, so accepting it would make the two adapters disagree. Store
times as ISO 8601 UTC strings of one fixed format, which also sort correctly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from storage.ids import new_id

MAX_LIMIT = 1000
# Fields indexed in every collection, so equality filters on them never scan: the
# owner of inbox documents (notifications) and the live session of chat messages.
INDEXED_FIELDS = ("user_id", "live_session_id")
ID_MAX_LENGTH = 64  # the SQL `documents.id` column
INT64 = range(-(2**63), 2**63)  # BSON's widest integer

# Names the MongoDB adapter keeps for itself; refused on both adapters.
RESERVED_FIELDS = frozenset({"_id", "_created"})

_COLLECTION = re.compile(r"(?!system\.)[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Top-level names only: "." is a path in MongoDB, "$" an operator, and '"' or "\"
# would break out of the quoted SQLite JSON path.
_FIELD_FORBIDDEN = re.compile(r'^\$|[."\\]')

Scalar = str | int | bool | None


def check_collection(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION.fullmatch(name):
        raise ValueError(
            f"bad collection name {name!r}: 1-64 of A-Z a-z 0-9 _ . -, not starting "
            "with a digit, '.', '-' or 'system.'"
        )
    return name


def check_field(name: str) -> str:
    """A top-level field usable in filters and sorting ("id" is the document id)."""
    if not isinstance(name, str) or not name or _FIELD_FORBIDDEN.search(name):
        raise ValueError(f"bad field name {name!r}: top-level names only, no '.', '$', quotes")
    if name in RESERVED_FIELDS:
        raise ValueError(f"field name {name!r} is reserved")
    return name


def check_id(doc_id: str) -> str:
    if not isinstance(doc_id, str) or not 0 < len(doc_id) <= ID_MAX_LENGTH:
        raise ValueError(f"document id must be a string of 1-{ID_MAX_LENGTH} characters")
    return doc_id


def check_where(where: Mapping[str, Any] | None) -> dict[str, Scalar]:
    """Equality filters: str, int (64-bit), bool or None (None also matches a missing field)."""
    checked: dict[str, Scalar] = {}
    for field, value in (where or {}).items():
        check_field(field)
        if field == "id" and not isinstance(value, str):
            raise ValueError("the 'id' filter takes a string")
        if not _is_filter_value(value):
            raise ValueError(
                f"filter on {field!r} must be str, int (64-bit), bool or None, "
                f"not {type(value).__name__}"
            )
        checked[field] = value
    return checked


def _is_filter_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool):
        return True
    return isinstance(value, int) and value in INT64


def check_sort(sort: str | None) -> str | None:
    return None if sort is None else check_field(sort)


def check_after_id(sort: str | None, after_id: str | None) -> str | None:
    if after_id is not None and (sort != "id" or not isinstance(after_id, str)):
        raise ValueError("after_id is a string id, and needs sort='id'")
    return after_id


def clamp_limit(limit: int) -> int:
    """At least 1 (MongoDB reads 0 as "no limit"), at most MAX_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    return min(limit, MAX_LIMIT)


def prepare_insert(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a new document into its id (given or generated) and its other fields."""
    fields = dict(doc)
    doc_id = check_id(fields.pop("id")) if "id" in fields else new_id()
    _check_fields(fields)
    return doc_id, fields


def prepare_changes(doc_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields to set; "id" may be repeated unchanged but never changed."""
    fields = dict(changes)
    if "id" in fields and fields.pop("id") != doc_id:
        raise ValueError("a document's id cannot be changed")
    _check_fields(fields)
    return fields


def prepare_bulk_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields to set on many documents at once; never their ids."""
    fields = dict(changes)
    if "id" in fields:
        raise ValueError("update_many cannot set ids")
    _check_fields(fields)
    return fields


def _check_fields(fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        check_field(name)
        _check_value(value, name)


def _check_value(value: Any, path: str) -> None:
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if value not in INT64:
            raise TypeError(f"{path}: integer does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: NaN and infinity are not JSON")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: object keys must be strings, not {key!r}")
            _check_value(item, f"{path}.{key}")
    else:
        hint = " (store an ISO 8601 UTC string)" if hasattr(value, "isoformat") else ""
        raise TypeError(f"{path}: {type(value).__name__} is not a JSON value{hint}")
