"""What the console's pages show: read-only, bounded queries (every list has a limit;
per-day figures are grouped in SQL, over indexed columns).

The pages are the edge's (webhooks/console/); the figures are computed here, so they can
be tested without a browser and read the same on SQLite and PostgreSQL. Days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from bot.ledger import Ledger, devices
from bot.storage.models import (
    Agent,
    Code,
    Customer,
    Device,
    IntegrityAlarm,
    OutboxMessage,
    Payment,
)
from bot.text.phones import InvalidPhone, normalise

CHART_DAYS = 30
FOUND_LIMIT = 50
TIMELINE_LIMIT = 100  # of each kind: payments, codes, messages
LIST_LIMIT = 100


@dataclass(frozen=True)
class Figures:
    payments: int
    days_sold: int
    codes_minted: int


@dataclass(frozen=True)
class Overview:
    today: Figures
    week: Figures
    unmatched: int
    mints_unknown: int
    mints_failed: int  # in the last 7 days
    alarms: int
    outbox_pending: int
    outbox_failed: int
    agents_locked: int
    chart: tuple[tuple[date, int, int], ...]  # (day, payments, codes minted), oldest first


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def overview(session: Session, now: datetime) -> Overview:
    today = start_of_day(now)
    week = today - timedelta(days=6)  # today and the six days before it
    counts = dict(
        session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.status.in_(("pending", "sending", "failed")))
            .group_by(OutboxMessage.status)
        ).all()
    )
    return Overview(
        today=_figures(session, today),
        week=_figures(session, week),
        unmatched=_count(session, Payment.id, Payment.device_id.is_(None)),
        mints_unknown=_count(session, Code.id, Code.state.in_(("unknown", "pending"))),
        mints_failed=_count(session, Code.id, Code.state == "failed", Code.created_at >= week),
        alarms=_count(session, IntegrityAlarm.id),
        outbox_pending=int(counts.get("pending", 0)) + int(counts.get("sending", 0)),
        outbox_failed=int(counts.get("failed", 0)),
        agents_locked=_count(
            session, Agent.id, Agent.locked_until > now, Agent.removed_at.is_(None)
        ),
        chart=chart(session, today, CHART_DAYS),
    )


def _count(session: Session, column: Any, *where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count(column)).where(*where)) or 0)


def _figures(session: Session, since: datetime) -> Figures:
    paid = session.execute(
        select(func.count(Payment.id), func.coalesce(func.sum(Payment.days), 0)).where(
            Payment.created_at >= since, Payment.device_id.is_not(None)
        )
    ).one()
    minted = _count(session, Code.id, Code.state == "minted", Code.minted_at >= since)
    return Figures(int(paid[0]), int(paid[1]), minted)


def _day(session: Session, column: Any) -> Any:
    """A timestamp's UTC day as 'YYYY-MM-DD' text, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)  # SQLite keeps UTC text


def chart(session: Session, today: datetime, days: int) -> tuple[tuple[date, int, int], ...]:
    """Payments and codes minted per UTC day, the `days` days up to today, zeros included."""
    since = today - timedelta(days=days - 1)
    paid_day = _day(session, Payment.created_at)
    paid: dict[str, int] = dict(
        session.execute(
            select(paid_day, func.count()).where(Payment.created_at >= since).group_by(paid_day)
        ).all()
    )
    code_day = _day(session, Code.minted_at)
    minted: dict[str, int] = dict(
        session.execute(
            select(code_day, func.count())
            .where(Code.state == "minted", Code.minted_at >= since)
            .group_by(code_day)
        ).all()
    )
    out = []
    for n in range(days):
        day = (since + timedelta(days=n)).date()
        key = day.isoformat()
        out.append((day, int(paid.get(key, 0)), int(minted.get(key, 0))))
    return tuple(out)


@dataclass(frozen=True)
class Found:
    device: Device
    owner: Customer | None


def find(session: Session, query: str, region: str) -> list[Found]:
    """Devices by product id or serial (as agents type them), by their owner's phone
    (normalised), or by a part of the owner's name; at most FOUND_LIMIT."""
    text = query.strip()
    if not text:
        return []
    matches: dict[int, Device] = {}
    exact = devices.find(session, text)
    if exact is not None:
        matches[exact.id] = exact
    owners: list[int] = []
    try:
        phone = normalise(text, region)
    except InvalidPhone:
        phone = None
    if phone is not None:
        owners += session.scalars(select(Customer.id).where(Customer.phone == phone)).all()
    if len(text) >= 2 and not text.isdigit():
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        owners += session.scalars(
            select(Customer.id)
            .where(Customer.name.ilike(pattern, escape="\\"))
            .order_by(Customer.id)
            .limit(FOUND_LIMIT)
        ).all()
    if owners:
        for device in session.scalars(
            select(Device)
            .where(Device.owner_id.in_(owners))
            .order_by(Device.product_id)
            .limit(FOUND_LIMIT)
        ):
            matches.setdefault(device.id, device)
    found = sorted(matches.values(), key=lambda d: d.product_id)[:FOUND_LIMIT]
    return [Found(d, d.owner) for d in found]


