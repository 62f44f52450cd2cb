"""The worker: the sweep on the whole product (emulator), the loop, the hooks, the commands."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli.main import main
from bot.ledger import MintPending
from bot.outbox import worker
from bot.storage import db
from bot.storage.models import Code, Device, OutboxMessage, Payment
from tests.fakes import FakeSender
from tests.harness import build_world, outbox_rows, queue_messages

PHONE = "+254712345678"


def outbox_bodies(world) -> list[str]:
    with world.session() as s:
        return list(s.scalars(select(OutboxMessage.body).order_by(OutboxMessage.id)))


def code_in(text: str) -> str:
    start = text.index("*")
    return text[start : text.index("#", start) + 1]


def test_sweep_mints_paid_days_left_unminted_and_queues_the_push(world):
    world.customer(PHONE, 1001)
    world.pay(1001, 7, "ref-1")  # recorded, never minted (say the API was down)
    assert worker.sweep(world.services) == {"minted": 1}
    [body] = outbox_bodies(world)
    entry = world.simulator(1001).enter(code_in(body))
    assert (entry.outcome, entry.days) == ("days", 7)
    assert worker.sweep(world.services) == {}  # nothing left: nothing minted twice
    sender = FakeSender()
    assert worker.drain(world.services.sessions, {"sms": sender}).sent == 1
    assert sender.sent == [(PHONE, body)]


def test_sweep_reconciles_an_unknown_mint_adopts_and_pushes_it(world):
    world.customer(PHONE, 1001)
    world.emulator.mint_then_timeout(1, delay=1.0)
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        world.ledger.record_payment(s, reference="pay-1", device=device, days=9, source="webhook")
        with pytest.raises(MintPending):
            world.ledger.mint_days(
                s, device, request_key="payment:pay-1", channel="payments", timeout=0.2
            )
    with world.session() as s:
        assert s.scalar(select(Code.state)) == "unknown"
    assert worker.sweep(world.services) == {"adopted": 1}
    [body] = outbox_bodies(world)
    with world.session() as s:
        code = s.scalar(select(Code))
        assert (code.state, code.code, code.days) == ("minted", code_in(body), 9)
        assert s.scalar(select(Payment.code_id)) == code.id
    simulator = world.simulator(1001)
    assert simulator.enter(code.code).days == 9 and simulator.days_credited == 9
    assert worker.sweep(world.services) == {}  # adopted, so nothing is minted again


def test_one_failing_device_does_not_stop_the_sweep_and_waits_before_retrying(world):
    world.customer(PHONE, 1001, 1002)
    world.pay(1001, 3, "ref-a")
    world.pay(1002, 4, "ref-b")
    world.emulator.fail_next(1, 429)  # 1001's mint is refused
    assert worker.sweep(world.services) == {"errors": 1, "minted": 1}
    assert worker.sweep(world.services) == {}  # 1001 failed a moment ago: give it a rest
    with world.session() as s:
        states = {(c.device.product_id, c.state) for c in s.scalars(select(Code))}
    assert states == {(1001, "failed"), (1002, "minted")}


def test_without_mint_on_payment_the_sweep_leaves_paid_days_alone(database_url, tmp_path):
    world = build_world(database_url, tmp_path, mint_on_payment=False)
    try:
        world.customer(PHONE, 1001)
        world.pay(1001, 7, "ref-1")
        assert worker.sweep(world.services) == {}
        assert outbox_bodies(world) == []
    finally:
        world.services.close()


def test_embedded_drain_sends_after_commit_and_never_raises(sqlite_world, monkeypatch):
    services = sqlite_world.services
    queue_messages(services.sessions, "code")
    sender = FakeSender()
    worker.install_embedded_drain(services, {"sms": sender})
    services.committed()
    assert sender.sent == [(PHONE, "code")]

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(worker, "drain", broken)
    services.after_commit()  # logged, not raised


def test_embedded_background_worker_wakes_on_commit(sqlite_world):
    services = sqlite_world.services
    sender = FakeSender()
    stop = worker.install_embedded_drain(services, {"sms": sender}, background=True)
    try:
        queue_messages(services.sessions, "code")
        services.committed()
        deadline = time.monotonic() + 5
        while not sender.sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sender.sent == [(PHONE, "code")]
    finally:
        stop.set()
        services.committed()  # wakes it, so it sees the stop at once
        for thread in threading.enumerate():  # done before the world goes, or its sweep
            if thread.name == "ovbot-embedded-worker":  # would log into the next test
                thread.join(10)


def test_run_worker_drains_until_stopped(Session, monkeypatch):
    [message] = queue_messages(Session, "code")
    sweeps, stop = [], threading.Event()
    monkeypatch.setattr(worker, "sweep", sweeps.append)
    services = type("Services", (), {"sessions": Session})()
    thread = threading.Thread(
        target=worker.run_worker,
        args=(services, {"sms": FakeSender()}),
        kwargs=dict(interval=0.01, stop=stop, sweep_every=3600),
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while outbox_rows(Session)[message].status != "sent" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive() and outbox_rows(Session)[message].status == "sent"
    assert sweeps == [services]  # one sweep at start, the next an hour away


def test_a_worker_started_before_the_migrations_says_so_once_and_waits(tmp_path, caplog):
    """No traceback every pass: one warning naming the problem, then it waits."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated
    services = type("Services", (), {"sessions": db.make_sessionmaker(engine), "engine": engine})()
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    with caplog.at_level("INFO", logger="bot.outbox.worker"):
        worker.run_worker(services, {}, interval=0.02, stop=stop)
    engine.dispose()
    records = [r for r in caplog.records if r.name == "bot.outbox.worker"]
    warnings = [r for r in records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "worker: waiting for the database: no schema: run `ovbot db upgrade`"
    ]
    assert not [r for r in records if r.exc_info]


