"""Reminders before the credit runs out, and the day after it did (DESIGN.md section 3).

For each owned pay-as-you-go device, a reminder `N` days before its `credit_until` for
each N of REMINDER_DAYS (default 3, 1, 0: three days before, the day before, the day it
ends) and one the day after it locked, in the owner's language, with how to pay
(`reminder_pay` in config/messages: the operator's paybill; the serial is the account).
Days are local days in TIMEZONE.

Each offset is due in a window, and the windows of one period follow each other without
overlap: offset N from the start of day D-N (D: the day the credit ends) until the start
of the next offset's day; the last one until the credit ends; the day-after one for the
day after D. So a reminder late because the worker was down is sent once, for the most
recent offset only, and an old period is reminded only while one of its windows is open.

Never in QUIET_HOURS (nothing is queued then; due reminders wait for the morning, when
their window is still open); never twice for a device, period and offset (the unique key
of `reminders`, inserted with ON CONFLICT DO NOTHING, so workers on PostgreSQL race
harmlessly); never to an opted-out customer; not for free devices. A payment cancels a
reminder not yet sent: it moves the period on (or its days wait for a code), and the
outbox withdraws such a reminder when it claims it (bot/outbox/reminders.py); each
reminder also carries a send-by time (its window's end, or the next quiet hours).

A pass is a few queries per offset on `devices.credit_until` (indexed), in batches.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.ledger import devices as device_refs
from bot.ledger.periods import remindable
from bot.outbox import queue as outbox
from bot.storage import db
from bot.storage.models import DAY_AFTER, Customer, Device, Reminder
from bot.text.templates import Messages, format_date

if TYPE_CHECKING:
    from bot.deps import Deps
    from bot.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500  # devices per transaction
MAX_ROUNDS = 10_000  # batches of one window in one pass: a bound, never reached


@dataclass(frozen=True)
class Window:
    """The devices whose reminder `days_before` is due now: credit_until in [low, high)."""

    days_before: int  # N, or DAY_AFTER
    low: datetime
    high: datetime
    next_days: int | None  # the offset after this one (None: this is the last one)

    @property
    def until_credit_ends(self) -> bool:
        """The last offset's window: open until the credit ends (`low` is now, excluded)."""
        return self.next_days is None and self.days_before != DAY_AFTER


@dataclass(frozen=True)
class Schedule:
    """REMINDER_DAYS, TIMEZONE and QUIET_HOURS, and the time arithmetic on them."""

    days: tuple[int, ...]  # largest first; () = no reminders at all
    zone: ZoneInfo
    quiet: tuple[int, int] | None  # (start, end) hours, local; may wrap midnight

    @classmethod
    def of(cls, settings: Settings) -> Schedule:
        return cls(
            tuple(sorted(set(settings.reminder_days), reverse=True)),
            ZoneInfo(settings.timezone),
            settings.quiet_hours,
        )

    def day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.zone).astimezone(UTC)

    def is_quiet(self, at: datetime) -> bool:
        if self.quiet is None:
            return False
        start, end = self.quiet
        hour = at.astimezone(self.zone).hour
        return start <= hour < end if start < end else hour >= start or hour < end

    def _next(self, at: datetime, hour: int) -> datetime:
        """The next local `hour`:00 after `at`."""
        local = at.astimezone(self.zone)
        candidate = datetime.combine(local.date(), time(hour), self.zone)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), time(hour), self.zone)
        return candidate.astimezone(UTC)

    def quiet_ends(self, at: datetime) -> datetime:
        """When the quiet hours `at` is in end (`at` itself when it is not quiet)."""
        if self.quiet is None or not self.is_quiet(at):
            return at
        return self._next(at, self.quiet[1])

    def quiet_starts(self, at: datetime) -> datetime | None:
        """When the next quiet hours start (None: there are none)."""
        return None if self.quiet is None else self._next(at, self.quiet[0])

    def windows(self, now: datetime) -> list[Window]:
        """The window of each offset at `now`, the day-after one last."""
        if not self.days:
            return []
        today = self.day(now)
        found = []
        for i, days in enumerate(self.days):
            later = self.days[i + 1] if i + 1 < len(self.days) else None
            # Offset N is due from day D-N until day D-M (M the next offset) or the end:
            # today+M < D <= today+N, and the credit not run out.
            low = now if later is None else self.midnight(today + timedelta(days=later + 1))
            high = self.midnight(today + timedelta(days=days + 1))
            found.append(Window(days, low, high, later))
        yesterday = today - timedelta(days=1)
        found.append(Window(DAY_AFTER, self.midnight(yesterday), self.midnight(today), None))
        return found

    def send_by(self, window: Window, credit_until: datetime, now: datetime) -> datetime:
        """The end of this device's window, or the next quiet hours if sooner."""
        ends = self.day(credit_until)
        if window.days_before == DAY_AFTER:
            end = self.midnight(ends + timedelta(days=2))
        elif window.next_days is None:
            end = credit_until
        else:
            end = self.midnight(ends - timedelta(days=window.next_days))
        quiet = self.quiet_starts(now)
        return min(end, quiet) if quiet is not None else end


