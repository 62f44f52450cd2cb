"""End to end, per channel, over HTTP: payment → CODE → a code the device accepts, once.

The device simulator is the referee: it must be credited with exactly the days paid,
whatever was redelivered on the way.  Then: what happens when the core itself breaks.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.inbound import Inbound
from bot.storage import db
from bot.storage.models import Code, InboundMessage
from bot.text.logs import MaskingFormatter
from bot.text.templates import Messages
from tests.harness import SECRETS, build_world, converse, sqlite_file_url
from webhooks.app import create_app

AMINA = "+254712345678"
TELEGRAM_USER = 111222333
CODE_RE = re.compile(r"\*0\d\d(?: \d{3}){6}#")
MESSAGES = Messages.load()
POLITE = MESSAGES.render("en", "error_try_again")


class Sms:
    """A phone texting the Twilio number: signed form posts, TwiML back."""

    path = "/webhooks/twilio/sms"

    def __init__(self, app):
        self.http = app.test_client()

    def start(self) -> None:
        pass

    def send(self, text: str, message_id: int):
        sid = f"SM{message_id:032d}"
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "From": AMINA,
            "To": SECRETS["twilio_from_number"],
            "Body": text,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
            "AccountSid": SECRETS["twilio_account_sid"],
            "FromCountry": "KE",
        }
        signature = RequestValidator(SECRETS["twilio_auth_token"]).compute_signature(
            SECRETS["public_base_url"] + self.path, form
        )
        response = self.http.post(self.path, data=form, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 200 and response.mimetype == "text/xml"
        return response.get_data(as_text=True)


class Telegram:
    """A Telegram user chatting with the bot: Update JSON in, sendMessage JSON back."""

    path = "/webhooks/telegram"
    user = {"id": TELEGRAM_USER, "is_bot": False, "first_name": "Amina"}
    chat = {"id": TELEGRAM_USER, "first_name": "Amina", "type": "private"}

    def __init__(self, app):
        self.http = app.test_client()

    def post(self, update_id: int, **content):
        message = {
            "message_id": update_id,
            "from": self.user,
            "chat": self.chat,
            "date": 1717171717,
            **content,
        }
        response = self.http.post(
            self.path,
            json={"update_id": update_id, "message": message},
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
        )
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def start(self) -> None:
        assert "request_contact" in self.post(900001, text="/start")
        linked = self.post(
            900002,
            contact={
                "phone_number": AMINA.lstrip("+"),
                "first_name": "Amina",
                "user_id": TELEGRAM_USER,
            },
        )
        assert "Linked" in linked

    def send(self, text: str, message_id: int):
        return self.post(message_id, text=text)


CHANNELS = [pytest.param(Sms, id="sms"), pytest.param(Telegram, id="telegram")]


def codes_in(raw: str) -> list[str]:
    return CODE_RE.findall(raw)


def code_rows(world) -> int:
    with world.session() as s:
        return s.scalar(select(func.count()).select_from(Code))


def upstream_count(world) -> int:
    return world.emulator.store.history_page(1, 1001, 0, 100)[1]


@pytest.fixture(params=["v1-raw", "v2-bearer"])
def any_world(request, database_url, tmp_path):
    """The world on each generation of the API: v1 with the raw token, v2 with Bearer."""
    version, scheme = request.param.split("-")
    world = build_world(
        database_url, tmp_path, omnivoltaic_api_version=version, omnivoltaic_auth_scheme=scheme
    )
    yield world
    world.services.close()


@pytest.mark.parametrize("channel", CHANNELS)
def test_paid_days_reach_the_device_exactly_once_whatever_is_redelivered(
    any_world, channel, caplog
):
    world = any_world
    caplog.set_level(logging.DEBUG)
    world.customer(AMINA, 1001)
    phone = channel(create_app(deps=world.services))
    phone.start()
    device = world.simulator(1001)

    world.pay(1001, 7, "pay-1")
    first = phone.send("CODE", 1)
    (code1,) = codes_in(first)
    assert "7 days" in first
    assert phone.send("CODE", 1) == first  # the same message delivered again
    entry = device.enter(code1)
    assert (entry.outcome, entry.days) == ("days", 7)

    assert codes_in(phone.send("RESEND", 2)) == [code1]
    assert (code_rows(world), upstream_count(world)) == (1, 1)

    world.pay(1001, 12, "pay-2")
    world.pay(1001, 12, "pay-2")  # the payment reported twice
    second = phone.send("code", 3)
    (code2,) = codes_in(second)
    assert code2 != code1 and "12 days" in second
    assert phone.send("code", 3) == second
    assert phone.send("RESEND", 2) == phone.send("RESEND", 2)
    nothing_new = phone.send("CODE", 4)
    assert codes_in(nothing_new) == [code2] and "No new payment" in nothing_new
    entry = device.enter(code2)
    assert (entry.outcome, entry.days) == ("days", 12)

    assert device.days_credited == 19
    assert (code_rows(world), upstream_count(world)) == (2, 2)
    assert device.enter(code1).outcome == "rejected"  # an old code cannot be reused
    assert "712345678" not in caplog.text  # no phone number in the logs, even unformatted


def test_a_mint_that_timed_out_reaches_the_device_once_by_sms(tmp_path):
    world = build_world(
        sqlite_file_url(tmp_path), tmp_path, grace=timedelta(seconds=60), timeout=1.0
    )
    try:
        world.simulator(1001)  # the item's chain is built now, untimed
        world.customer(AMINA, 1001)
        phone = Sms(create_app(deps=world.services))
        world.pay(1001, 2, "warm")
        (warm,) = codes_in(phone.send("CODE", 1))
        world.pay(1001, 5, "pay")
        world.emulator.mint_then_timeout(1, delay=4)
        pending = phone.send("CODE", 2)
        assert codes_in(pending) == [] and "confirming" in pending
        deadline = time.monotonic() + 5
        while upstream_count(world) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        later = phone.send("CODE", 3)
        (adopted,) = codes_in(later)  # never seen before: it comes as the new code it is
        assert "New code" in later and "5 days" in later and upstream_count(world) == 2
        device = world.simulator(1001)
        assert [device.enter(c).days for c in (warm, adopted)] == [2, 5]
    finally:
        world.services.close()


# -- when the core breaks -----------------------------------------------------------------


def test_an_unexpected_error_gets_the_polite_reply_stores_nothing_and_logs_no_phone(
    sqlite_world, caplog
):
    def broken(core, session, inbound):
        raise RuntimeError(f"cannot answer {inbound.sender}")

    inbound = Inbound(channel="sms", provider_id="SMcrash", sender=AMINA, text="CODE")
    with caplog.at_level(logging.INFO):
        reply = converse(sqlite_world.services, inbound, broken)
    assert reply.texts == (POLITE,)
    with sqlite_world.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 0
    (record,) = [r for r in caplog.records if r.name == "bot.inbound"]
    assert "SMcrash" in record.getMessage()
    assert "712345678" not in record.getMessage()
    formatted = MaskingFormatter("%(message)s").format(record)  # as production logs it
    assert "RuntimeError" in formatted and "712345678" not in formatted
    sqlite_world.customer(AMINA, 1001)  # the retry of the same message is answered afresh
    assert converse(sqlite_world.services, inbound).texts == (
        MESSAGES.render("en", "no_code_yet", device="1001"),
    )


@pytest.fixture
def broken_services(sqlite_world, tmp_path):
    """The product with a database that has no tables: every inbound fails in the core."""
    engine = db.make_engine(sqlite_file_url(tmp_path / "never-migrated"))
    yield dataclasses.replace(sqlite_world.services, sessions=db.make_sessionmaker(engine))
    engine.dispose()


def test_a_crash_in_the_core_is_a_200_with_the_polite_reply_over_sms(broken_services):
    phone = Sms(create_app(deps=broken_services))
    assert f"<Message>{POLITE}</Message>" in phone.send("CODE", 1)


def test_a_crash_in_the_core_is_a_200_with_the_polite_reply_over_telegram(broken_services):
    chat = Telegram(create_app(deps=broken_services))
    response = chat.http.post(
        chat.path,
        json={
            "update_id": 1,
            "message": {
                "message_id": 1,
                "from": chat.user,
                "chat": chat.chat,
                "date": 1717171717,
                "text": "/code",
            },
        },
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "method": "sendMessage",
        "chat_id": TELEGRAM_USER,
        "text": POLITE,
    }


def test_the_polite_reply_comes_in_the_senders_language(sqlite_world):
    def broken(core, session, inbound):
        raise RuntimeError("boom")

    sqlite_world.customer(AMINA, 1001, language="fr")
    inbound = Inbound(channel="sms", provider_id="SMcrash-fr", sender=AMINA, text="CODE")
    reply = converse(sqlite_world.services, inbound, broken)
    assert reply.texts == (MESSAGES.render("fr", "error_try_again"),)
    assert reply.texts != (POLITE,)


# -- slow neighbours: nothing stalls another ----------------------------------------------------


def test_a_retry_of_a_still_confirming_message_gets_the_code_once_it_exists(tmp_path):
    """Only final replies are stored: "confirming" is not the answer to its MessageSid."""
    world = build_world(sqlite_file_url(tmp_path), tmp_path, timeout=0.3)
    try:
        world.customer(AMINA, 1001)
        phone = Sms(create_app(deps=world.services))
        world.pay(1001, 5, "p")
        world.emulator.mint_then_timeout(1, delay=1.0)
        assert "confirming" in phone.send("CODE", 7)
        time.sleep(1.0)
        again = phone.send("CODE", 7)  # Twilio delivers the same message again
        (code,) = CODE_RE.findall(again)
        assert world.simulator(1001).enter(code).days == 5
        assert phone.send("CODE", 7) == again  # final now: stored, answered the same
    finally:
        world.services.close()


def test_health_and_payments_answer_fast_while_the_api_is_slow_and_ussd_is_hostile(
    database_url, tmp_path
):
    """The promise of issue 9: /healthz and a payment that needs no API call answer within
    3 s while a customer's CODE waits on an API slower than its timeout and a maximal
    hostile USSD request is answered; the CODE itself answers within Twilio's 15 s."""
    import threading

    world = build_world(database_url, tmp_path, timeout=2.0, mint_on_payment=False)
    try:
        populate = world.customer(AMINA, 1001)
        assert populate
        world.pay(1001, 5, "p-slow")
        client = world.client()
        world.emulator.set_latency(4.0)  # slower than the API timeout (2 s)
        timings: dict[str, float] = {}

        def customer_code() -> None:
            started = time.monotonic()
            Sms(create_app(deps=world.services)).send("CODE", 8)
            timings["code"] = time.monotonic() - started

        def hostile_ussd() -> None:
            form = {
                "sessionId": "x",
                "serviceCode": "*384#",
                "phoneNumber": "+254700000101",
                "text": "*" * 59,
            }
            started = time.monotonic()
            assert client.post("/webhooks/ussd", data=form).status_code == 200
            timings["ussd"] = time.monotonic() - started

        threads = [threading.Thread(target=customer_code), threading.Thread(target=hostile_ussd)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        timings["healthz"] = time.monotonic() - started
        body = b'{"reference": "P-FAST", "product_id": 1002, "days": 3}'
        from tests.fakes import payment_signature

        started = time.monotonic()
        answer = client.post(
            "/webhooks/payments",
            data=body,
            content_type="application/json",
            headers={"X-Signature": payment_signature(SECRETS["payments_secret"], body)},
        )
        timings["payment"] = time.monotonic() - started
        for t in threads:
            t.join(30)
        world.emulator.set_latency(0)
        assert answer.status_code == 200
        assert timings["healthz"] < 3 and timings["payment"] < 3 and timings["ussd"] < 3
        assert timings["code"] < 15
    finally:
        world.services.close()


# -- both generations of the API: the same journey ------------------------------------------

GENERATIONS = [
    pytest.param({}, id="v1-raw"),
    pytest.param(
        {"omnivoltaic_api_version": "v2", "omnivoltaic_auth_scheme": "bearer"}, id="v2-bearer"
    ),
]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_sync_import_and_codes_over_sms_reach_the_device_in_each_generation(
    database_url, tmp_path, generation
):
    """sync-devices, import-owners, CODE over SMS (a mint that times out included, so the
    history is read too), and the device simulator as referee, on v1 and on v2 + Bearer."""
    import io

    from bot.ledger.owners import import_owners

    world = build_world(
        database_url, tmp_path, grace=timedelta(seconds=60), timeout=1.0, **generation
    )
    try:
        with world.session() as s:
            report = import_owners(
                s,
                io.StringIO(f"product_id,customer_phone,customer_name\n1001,{AMINA},Amina\n"),
                "KE",
                "en",
            )
        assert report.imported == 1
        device = world.simulator(1001)  # the item's chain is built now, untimed
        sent: list = []
        world.services.http.event_hooks["request"].append(sent.append)
        phone = Sms(create_app(deps=world.services))
        world.pay(1001, 7, "pay-1")
        first = phone.send("CODE", 1)
        (code1,) = codes_in(first)
        assert "7 days" in first
        world.pay(1001, 5, "pay-2")
        world.emulator.mint_then_timeout(1, delay=3)
        assert "confirming" in phone.send("CODE", 2)
        deadline = time.monotonic() + 5
        while upstream_count(world) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        (code2,) = codes_in(phone.send("CODE", 3))  # adopted from the code history
        assert [device.enter(c).days for c in (code1, code2)] == [7, 5]
        assert device.days_credited == 12 and upstream_count(world) == 2
        assert world.emulator.logins == 1  # one login for the whole journey
        api_id = world.device(1001).api_id
        v2 = bool(generation)
        assert api_id == ("TEST2501001001" if v2 else "1001")
        paths = {r.url.path for r in sent}
        mint = "/otp/daysCode/v2" if v2 else "/otp/daysCode"
        history = (
            f"/oves/v2/codeHistoryList/{api_id}/0/100" if v2 else "/oves/codeHistoryList/1001/0/100"
        )
        assert {mint, history} <= paths
        headers = {r.headers.get("Authorization", "")[:7] for r in sent if r.url.path == mint}
        assert headers == ({"Bearer "} if v2 else headers - {"Bearer "})
    finally:
        world.services.close()
