"""bot/metrics.py: each metric moves when its event happens, and its labels stay bounded.

Counters are process-global and xdist runs other tests in the same process, so every
assertion is on a delta (`Delta`), never on an absolute value.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from bot import bootstrap, metrics
from bot.agents import menu
from bot.inbound import Inbound, SharedContact
from bot.ledger import Ledger, MintPending, ServiceUnavailable
from bot.settings import Settings
from bot.storage import db
from bot.storage.models import Code, Device
from tests.fakes import PausedBeforeSending
from tests.harness import AGENT, OWNER, SECRETS, World, converse, populate_agents


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How far each named sample moved since this was made."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.samples = samples
        self.before = [value(name, **labels) for name, labels in samples]

    def __call__(self) -> list[float]:
        return [value(n, **lb) - b for (n, lb), b in zip(self.samples, self.before, strict=True)]


def sample(name: str, **labels: str) -> tuple[str, dict[str, str]]:
    return name, labels


def device_row(session, product_id: int) -> Device:
    return session.scalar(select(Device).where(Device.product_id == product_id))


def sms(text: str, sid: str, sender: str = OWNER) -> Inbound:
    return Inbound(channel="sms", provider_id=sid, sender=sender, text=text)


# -- inbound, replies and a mint ------------------------------------------------------------


def test_a_code_over_sms_moves_inbound_replies_and_mints(world):
    world.customer(OWNER, 1001)
    world.pay(1001, 7, "p-metrics-1")
    moved = Delta(
        sample("ovbot_inbound_messages_total", channel="sms", command="code"),
        sample("ovbot_replies_total", channel="sms"),
        sample("ovbot_mints_total", kind="days", outcome="minted"),
    )
    reply = converse(world.services, sms("CODE", "SM-metrics-1"))
    assert "*" in reply.text  # the code itself
    assert moved() == [1, 1, 1]
    converse(world.services, sms("CODE", "SM-metrics-1"))  # the provider's retry
    assert moved() == [2, 2, 1]  # received and answered again, minted once


@pytest.mark.parametrize(
    "text, command",
    [
        pytest.param("status", "status", id="a command"),
        pytest.param("/devices", "devices", id="telegram style"),
        pytest.param("SIMAMA", "stop", id="swahili stop"),
        pytest.param("hello +254712345678 call me", "other", id="free text"),
        pytest.param("*024 413 975 593 119 504 641#", "coach", id="a code: the coach"),
    ],
)
def test_the_command_label_is_the_parsed_name_and_unknown_text_is_other(world, text, command):
    moved = Delta(sample("ovbot_inbound_messages_total", channel="sms", command=command))
    converse(world.services, sms(text, f"SM-label-{command}-{len(text)}", sender="+254799000001"))
    assert moved() == [1]


def test_a_shared_contact_counts_as_contact_never_as_its_number(world):
    contact = SharedContact(phone=OWNER, user_id=42, chat_id=42)
    moved = Delta(sample("ovbot_inbound_messages_total", channel="telegram", command="contact"))
    converse(world.services, Inbound("telegram", "update-contact", "42", contact=contact))
    assert moved() == [1]


def test_an_opt_out_from_a_stranger_is_counted_and_confirmed(world):
    moved = Delta(
        sample("ovbot_inbound_messages_total", channel="sms", command="stop"),
        sample("ovbot_replies_total", channel="sms"),
    )
    converse(world.services, sms("STOP", "SM-stop-stranger", sender="+254799000002"))
    assert moved() == [1, 1]  # STOP is confirmed on every channel, registered or not


def test_a_failing_responder_counts_an_error_and_its_apology(world):
    def broken(deps, session, inbound):
        raise RuntimeError("boom")

    moved = Delta(
        sample("ovbot_inbound_errors_total", channel="sms"),
        sample("ovbot_replies_total", channel="sms"),
    )
    converse(world.services, sms("CODE", "SM-broken"), broken)
    assert moved() == [1, 1]


# -- mints: unknown, adopted, failed; reconciliation ------------------------------------------


def test_an_unknown_outcome_then_its_adoption(world):
    world.pay(1001, 10, "p-unknown")
    world.emulator.mint_then_status(1, 502)
    moved = Delta(
        sample("ovbot_mints_total", kind="days", outcome="unknown"),
        sample("ovbot_mints_total", kind="days", outcome="adopted"),
        sample("ovbot_reconciliations_total", result="adopted"),
        sample("ovbot_mints_total", kind="days", outcome="minted"),
    )
    with world.session() as s, pytest.raises(MintPending):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-unknown", channel="cli")
    assert moved() == [1, 0, 0, 0]
    with world.session() as s:
        result = world.ledger.mint_days(s, device_row(s, 1001), request_key="k2", channel="cli")
    assert [c.days for c in result.codes] == [10]
    assert moved() == [1, 1, 1, 0]  # adopted from the history, nothing new minted


def test_an_unknown_attempt_absent_from_the_history_is_released(world):
    world.pay(1001, 10, "p-released")
    world.emulator.fail_next(1, 500)  # a 500 to a mint: may have minted (it did not)
    moved = Delta(
        sample("ovbot_mints_total", kind="days", outcome="unknown"),
        sample("ovbot_reconciliations_total", result="released"),
        sample("ovbot_mints_total", kind="days", outcome="minted"),
    )
    with world.session() as s, pytest.raises(MintPending):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-rel", channel="cli")
    with world.session() as s:  # grace 0: fenced at once, not in the history
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-rel-2", channel="cli")
    assert moved() == [1, 1, 1]


def test_an_attempt_not_yet_fenced_waits_and_an_unreadable_history_is_unavailable(world):
    world.pay(1001, 10, "p-wait")
    world.ledger.grace = timedelta(hours=1)
    world.emulator.fail_next(1, 500)
    moved = Delta(
        sample("ovbot_reconciliations_total", result="waiting"),
        sample("ovbot_reconciliations_total", result="unavailable"),
    )
    with world.session() as s, pytest.raises(MintPending):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-w", channel="cli")
    with world.session() as s, pytest.raises(MintPending):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-w2", channel="cli")
    assert moved() == [1, 0]
    world.emulator.fail_next(5, 503)  # every retry of the history read fails
    with world.session() as s, pytest.raises(ServiceUnavailable):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-w3", channel="cli")
    assert moved() == [1, 1]


def test_a_refused_mint_is_failed(world):
    world.pay(1001, 10, "p-refused")
    world.emulator.fail_next(1, 409)
    moved = Delta(sample("ovbot_mints_total", kind="days", outcome="failed"))
    with world.session() as s, pytest.raises(Exception, match="409"):
        world.ledger.mint_days(s, device_row(s, 1001), request_key="k-409", channel="cli")
    assert moved() == [1]


def test_a_free_code_is_counted_under_its_kind(world):
    moved = Delta(sample("ovbot_mints_total", kind="free", outcome="minted"))
    with world.session() as s:
        world.ledger.mint_special(s, device_row(s, 1002), "free", request_key="k-f", channel="cli")
    assert moved() == [1]


def test_an_answer_for_a_released_attempt_raises_the_alarm_metric(world):
    world.pay(1001, 30, "p-late-metric")

    def released_meanwhile() -> None:
        with world.session() as s:
            for code in s.scalars(select(Code).where(Code.state == "pending")):
                code.state = "failed"

    late = Ledger(PausedBeforeSending(world.services.omnivoltaic, released_meanwhile))
    moved = Delta(sample("ovbot_integrity_alarms_total", kind="late_answer"))
    with world.session() as s:
        late.mint_days(s, device_row(s, 1001), request_key="sms:SM-late", channel="sms")
    assert moved() == [1]


# -- agents -----------------------------------------------------------------------------------


def test_three_wrong_pins_lock_the_agent_out_once(world):
    populate_agents(world)
    moved = Delta(
        sample("ovbot_agent_lockouts_total"),
        sample("ovbot_inbound_messages_total", channel="ussd", command="menu"),
    )

    def dial(session: str, path: str):
        inbound = Inbound("ussd", menu.provider_id(session, path), AGENT, path)
        return converse(world.services, inbound, menu.RESPONDER)

    dial("s1", "")
    dial("s1", "0000")
    dial("s1", "0000*1111")
    assert moved() == [0, 3]
    dial("s1", "0000*1111*2222")
    assert moved() == [1, 4]
    dial("s2", "")  # locked: told so, not locked again
    assert moved() == [1, 5]


# -- delivery receipts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "provider, status, labels",
    [
        pytest.param("twilio", "delivered", ("twilio", "delivered"), id="delivered"),
        pytest.param("twilio", "Undelivered", ("twilio", "undelivered"), id="case folded"),
        pytest.param("africastalking", "Failed", ("africastalking", "failed"), id="AT"),
        pytest.param("twilio", "30003", ("twilio", "other"), id="an error code"),
        pytest.param("twilio", "exploded", ("twilio", "other"), id="not a status"),
        pytest.param("+254712345678", "sent", ("other", "sent"), id="not a provider"),
        pytest.param("twilio", None, ("twilio", "other"), id="missing"),
    ],
)
def test_a_delivery_receipt_is_counted_with_bounded_labels(provider, status, labels):
    moved = Delta(sample("ovbot_delivery_receipts_total", provider=labels[0], status=labels[1]))
    metrics.delivery_receipt(provider, status)
    assert moved() == [1]


@pytest.mark.parametrize(
    "given, allowed, expected",
    [
        pytest.param("sms", None, "sms", id="a word"),
        pytest.param("+254712345678", None, "other", id="a phone"),
        pytest.param("1001", None, "other", id="a device id"),
        pytest.param("Hello there", None, "other", id="free text"),
        pytest.param("x" * 40, None, "other", id="too long"),
        pytest.param(None, None, "other", id="not a string"),
        pytest.param("gift", ("days", "free"), "other", id="not in the set"),
    ],
)
def test_labels_are_short_lower_case_words_or_other(given, allowed, expected):
    assert metrics.label(given, allowed) == expected


# -- upstream latency -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, call",
    [
        pytest.param("/user/login", "login", id="login"),
        pytest.param("/b2b/api/login", "login", id="login on its own host"),
        pytest.param("/oves/assignedItemsList/0/100", "assigned_items", id="items page"),
        pytest.param("/oves/assignedItems/1001", "assigned_items", id="one item"),
        pytest.param("/oves/codeHistoryList/1001/0/100", "code_history", id="history v1"),
        pytest.param("/oves/v2/codeHistoryList/TEST2503000017/0/100", "code_history", id="v2"),
        pytest.param("/otp/daysCode", "days_code", id="days v1"),
        pytest.param("/otp/daysCode/v2", "days_code", id="days v2"),
        pytest.param("/api/otp/daysCode", "days_code", id="under a base path"),
        pytest.param("/code/code/freecodeotp", "free_code", id="free v1"),
        pytest.param("/code/code/freecodeotp/v2", "free_code", id="free v2"),
        pytest.param("/code/code/resetcode", "reset_code", id="reset v1"),
        pytest.param("/code/code/resetcode/v2", "reset_code", id="reset v2"),
        pytest.param("/oves/codeHistory_Metadata", "other", id="metadata"),
        pytest.param("/otp/daysCodeX", "other", id="a longer name"),
        pytest.param("/_emulator/faults", "other", id="the emulator's back door"),
    ],
)
def test_each_path_is_named_by_its_call(path, call):
    assert metrics.call_name(path) == call


def test_the_timed_client_observes_answers_and_failures_by_call():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v2"):
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(429 if "History" in request.url.path else 200, json={})

    moved = Delta(
        sample("ovbot_upstream_request_duration_seconds_count", call="reset_code"),
        sample("ovbot_upstream_requests_total", call="reset_code", status="2xx"),
        sample("ovbot_upstream_requests_total", call="code_history", status="4xx"),
        sample("ovbot_upstream_requests_total", call="days_code", status="error"),
        sample("ovbot_upstream_request_duration_seconds_count", call="days_code"),
    )
    with metrics.TimedClient(transport=httpx.MockTransport(answer), base_url="http://x") as http:
        http.post("/code/code/resetcode", json={})
        http.get("/oves/v2/codeHistoryList/1/0/1")
        with pytest.raises(httpx.ReadTimeout):
            http.post("/otp/daysCode/v2", json={})
    assert moved() == [1, 1, 1, 1, 1]


def test_bootstrap_times_the_api_client(tmp_path):
    """The client bootstrap builds is timed: a CODE moves the days_code histogram."""
    settings = Settings(
        **SECRETS,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        omnivoltaic_emulator_state=str(tmp_path / "emulator.db"),
    )
    deps = bootstrap.build(settings)
    try:
        assert isinstance(deps.http, metrics.TimedClient)
        db.upgrade(deps.engine)
        world = World(services=deps, emulator_app=None)
        from bot.ledger.fleet import sync_devices

        moved = Delta(
            sample("ovbot_upstream_request_duration_seconds_count", call="assigned_items"),
            sample("ovbot_upstream_request_duration_seconds_count", call="days_code"),
        )
        with world.session() as s:
            sync_devices(s, deps.omnivoltaic)
        world.customer(OWNER, 1001)
        world.pay(1001, 3, "p-timed")
        assert "*" in converse(deps, sms("CODE", "SM-timed")).text
        synced, minted = moved()
        assert synced >= 1 and minted == 1
    finally:
        deps.close()


def test_a_real_api_gets_a_timed_client_too():
    http = bootstrap.omnivoltaic_http(Settings(omnivoltaic_api_url="https://api.example.test"))
    with http:
        assert isinstance(http, metrics.TimedClient)
        assert str(http.base_url) == "https://api.example.test"


# -- ovbot serve: a directory for gunicorn's workers ----------------------------------------


@pytest.mark.parametrize("preset", [False, True], ids=["unset", "set by the operator"])
def test_serve_hands_gunicorn_an_empty_metrics_directory(tmp_path, monkeypatch, preset):
    import logging
    import os

    from click.testing import CliRunner

    from bot.cli.main import main
    from tests.harness import variables_read

    for name in variables_read():
        monkeypatch.setenv(name, "")  # restored afterwards, whatever serve exports
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    operators = tmp_path / "metrics"
    if preset:
        operators.mkdir()
        (operators / "counter_999.db").write_bytes(b"stale")
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(operators))
    seen = {}

    def execvp(file, args):
        seen["dir"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        seen["args"] = args

    monkeypatch.setattr(os, "execvp", execvp)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a new one goes here
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(main, ["serve"], catch_exceptions=False)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert result.exit_code == 0, result.output
    assert "gunicorn" in seen["args"]
    directory = Path(seen["dir"])
    assert directory.is_dir() and list(directory.iterdir()) == []
    assert (directory == operators) is preset