@dataclass(frozen=True)
class Due:
    """A reminder due now, as `ovbot reminders --dry-run` lists it."""

    phone: str
    device: str  # the short reference the customer uses
    days_before: int
    language: str


@dataclass(frozen=True)
class Report:
    queued: int  # reminders queued by this pass (0 during quiet hours)
    waiting: int  # reminders due but waiting for the quiet hours to end
    quiet_until: datetime | None  # when they end, if it is quiet now


def run(deps: Deps, *, now: datetime | None = None, batch: int = BATCH) -> Report:
    """One pass: queue every reminder due now (nothing during the quiet hours)."""
    now = now or deps.clock()
    schedule = Schedule.of(deps.settings)
    if schedule.is_quiet(now):
        with deps.sessions() as session:
            waiting = count(session, schedule, now)
        return Report(0, waiting, schedule.quiet_ends(now))
    queued = 0
    for window in schedule.windows(now):
        for _ in range(MAX_ROUNDS):
            with db.transaction(deps.sessions) as session:
                found = session.execute(_due(window, now).limit(batch)).all()
                queued += _queue(session, deps.messages, schedule, window, found, now)
            deps.committed(session)
            if len(found) < batch:
                break
    if queued:
        log.info("reminders: %s queued", queued)
    return Report(queued, 0, None)


def preview(
    deps: Deps, *, now: datetime | None = None, limit: int = 200
) -> tuple[list[Due], Report]:
    """What a pass would queue now (at most `limit` listed), and the counts; changes nothing."""
    now = now or deps.clock()
    schedule = Schedule.of(deps.settings)
    with deps.sessions() as session:
        listed: list[Due] = []
        for window in schedule.windows(now):
            if len(listed) >= limit:
                break
            rows = session.execute(_due(window, now).limit(limit - len(listed))).all()
            refs = _references(session, [customer.id for _, customer in rows])
            listed += [
                Due(customer.phone, refs[device.id], window.days_before, customer.language)
                for device, customer in rows
            ]
        total = count(session, schedule, now)
    if schedule.is_quiet(now):
        return listed, Report(0, total, schedule.quiet_ends(now))
    return listed, Report(total, 0, None)


def count(session: Session, schedule: Schedule, now: datetime) -> int:
    """How many reminders are due now (one COUNT per offset)."""
    return sum(
        session.scalar(select(func.count()).select_from(_due(window, now).subquery())) or 0
        for window in schedule.windows(now)
    )


def _due(window: Window, now: datetime) -> Select[Device, Customer]:
    """Devices of `window` not yet reminded for their period and this offset."""
    reminded = select(Reminder.id).where(
        Reminder.device_id == Device.id,
        Reminder.credit_until == Device.credit_until,
        Reminder.days_before == window.days_before,
    )
    low = (
        Device.credit_until > window.low
        if window.until_credit_ends
        else Device.credit_until >= window.low
    )
    return (
        select(Device, Customer)
        .join(Customer, Customer.id == Device.owner_id)
        .where(
            low,
            Device.credit_until < window.high,
            remindable(),
            Customer.opted_out.is_(False),
            ~reminded.exists(),
        )
        .order_by(Device.credit_until, Device.id)
    )


