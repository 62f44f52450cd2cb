"""Delivering the outbox: claim due messages, send them with no transaction open, record.

1. Claim, in one short transaction: rows `pending` and due, and rows `sending` whose lease
   has expired (a worker died mid-send), locked with FOR UPDATE SKIP LOCKED so several
   workers on PostgreSQL share the table without taking the same row (SQLite has one
   writer at a time: BEGIN IMMEDIATE).  Each becomes `sending` until now + lease, with
   attempts + 1; then COMMIT.
2. Send each message through its channel's sender, outside any transaction.
3. Record the outcome in a new short transaction, only if the row is still ours (same
   status and attempts): `sent`; back to `pending` after a backoff when it surely did not
   leave, or when its outcome is unknown (a code sent twice is harmless, a code missing is
   not); `failed` when it is permanent or the attempts are used up.

A message that must follow another of the same event (`after_id`: the codes of one push,
in entry order) is claimed only once that one is sent or failed.

A row goes to the sender of its `provider` when it names one (an answer to an Africa's
Talking message goes back through Africa's Talking, with its `link_id`), else to its
channel's sender; a row whose sender is not configured stays pending.

So a committed message is sent unless it ends `failed` (listed by `ovbot outbox`), and a
`sent` one is never sent again.  It may go twice: after an unknown outcome, or when a
worker is killed after the provider took it but before recording it (the lease expires).
The lease is longer than any send may take, so a live worker's message is never taken over.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.outbox import reminders
from bot.outbox.senders import NotSent, OutcomeUnknown, Sender, Undeliverable, Unsubscribed
from bot.storage import db
from bot.storage.models import (
    CUSTOMER_CHANNELS,
    OUTBOX_PROVIDERS,
    Customer,
    OutboxMessage,
    utcnow,
)
from bot.text.logs import scrub
from bot.text.phones import mask

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8
BACKOFF, MAX_BACKOFF = timedelta(seconds=30), timedelta(hours=1)
MAX_ROUNDS = 10  # rounds of one drain, while sent messages unblock the ones after them
_warned: set[str] = set()  # channels already reported as having no sender


@dataclass(frozen=True)
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.failed


@dataclass(frozen=True)
class Claim:
    id: int
    channel: str
    recipient: str
    body: str
    attempts: int  # after this claim; with the status, what makes the row still ours
    customer_id: int | None
    provider: str | None = None  # the sender it must go through (None: the channel's)
    link_id: str | None = None  # Africa's Talking: the linkId of the message it answers

    @property
    def route(self) -> str:
        """The key of its sender in the senders' table."""
        return self.provider or self.channel


