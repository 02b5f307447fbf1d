"""The one error a malformed media payload raises, whichever parser found the fault."""

from __future__ import annotations


class MediaFormatError(ValueError):
    """A payload from the publisher is not the FLV/H.264/AAC it claims to be.

    Parsers raise only this (never IndexError, struct.error...), so the caller can drop
    the payload or the connection without guessing which exceptions mean "bad input".
    """
