"""EXT-X-DATERANGE tags (RFC 8216bis, 4.4.5.1): what a player shows beside the video
(a pinned product, a flash sale) from the program date-time at which it starts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

ATTRIBUTE_NAME = re.compile(r"^[A-Z0-9-]+$")
UNQUOTABLE = str.maketrans({'"': "'", "\r": " ", "\n": " "})


@dataclass(frozen=True, slots=True)
class DateRange:
    """One tag. `attributes` become client attributes `X-<NAME>`: strings are quoted,
    numbers written as decimals."""

    id: str
    start: datetime
    cls: str
    end: datetime | None = None
    attributes: Mapping[str, str | int | float] = field(default_factory=dict)

    def render(self) -> str:
        parts = [
            f'ID="{_quoted(self.id)}"',
            f'CLASS="{_quoted(self.cls)}"',
            f'START-DATE="{program_date_time(self.start)}"',
        ]
        if self.end is not None:
            parts.append(f'END-DATE="{program_date_time(self.end)}"')
            parts.append(f"DURATION={max(0.0, (self.end - self.start).total_seconds()):.3f}")
        for name, value in self.attributes.items():
            if not ATTRIBUTE_NAME.match(name):
                raise ValueError(f"not an HLS attribute name: {name!r}")
            parts.append(f"X-{name}={_value(value)}")
        return "#EXT-X-DATERANGE:" + ",".join(parts)


def program_date_time(moment: datetime) -> str:
    """ISO 8601 with milliseconds and an explicit UTC offset, as players parse it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _quoted(text: str) -> str:
    return text.translate(UNQUOTABLE)


def _value(value: str | int | float) -> str:
    if isinstance(value, bool):
        raise ValueError("HLS has no boolean attribute values")
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return f'"{_quoted(value)}"'