@dataclass(frozen=True)
class Event:
    """One line of a device's timeline."""

    at: datetime
    kind: str  # payment | code | message
    title: str
    state: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DevicePage:
    device: Device
    owner: Customer | None
    days_left: int | None  # None: free, or never credited
    unspent_days: int
    balance: Decimal
    timeline: tuple[Event, ...]  # newest first
    latest_codes: int  # codes in the latest mint (what "resend" sends)


def device_page(
    session: Session, ledger: Ledger, product_id: int, now: datetime
) -> DevicePage | None:
    device = session.scalar(select(Device).where(Device.product_id == product_id))
    if device is None:
        return None
    owner = device.owner
    days_left = None
    if device.state == "payg" and device.credit_until is not None:
        days_left = max(
            0, (device.credit_until - now).days + (1 if device.credit_until > now else 0)
        )
    events = (
        _payments(session, device) + _codes(session, device) + _messages(session, device, owner)
    )
    events.sort(key=lambda e: e.at, reverse=True)
    return DevicePage(
        device=device,
        owner=owner,
        days_left=days_left,
        unspent_days=ledger.unspent_days(session, device),
        balance=device.balance,
        timeline=tuple(events),
        latest_codes=len(ledger.latest_codes(session, device)),
    )


def _payments(session: Session, device: Device) -> list[Event]:
    rows = session.scalars(
        select(Payment)
        .where(Payment.device_id == device.id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(TIMELINE_LIMIT)
    )
    return [
        Event(
            p.created_at,
            "payment",
            f"{p.days} days paid" + (f" ({p.amount})" if p.amount is not None else ""),
            "in code" if p.code_id else "credit",
            {"reference": p.reference, "source": p.source, "phone": p.phone, "code_id": p.code_id},
        )
        for p in rows
    ]


def _codes(session: Session, device: Device) -> list[Event]:
    rows = session.scalars(
        select(Code)
        .where(Code.device_id == device.id)
        .order_by(Code.created_at.desc(), Code.id.desc())
        .limit(TIMELINE_LIMIT)
    )
    return [
        Event(
            c.minted_at or c.created_at,
            "code",
            f"{c.days} days code" if c.kind == "days" else f"{c.kind} code",
            c.state,
            {
                "id": c.id,
                "kind": c.kind,
                "days": c.days,
                "code": c.code,
                "requested_by": c.requested_by,
                "channel": c.channel,
            },
        )
        for c in rows
    ]


def _messages(session: Session, device: Device, owner: Customer | None) -> list[Event]:
    """Messages out: those carrying this device's codes, and those to its owner."""
    codes = select(Code.id).where(Code.device_id == device.id).scalar_subquery()
    which: ColumnElement[bool] = OutboxMessage.code_id.in_(codes)
    if owner is not None:
        which = or_(which, OutboxMessage.customer_id == owner.id)
    rows = session.scalars(
        select(OutboxMessage)
        .where(which)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(TIMELINE_LIMIT)
    )
    return [
        Event(
            m.sent_at or m.created_at,
            "message",
            f"message out by {m.channel}",
            m.delivery_status or m.status,
            {
                "id": m.id,
                "recipient": m.recipient,
                "channel": m.channel,
                "body": m.body,
                "status": m.status,
                "error": m.last_error or m.delivery_error,
                "attempts": m.attempts,
            },
        )
        for m in rows
    ]


def unmatched_payments(session: Session, limit: int = LIST_LIMIT) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.device_id.is_(None))
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )


def messages(session: Session, status: str | None, limit: int = LIST_LIMIT) -> list[OutboxMessage]:
    """The newest messages in `status` (None: every one not sent)."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status is None:
        query = query.where(OutboxMessage.status != "sent")
    else:
        query = query.where(OutboxMessage.status == status)
    return list(session.scalars(query))


def alarms(session: Session, limit: int = LIST_LIMIT) -> list[tuple[IntegrityAlarm, int]]:
    return [
        (alarm, product_id)
        for alarm, product_id in session.execute(
            select(IntegrityAlarm, Device.product_id)
            .join(Device, Device.id == IntegrityAlarm.device_id)
            .order_by(IntegrityAlarm.id.desc())
            .limit(limit)
        )
    ]


def agents(session: Session, limit: int = 1000) -> list[Agent]:
    """The agents by phone (a distributor has hundreds; the page shows the first 1000)."""
    return list(session.scalars(select(Agent).order_by(Agent.phone).limit(limit)))
