"""What the console's pages show, computed in the core: the overview's figures, the chart's
per-day grouping (in SQL, on SQLite and PostgreSQL), finding a device, its timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.operators import views
from bot.storage.models import Agent, Code, Device, IntegrityAlarm, OutboxMessage, Payment, utcnow
from tests.harness import OWNER, populate_agents, queue_messages

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _backdate(world, reference: str, when: datetime) -> None:
    with world.session() as s:
        payment = s.scalar(select(Payment).where(Payment.reference == reference))
        payment.created_at = when


def test_the_chart_groups_by_utc_day_with_zeros_for_quiet_days(world):
    world.pay(1001, 3, "R-TODAY-1")
    world.pay(1001, 4, "R-TODAY-2")
    world.pay(1002, 5, "R-3-DAYS")
    world.pay(1002, 6, "R-LATE")  # 23:59 UTC two days ago: that day, in any local time
    world.pay(1003, 7, "R-OLD")  # 31 days ago: off the chart
    _backdate(world, "R-TODAY-1", NOON - timedelta(hours=11))
    _backdate(world, "R-TODAY-2", NOON)
    _backdate(world, "R-3-DAYS", NOON - timedelta(days=3))
    _backdate(world, "R-LATE", datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    _backdate(world, "R-OLD", NOON - timedelta(days=31))
    with world.session() as s:
        chart = views.chart(s, views.start_of_day(NOON), 30)
    assert len(chart) == 30 and chart[-1][0] == NOON.date()
    assert chart[0][0] == (NOON - timedelta(days=29)).date()
    paid = {day.isoformat(): p for day, p, _ in chart if p}
    assert paid == {"2026-12-02": 2, "2026-11-29": 1, "2026-11-30": 1}


def test_the_chart_counts_codes_by_the_day_they_were_minted(world):
    world.pay(1001, 3, "R-1")
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        world.ledger.mint_days(s, device, request_key="r1", channel="cli")
    now = utcnow()
    with world.session() as s:
        chart = views.chart(s, views.start_of_day(now), 30)
    assert chart[-1][1:] == (1, 1)
    assert sum(c for _, _, c in chart) == 1


def test_the_overview_figures(world):
    populate_agents(world)  # 1003 paid 5 days and minted; two agents
    world.pay(1001, 2, "R-NEW")
    with world.session() as s:
        world.ledger.record_payment(s, reference="R-LOST", device=None, days=9, source="webhook")
        s.scalar(select(Agent).where(Agent.role == "agent")).locked_until = utcnow() + timedelta(
            minutes=5
        )
        device = s.scalar(select(Device).where(Device.product_id == 1003))
        s.add(IntegrityAlarm(kind="late_answer", device_id=device.id, detail="test"))
        s.add(
            Code(
                device_id=device.id,
                kind="days",
                days=1,
                state="unknown",
                request_key="u:1",
                channel="cli",
            )
        )
    failed, _ = queue_messages(world.services.sessions, "one", "two")
    with world.session() as s:
        s.get(OutboxMessage, failed).status = "failed"
    with world.session() as s:
        o = views.overview(s, utcnow())
    assert (o.today.payments, o.today.days_sold, o.today.codes_minted) == (2, 7, 1)
    assert o.week == o.today
    assert (o.unmatched, o.mints_unknown, o.alarms, o.agents_locked) == (1, 1, 1, 1)
    assert (o.outbox_pending, o.outbox_failed) == (1, 1)


def test_find_by_product_id_serial_phone_and_name(world):
    world.customer(OWNER, 1001, 1002, name="Amina Wanjiku")
    world.customer("+254722000333", 1003, name="Juma 100%")
    serial = world.device(1003).oem_serial
    region = world.services.settings.default_region
    with world.session() as s:

        def found(query):
            return [f.device.product_id for f in views.find(s, query, region)]

        assert found("1001") == [1001]
        assert found(serial.lower()) == [1003]
        assert found("0712 345 678") == [1001, 1002]
        assert found("wanj") == [1001, 1002]
        assert found("100%") == [1003]  # a wildcard typed is a character searched
        assert found("_") == []
        assert found("") == [] and found("nobody") == []


def test_the_device_page_merges_payments_codes_and_messages_newest_first(world):
    populate_agents(world)  # 1003: owned by Juma, 5 days paid and minted
    queue_messages(world.services.sessions, "hello Juma", phone="+254722000333")
    with world.session() as s:
        page = views.device_page(s, world.ledger, 1003, utcnow())
    kinds = [e.kind for e in page.timeline]
    assert sorted(kinds) == ["code", "message", "payment"]
    assert [e.at for e in page.timeline] == sorted((e.at for e in page.timeline), reverse=True)
    (code,) = [e for e in page.timeline if e.kind == "code"]
    assert code.state == "minted" and code.detail["days"] == 5 and code.detail["code"]
    assert page.days_left == 5 and page.unspent_days == 0 and page.latest_codes == 1
    assert page.owner.name == "Juma"
    with world.session() as s:
        assert views.device_page(s, world.ledger, 424242, utcnow()) is None
