"""Transactional outbox: events stored with the state change they announce, then relayed.

`add_event(session, type, data)` stages an event in the caller's transaction;
`OutboxRelay` publishes committed events to the bus, at least once and in order.
"""

from storage.outbox.relay import OutboxRelay
from storage.outbox.table import OutboxRow
from storage.outbox.writer import add_event, outbox_values, stage_event

__all__ = ["OutboxRelay", "OutboxRow", "add_event", "outbox_values", "stage_event"]