def drain(
    sessions: sessionmaker[Session],
    senders: dict[str, Sender],
    *,
    batch: int = 50,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    max_attempts: int = MAX_ATTEMPTS,
    stop: threading.Event | None = None,
) -> DrainReport:
    """Send one batch of due messages; `stop` (an Event) hands the rest back unsent.

    A message that must follow another of the same event (`after_id`) waits until that
    one is done; when a batch sends messages others wait on, the next round goes at once.
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    _warn_unsendable(sessions, set(senders))
    total: Counter[str] = Counter()
    for _ in range(MAX_ROUNDS):
        claims, outcomes = claim(
            sessions,
            set(senders),
            batch=batch,
            now=clock(),
            lease=lease,
            max_attempts=max_attempts,
        )
        for position, c in enumerate(claims):
            if stop is not None and stop.is_set():
                release(sessions, claims[position:], clock())
                return _report(total + outcomes)
            outcomes[_deliver(sessions, senders[c.route], c, clock, max_attempts)] += 1
        total += outcomes
        if not claims or not _unblocked(sessions, [c.id for c in claims]):
            break
    return _report(total)


def _report(outcomes: Counter[str]) -> DrainReport:
    return DrainReport(outcomes["sent"], outcomes["retried"], outcomes["failed"])


def _unblocked(sessions: sessionmaker[Session], done: list[int]) -> bool:
    """Whether a pending message waits on one of these (now sent or failed) messages."""
    with sessions() as session:
        return (
            session.scalar(
                select(OutboxMessage.id)
                .where(OutboxMessage.after_id.in_(done), OutboxMessage.status == "pending")
                .limit(1)
            )
            is not None
        )


def claim(
    sessions: sessionmaker[Session],
    channels: set[str],
    *,
    batch: int,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
) -> tuple[list[Claim], Counter[str]]:
    claims: list[Claim] = []
    outcomes: Counter[str] = Counter()
    if not channels:
        return claims, outcomes
    before = aliased(OutboxMessage)  # the message a row must follow, if any
    with db.transaction(sessions) as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.status.in_(("pending", "sending")),
                OutboxMessage.next_attempt_at <= now,
                (OutboxMessage.provider.is_(None) & OutboxMessage.channel.in_(channels))
                | OutboxMessage.provider.in_(channels),
                OutboxMessage.after_id.is_(None)
                | select(before.id)
                .where(before.id == OutboxMessage.after_id, before.status.in_(("sent", "failed")))
                .exists(),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return claims, outcomes
        opted_out = set(
            session.scalars(
                select(Customer.id).where(
                    Customer.id.in_({r.customer_id for r in rows}), Customer.opted_out
                )
            )
        )
        # A reminder whose credit period moved on (a payment) is withdrawn, not sent.
        withdrawn = reminders.withdraw(session, rows, now)
        outcomes["withdrawn"] += len(withdrawn)
        for row in rows:
            if row.id in withdrawn:
                continue
            if row.customer_id in opted_out:
                row.status, row.last_error = "failed", "customer opted out: not sent"
                outcomes["failed"] += 1
            elif row.attempts >= max_attempts:  # its last lease expired: outcome unknown
                row.status = "failed"
                row.last_error = f"worker stopped during attempt {row.attempts}; not resent"
                outcomes["failed"] += 1
            else:
                row.status, row.attempts = "sending", row.attempts + 1
                row.next_attempt_at = now + lease
                claims.append(
                    Claim(
                        row.id,
                        row.channel,
                        row.recipient,
                        row.body,
                        row.attempts,
                        row.customer_id,
                        row.provider,
                        row.link_id,
                    )
                )
    return claims, outcomes


def _deliver(
    sessions: sessionmaker[Session],
    sender: Sender,
    c: Claim,
    clock: Callable[[], datetime],
    max_attempts: int,
) -> str:
    try:
        if c.link_id is None:
            result = sender.send(c.recipient, c.body)
        else:
            result = sender.send(c.recipient, c.body, link_id=c.link_id)
    except NotSent as exc:
        if c.attempts >= max_attempts:
            return _record(sessions, c, "failed", f"gave up after {c.attempts} attempts: {exc}")
        wait = max(
            min(MAX_BACKOFF, BACKOFF * 2 ** (c.attempts - 1)),
            timedelta(seconds=exc.retry_after or 0),
        )
        return _record(sessions, c, "retried", str(exc), next_attempt_at=clock() + wait)
    except Unsubscribed as exc:
        return _record(
            sessions, c, "failed", f"unsubscribed, customer opted out: {exc}", opt_out=True
        )
    except Undeliverable as exc:
        return _record(sessions, c, "failed", f"undeliverable: {exc}")
    except Exception as exc:
        # OutcomeUnknown, or a sender's bug: the message may have left. A code sent twice
        # is harmless; a code missing is not: sent again after a backoff.
        if not isinstance(exc, OutcomeUnknown):
            log.exception("outbox %s: unexpected error from the %s sender", c.id, c.channel)
        if c.attempts >= max_attempts:
            return _record(sessions, c, "failed", f"outcome unknown {c.attempts} times: {exc}")
        wait = min(MAX_BACKOFF, BACKOFF * 2 ** (c.attempts - 1))
        return _record(
            sessions,
            c,
            "retried",
            f"outcome unknown, sending again: {exc}",
            next_attempt_at=clock() + wait,
        )
    return _record(
        sessions,
        c,
        "sent",
        None,
        provider_message_id=result.provider_id,
        sent_at=clock(),
        # A row sent again (ovbot outbox retry) waits for the receipts of this send.
        delivery_status=None,
        delivery_error=None,
        receipt_at=None,
    )


def _record(
    sessions: sessionmaker[Session],
    c: Claim,
    outcome: str,
    error: str | None,
    *,
    opt_out: bool = False,
    **values: object,
) -> str:
    status = {"sent": "sent", "retried": "pending", "failed": "failed"}[outcome]
    error = scrub(error) if error else None
    with db.transaction(sessions) as session:
        # An UPDATE's result is a CursorResult; Session.execute is typed as returning Result.
        ours = cast(
            CursorResult[Any],
            session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == c.id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.attempts == c.attempts,
                )
                .values(status=status, last_error=error, **values)
            ),
        ).rowcount
        if opt_out and c.customer_id is not None:
            session.execute(
                update(Customer).where(Customer.id == c.customer_id).values(opted_out=True)
            )
    if not ours:
        log.warning(
            "outbox %s: another worker took it over before its outcome (%s) was "
            "recorded; is the lease shorter than a send?",
            c.id,
            outcome,
        )
    level = logging.INFO if outcome == "sent" else logging.WARNING
    log.log(
        level,
        "outbox %s: %s to %s %s (attempt %s)%s",
        c.id,
        c.channel,
        mask(c.recipient),
        outcome,
        c.attempts,
        f": {error}" if error else "",
    )
    return outcome


def release(sessions: sessionmaker[Session], claims: list[Claim], now: datetime) -> None:
    """Hand claimed, unsent messages back (the worker is stopping): due now, attempt undone."""
    with db.transaction(sessions) as session:
        for c in claims:
            session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == c.id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.attempts == c.attempts,
                )
                .values(status="pending", attempts=c.attempts - 1, next_attempt_at=now)
            )


def _warn_unsendable(sessions: sessionmaker[Session], channels: set[str]) -> None:
    """Messages for a channel (or provider) with no sender stay pending; say so once each."""
    missing = set(CUSTOMER_CHANNELS + OUTBOX_PROVIDERS) - channels - _warned
    if not missing:
        return
    route = func.coalesce(OutboxMessage.provider, OutboxMessage.channel)
    with sessions() as session:
        found = set(
            session.scalars(
                select(route)
                .distinct()
                .where(OutboxMessage.status == "pending", route.in_(missing))
            )
        )
    for channel in sorted(found):
        _warned.add(channel)
        log.warning(
            "outbox: %s messages stay pending: no %s sender is configured", channel, channel
        )


def pending_and_failed(session: Session, limit: int = 200) -> list[OutboxMessage]:
    """What has not been sent (pending, in flight, failed), oldest first."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status != "sent")
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )
