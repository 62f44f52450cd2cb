"""The ledger: payments in, codes out, never a code lost or minted twice (OMNIVOLTAIC.md §2).

Everything here runs against the embedded emulator and a real database, on SQLite and (with
TEST_DATABASE_URL) PostgreSQL.  The device simulator is the referee: whatever the network
did, the days a device can be credited with must equal the days that were paid.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from bot.domain import MAX_CODE_DAYS
from bot.ledger import (
    InvalidPayment,
    Ledger,
    MintPending,
    Refused,
    ServiceUnavailable,
)
from bot.omnivoltaic import acp1
from bot.omnivoltaic.client import OmnivoltaicClient
from bot.storage.models import Code, Device, Payment
from tests.harness import BACKENDS, build_world, postgres_schema_url, sqlite_file_url

DISTRIBUTOR = 1  # the emulator's demo distributor
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# -- helpers --------------------------------------------------------------------------


def device_row(session, product_id: int) -> Device:
    return session.scalar(select(Device).where(Device.product_id == product_id))


def mint(world, product_id: int, key: str, ledger: Ledger | None = None, **kwargs):
    ledger = ledger or world.ledger
    with world.session() as s:
        return ledger.mint_days(
            s, device_row(s, product_id), request_key=key, channel="cli", **kwargs
        )


def special(world, product_id: int, kind: str, key: str):
    with world.session() as s:
        return world.ledger.mint_special(
            s, device_row(s, product_id), kind, request_key=key, channel="cli"
        )


def pay_amount(world, product_id: int, amount, reference: str):
    with world.session() as s:
        return world.ledger.record_payment(
            s,
            reference=reference,
            device=device_row(s, product_id),
            amount=Decimal(amount),
            source="cli",
        ).payment


def code_rows(world, product_id: int) -> list[Code]:
    with world.session() as s:
        return list(
            s.scalars(
                select(Code).join(Device).where(Device.product_id == product_id).order_by(Code.id)
            )
        )


def unspent(world, product_id: int, ledger: Ledger | None = None) -> int:
    with world.session() as s:
        return (ledger or world.ledger).unspent_days(s, device_row(s, product_id))


def upstream(world, product_id: int) -> list:
    """The emulator's own code history for the item, oldest first (not through our client)."""
    rows, _ = world.emulator.store.history_page(DISTRIBUTOR, product_id, 0, 100)
    return sorted(rows, key=lambda r: r["code_index"])


def format_upstream(row) -> str:
    return acp1.format_code(row["code_hex"])


def upstream_days(world, product_id: int) -> int:
    return sum(int(r["code_days"]) for r in upstream(world, product_id) if r["code_days"].isdigit())


def enter_in_order(world, product_id: int) -> list:
    """Key every code we hold for the device into its simulator, in the order minted."""
    minted = sorted(
        (c for c in code_rows(world, product_id) if c.state == "minted"),
        key=lambda c: c.upstream_index,
    )
    sim = world.simulator(product_id)
    return [sim.enter(c.code) for c in minted]


def count(world, model, **where) -> int:
    with world.session() as s:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return s.scalar(query)


def insert_attempt(
    world,
    product_id: int,
    *,
    days: int | None,
    kind: str = "days",
    state: str = "pending",
    key: str = "crashed:0",
    created_at: datetime | None = None,
) -> int:
    """An attempt left behind by a process that died between its commit and the API's answer."""
    with world.session() as s:
        code = Code(
            device_id=device_row(s, product_id).id,
            kind=kind,
            days=days,
            state=state,
            request_key=key,
            channel="cli",
            created_at=created_at or datetime.now(UTC),
        )
        s.add(code)
        s.flush()
        return code.id


