"""Reminders before credit runs out (bot/customers/reminders.py), on the whole product.

The issue's "done when": an injectable clock walks one device through its credit period,
hour by hour, running a reminder pass and an outbox drain at each step, and sees exactly
the reminders of REMINDER_DAYS plus the day-after one, none in the quiet hours, none after
a payment or STOP, none twice with two workers on PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from bot.customers import reminders
from bot.inbound import Inbound
from bot.outbox import reminders as outbox_reminders
from bot.outbox.delivery import drain
from bot.settings import Settings
from bot.storage.models import DAY_AFTER, Customer, Device, OutboxMessage, Reminder
from tests.fakes import FakeSender, FakeTime
from tests.harness import converse

PHONE = "+254712345678"
ZONE = ZoneInfo("Africa/Nairobi")  # the default TIMEZONE; no daylight saving time


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZONE).astimezone(UTC)


class Walk:
    """One device owned by one customer, on a hand-moved clock, with a recording sender."""

    def __init__(self, world, product_id: int = 1001) -> None:
        self.world, self.product_id = world, product_id
        self.clock = FakeTime()
        # Day 0 starts tomorrow: every time of the walk is after the real now, so the
        # outbox (whose rows are due at the real time they were queued) can send them.
        self.day0 = (datetime.now(ZONE) + timedelta(days=1)).date()
        self.clock.now = local(self.day0, 18)
        world.ledger.clock = self.clock.wall
        world.services.clock = self.clock.wall
        self.customer_id = world.customer(PHONE, product_id)
        self.sender = FakeSender()
        self.sent: list[tuple[datetime, str]] = []

    def credit(self, days: int) -> datetime:
        """A payment of `days`, minted now; the new credit_until."""
        reference = f"pay-{uuid.uuid4().hex[:8]}"
        self.world.pay(self.product_id, days, reference)
        with self.world.session() as s:
            device = s.scalar(select(Device).where(Device.product_id == self.product_id))
            self.world.ledger.mint_days(s, device, request_key=reference, channel="cli")
            return device.credit_until

    def step(self, at: datetime, *, send: bool = True) -> reminders.Report:
        """The worker at `at`: a reminder pass, then (if `send`) a drain."""
        self.clock.now = at
        report = reminders.run(self.world.services)
        if send:
            self.drain()
        return report

    def drain(self) -> None:
        before = len(self.sender.sent)
        drain(self.world.services.sessions, {"sms": self.sender}, now=self.clock.now)
        self.sent += [(self.clock.now, body) for _, body in self.sender.sent[before:]]

    def walk(self, start: datetime, end: datetime, every: timedelta = timedelta(hours=1)):
        at = start
        while at <= end:
            self.step(at)
            at += every

    def sms(self, text: str) -> None:
        converse(self.world.services, Inbound("sms", f"SM{uuid.uuid4().hex}", PHONE, text))

    def reminders_sent(self) -> list[tuple[datetime, str]]:
        """What went out that is a reminder (not a code, not a STOP/START answer)."""
        return [(at, body) for at, body in self.sent if "M-Pesa" in body]


def kinds(sent: list[tuple[datetime, str]]) -> list[tuple[datetime, str]]:
    """Each reminder as (when, what): "3 days", "1 day", "today 18:00", "locked"."""
    found = []
    for at, body in sent:
        if "is locked" in body:
            found.append((at, "locked"))
        elif "ends today at" in body:
            found.append((at, "today " + body.split("ends today at ")[1][:5]))
        else:
            found.append((at, body.split("ends in ")[1].split(",")[0]))
    return found


# --- the walk -------------------------------------------------------------------------


def test_one_credit_period_gets_exactly_its_reminders_outside_quiet_hours(world):
    walk = Walk(world)
    until = walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    assert until == local(ends, 18)
    walk.walk(walk.clock.now, local(ends + timedelta(days=3), 23))
    assert kinds(walk.reminders_sent()) == [
        (local(ends - timedelta(days=3), 8), "3 days"),
        (local(ends - timedelta(days=1), 8), "1 day"),
        (local(ends, 8), "today 18:00"),
        (local(ends + timedelta(days=1), 8), "locked"),
    ]
    for at, body in walk.reminders_sent():
        assert 8 <= at.astimezone(ZONE).hour < 21
        assert "paybill 000000, account OVES001001." in body
        assert body.startswith("1001")  # the short reference the customer knows


def test_reminders_are_in_the_owners_language_with_the_serial_as_account(world):
    walk = Walk(world)
    with world.session() as s:
        s.get(Customer, walk.customer_id).language = "sw"
    ends = walk.day0 + timedelta(days=2)
    walk.credit(2)
    walk.step(local(ends - timedelta(days=1), 9))
    [(_, body)] = walk.reminders_sent()
    assert "linaisha baada ya siku 1" in body and "akaunti OVES001001." in body


def test_a_payment_before_the_reminder_goes_out_cancels_it(world):
    walk = Walk(world)
    walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    walk.step(local(ends - timedelta(days=3), 8), send=False)  # queued, not sent yet
    assert count_reminders(world) == 1
    new_until = walk.credit(5)  # the customer pays before the worker sends it
    walk.drain()
    assert walk.reminders_sent() == []
    with world.session() as s:
        [reminder] = s.scalars(select(Reminder))
        assert reminder.outbox_id is None and reminder.cancelled_at == walk.clock.now
        assert reminder.cancel_reason == outbox_reminders.MOVED_ON
        assert s.scalar(select(OutboxMessage).where(OutboxMessage.body.contains("M-Pesa"))) is None
    # The old period is over; the new one is reminded in its turn.
    new_ends = ends + timedelta(days=5)
    assert new_until == local(new_ends, 18)
    walk.walk(walk.clock.now + timedelta(hours=1), local(new_ends, 9))
    assert kinds(walk.reminders_sent()) == [
        (local(new_ends - timedelta(days=3), 8), "3 days"),
        (local(new_ends - timedelta(days=1), 8), "1 day"),
        (local(new_ends, 8), "today 18:00"),
    ]


def test_paid_days_waiting_for_a_code_count_as_paid(world):
    """A payment recorded but not minted yet (MINT_ON_PAYMENT off, or the API down):
    the queued reminder is withdrawn, and no new one is queued."""
    walk = Walk(world)
    walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    walk.step(local(ends - timedelta(days=3), 8), send=False)
    world.pay(1001, 5, "paid-not-minted")
    walk.drain()
    walk.walk(walk.clock.now, local(ends + timedelta(days=1), 12), timedelta(hours=4))
    assert walk.reminders_sent() == []


def test_stop_stops_reminders_and_start_brings_the_next_one(world):
    walk = Walk(world)
    walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    walk.step(local(ends - timedelta(days=3), 8), send=False)
    walk.sms("STOP")  # after it was queued: the outbox refuses it
    walk.walk(walk.clock.now, local(ends - timedelta(days=1), 12))
    assert walk.reminders_sent() == []
    walk.sms("START")  # at noon the day before: that day's reminder is still due
    walk.walk(walk.clock.now + timedelta(hours=1), local(ends, 12))
    assert kinds(walk.reminders_sent()) == [
        (local(ends - timedelta(days=1), 13), "1 day"),
        (local(ends, 8), "today 18:00"),
    ]


def test_quiet_hours_hold_a_due_reminder_until_the_morning(world):
    walk = Walk(world)
    walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    night = local(ends - timedelta(days=4), 23)  # offset 3 is due from midnight
    for hour in range(0, 8):
        report = walk.step(night + timedelta(hours=1 + hour))
        assert report.queued == 0 and report.waiting == 1
        assert report.quiet_until == local(ends - timedelta(days=3), 8)
    assert walk.reminders_sent() == []
    walk.step(local(ends - timedelta(days=3), 8))
    assert kinds(walk.reminders_sent()) == [(local(ends - timedelta(days=3), 8), "3 days")]


def test_a_reminder_held_past_its_send_by_time_is_withdrawn(world):
    """Queued at 20:30, its send failed and was retried after 21:00: not sent at night."""
    walk = Walk(world)
    walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    walk.step(local(ends - timedelta(days=3), 20, 30), send=False)
    walk.clock.now = local(ends - timedelta(days=3), 21, 5)
    walk.drain()
    assert walk.reminders_sent() == []
    with world.session() as s:
        [reminder] = s.scalars(select(Reminder))
        assert reminder.cancel_reason == outbox_reminders.TOO_LATE


def test_a_worker_down_for_days_sends_the_most_recent_offset_once(world):
    walk = Walk(world)
    walk.credit(10)
    ends = walk.day0 + timedelta(days=10)
    # No pass from day 0 until the day before the end, mid-morning: offsets 3 and 1 are
    # both past their start; only 1 is still in its window.
    walk.step(local(ends - timedelta(days=1), 10))
    walk.step(local(ends - timedelta(days=1), 11))
    assert kinds(walk.reminders_sent()) == [(local(ends - timedelta(days=1), 10), "1 day")]
    # Down again until two days after: the day-after window (one day) has closed.
    walk.step(local(ends + timedelta(days=2), 10))
    assert len(walk.reminders_sent()) == 1


@pytest.mark.parametrize("state", ["free", "unowned", "no credit"])
def test_no_reminder_for_free_unowned_or_never_credited_devices(world, state):
    walk = Walk(world)
    walk.credit(3)
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        if state == "free":
            device.state = "free"
        elif state == "unowned":
            device.owner_id = None
        else:
            device.credit_until = None
    ends = walk.day0 + timedelta(days=3)
    walk.walk(walk.clock.now, local(ends + timedelta(days=1), 12), timedelta(hours=4))
    assert walk.reminders_sent() == []
    assert count_reminders(world) == 0


def test_a_second_pass_queues_nothing_more(world):
    walk = Walk(world)
    walk.credit(10)
    at = local(walk.day0 + timedelta(days=7), 9)
    assert walk.step(at, send=False).queued == 1
    assert walk.step(at, send=False).queued == 0
    walk.drain()
    assert len(walk.reminders_sent()) == 1


@pytest.mark.postgres
def test_two_workers_racing_on_postgres_send_each_reminder_once(world):
    """Two passes at once, held at their first INSERT until both have chosen the same due
    devices: the unique key lets one queue them and the other nothing, and no error."""
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's writers take turns (BEGIN IMMEDIATE)")
    walk = Walk(world)
    product_ids = list(range(1002, 1022))
    with world.session() as s:
        for pid in product_ids:
            s.scalar(select(Device).where(Device.product_id == pid)).owner_id = walk.customer_id
    for pid in [1001, *product_ids]:
        walk.product_id = pid
        walk.credit(10)
    walk.clock.now = local(walk.day0 + timedelta(days=7), 9)
    both_chose = threading.Barrier(2, timeout=20)
    waited = threading.local()

    def hold_first_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO reminders") and not getattr(waited, "done", 0):
            waited.done = 1
            both_chose.wait()

    reports, errors = [], []

    def worker():
        try:
            reports.append(reminders.run(world.services, batch=100))
        except Exception as exc:  # reported below
            errors.append(exc)

    engine = world.services.engine
    event.listen(engine, "before_cursor_execute", hold_first_insert)
    try:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", hold_first_insert)
    assert errors == []
    assert sorted(r.queued for r in reports) == [0, 21]
    walk.drain()
    assert len(walk.reminders_sent()) == 21
    assert count_reminders(world) == 21


def count_reminders(world) -> int:
    with world.session() as s:
        return len(s.scalars(select(Reminder.id)).all())


# --- the schedule (pure) --------------------------------------------------------------


def schedule(days=(3, 1, 0), quiet=(21, 8), zone="Africa/Nairobi") -> reminders.Schedule:
    return reminders.Schedule.of(Settings(reminder_days=days, quiet_hours=quiet, timezone=zone))


TODAY = date(2027, 3, 10)


@pytest.mark.parametrize(
    "credit_ends, now, offset",
    [
        pytest.param(local(TODAY + timedelta(days=4), 12), local(TODAY, 9), None, id="4 days"),
        pytest.param(local(TODAY + timedelta(days=3), 12), local(TODAY, 9), 3, id="3 days"),
        pytest.param(local(TODAY + timedelta(days=2), 12), local(TODAY, 9), 3, id="2 days: 3"),
        pytest.param(local(TODAY + timedelta(days=1), 0), local(TODAY, 9), 1, id="1 day"),
        pytest.param(local(TODAY, 23, 59), local(TODAY, 9), 0, id="today"),
        pytest.param(local(TODAY, 9), local(TODAY, 9), None, id="ends right now"),
        pytest.param(local(TODAY, 8, 59), local(TODAY, 9), None, id="ended an hour ago"),
        pytest.param(local(TODAY - timedelta(days=1), 8), local(TODAY, 9), DAY_AFTER, id="after"),
        pytest.param(local(TODAY - timedelta(days=2), 23), local(TODAY, 9), None, id="2 days ago"),
    ],
)
def test_at_most_one_offset_is_due_for_a_period(credit_ends, now, offset):
    found = [w.days_before for w in schedule().windows(now) if holds(w, credit_ends)]
    assert found == ([] if offset is None else [offset])


def holds(window: reminders.Window, credit_until: datetime) -> bool:
    """The pass's SQL condition on credit_until, in Python."""
    low = credit_until > window.low if window.until_credit_ends else credit_until >= window.low
    return low and credit_until < window.high


