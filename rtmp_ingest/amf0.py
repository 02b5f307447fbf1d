"""AMF0, the value encoding of RTMP commands and metadata: a strict codec.

Decoding never trusts a length or count from the wire: every string is checked against
the bytes actually present, nesting depth and the number of values are capped, and
anything unknown or truncated raises `ProtocolViolation`.

Python mapping: number <-> float (ints encode as numbers), boolean <-> bool, string and
long string <-> str, object <-> dict, ECMA array <-> `EcmaArray`, strict array <-> list,
null <-> None, undefined <-> `UNDEFINED`, date <-> `AmfDate`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from rtmp_ingest.errors import ProtocolViolation
from rtmp_ingest.limits import Limits

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED_MARKER = 0x06
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")
_OBJECT_END_BYTES = b"\x00\x00\x09"


class _Undefined:
    """AMF0 `undefined`, distinct from `null` (None)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = _Undefined()


class EcmaArray(dict):
    """An associative array: a dict that encodes as an AMF0 ECMA array, not an object."""


@dataclass(frozen=True, slots=True)
class AmfDate:
    """Milliseconds since the Unix epoch; the time zone field is kept but unused."""

    milliseconds: float
    timezone: int = 0


# --- decoding -----------------------------------------------------------------------


class _Decoder:
    """A cursor over one message body that counts what it has read."""

    __slots__ = ("data", "items_left", "limits", "pos")

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.pos = 0
        self.limits = limits
        self.items_left = limits.max_amf_items

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise ProtocolViolation("AMF0 value truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size))

    def text(self, size: int) -> str:
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("AMF0 string is not UTF-8") from None

    def value(self, depth: int) -> Any:
        self.items_left -= 1
        if self.items_left < 0:
            raise ProtocolViolation("too many AMF0 values")
        marker = self.take(1)[0]
        if marker == NUMBER:
            return self.unpack(_DOUBLE)[0]
        if marker == BOOLEAN:
            return self.take(1)[0] != 0
        if marker == STRING:
            return self.text(self.unpack(_U16)[0])
        if marker == LONG_STRING:
            return self.text(self.unpack(_U32)[0])
        if marker == NULL:
            return None
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == DATE:
            milliseconds, timezone = self.unpack(_DATE)
            return AmfDate(milliseconds, timezone)
        if marker in (OBJECT, ECMA_ARRAY, STRICT_ARRAY):
            if depth >= self.limits.max_amf_depth:
                raise ProtocolViolation("AMF0 values nested too deeply")
            if marker == OBJECT:
                return self.properties({}, depth + 1)
            count = self.unpack(_U32)[0]
            if marker == ECMA_ARRAY:  # the count is advisory; the end marker decides
                return self.properties(EcmaArray(), depth + 1)
            if count > len(self.data) - self.pos:  # every value takes at least one byte
                raise ProtocolViolation("AMF0 strict array longer than its message")
            return [self.value(depth + 1) for _ in range(count)]
        if marker == OBJECT_END:
            raise ProtocolViolation("AMF0 object end outside an object")
        raise ProtocolViolation(f"unsupported AMF0 marker 0x{marker:02x}")

    def properties(self, target: dict, depth: int) -> dict:
        while True:
            key = self.text(self.unpack(_U16)[0])
            if not key and self.data[self.pos : self.pos + 1] == b"\x09":
                self.pos += 1
                return target
            target[key] = self.value(depth)


def decode_values(data: bytes, limits: Limits | None = None) -> list[Any]:
    """Every AMF0 value in `data` (a whole command or data message body)."""
    decoder = _Decoder(data, limits or Limits())
    values = []
    while decoder.pos < len(data):
        values.append(decoder.value(0))
    return values


# --- encoding -----------------------------------------------------------------------


def _encode_text(out: bytearray, text: str, short_marker: bool) -> None:
    raw = text.encode("utf-8")
    if len(raw) <= 0xFFFF:
        if short_marker:
            out.append(STRING)
        out += _U16.pack(len(raw))
    elif short_marker:
        out.append(LONG_STRING)
        out += _U32.pack(len(raw))
    else:
        raise ValueError("AMF0 property names are limited to 65535 bytes")
    out += raw


def _encode_properties(out: bytearray, values: dict) -> None:
    for key, item in values.items():
        _encode_text(out, str(key), short_marker=False)
        _encode_value(out, item)
    out += _OBJECT_END_BYTES


def _encode_value(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out.append(BOOLEAN)
        out.append(1 if value else 0)
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(value)
    elif isinstance(value, str):
        _encode_text(out, value, short_marker=True)
    elif isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += _U32.pack(len(value))
        _encode_properties(out, value)
    elif isinstance(value, dict):
        out.append(OBJECT)
        _encode_properties(out, value)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        for item in value:
            _encode_value(out, item)
    elif isinstance(value, AmfDate):
        out.append(DATE)
        out += _DATE.pack(value.milliseconds, value.timezone)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def encode_values(*values: Any) -> bytes:
    """The AMF0 encoding of `values`, one after the other (a command message body)."""
    out = bytearray()
    for value in values:
        _encode_value(out, value)
    return bytes(out)
