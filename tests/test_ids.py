"""Row and event identifiers: canonical UUIDv7 strings that sort by creation time."""

from __future__ import annotations

import time
import uuid

from storage.ids import new_id


def test_ids_are_canonical_uuid7_strings():
    for _ in range(500):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_sort_by_creation_time_and_do_not_repeat():
    earlier = [new_id() for _ in range(200)]
    time.sleep(0.002)
    later = [new_id() for _ in range(200)]
    assert max(earlier) < min(later)
    assert len(set(earlier + later)) == 400
