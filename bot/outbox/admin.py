"""What operators do to the outbox (`ovbot outbox`): see what has not gone, send failed ones again.

A retry puts a `failed` row back to `pending`, due now, with its attempts counted afresh
(otherwise a row that failed for having used them all would fail again at once). Only
`failed` rows are retried: a `pending` or `sending` one is still the worker's, a `sent`
one is never sent again. A row for a customer who opted out stays failed: the claim
would only fail it again, and an opt-out must be honoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Customer, OutboxMessage


@dataclass(frozen=True)
class RetryReport:
    retried: tuple[int, ...] = ()
    refused: tuple[tuple[int, str], ...] = ()  # (id, why not)


def unsent(session: Session, *, failed_only: bool = False, limit: int = 200) -> list[OutboxMessage]:
    """The messages not sent (pending, in flight, failed) or only the failed, oldest first."""
    query = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit)
    if failed_only:
        query = query.where(OutboxMessage.status == "failed")
    else:
        query = query.where(OutboxMessage.status != "sent")
    return list(session.scalars(query))


def retry(session: Session, ids: Sequence[int] | None, now: datetime) -> RetryReport:
    """Put the failed rows `ids` (None: every failed row) back to pending, due `now`."""
    query = select(OutboxMessage).order_by(OutboxMessage.id).with_for_update()
    if ids is None:
        query = query.where(OutboxMessage.status == "failed")
    else:
        query = query.where(OutboxMessage.id.in_(ids))
    rows = {row.id: row for row in session.scalars(query)}
    opted_out = set(
        session.scalars(
            select(Customer.id).where(
                Customer.id.in_({r.customer_id for r in rows.values()}), Customer.opted_out
            )
        )
    )
    retried: list[int] = []
    refused: list[tuple[int, str]] = []
    for message_id in ids if ids is not None else list(rows):
        row = rows.get(message_id)
        why = _why_not(row, opted_out)
        if why is not None:
            refused.append((message_id, why))
            continue
        assert row is not None  # _why_not refuses a missing row
        row.status, row.attempts, row.next_attempt_at = "pending", 0, now
        retried.append(row.id)
    session.flush()
    return RetryReport(tuple(retried), tuple(refused))


def _why_not(row: OutboxMessage | None, opted_out: set[int]) -> str | None:
    if row is None:
        return "no such message"
    if row.status != "failed":
        return f"it is {row.status}, not failed: only failed messages are retried"
    if row.customer_id in opted_out:
        return "its customer opted out: not sent again"
    return None