def _queue(
    session: Session,
    messages: Messages,
    schedule: Schedule,
    window: Window,
    found: Sequence[tuple[Device, Customer]],
    now: datetime,
) -> int:
    """Claim each reminder by its unique key, then queue the ones this pass claimed."""
    if not found:
        return 0
    rows = sorted(found, key=lambda pair: pair[0].id)  # one order: no deadlock between workers
    values = [
        dict(
            device_id=device.id,
            customer_id=customer.id,
            credit_until=device.credit_until,
            days_before=window.days_before,
            send_by=schedule.send_by(window, _credit_until(device), now),
            created_at=now,
        )
        for device, customer in rows
    ]
    by_device = {
        device_id: reminder_id
        for reminder_id, device_id in session.execute(_insert_new(session, values))
    }
    refs = _references(session, [c.id for d, c in rows if d.id in by_device])
    links: list[dict[str, Any]] = []
    for device, customer in rows:
        if device.id not in by_device:
            continue  # another worker has it
        body = compose(
            messages,
            customer.language,
            device=refs[device.id],
            account=device.oem_serial or device.payg_serial or str(device.product_id),
            days_left=None
            if window.days_before == DAY_AFTER
            else (schedule.day(_credit_until(device)) - schedule.day(now)).days,
            until=_credit_until(device).astimezone(schedule.zone),
        )
        message = outbox.enqueue(session, customer, body)
        if message is not None:
            links.append({"id": by_device[device.id], "outbox_id": message.id})
        else:  # opted out since the query: cannot happen in one transaction, but say it
            links.append(
                {"id": by_device[device.id], "cancelled_at": now, "cancel_reason": "opted out"}
            )
    if links:
        session.execute(update(Reminder), links)
    return sum(1 for link in links if "outbox_id" in link)


def _insert_new(session: Session, values: list[dict[str, Any]]) -> Any:
    """INSERT ... ON CONFLICT (device, period, offset) DO NOTHING RETURNING id, device."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(Reminder)
        .values(values)
        .on_conflict_do_nothing(index_elements=["device_id", "credit_until", "days_before"])
        .returning(Reminder.id, Reminder.device_id)
    )


def _references(session: Session, owner_ids: list[int]) -> dict[int, str]:
    """Each device of these owners: its short reference (one query for them all)."""
    if not owner_ids:
        return {}
    owned: dict[int, list[Device]] = defaultdict(list)
    for device in session.scalars(select(Device).where(Device.owner_id.in_(set(owner_ids)))):
        owned[device.owner_id or 0].append(device)
    return {k: v for group in owned.values() for k, v in device_refs.references(group).items()}


def _credit_until(device: Device) -> datetime:
    if device.credit_until is None:  # cannot happen: the query keeps only devices with one
        raise ValueError(f"device {device.product_id} has no credit_until")
    return device.credit_until


def compose(
    messages: Messages,
    language: str,
    *,
    device: str,
    account: str,
    days_left: int | None,
    until: datetime,
) -> str:
    """A reminder's text: `days_left` days before `until` (local), or None for locked."""
    pay = messages.render(language, "reminder_pay", account=account)
    if days_left is None:
        return messages.render(
            language, "reminder_locked", device=device, until=format_date(until), pay=pay
        )
    if days_left >= 1:
        return messages.render(
            language,
            "reminder_soon",
            device=device,
            days=days_left,
            until=format_date(until),
            pay=pay,
        )
    return messages.render(
        language, "reminder_today", device=device, time=until.strftime("%H:%M"), pay=pay
    )


def describe(days_before: int) -> str:
    """An offset as operators read it: "3 days before", "the day it ends", "the day after"."""
    if days_before == DAY_AFTER:
        return "the day after"
    if days_before == 0:
        return "the day it ends"
    return f"{days_before} day{'s' if days_before != 1 else ''} before"