class Unplugged(httpx.BaseTransport):
    """The API host refuses connections: nothing is ever sent."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


# -- payments ---------------------------------------------------------------------------


def test_a_payment_is_recorded_once_per_reference_and_a_repeat_returns_the_first(world):
    world.pay(1001, 5, "ref-1")
    with world.session() as s:
        again = world.ledger.record_payment(
            s, reference="ref-1", device=device_row(s, 1002), days=9, source="cli"
        )
        assert again.created is False
        assert (again.payment.days, again.payment.device.product_id) == (5, 1001)
    assert count(world, Payment) == 1
    assert (unspent(world, 1001), unspent(world, 1002)) == (5, 0)


def test_amounts_become_whole_days_and_the_remainder_is_kept_for_the_next_payment(world):
    # value_per_day is 50 for the demo fleet
    steps = [
        ("120", 2, "20"),
        ("30", 1, "0"),
        ("75", 1, "25"),
        ("10", 0, "35"),
        ("15.50", 1, "0.50"),
        ("99.50", 2, "0"),
    ]
    for i, (amount, days, balance) in enumerate(steps):
        payment = pay_amount(world, 1001, amount, f"amount-{i}")
        assert payment.days == days, (amount, payment.days)
        assert world.device(1001).balance == Decimal(balance), amount
    assert unspent(world, 1001) == sum(days for _, days, _ in steps)


def test_a_repeated_amount_payment_does_not_convert_twice(world):
    pay_amount(world, 1001, "120", "once")
    pay_amount(world, 1001, "120", "once")
    assert world.device(1001).balance == Decimal("20")
    assert unspent(world, 1001) == 2


INVALID_PAYMENTS = [
    pytest.param(dict(days=0), id="zero days"),
    pytest.param(dict(days=-3), id="negative days"),
    pytest.param(dict(days=True), id="boolean days"),
    pytest.param(dict(days=2.5), id="fractional days"),
    pytest.param(dict(days="5"), id="days as text"),
    pytest.param(dict(days=3651), id="absurd days (more than ten years)"),
    pytest.param(dict(), id="neither days nor amount"),
    pytest.param(dict(days=5, amount=Decimal("250")), id="both days and amount"),
    pytest.param(dict(amount=Decimal("0")), id="zero amount"),
    pytest.param(dict(amount=Decimal("-50")), id="negative amount"),
    pytest.param(dict(amount=Decimal("NaN")), id="NaN amount"),
    pytest.param(dict(amount=Decimal("Infinity")), id="infinite amount"),
    pytest.param(dict(amount="fifty"), id="amount that is not a number"),
    pytest.param(dict(amount=Decimal("100000000")), id="absurd amount"),
    pytest.param(dict(amount=Decimal("9999999.99")), id="amount worth more than ten years"),
    pytest.param(dict(amount=Decimal("50.005")), id="amount with a fraction of a cent"),
    pytest.param(dict(days=5, reference=""), id="empty reference"),
    pytest.param(dict(days=5, reference="   "), id="blank reference"),
    pytest.param(dict(days=5, reference=None), id="no reference"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def refusing_world(request, tmp_path_factory):
    """One world for the whole table: a refused payment must leave it as it was anyway."""
    directory = tmp_path_factory.mktemp("refusals")
    if request.param == "sqlite":
        world = build_world(sqlite_file_url(directory), directory)
        pay_amount(world, 1001, "70", "earlier")  # leaves a balance of 20 to protect
        yield world
        world.services.close()
        return
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL is not set")
    with postgres_schema_url(os.environ["TEST_DATABASE_URL"]) as url:
        world = build_world(url, directory)
        pay_amount(world, 1001, "70", "earlier")
        yield world
        world.services.close()


@pytest.mark.parametrize("kwargs", INVALID_PAYMENTS)
def test_an_invalid_payment_is_refused_and_nothing_is_written(refusing_world, kwargs):
    world = refusing_world
    kwargs = dict(kwargs)
    reference = kwargs.pop("reference", "bad-1")
    with world.session() as s:  # the session is committed after the refusal
        with pytest.raises(InvalidPayment):
            world.ledger.record_payment(
                s, reference=reference, device=device_row(s, 1001), source="cli", **kwargs
            )
    assert count(world, Payment) == 1
    assert world.device(1001).balance == Decimal("20")
    assert unspent(world, 1001) == 1


def test_an_amount_for_a_device_without_a_price_is_refused(world):
    with world.session() as s:
        device_row(s, 1001).value_per_day = None
    with world.session() as s, pytest.raises(InvalidPayment):
        world.ledger.record_payment(
            s, reference="r", device=device_row(s, 1001), amount=Decimal("100"), source="cli"
        )
    assert count(world, Payment) == 0


def test_an_unmatched_amount_is_converted_when_it_is_given_its_device(world):
    with world.session() as s:
        unmatched = world.ledger.record_payment(
            s,
            reference="mpesa-1",
            device=None,
            amount=Decimal("260"),
            source="webhook",
            product_ref="OVES00XXXX",
        ).payment
        assert (unmatched.days, unmatched.device_id) == (0, None)
    with world.session() as s:
        payment = s.scalar(select(Payment))
        world.ledger.assign_payment(s, payment, device_row(s, 1001))
    assert (world.device(1001).balance, unspent(world, 1001)) == (Decimal("10"), 5)
    with world.session() as s, pytest.raises(InvalidPayment):
        world.ledger.assign_payment(s, s.scalar(select(Payment)), device_row(s, 1002))
    assert unspent(world, 1002) == 0


def test_an_unmatched_amount_worth_too_many_days_is_not_assigned(world):
    with world.session() as s:
        world.ledger.record_payment(
            s, reference="big", device=None, amount=Decimal("500000"), source="webhook"
        )
    with world.session() as s, pytest.raises(InvalidPayment):  # 10000 days at 50 a day
        world.ledger.assign_payment(s, s.scalar(select(Payment)), device_row(s, 1001))
    with world.session() as s:
        assert s.scalar(select(Payment)).device_id is None
    assert (world.device(1001).balance, unspent(world, 1001)) == (Decimal("0"), 0)


# -- minting ------------------------------------------------------------------------------


def test_a_mint_turns_the_unspent_days_into_one_code_and_links_the_payments(world):
    world.pay(1001, 4, "a")
    world.pay(1001, 3, "b")
    result = mint(world, 1001, "req-1")
    assert result.new and [c.days for c in result.codes] == [7]
    code = result.codes[0]
    assert code.state == "minted" and code.kind == "days"
    assert code.code.startswith("*0") and code.code.endswith("#") and len(code.code) == 29
    assert (upstream(world, 1001)[0]["code_index"], upstream_days(world, 1001)) == (1, 7)
    with world.session() as s:
        assert {p.code_id for p in s.scalars(select(Payment))} == {code.id}
    assert unspent(world, 1001) == 0
    assert [(e.outcome, e.days) for e in enter_in_order(world, 1001)] == [("days", 7)]


CREDIT_UNTIL = [
    # label, credit_until before (relative to now, or None), days, expected after
    pytest.param(None, 10, NOW + timedelta(days=10), id="never credited: from now"),
    pytest.param(-timedelta(days=30), 3, NOW + timedelta(days=3), id="expired: from now"),
    pytest.param(timedelta(days=7), 5, NOW + timedelta(days=12), id="running: extended"),
]


@pytest.mark.parametrize("before, days, expected", CREDIT_UNTIL)
def test_a_days_code_moves_credit_until_from_the_later_of_now_and_credit_until(
    world, before, days, expected
):
    ledger = Ledger(world.services.omnivoltaic, clock=lambda: NOW)
    with world.session() as s:
        device_row(s, 1001).credit_until = None if before is None else NOW + before
    world.pay(1001, days, "p")
    (code,) = mint(world, 1001, "k", ledger=ledger).codes
    device = world.device(1001)
    assert device.credit_until == expected == code.credit_until_after
    assert device.state == "payg"


def test_more_than_1095_days_ahead_are_held_and_minted_as_they_fit(world):
    """The credit-ahead cap: one days code per request, never more than 1095 days ahead."""
    world.pay(1001, 2000, "big-1")
    world.pay(1001, 500, "big-2")
    now = datetime.now(UTC)
    world.ledger.clock = lambda: now
    result = mint(world, 1001, "big")
    assert ([c.days for c in result.codes], result.held) == ([MAX_CODE_DAYS], 1405)
    assert (mint(world, 1001, "big-again").codes, unspent(world, 1001)) == ((), 1405)
    held = []
    for step in range(1, 4):  # a year later each time: a year's worth fits again
        later = now + timedelta(days=365 * step)
        world.ledger.clock = lambda later=later: later
        held.append(mint(world, 1001, f"big-{step}").held)
    assert held == [1040, 675, 310]
    device = world.simulator(1001)
    entries = enter_in_order(world, 1001)
    assert all(e.outcome == "days" for e in entries)
    assert device.days_credited == 2190 == upstream_days(world, 1001)
    last = now + timedelta(days=365 * 4)
    world.ledger.clock = lambda: last
    assert mint(world, 1001, "big-4").held == 0
    assert enter_in_order(world, 1001)[-1].days == 310
    assert world.simulator(1001).days_credited == 2500 == upstream_days(world, 1001)
    assert unspent(world, 1001) == 0


def test_skipped_codes_within_the_cap_never_read_as_free(world):
    """Entering only the newest code after skipping the others credits them all: <= 1095."""
    now = datetime.now(UTC)
    world.ledger.clock = lambda: now
    for i in range(4):
        world.pay(1001, 400, f"skip-{i}")
        mint(world, 1001, f"skip-{i}")
    minted = [c for c in code_rows(world, 1001) if c.state == "minted"]
    assert sum(c.days for c in minted) <= MAX_CODE_DAYS
    entry = world.simulator(1001).enter(minted[-1].code)  # the others were never entered
    assert entry.outcome == "days"


def test_the_same_request_key_mints_once_whatever_arrives_later(world):
    world.pay(1001, 5, "p1")
    first = mint(world, 1001, "sms:SM1")
    world.pay(1001, 8, "p2")  # new credit does not make an old request mint again
    again = mint(world, 1001, "sms:SM1")
    assert (first.new, again.new) == (True, False)
    assert [c.code for c in again.codes] == [c.code for c in first.codes]
    assert count(world, Code) == 1 and len(upstream(world, 1001)) == 1
    assert unspent(world, 1001) == 8


def test_with_nothing_unspent_no_code_is_minted_and_the_api_is_not_called(world):
    result = mint(world, 1001, "nothing")
    assert (result.codes, result.new) == ((), True)
    assert count(world, Code) == 0 and upstream(world, 1001) == []


def test_latest_code_is_the_newest_minted_one(world):
    world.pay(1001, 2, "a")
    mint(world, 1001, "k1")
    world.pay(1001, 3, "b")
    (second,) = mint(world, 1001, "k2").codes
    with world.session() as s:
        assert world.ledger.latest_code(s, device_row(s, 1001)).code == second.code


# -- concurrency ------------------------------------------------------------------------

THREADS = 8


def test_concurrent_requests_for_one_device_never_spend_a_day_twice(world):
    """8 customers' retries at once, each paying and asking, each with its own session."""
    ledger = Ledger(world.services.omnivoltaic, grace=timedelta(seconds=60))
    world.pay(1001, 700, "before")  # with the 8 payments below, just within the cap
    world.simulator(1001)  # build the item's chain now, not inside the race
    barrier = threading.Barrier(THREADS)
    outcomes, errors = [], []

    def customer(i: int) -> None:
        try:
            barrier.wait()
            world.pay(1001, 10 * (i + 1), f"race-{i}")
            outcomes.append(mint(world, 1001, f"race-{i}", ledger=ledger))
        except MintPending:
            outcomes.append("pending")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=customer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(outcomes) == THREADS
    mint(world, 1001, "after-the-race", ledger=ledger)  # whatever a MintPending left unminted

    paid = 700 + sum(10 * (i + 1) for i in range(THREADS))
    minted = [c for c in code_rows(world, 1001) if c.state == "minted"]
    assert sum(c.days for c in minted) == paid
    assert all(c.state in ("minted", "failed") for c in code_rows(world, 1001))
    assert upstream_days(world, 1001) == paid  # the API minted no day twice
    assert unspent(world, 1001, ledger) == 0
    entries = enter_in_order(world, 1001)
    assert all(e.outcome == "days" for e in entries)
    assert world.simulator(1001).days_credited == paid
    with world.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Payment).where(Payment.code_id.is_(None)))
            == 0
        )


