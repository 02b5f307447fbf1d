"""Writing events into the outbox, inside the caller's transaction.

The event row commits or rolls back together with the state change it
announces, so the bus can never announce something that did not happen nor
miss something that did. The session is flagged so the relay can be woken
right after the commit instead of waiting for its next poll.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from storage.bus.port import Event
from storage.outbox.table import OutboxRow

_NEW_EVENTS = "streamcart.outbox.new_events"


def add_event(session: AsyncSession, type: str, data: dict[str, Any]) -> Event:
    """Stage `type` with `data` in the caller's transaction; the caller commits."""
    event = Event(type=type, data=data)
    stage_event(session, event)
    return event


def stage_event(session: AsyncSession, event: Event) -> None:
    """Stage an event built beforehand in the caller's transaction."""
    session.add(OutboxRow(**outbox_values(event)))
    session.info[_NEW_EVENTS] = True


def outbox_values(event: Event) -> dict[str, Any]:
    """The unpublished outbox row of `event` by column, for writers that insert rows
    themselves (they wake the relay after their commit: `OutboxRelay.wake`)."""
    return {
        "id": event.id,
        "type": event.type,
        "data": event.data,
        "occurred_at": event.occurred_at,
        "attempts": 0,
    }


def committed_new_events(session: Session) -> bool:
    """In an `after_commit` listener: did the committed transaction add outbox events?"""
    return bool(session.info.get(_NEW_EVENTS))


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_new_events(session: Session, transaction: SessionTransaction) -> None:
    # Runs after `after_commit` (and on rollback): the flag covers one outer transaction.
    if transaction.parent is None:
        session.info.pop(_NEW_EVENTS, None)
