"""AMQP topic matching, so the in-process bus routes exactly like a RabbitMQ topic exchange.

Routing keys and patterns are words separated by `.`; in a pattern `*` matches
exactly one word and `#` matches zero or more words.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a binding `pattern` (`order.*`, `#`) routes `routing_key` (`order.paid`)."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[skip:]) for skip in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _match(rest, words[1:])