def test_concurrent_deliveries_of_one_request_mint_once(world):
    ledger = Ledger(world.services.omnivoltaic, grace=timedelta(seconds=60))
    world.pay(1001, 30, "p")
    world.simulator(1001)
    barrier = threading.Barrier(THREADS)
    outcomes = []

    def delivery() -> None:
        barrier.wait()
        try:
            outcomes.append(
                tuple(c.code for c in mint(world, 1001, "sms:SAME", ledger=ledger).codes)
            )
        except MintPending:
            outcomes.append("pending")

    threads = [threading.Thread(target=delivery) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == THREADS  # no delivery failed in another way
    assert len(upstream(world, 1001)) == 1 and count(world, Code) == 1
    (code,) = code_rows(world, 1001)
    assert set(outcomes) <= {(code.code,), "pending"} and (code.code,) in outcomes


# -- never lose a minted code --------------------------------------------------------------

LOST = 0.5  # the timeout of the call whose answer is lost (the ledger's per-call timeout)


@pytest.fixture
def slow_world(database_url, tmp_path):
    """A world whose grace is a realistic minute, its item chains ready (built once)."""
    world = build_world(database_url, tmp_path, grace=timedelta(seconds=60))
    world.simulator(1001), world.simulator(1002)  # builds checkpoints, untimed
    yield world
    world.services.close()


def wait_for_upstream(world, product_id: int, codes: int) -> None:
    deadline = time.monotonic() + 5
    while len(upstream(world, product_id)) < codes and time.monotonic() < deadline:
        time.sleep(0.02)


def test_mint_then_timeout_adopts_the_code_from_the_history_and_mints_only_what_is_new(slow_world):
    w = slow_world
    w.pay(1001, 3, "p1")
    mint(w, 1001, "warm")  # an earlier code, so the lost one is not the first
    w.pay(1001, 5, "p2")
    w.emulator.mint_then_timeout(1, delay=3)
    with pytest.raises(MintPending):
        mint(w, 1001, "lost", timeout=LOST)
    lost = code_rows(w, 1001)[-1]
    assert (lost.state, lost.days, lost.code) == ("unknown", 5, None)
    assert unspent(w, 1001) == 0  # the 5 days stay reserved: nobody may mint them again
    wait_for_upstream(w, 1001, 2)
    in_history = upstream(w, 1001)[-1]
    assert in_history["code_days"] == "5"
    # A retry of the same request settles it from the history first: its own code, adopted,
    # and nothing minted again (issue 9: "still confirming" is not its final answer).
    (again,) = mint(w, 1001, "lost").codes
    assert (again.id, again.state) == (lost.id, "minted")
    assert again.code == format_upstream(in_history)  # the very code the API minted
    assert again.upstream_index == in_history["code_index"] == 2
    w.pay(1001, 2, "p3")
    result = mint(w, 1001, "later")
    assert [c.days for c in result.codes] == [2]  # only what is new
    assert [r["code_days"] for r in upstream(w, 1001)] == ["3", "5", "2"]  # nothing twice
    entries = enter_in_order(w, 1001)
    assert [(e.outcome, e.days) for e in entries] == [("days", 3), ("days", 5), ("days", 2)]
    assert w.simulator(1001).days_credited == 10
    assert w.device(1001).credit_until is not None


def test_after_a_timeout_with_nothing_new_the_adopted_code_is_the_latest(slow_world):
    w = slow_world
    w.pay(1002, 1, "warm")
    mint(w, 1002, "warm")
    w.pay(1002, 4, "p")
    w.emulator.mint_then_timeout(1, delay=3)
    with pytest.raises(MintPending):
        mint(w, 1002, "lost", timeout=LOST)
    wait_for_upstream(w, 1002, 2)
    assert [c.days for c in mint(w, 1002, "later").codes] == [4]  # adopted, nothing new
    with w.session() as s:
        latest = w.ledger.latest_code(s, device_row(s, 1002))
    assert (latest.days, latest.code) == (4, format_upstream(upstream(w, 1002)[-1]))
    assert w.simulator(1002).enter(latest.code).days == 5  # the warm-up code was skipped


def test_a_crash_after_the_api_minted_is_adopted_from_the_history(world):
    """The process died after the API minted but before it recorded: the row is `pending`."""
    world.pay(1001, 6, "p")
    minted = world.services.omnivoltaic.days_code(1001, 6)  # what the dead process got
    insert_attempt(world, 1001, days=6, created_at=datetime.now(UTC) - timedelta(minutes=5))
    (adopted,) = mint(world, 1001, "next").codes
    (row,) = code_rows(world, 1001)
    assert adopted.id == row.id
    assert (row.state, row.code, row.upstream_index) == ("minted", minted.code, 1)
    assert len(upstream(world, 1001)) == 1
    assert world.simulator(1001).enter(row.code).days == 6


def test_a_pending_attempt_within_grace_blocks_a_new_mint(world):
    ledger = Ledger(world.services.omnivoltaic, grace=timedelta(seconds=60))
    world.pay(1001, 6, "p")
    insert_attempt(world, 1001, days=6)
    world.pay(1001, 2, "p2")
    with pytest.raises(MintPending):
        mint(world, 1001, "new", ledger=ledger)
    assert [c.state for c in code_rows(world, 1001)] == ["pending"]
    assert upstream(world, 1001) == [] and unspent(world, 1001, ledger) == 2


def test_a_stale_attempt_that_is_not_in_the_history_is_released_and_minted_once(world):
    world.pay(1001, 6, "p")
    insert_attempt(world, 1001, days=6, created_at=datetime.now(UTC) - timedelta(minutes=5))
    result = mint(world, 1001, "new")  # grace is 0 in the test world
    assert [c.days for c in result.codes] == [6]
    assert [c.state for c in code_rows(world, 1001)] == ["failed", "minted"]
    assert upstream_days(world, 1001) == 6


def test_a_call_settled_by_someone_else_meanwhile_is_not_applied_twice(tmp_path, database_url):
    """The answer arrives after another request already adopted the code from the history."""
    w = build_world(database_url, tmp_path, grace=timedelta(0), timeout=5)
    try:
        w.pay(1001, 1, "warm")
        mint(w, 1001, "warm")
        before = w.device(1001).credit_until
        w.pay(1001, 9, "p")
        w.emulator.mint_then_timeout(1, delay=1.0)  # minted, recorded, then a slow answer
        answered = []
        slow = threading.Thread(target=lambda: answered.append(mint(w, 1001, "slow")))
        slow.start()
        wait_for_upstream(w, 1001, 2)
        (taken,) = mint(w, 1001, "impatient").codes  # adopts the slow one's code
        slow.join(10)
        adopted = code_rows(w, 1001)[-1]
        assert [c.code for c in answered[0].codes] == [adopted.code] == [taken.code]
        assert w.device(1001).credit_until - before <= timedelta(days=9, seconds=5)
        assert [c.state for c in code_rows(w, 1001)] == ["minted", "minted"]
        assert len(upstream(w, 1001)) == 2
    finally:
        w.services.close()


# -- when the API is down ------------------------------------------------------------------


def test_api_refusing_connections_leaves_the_credit_unspent_and_the_next_code_mints_it(world):
    down = Ledger(
        OmnivoltaicClient(
            httpx.Client(transport=Unplugged(), base_url="http://api.invalid"),
            "demo@example.com",
            "demo",
            retries=0,
        )
    )
    world.pay(1001, 5, "p")
    with pytest.raises(ServiceUnavailable):
        mint(world, 1001, "while-down", ledger=down)
    assert [c.state for c in code_rows(world, 1001)] == ["failed"]
    assert unspent(world, 1001) == 5 and upstream(world, 1001) == []
    with world.session() as s:
        assert s.scalar(select(Payment)).code_id is None
    assert [c.days for c in mint(world, 1001, "back").codes] == [5]
    assert upstream_days(world, 1001) == 5


def test_429_on_the_mint_is_service_unavailable_and_nothing_is_spent(world):
    world.pay(1001, 5, "p")
    world.emulator.fail_next(1, 429)
    with pytest.raises(ServiceUnavailable):
        mint(world, 1001, "busy")
    assert [c.state for c in code_rows(world, 1001)] == ["failed"]
    assert unspent(world, 1001) == 5
    assert [c.days for c in mint(world, 1001, "again").codes] == [5]
    assert upstream_days(world, 1001) == 5


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_the_mint_is_reconciled_before_the_days_are_minted_again(world, status):
    """A 5xx may have half-done the mint: the attempt is `unknown`, never blindly retried."""
    world.pay(1001, 5, "p")
    world.emulator.fail_next(1, status)
    with pytest.raises(MintPending):
        mint(world, 1001, "down")
    assert [c.state for c in code_rows(world, 1001)] == ["unknown"]
    assert unspent(world, 1001) == 0
    # the history shows it was not minted, and it is stale (grace 0): released, minted once
    assert [c.days for c in mint(world, 1001, "again").codes] == [5]
    assert [c.state for c in code_rows(world, 1001)] == ["failed", "minted"]
    assert upstream_days(world, 1001) == 5


def test_an_unreadable_history_blocks_new_mints_until_it_can_be_read(world):
    world.pay(1001, 5, "p")
    world.emulator.fail_next(1, 503)
    with pytest.raises(MintPending):
        mint(world, 1001, "down")
    world.pay(1001, 3, "p2")
    world.emulator.fail_next(3, 503)  # the history read and both its retries
    with pytest.raises(ServiceUnavailable):
        mint(world, 1001, "still-down")
    assert [c.state for c in code_rows(world, 1001)] == ["unknown"]
    assert upstream(world, 1001) == []
    assert [c.days for c in mint(world, 1001, "up").codes] == [8]


def test_a_refused_device_gets_refused_and_keeps_its_credit(world):
    with world.session() as s:  # an item that belongs to another distributor
        s.add(Device(product_id=1101, oem_serial="OVES001101", value_per_day=Decimal(50)))
    world.pay(1101, 5, "p")
    with pytest.raises(Refused):
        mint(world, 1101, "k")
    assert [c.state for c in code_rows(world, 1101)] == ["failed"]
    assert unspent(world, 1101) == 5


# -- free and reset codes ------------------------------------------------------------------


def test_free_and_reset_codes_go_through_the_recorded_path_and_move_the_device_state(world):
    world.pay(1001, 5, "p")
    (days,) = mint(world, 1001, "d1").codes
    (free,) = special(world, 1001, "free", "f1").codes
    assert (free.kind, free.days, free.state) == ("free", None, "minted")
    assert world.device(1001).state == "free"
    again = special(world, 1001, "free", "f1")  # same request: served, not minted again
    assert (again.new, [c.code for c in again.codes]) == (False, [free.code])
    (reset,) = special(world, 1001, "reset", "r1").codes
    device = world.device(1001)
    assert device.state == "locked" and device.credit_until <= datetime.now(UTC)
    assert [r["code_days"] for r in upstream(world, 1001)] == ["5", "free", "reset"]
    assert [e.outcome for e in enter_in_order(world, 1001)] == ["days", "free", "reset"]
    assert unspent(world, 1001) == 0
    world.pay(1001, 2, "after-reset")
    mint(world, 1001, "d2")
    assert world.device(1001).state == "payg"


def test_free_codes_beyond_the_allowance_are_refused_and_recorded_as_failed(world):
    for i in range(5):
        special(world, 1001, "free", f"f{i}")
        special(world, 1001, "reset", f"r{i}")
    with pytest.raises(Refused):
        special(world, 1001, "free", "f5")
    assert [c.state for c in code_rows(world, 1001)] == ["minted"] * 10 + ["failed"]


def test_a_free_code_for_a_device_already_free_is_refused_and_nothing_is_minted(world):
    special(world, 1001, "free", "f1")
    with pytest.raises(Refused, match="already free"):
        special(world, 1001, "free", "f2")
    assert len(upstream(world, 1001)) == 1
    assert [c.state for c in code_rows(world, 1001)] == ["minted"]


def test_special_rejects_an_unknown_kind(world):
    with pytest.raises(ValueError):
        special(world, 1001, "days", "x")
    assert count(world, Code) == 0