@pytest.mark.parametrize(
    "quiet, hour, is_quiet",
    [
        pytest.param((21, 8), 20, False, id="wraps: 20h"),
        pytest.param((21, 8), 21, True, id="wraps: 21h"),
        pytest.param((21, 8), 0, True, id="wraps: midnight"),
        pytest.param((21, 8), 7, True, id="wraps: 7h"),
        pytest.param((21, 8), 8, False, id="wraps: 8h"),
        pytest.param((13, 15), 12, False, id="same day: 12h"),
        pytest.param((13, 15), 13, True, id="same day: 13h"),
        pytest.param((13, 15), 15, False, id="same day: 15h"),
        pytest.param(None, 3, False, id="off"),
    ],
)
def test_quiet_hours_may_wrap_midnight(quiet, hour, is_quiet):
    assert schedule(quiet=quiet).is_quiet(local(TODAY, hour, 30)) is is_quiet


def test_quiet_hours_end_in_the_morning_and_start_in_the_evening():
    s = schedule()
    assert s.quiet_ends(local(TODAY, 22)) == local(TODAY + timedelta(days=1), 8)
    assert s.quiet_ends(local(TODAY, 3)) == local(TODAY, 8)
    assert s.quiet_starts(local(TODAY, 9)) == local(TODAY, 21)
    assert schedule(quiet=None).quiet_starts(local(TODAY, 9)) is None


