"""A stateful property test of code integrity (hypothesis RuleBasedStateMachine).

It interleaves payments (days and amounts, duplicates), customers' CODE and RESEND from two
channels, agent sales, free and reset codes, sweeps, faults (a mint made then answered
502, a 503 or a 429 before minting), paused minters, crashed processes and time passing;
then it settles (faults off, fences passed, held days minted as they fit) and checks with
the device simulator as the referee:

- days minted upstream = days paid, and every code minted upstream was recorded;
- entering every recorded code in entry order is never rejected and never reads FREE
  unless a free code was asked for;
- at every step, no device holds more than 1095 days ahead, and no credit is spent twice.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from bot.domain import MAX_CODE_DAYS
from bot.ledger import OPEN, room
from bot.ledger.outcome import attempt
from bot.omnivoltaic.client import OmnivoltaicClient
from bot.outbox.worker import sweep
from bot.storage.models import Code, Device
from tests.fakes import FakeTime, PausedBeforeSending
from tests.harness import build_world, postgres_schema_url, sqlite_file_url, timed_client

DEVICES = (1001, 1002)


class Integrity(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        if self.backend == "sqlite":
            url = sqlite_file_url(directory)
        else:
            url = self.stack.enter_context(postgres_schema_url(os.environ["TEST_DATABASE_URL"]))
        self.world = build_world(url, directory, timeout=2.0)
        self.stack.callback(self.world.services.close)
        self.clock = FakeTime()
        self.client = self._client()
        self.ledger = self.world.ledger
        self.ledger.client, self.ledger.clock = self.client, self.clock.wall
        self.ledger.grace, self.ledger.send_window = timedelta(seconds=30), timedelta(seconds=5)
        self.keys = itertools.count()
        self.references: list[str] = []
        self.served: dict[str, tuple[str, ...]] = {}  # request key -> the codes it gave
        self.free_asked = set()

    def _client(self) -> OmnivoltaicClient:
        return timed_client(self.world, self.clock)

    def _device(self, session, product_id: int) -> Device:
        return session.scalar(select(Device).where(Device.product_id == product_id))

    def _mint(self, product_id: int, key: str, ledger=None, timeout=None) -> None:
        ledger = ledger or self.ledger
        with self.world.session() as s:
            outcome = attempt(
                lambda: ledger.mint_days(
                    s, self._device(s, product_id), request_key=key, channel="sms", timeout=timeout
                ),
                "machine",
            )
        if outcome.result is not None:
            self.served.setdefault(key, tuple(c.code or "" for c in outcome.result.codes))

    # -- payments --------------------------------------------------------------------------

    @rule(product_id=st.sampled_from(DEVICES), days=st.integers(1, 500), repeat=st.booleans())
    def pay_days(self, product_id, days, repeat):
        reference = self.references[-1] if repeat and self.references else f"pay-{next(self.keys)}"
        self.references.append(reference)
        with self.world.session() as s:
            self.ledger.record_payment(
                s,
                reference=reference,
                device=self._device(s, product_id),
                days=days,
                source="webhook",
            )

    @rule(product_id=st.sampled_from(DEVICES), amount=st.integers(1, 20_000))
    def pay_amount(self, product_id, amount):
        with self.world.session() as s:
            self.ledger.record_payment(
                s,
                reference=f"amt-{next(self.keys)}",
                device=self._device(s, product_id),
                amount=Decimal(amount),
                source="webhook",
            )

    # -- codes ----------------------------------------------------------------------------------

    @rule(product_id=st.sampled_from(DEVICES), channel=st.sampled_from(["sms", "telegram"]))
    def code(self, product_id, channel):
        self._mint(product_id, f"{channel}:{next(self.keys)}", timeout=12.0)

    @precondition(lambda self: self.served)
    @rule(data=st.data())
    def the_same_request_again(self, data):
        key = data.draw(st.sampled_from(sorted(self.served)))
        product = self._owner_of(key)
        if product is None:
            return
        with self.world.session() as s:
            outcome = attempt(
                lambda: self.ledger.mint_days(
                    s, self._device(s, product), request_key=key, channel="sms"
                ),
                "machine",
            )
        if outcome.result is not None and not outcome.result.new:
            assert tuple(c.code for c in outcome.result.codes) == self.served[key]

    def _owner_of(self, key: str) -> int | None:
        with self.world.session() as s:
            code = s.scalar(select(Code).where(Code.request_key == f"{key}:0"))
            return None if code is None else code.device.product_id

    @rule(product_id=st.sampled_from(DEVICES))
    def resend(self, product_id):
        with self.world.session() as s:
            codes = self.ledger.latest_codes(s, self._device(s, product_id))
        indexes = [c.upstream_index for c in codes]
        assert indexes == sorted(indexes)  # in the order they must be entered

    @rule(product_id=st.sampled_from(DEVICES), days=st.integers(1, 400))
    def agent_sale(self, product_id, days):
        reference = f"ussd:{next(self.keys)}"
        with self.world.session() as s:
            device = self._device(s, product_id)
            if days > room(device, self.clock.now) - max(self.ledger.unspent_days(s, device), 0):
                return  # the menu would not offer it: it says how many days fit now
            self.ledger.record_payment(
                s, reference=reference, device=device, days=days, source="agent"
            )
        self._mint(product_id, f"{reference}:sell", timeout=8.0)

    @rule(product_id=st.sampled_from(DEVICES), kind=st.sampled_from(["free", "reset"]))
    def special(self, product_id, kind):
        if kind == "free":
            self.free_asked.add(product_id)
        with self.world.session() as s:
            outcome = attempt(
                lambda: self.ledger.mint_special(
                    s,
                    self._device(s, product_id),
                    kind,
                    request_key=f"{kind}:{next(self.keys)}",
                    channel="ussd",
                    timeout=8.0,
                ),
                "machine",
            )
        if outcome.result is not None:
            kinds = [c.kind for c in outcome.result.codes]
            # The special code comes last, after what was adopted on the way; if it could
            # not be minted, only what was adopted comes back (to be shown all the same).
            assert kinds[-1:] == [kind] or set(kinds) <= {"days"}

    # -- faults, processes and time ---------------------------------------------------

    @rule(fault=st.sampled_from(["made, then 502", "503 before", "429 before"]))
    def api_fault(self, fault):
        emulator = self.world.emulator
        {
            "made, then 502": lambda: emulator.mint_then_status(1, 502),
            "503 before": lambda: emulator.fail_next(1, 503),
            "429 before": lambda: emulator.fail_next(1, 429),
        }[fault]()

    @rule(product_id=st.sampled_from(DEVICES))
    def paused_minter(self, product_id):
        """It stops before sending; meanwhile time passes and the customer asks again."""

        def meanwhile() -> None:
            self.clock.advance(120)
            self._mint(product_id, f"sms:{next(self.keys)}")

        paused = type(self.ledger)(
            PausedBeforeSending(self._client(), meanwhile),
            grace=self.ledger.grace,
            send_window=self.ledger.send_window,
            clock=self.clock.wall,
        )
        self._mint(product_id, f"sms:{next(self.keys)}", ledger=paused)

    @rule(product_id=st.sampled_from(DEVICES))
    def crash_after_recording_an_attempt(self, product_id):
        """A process committed its attempt, then died before calling the API."""
        with self.world.session() as s:
            device = self._device(s, product_id)
            days = min(self.ledger.unspent_days(s, device), room(device, self.clock.now))
            if days <= 0 or s.scalar(
                select(Code.id).where(Code.device_id == device.id, Code.state.in_(OPEN))
            ):
                return
            s.add(
                Code(
                    device_id=device.id,
                    kind="days",
                    days=days,
                    state="pending",
                    request_key=f"crashed:{next(self.keys)}:0",
                    channel="sms",
                    created_at=self.clock.now,
                    send_deadline=self.clock.now + self.ledger.send_window,
                )
            )

    @rule(seconds=st.integers(0, 3 * 86400))
    def time_passes(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def worker_sweeps(self):
        sweep(self.world.services)

    # -- what must hold at every step -------------------------------------------------

    @invariant()
    def never_more_than_1095_days_ahead_and_no_credit_spent_twice(self):
        with self.world.session() as s:
            for product_id in DEVICES:
                device = self._device(s, product_id)
                assert self.ledger.unspent_days(s, device) >= 0
                if device.credit_until is not None and device.state == "payg":
                    ahead = device.credit_until - self.clock.now
                    assert ahead <= timedelta(days=MAX_CODE_DAYS, seconds=1)

    def teardown(self):
        try:
            self._settle_and_check()
        finally:
            self.stack.close()

    def _settle_and_check(self):
        self.world.emulator.clear_faults()
        self.clock.advance(3600)  # every fence has passed
        for step in range(6):  # held days are minted as they fit
            self.clock.advance(86400 * (MAX_CODE_DAYS + 5))
            for product_id in DEVICES:
                self._mint(product_id, f"settle:{step}:{product_id}")
        with self.world.session() as s:
            for product_id in DEVICES:
                device = self._device(s, product_id)
                codes = list(
                    s.scalars(
                        select(Code)
                        .where(Code.device_id == device.id)
                        .order_by(Code.upstream_index, Code.id)
                    )
                )
                assert [c for c in codes if c.state in OPEN] == []
                assert self.ledger.unspent_days(s, device) == 0
                minted = [c for c in codes if c.state == "minted"]
                history = self.client.code_history(product_id)
                assert {r.code for r in history} == {c.code for c in minted}  # all recorded
                assert sum(r.days for r in history if r.kind == "days") == sum(
                    c.days or 0 for c in minted if c.kind == "days"
                )
                simulator = self.world.simulator(product_id)
                for c in minted:
                    entry = simulator.enter(c.code or "")
                    assert entry.outcome == c.kind, (c, entry)
                if product_id not in self.free_asked:
                    assert all(c.kind != "free" for c in minted)


Integrity.TestCase.settings = settings(
    max_examples=int(os.environ.get("INTEGRITY_EXAMPLES", "15")),
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIntegrityOnSQLite = Integrity.TestCase


class IntegrityOnPostgres(Integrity):
    backend = "postgres"


IntegrityOnPostgres.TestCase.settings = Integrity.TestCase.settings
TestIntegrityOnPostgres = pytest.mark.postgres(
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"
    )(IntegrityOnPostgres.TestCase)
)
