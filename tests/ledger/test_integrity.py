"""Code integrity under faults (issue: no code lost, doubled, or turned into a free code).

Each case uses the emulator's faults and the device simulator as the referee, on SQLite
and (with TEST_DATABASE_URL) PostgreSQL: whatever happened on the way, the days minted
upstream equal the days paid, and what we showed, entered in the order shown, is accepted.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.agents import menu
from bot.inbound import Inbound
from bot.ledger import InvalidPayment, Ledger, MintPending, ServiceUnavailable
from bot.outbox.queue import notify_codes
from bot.storage.models import Code, Device, InboundMessage, IntegrityAlarm, OutboxMessage, Payment
from tests.fakes import FakeTime, PausedBeforeSending
from tests.harness import (
    ADMIN,
    ADMIN_PIN,
    AGENT,
    OWNER,
    PIN,
    build_world,
    converse,
    populate_agents,
    timed_client,
)


def device_row(session, product_id: int) -> Device:
    return session.scalar(select(Device).where(Device.product_id == product_id))


def upstream(world, product_id: int):
    return world.services.omnivoltaic.code_history(product_id)


def states(world, product_id: int) -> list[str]:
    with world.session() as s:
        return list(
            s.scalars(
                select(Code.state)
                .join(Device)
                .where(Device.product_id == product_id)
                .order_by(Code.id)
            )
        )


@pytest.fixture
def quick(database_url, tmp_path):
    """The product with a short API timeout, so a late answer times out quickly."""
    world = build_world(database_url, tmp_path, timeout=0.3)
    yield world
    world.services.close()


# -- 6: a mint answered with a status the API does not use for refusals --------------------


@pytest.mark.parametrize("status", [408, 302, 499, 502])
def test_6_a_mint_answered_with_a_non_refusal_status_is_outcome_unknown_then_adopted(world, status):
    world.pay(1001, 10, "p-408")
    world.emulator.mint_then_status(1, status)
    with world.session() as s, pytest.raises(MintPending):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k1", channel="cli")
    assert states(world, 1001) == ["unknown"]  # not "failed": the days stay reserved
    with world.session() as s:
        result = world.ledger.mint_days(s, device_row(s, 1001), request_key="k2", channel="cli")
    assert [c.days for c in result.codes] == [10]  # the first mint, adopted from the history
    assert [r.days for r in upstream(world, 1001)] == [10]  # minted once: 10 paid, 10 minted
    assert world.simulator(1001).enter(result.codes[0].code).days == 10


# -- 2: free and reset codes -----------------------------------------------------------------


def test_2_a_retried_free_code_that_timed_out_returns_the_first_one_not_a_reset(quick):
    quick.emulator.mint_then_timeout(1, delay=1.0)
    with quick.session() as s, pytest.raises(MintPending):
        quick.ledger.mint_special(s, device_row(s, 1001), "free", request_key="f1", channel="cli")
    time.sleep(1.0)  # the late answer is dropped; the code is in the history
    with quick.session() as s:
        result = quick.ledger.mint_special(
            s, device_row(s, 1001), "free", request_key="f2", channel="cli"
        )
    assert [c.kind for c in result.codes] == ["free"]
    assert [r.kind for r in upstream(quick, 1001)] == ["free"]  # no second free code upstream
    assert quick.simulator(1001).enter(result.codes[0].code).outcome == "free"


def test_2_a_reset_returns_the_days_code_it_adopted_first_in_entry_order(quick):
    quick.pay(1001, 30, "p-reset")
    quick.emulator.mint_then_timeout(1, delay=1.0)
    with quick.session() as s, pytest.raises(MintPending):
        quick.ledger.mint_days(s, device_row(s, 1001), request_key="c1", channel="sms")
    time.sleep(1.0)
    with quick.session() as s:
        result = quick.ledger.mint_special(
            s, device_row(s, 1001), "reset", request_key="r1", channel="ussd"
        )
    assert [c.kind for c in result.codes] == ["days", "reset"]
    device = quick.simulator(1001)
    assert [device.enter(c.code).outcome for c in result.codes] == ["days", "reset"]


# -- 4 and 5: payments at once (row locks: PostgreSQL) ----------------------------------------


def _hold_then(world, first, second) -> list[Exception]:
    """Run `first` in a transaction kept open while `second` starts in another thread."""
    errors: list[Exception] = []

    def run_second() -> None:
        try:
            with world.session() as s:
                second(s)
        except Exception as exc:
            errors.append(exc)

    with world.session() as s:
        first(s)
        thread = threading.Thread(target=run_second)
        thread.start()
        time.sleep(0.5)  # the second now waits on our row lock (or on SQLite's write lock)
    thread.join(30)
    return errors


def test_4_an_amount_payment_delivered_twice_at_once_credits_the_balance_once(world):
    def pay(s) -> None:
        world.ledger.record_payment(
            s, reference="A-TWICE", device=device_row(s, 1001), amount=Decimal(75), source="webhook"
        )

    assert _hold_then(world, pay, pay) == []
    with world.session() as s:
        assert device_row(s, 1001).balance == Decimal("25.00")  # 75 at 50 a day: 1 day, 25 over
        assert s.scalar(select(func.count()).select_from(Payment)) == 1


def test_5_two_operators_assigning_one_unmatched_payment_at_once_one_wins(world):
    with world.session() as s:
        world.ledger.record_payment(s, reference="U-1", device=None, days=7, source="webhook")

    def assign(product_id):
        def run(s) -> None:
            payment = s.scalar(select(Payment).where(Payment.reference == "U-1"))
            world.ledger.assign_payment(s, payment, device_row(s, product_id))

        return run

    errors = _hold_then(world, assign(1001), assign(1002))
    assert [type(e) for e in errors] == [InvalidPayment]
    with world.session() as s:
        payment = s.scalar(select(Payment).where(Payment.reference == "U-1"))
        assert payment.device_id == device_row(s, 1001).id


# -- 7: USSD request keys ----------------------------------------------------------------------


def test_7_a_reused_ussd_session_id_never_shows_one_agent_the_others_code(world):
    populate_agents(world)
    world.customer("+254733000444", 1002, name="Neema")

    def sale(phone: str, pin: str, product_id: int, days: int):
        text = f"{pin}*1*{product_id}*{days}*1"
        inbound = Inbound(
            channel="ussd", provider_id=menu.provider_id("SAME", text), sender=phone, text=text
        )
        return converse(world.services, inbound, menu.RESPONDER)

    first, second = sale(AGENT, PIN, 1001, 30), sale(ADMIN, ADMIN_PIN, 1002, 5)
    assert first.end and second.end
    with world.session() as s:
        codes = {c.device_id: c for c in s.scalars(select(Code).where(Code.state == "minted"))}
        mine = codes[device_row(s, 1002).id]
        assert mine.days == 5 and mine.code in second.text  # B sees B's own code
        assert codes[device_row(s, 1001).id].code not in second.text
        agents = sorted(
            p.agent_id for p in s.scalars(select(Payment).where(Payment.source == "agent"))
        )
        assert len(agents) == 2 and agents[0] != agents[1]  # a sale recorded for each


def test_7_ussd_keys_carry_the_phone_only_as_a_digest_and_differ_per_agent(world):
    populate_agents(world)
    client = world.client()
    for phone, pin in ((AGENT, PIN), (ADMIN, ADMIN_PIN)):
        form = {
            "sessionId": "REUSED",
            "serviceCode": "*384#",
            "phoneNumber": phone,
            "text": f"{pin}*1*1001*5*1",
        }
        assert client.post("/webhooks/ussd", data=form).data.startswith(b"END")
    with world.session() as s:
        keys = (
            list(s.scalars(select(InboundMessage.provider_id)))
            + list(s.scalars(select(Code.request_key)))
            + list(s.scalars(select(Payment.reference)))
        )
        sales = s.scalar(select(func.count()).select_from(Payment).where(Payment.source == "agent"))
    assert sales == 2  # one sale each, though the gateway reused the session id
    assert not [k for k in keys if AGENT[4:] in k or ADMIN[4:] in k]


# -- 1: fencing, not a clock ----------------------------------------------------------------


def _ledger(world, clock, client=None) -> Ledger:
    client = client or timed_client(world, clock)
    return Ledger(
        client, grace=timedelta(seconds=30), send_window=timedelta(seconds=5), clock=clock.wall
    )


def test_1_a_minter_paused_past_its_deadline_never_sends_after_a_retry_released_it(world):
    """30 paid: the paused process's mint is refused, the retry's goes out: 30 minted."""
    world.pay(1001, 30, "p-paused")
    clock = FakeTime()
    retry = _ledger(world, clock)
    outcomes = []

    def customers_retry() -> None:
        clock.advance(120)  # the pause outlasts the deadline and the answer window
        with world.session() as s:
            outcomes.append(
                retry.mint_days(s, device_row(s, 1001), request_key="sms:SM2", channel="sms")
            )

    base = timed_client(world, clock)
    paused = _ledger(world, clock, PausedBeforeSending(base, customers_retry))
    with world.session() as s, pytest.raises(ServiceUnavailable, match="deadline"):
        paused.mint_days(s, device_row(s, 1001), request_key="sms:SM1", channel="sms")
    assert [c.days for c in outcomes[0].codes] == [30]
    assert [r.days for r in upstream(world, 1001)] == [30]  # 30 paid, 30 minted
    assert states(world, 1001) == ["failed", "minted"]
    assert world.simulator(1001).enter(outcomes[0].codes[0].code).days == 30


def test_1_an_attempt_within_its_fence_is_never_released_on_the_clock_alone(world):
    """Absent from the history, but its deadline and answer window have not passed."""
    world.pay(1001, 30, "p-fence")
    clock = FakeTime()
    ledger = _ledger(world, clock)
    with world.session() as s:
        attempt = Code(
            device_id=device_row(s, 1001).id,
            kind="days",
            days=30,
            state="unknown",
            request_key="sms:SM1:0",
            channel="sms",
            created_at=clock.now,
            send_deadline=clock.now + timedelta(seconds=5),
        )
        s.add(attempt)
    clock.advance(20)  # past the deadline, not past deadline + answer window (30 s)
    with world.session() as s, pytest.raises(MintPending):
        ledger.mint_days(s, device_row(s, 1001), request_key="sms:SM2", channel="sms")
    assert states(world, 1001) == ["unknown"]
    clock.advance(20)  # now fenced: released on evidence (the history), then minted once
    with world.session() as s:
        result = ledger.mint_days(s, device_row(s, 1001), request_key="sms:SM3", channel="sms")
    assert [c.days for c in result.codes] == [30]
    assert states(world, 1001) == ["failed", "minted"]


def test_1_an_answer_for_a_released_attempt_is_recorded_and_raises_an_alarm(world):
    world.pay(1001, 30, "p-late")
    clock = FakeTime()

    def released_meanwhile() -> None:
        with world.session() as s:  # as a reconciliation that wrongly released it would
            for code in s.scalars(select(Code).where(Code.state == "pending")):
                code.state = "failed"

    base = timed_client(world, clock)
    late = _ledger(world, clock, PausedBeforeSending(base, released_meanwhile))
    with world.session() as s:
        result = late.mint_days(s, device_row(s, 1001), request_key="sms:SM1", channel="sms")
    assert [c.days for c in result.codes] == [30]  # never dropped: recorded and returned
    with world.session() as s:
        (alarm,) = s.scalars(select(IntegrityAlarm)).all()
        assert (alarm.kind, alarm.code_id) == ("late_answer", result.codes[0].id)
    assert states(world, 1001) == ["minted"]


# -- 8: no upstream call while holding a lock ---------------------------------------------------


def test_8_a_slow_history_read_does_not_hold_the_write_lock(world):
    """While one request reconciles against a slow API, another channel still writes."""
    world.pay(1001, 5, "p-slow")
    world.emulator.fail_next(1, 503)  # the mint: outcome unknown, to be reconciled
    with world.session() as s, pytest.raises(MintPending):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k1", channel="cli")
    world.emulator.set_latency(1.5)  # every call, the history read included, is slow
    done: dict[str, float] = {}

    def reconcile() -> None:
        with world.session() as s:
            world.ledger.reconcile(s, device_row(s, 1001))  # reads the history, settles
            done["reconcile"] = time.monotonic()

    thread = threading.Thread(target=reconcile)
    thread.start()
    time.sleep(0.5)  # the reconciliation is now waiting on the history
    world.pay(1002, 3, "another-channel")  # a write: needs SQLite's lock, or 1002's row
    done["other"] = time.monotonic()
    thread.join(30)
    world.emulator.set_latency(0)
    assert done["other"] < done["reconcile"]  # it did not wait for the slow API


# -- 3: codes in the order they must be entered -------------------------------------------------


def _sms(world, text: str, sid: str):
    inbound = Inbound(channel="sms", provider_id=sid, sender=OWNER, text=text)
    return converse(world.services, inbound)


def test_3_resend_sends_every_code_of_the_latest_mint_adopted_ones_first(quick):
    quick.customer(OWNER, 1001)
    quick.pay(1001, 10, "p-1")
    quick.emulator.mint_then_timeout(1, delay=1.0)
    assert "confirming" in _sms(quick, "CODE", "SM1").text  # timed out: being confirmed
    time.sleep(1.0)
    quick.pay(1001, 5, "p-2")
    reply = _sms(quick, "CODE", "SM2")  # adopts SM1's code, then mints the 5 days
    with quick.session() as s:
        codes = list(s.scalars(select(Code).where(Code.state == "minted").order_by(Code.id)))
    assert [c.days for c in codes] == [10, 5]
    assert [c.code in reply.text for c in codes] == [True, True]
    assert reply.text.index(codes[0].code) < reply.text.index(codes[1].code)
    again = _sms(quick, "RESEND", "SM3").text
    assert again.index(codes[0].code) < again.index(codes[1].code)  # both, in entry order
    device = quick.simulator(1001)
    assert [device.enter(c.code).days for c in codes] == [10, 5]


def test_3_a_push_of_several_codes_is_chained_so_it_arrives_in_entry_order(world):
    world.customer(OWNER, 1001)
    for days, ref in ((5, "a"), (6, "b")):
        world.pay(1001, days, ref)
        with world.session() as s:
            world.ledger.mint_days(s, device_row(s, 1001), request_key=ref, channel="cli")
    with world.session() as s:
        codes = list(s.scalars(select(Code).order_by(Code.id)))
        queued = notify_codes(s, world.services.messages, device_row(s, 1001), codes)
        chain = [(m.id, m.after_id) for m in queued]
    assert [after for _, after in chain] == [None, chain[0][0], chain[1][0]]  # header, 1, 2


# -- 8: a customer's reconciliation fits the channel's budget ---------------------------------


def test_8_a_code_request_answers_within_its_budget_when_the_api_is_slower_than_it(
    database_url, tmp_path
):
    """One try at the history within half the budget, not three tries of the API timeout."""
    world = build_world(database_url, tmp_path, timeout=2.0, reply_budget=1.0)
    try:
        world.customer(OWNER, 1001)
        world.pay(1001, 5, "p-budget")
        world.emulator.fail_next(1, 503)  # the first mint: outcome unknown
        assert "confirming" in _sms(world, "CODE", "SM1").text
        world.emulator.set_latency(1.5)  # slower than the budget, within the API timeout
        started = time.monotonic()
        reply = _sms(world, "CODE", "SM2")
        elapsed = time.monotonic() - started
        world.emulator.set_latency(0)
        assert elapsed < 1.4  # three tries of 2 s would take 6 s and more
        assert reply.texts == (world.services.messages.render("en", "api_unavailable"),)
    finally:
        world.services.close()


def test_2_an_admins_reset_shows_and_pushes_the_customers_timed_out_code_first(quick):
    populate_agents(quick)  # OWNER owns 1001
    quick.pay(1001, 30, "p-owner")
    quick.emulator.mint_then_timeout(1, delay=1.0)
    assert "confirming" in _sms(quick, "CODE", "SM1").text
    time.sleep(1.0)
    text = f"{ADMIN_PIN}*6*1001*1"
    inbound = Inbound(
        channel="ussd", provider_id=menu.provider_id("R1", text), sender=ADMIN, text=text
    )
    screen = converse(quick.services, inbound, menu.RESPONDER).text
    with quick.session() as s:
        days, reset = s.scalars(
            select(Code)
            .where(Code.state == "minted", Code.device_id == device_row(s, 1001).id)
            .order_by(Code.upstream_index)
        ).all()
        pushed = [m.body for m in s.scalars(select(OutboxMessage))]
    assert (days.kind, reset.kind) == ("days", "reset")
    assert screen.index(days.code) < screen.index(reset.code)  # in the order to enter them
    assert any(days.code in body for body in pushed)  # the owner gets the adopted code
    device = quick.simulator(1001)
    assert [device.enter(c.code).outcome for c in (days, reset)] == ["days", "reset"]


def test_3_an_agents_resend_sends_every_code_of_the_latest_mint_in_order(quick):
    populate_agents(quick)  # OWNER owns 1001
    quick.pay(1001, 10, "p-1")
    quick.emulator.mint_then_timeout(1, delay=1.0)
    assert "confirming" in _sms(quick, "CODE", "SM1").text
    time.sleep(1.0)
    quick.pay(1001, 5, "p-2")
    _sms(quick, "CODE", "SM2")  # adopts SM1's code, then mints the 5 days
    with quick.session() as s:
        codes = list(
            s.scalars(
                select(Code)
                .where(Code.state == "minted", Code.device_id == device_row(s, 1001).id)
                .order_by(Code.upstream_index)
            )
        )
        before = s.scalar(select(func.max(OutboxMessage.id))) or 0
    text = f"{PIN}*3*1001"
    inbound = Inbound(
        channel="ussd", provider_id=menu.provider_id("RS", text), sender=AGENT, text=text
    )
    screen = converse(quick.services, inbound, menu.RESPONDER).text
    assert screen.index(codes[0].code) < screen.index(codes[1].code)
    with quick.session() as s:
        pushed = list(
            s.scalars(
                select(OutboxMessage).where(OutboxMessage.id > before).order_by(OutboxMessage.id)
            )
        )
    assert [m.code_id for m in pushed] == [c.id for c in codes]
    assert [m.after_id for m in pushed] == [None, pushed[0].id]  # chained, in entry order


def test_a_sale_that_no_longer_fits_says_the_days_are_held(world):
    """The days screen checks the cap; a concurrent sale can still fill it first."""
    from bot.agents import actions
    from bot.agents.state import Ctx, State
    from bot.storage.models import Agent

    populate_agents(world)
    with world.session() as s:
        device = device_row(s, 1001)
        device.credit_until = world.services.clock() + timedelta(days=1095)
    with world.session() as s:
        agent = s.scalar(select(Agent).where(Agent.phone == AGENT))
        ctx = Ctx(world.services, s, agent, "race")
        reply = actions.sell(
            ctx, State("sell_confirm", {"device": device_row(s, 1001), "days": 30})
        )
    assert reply.text == world.services.messages.render(
        "en", "ussd_sold_held", days=30, device="OVES001001"
    )
    assert upstream(world, 1001) == []  # nothing minted; the 30 days wait as credit