def test_the_time_zone_decides_what_today_is():
    # 22:30 UTC is 01:30 the next day in Nairobi: a credit ending at 10:00 UTC on that
    # day ends "today" there, "tomorrow" in UTC.
    now = datetime(2027, 3, 9, 22, 30, tzinfo=UTC)
    ends = datetime(2027, 3, 10, 10, 0, tzinfo=UTC)
    due = {
        name: [
            w.days_before for w in schedule(quiet=None, zone=name).windows(now) if holds(w, ends)
        ]
        for name in ("Africa/Nairobi", "UTC")
    }
    assert due == {"Africa/Nairobi": [0], "UTC": [1]}


def test_send_by_is_the_window_end_or_the_quiet_hours():
    s = schedule()
    ends = local(TODAY + timedelta(days=3), 12)
    now = local(TODAY, 9)
    [three, one, zero, after] = s.windows(now)
    assert s.send_by(three, ends, now) == local(TODAY, 21)  # the quiet hours come first
    assert schedule(quiet=None).send_by(three, ends, now) == local(TODAY + timedelta(days=2), 0)
    assert schedule(quiet=None).send_by(zero, ends, now) == ends
    assert schedule(quiet=None).send_by(after, ends, now) == local(TODAY + timedelta(days=5), 0)


def test_no_reminder_days_means_no_reminders():
    assert schedule(days=()).windows(local(TODAY, 9)) == []