def test_sigterm_stops_the_worker_cleanly(Session, monkeypatch):
    monkeypatch.setattr(worker, "sweep", lambda services: None)
    services = type("Services", (), {"sessions": Session})()
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    worker.run_worker(services, {}, interval=0.05)  # returns instead of dying
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture
def cli_env(sqlite_world, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "TELEGRAM_BOT_TOKEN",
        "OMNIVOLTAIC_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", str(sqlite_world.services.engine.url))
    monkeypatch.setenv("OMNIVOLTAIC_EMULATOR_STATE", str(tmp_path / "cli-emulator.db"))
    return sqlite_world


def test_worker_once_and_outbox_list_from_the_command_line(cli_env):
    queue_messages(cli_env.services.sessions, "code")
    runner = CliRunner()
    result = runner.invoke(main, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent 0, retried 0, failed 0" in result.output  # no sender configured
    result = runner.invoke(main, ["outbox"])
    assert result.exit_code == 0, result.output
    assert "pending\tsms\t+254*****678\tattempts 0" in result.output
    assert PHONE not in result.output and "1 message(s) pending or failed" in result.output


def test_worker_refuses_to_start_without_production_settings(cli_env, monkeypatch):
    monkeypatch.setenv("OMNIVOLTAIC_API_URL", "https://api.example.test")
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code != 0 and "OMNIVOLTAIC_USERNAME" in result.output


def test_worker_refuses_an_unmigrated_database(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMNIVOLTAIC_API_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(main, ["outbox"])
    assert result.exit_code != 0 and "ovbot db upgrade" in result.output


def test_sweep_pushes_a_payment_code_whose_push_was_lost_in_a_crash(world):
    world.customer(PHONE, 1001)
    with world.session() as s:  # the ledger commits the code; the push never commits
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        world.ledger.record_payment(s, reference="pay-1", device=device, days=4, source="webhook")
        [code] = world.ledger.mint_days(
            s, device, request_key="payment:pay-1", channel="payments"
        ).codes
        s.rollback()
    assert worker.sweep(world.services) == {}  # too young: its request may still push it
    with world.session() as s:
        s.get(Code, code.id).minted_at -= worker.PUSH_SETTLE * 2
    assert worker.sweep(world.services) == {"pushed": 1}
    [body] = outbox_bodies(world)
    assert code.code in body and "4 days" in body
    assert worker.sweep(world.services) == {}  # pushed once, never again


def test_sweep_does_not_push_codes_customers_got_as_a_reply(world):
    world.customer(PHONE, 1001)
    world.pay(1001, 3, "ref-1")
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        [code] = world.ledger.mint_days(s, device, request_key="sms:SM1", channel="sms").codes
        s.get(Code, code.id).minted_at -= worker.PUSH_SETTLE * 2
    assert worker.sweep(world.services) == {}
    assert outbox_bodies(world) == []
