"""What a declared route accepts as input: JSON bodies, query strings, path parameters.

Two rules hold for every route, not field by field:

- JSON has one number type, so `1.0` is the integer 1 (JSON Schema's `integer` admits
  it too); integral numbers reach the strict pydantic models as ints.
- NUL (U+0000) is refused with 422 wherever it appears (a string, an object key, a query
  parameter, a path parameter): PostgreSQL cannot store it in text, and no name, note
  or id of ours needs it. A route that must take it (a third party's payload it cleans
  itself) opts out with `allow_nul`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from storage.web.problems import Problem

NUL = "\x00"
# Integral numbers up to 10**18 become ints; bigger ones stay floats, as before (no
# strict int field takes them, and `1e999999` must not become a million-digit int).
MAX_INTEGRAL_EXPONENT = 18
# pydantic refuses JSON nested deeper than this (as malformed), so no need to look deeper.
MAX_DEPTH = 200


class Input(BaseModel):
    """The base of every request body and socket payload model: unknown fields and loose
    types are refused, so a typo or a string where a number belongs is a 422, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True)


async def parse_body(
    request: web.Request, model: type[BaseModel], *, allow_nul: bool = False
) -> BaseModel:
    """The JSON body as `model`, or a problem saying exactly what is wrong with it.

    Validated by pydantic from JSON text, so strict models still accept what JSON can
    only carry as strings (ISO 8601 datetimes).
    """
    optional = not any(field.is_required() for field in model.model_fields.values())
    if optional and not request.body_exists:
        return model.model_validate({})
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type", "Send the body as application/json.")
    raw = await request.read()
    if not raw:
        raise Problem(400, "malformed-json", "The request body is empty.")
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=_json_number)
        text = json.dumps(data)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, an int too long, too deep
        raise Problem(400, "malformed-json", "The body is not valid JSON.") from None
    if not allow_nul:
        refuse_nul("body", _walk(data, ()))
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise Problem(400, "malformed-json", "The body is not valid JSON.") from None
        raise validation_problem(exc, "body") from None


def _json_number(text: str) -> int | float:
    number = Decimal(text)
    if number.adjusted() <= MAX_INTEGRAL_EXPONENT and number == number.to_integral_value():
        return int(number)
    return float(text)


def validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, where) from None


def validation_problem(exc: ValidationError, where: str) -> Problem:
    """422 listing each invalid field; never echoes the submitted values (passwords)."""
    errors = [
        {
            "loc": ".".join([where, *(str(part) for part in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return Problem(
        422, "validation-error", f"{len(errors)} invalid field(s) in the {where}.", errors=errors
    )


def refuse_nul(where: str, items: Iterable[tuple[tuple[str, ...], str]]) -> None:
    """422 naming every place (`where`.path) whose text holds NUL; `items` are each
    piece of text of the input with its path."""
    errors = [
        {
            "loc": ".".join([where, *(part.replace(NUL, "\\u0000") for part in loc)]),
            "message": "NUL (U+0000) characters are not accepted",
            "type": "string_nul",
        }
        for loc, text in items
        if NUL in text
    ]
    if errors:
        raise Problem(
            422,
            "validation-error",
            f"{len(errors)} invalid field(s) in the {where}.",
            errors=errors,
        )


def pairs(items: Iterable[tuple[str, str]]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Each name and value of query or path parameters, as texts with their paths."""
    for name, value in items:
        yield (name,), name + value


def _walk(value: Any, loc: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string and object key of parsed JSON, with its path."""
    if len(loc) > MAX_DEPTH:
        return
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*loc, key), key
            yield from _walk(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, str(index)))