@pytest.mark.parametrize(
    "days, text",
    [
        (3, "3 days before"),
        (1, "1 day before"),
        (0, "the day it ends"),
        (DAY_AFTER, "the day after"),
    ],
)
def test_describe(days, text):
    assert reminders.describe(days) == text


# --- the worker runs the pass --------------------------------------------------------


def test_the_embedded_worker_sends_due_reminders(sqlite_world):
    """`install_embedded_drain(background=True, reminders=...)` (the demo's worker, and
    `ovbot worker`'s loop) runs a pass and sends what it queued."""
    from bot.outbox import worker

    services = sqlite_world.services
    services.settings = services.settings.replace(quiet_hours=None)
    sqlite_world.customer(PHONE, 1001)
    with sqlite_world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        device.credit_until = datetime.now(UTC) + timedelta(days=2)  # offset 3 is due
    sender = FakeSender()
    stop = worker.install_embedded_drain(
        services, {"sms": sender}, background=True, reminders=lambda: reminders.run(services)
    )
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not sender.sent and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        services.committed()
        for thread in threading.enumerate():
            if thread.name == "ovbot-embedded-worker":
                thread.join(10)
    [(recipient, body)] = sender.sent
    assert recipient == PHONE and body.startswith("1001: your solar credit ends in 2 days")
