"""WhatsApp through Twilio: `POST /webhooks/twilio/sms` with `From=whatsapp:+…`.

The payloads have the fields Twilio documents for an incoming WhatsApp message (the SMS
form plus `ProfileName`, `WaId`, `MessageType`, and `whatsapp:` on both addresses),
signed the way Twilio signs them.  Then: the same answers as SMS in the customer's
language, pushes on WhatsApp only inside the 24-hour session window, and Twilio's
receipts for WhatsApp messages on their outbox rows.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.outbox import queue as outbox
from bot.outbox.delivery import drain
from bot.storage.models import Code, Customer, Device, InboundMessage, OutboxMessage, utcnow
from bot.text.templates import Messages
from tests.fakes import FakeSender
from tests.harness import (
    SECRETS,
    build_world,
    count_rows,
    sqlite_file_url,
    twilio_message,
    twilio_post,
    twiml_messages,
)

AMINA = "+254712345678"
SANDBOX = "whatsapp:+14155238886"
MESSAGES = Messages.load()


def sid(label: str, prefix: str = "SM") -> str:
    """A MessageSid of Twilio's shape (WhatsApp messages have SM or MM sids too)."""
    return prefix + hashlib.sha256(label.encode()).hexdigest()[:32]


def whatsapp(body: str, label: str = "wa", sender: str = AMINA, **extra) -> dict[str, str]:
    form = twilio_message(body, sid(label), sender, channel="whatsapp")
    form.update(extra)
    return form


@pytest.fixture
def w(sqlite_world):
    sqlite_world.customer(AMINA, 1001)
    sqlite_world.pay(1001, 7, "paid-1")
    return sqlite_world


@pytest.fixture
def both(world):
    """The same, on SQLite and on PostgreSQL."""
    world.customer(AMINA, 1001)
    world.pay(1001, 7, "paid-1")
    return world


def customer(world) -> Customer:
    with world.session() as s:
        return s.scalar(select(Customer).where(Customer.phone == AMINA))


# -- accepted ---------------------------------------------------------------------------

ACCEPTED = [
    pytest.param(whatsapp("CODE"), "code", id="a WhatsApp text, the documented fields"),
    pytest.param(whatsapp("code 1001", "lower"), "code", id="lower case, with the device"),
    pytest.param(
        whatsapp(
            "CODE",
            "metadata",
            ChannelMetadata='{"type":"whatsapp","data":{"context":{"ProfileName":"Amina",'
            '"WaId":"254712345678"}}}',
        ),
        "code",
        id="with ChannelMetadata",
    ),
    pytest.param(
        whatsapp(
            "",
            "photo",
            NumMedia="1",
            MessageType="image",
            MediaContentType0="image/jpeg",
            MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME1",
        ),
        "help",
        id="a photo without text",
    ),
    pytest.param(
        whatsapp("", "location", MessageType="location", Latitude="-1.28", Longitude="36.82"),
        "help",
        id="a shared location",
    ),
    pytest.param(
        whatsapp("HELP", "button", MessageType="button", ButtonText="HELP", ButtonPayload="HELP"),
        "help",
        id="a quick-reply button",
    ),
    pytest.param(
        whatsapp("CODE", "stranger", sender="+254799000000"), "not_registered", id="a stranger"
    ),
    pytest.param(
        dict(whatsapp("CODE", "mms"), MessageSid=sid("mms", "MM"), SmsMessageSid=sid("mms", "MM")),
        "code",
        id="an MM sid (media)",
    ),
]


@pytest.mark.parametrize("form, expect", ACCEPTED)
def test_a_whatsapp_message_is_answered_in_twiml_as_the_phone_after_the_prefix(w, form, expect):
    response = twilio_post(w.client(), form)
    assert (response.status_code, response.mimetype) == (200, "text/xml")
    (text,) = twiml_messages(response)
    with w.session() as s:
        codes = list(s.scalars(select(Code).where(Code.state == "minted")))
        stored = s.scalar(select(InboundMessage.channel))
    if expect == "code":
        (code,) = codes
        assert code.code in text and "7 days" in text and code.channel == "whatsapp"
        assert w.simulator(1001).enter(code.code).days == 7
        assert stored == "whatsapp"
    else:
        assert text == MESSAGES.render("en", expect) and codes == []
    if expect != "not_registered":
        amina = customer(w)
        assert amina.last_channel == "whatsapp" and amina.whatsapp_at is not None


def test_the_same_message_sid_again_is_the_stored_reply_and_mints_nothing(both):
    w = both
    client = w.client()
    first = twilio_post(client, whatsapp("CODE", "repeat"))
    w.pay(1001, 3, "paid-2")  # even with new credit, a redelivery does nothing new
    again = twilio_post(client, whatsapp("CODE", "repeat"))
    assert again.get_data() == first.get_data()
    assert count_rows(w.services.sessions, Code) == 1


REFUSED = [
    # label, form, settings, status, what the refusal names
    pytest.param(whatsapp("CODE", From="whatsapp:"), {}, 400, "From", id="a prefix, no number"),
    pytest.param(
        {k: v for k, v in whatsapp("CODE").items() if k != "From"}, {}, 400, "From", id="no From"
    ),
    pytest.param(
        dict(whatsapp("CODE"), MessageSid="WA123"), {}, 400, "MessageSid", id="not a Twilio sid"
    ),
    pytest.param(whatsapp("CODE"), {"twilio_auth_token": "other"}, 403, "", id="another token"),
    pytest.param(whatsapp("CODE"), {"twilio_auth_token": None}, 403, "", id="no token: closed"),
]


@pytest.mark.parametrize("form, settings, status, named", REFUSED)
def test_malformed_or_forged_whatsapp_messages_are_refused_and_change_nothing(
    w, form, settings, status, named
):
    response = twilio_post(w.client(**settings), form)
    assert response.status_code == status and named in response.get_data(as_text=True)
    assert count_rows(w.services.sessions, InboundMessage) == 0
    assert customer(w).last_channel is None


# -- the same answers as SMS, in the customer's language ---------------------------------


def answers(tmp_path, channel: str, language: str) -> list[str]:
    """STATUS, CODE, STATUS, CODE from Amina over `channel`, in a world of its own."""
    directory = tmp_path / channel
    directory.mkdir()
    world = build_world(sqlite_file_url(directory), directory)
    try:
        world.customer(AMINA, 1001, language=language)
        world.pay(1001, 7, "paid-1")
        client, texts = world.client(), []
        for n, body in enumerate(("STATUS", "CODE", "STATUS", "CODE")):
            form = twilio_message(body, sid(f"{channel}{n}"), AMINA, channel=channel)
            texts += twiml_messages(twilio_post(client, form))
        return texts
    finally:
        world.services.close()


@pytest.mark.parametrize("language", ["en", "fr", "sw"])
def test_status_and_code_on_whatsapp_are_worded_as_on_sms(tmp_path, language):
    on_sms = answers(tmp_path, "sms", language)
    assert answers(tmp_path, "whatsapp", language) == on_sms
    assert on_sms[1] != on_sms[3]  # a new code, then the latest again
    days = {"en": "days", "fr": "jours", "sw": "siku"}[language]
    assert days in on_sms[1].lower()


# -- pushes: WhatsApp inside the 24-hour window, SMS outside ------------------------------


@pytest.fixture
def wa(tmp_path):
    """A world whose pushes may go on WhatsApp (TWILIO_WHATSAPP_FROM is set)."""
    world = build_world(sqlite_file_url(tmp_path), tmp_path, twilio_whatsapp_from=SANDBOX)
    world.customer(AMINA, 1001, 1002)
    yield world
    world.services.close()


def push(world, product_id: int = 1001) -> OutboxMessage:
    """A paid day's code pushed to its owner: the outbox row."""
    world.pay(product_id, 1, f"push-{product_id}-{utcnow().timestamp()}")
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == product_id))
        result = world.ledger.mint_days(s, device, request_key=f"push-{utcnow()}", channel="cli")
        (message,) = outbox.notify_codes(s, MESSAGES, device, result.codes)
        return message


def wrote(world, body: str = "STATUS 1001", label: str = "w1", channel: str = "whatsapp"):
    response = twilio_post(world.client(), twilio_message(body, sid(label), AMINA, channel))
    assert response.status_code == 200


def age(world, hours: float) -> None:
    """Amina last wrote on WhatsApp `hours` ago."""
    with world.session() as s:
        s.scalar(select(Customer).where(Customer.phone == AMINA)).whatsapp_at = utcnow() - (
            timedelta(hours=hours)
        )


WINDOW = [
    # label, hours since Amina last wrote on WhatsApp, the push's channel
    pytest.param(0, "whatsapp", id="just wrote"),
    pytest.param(22.5, "whatsapp", id="22.5 h ago: inside the window"),
    pytest.param(23.5, "sms", id="23.5 h ago: too close to the end, SMS"),
    pytest.param(25, "sms", id="25 h ago: outside the window, SMS"),
]


@pytest.mark.parametrize("hours, channel", WINDOW)
def test_a_push_goes_on_whatsapp_only_inside_the_session_window(wa, hours, channel):
    wrote(wa)
    age(wa, hours)
    message = push(wa)
    assert (message.channel, message.recipient) == (channel, AMINA)


def test_a_push_goes_by_sms_when_whatsapp_pushes_are_off(tmp_path):
    world = build_world(sqlite_file_url(tmp_path), tmp_path)  # no TWILIO_WHATSAPP_FROM
    try:
        world.customer(AMINA, 1001)
        wrote(world)
        assert customer(world).last_channel == "whatsapp"
        assert push(world).channel == "sms"
    finally:
        world.services.close()


def test_writing_by_sms_after_whatsapp_moves_the_pushes_to_sms(wa):
    wrote(wa, label="first")
    assert push(wa).channel == "whatsapp"
    wrote(wa, label="then", channel="sms")
    assert push(wa, 1002).channel == "sms"


def test_the_window_moves_on_at_most_hourly_so_reads_stay_reads(wa):
    wrote(wa, label="a")
    first = customer(wa).whatsapp_at
    wrote(wa, label="b")  # within the hour: no write for a STATUS
    assert customer(wa).whatsapp_at == first
    age(wa, 2)
    wrote(wa, label="c")
    assert customer(wa).whatsapp_at > first


def test_a_whatsapp_push_is_sent_by_the_whatsapp_sender(wa):
    wrote(wa)
    message = push(wa)
    senders = {"sms": FakeSender(), "whatsapp": FakeSender()}
    report = drain(wa.services.sessions, senders)
    assert report.sent == 1
    assert senders["whatsapp"].sent == [(AMINA, message.body)] and senders["sms"].sent == []


# -- Twilio's receipts for WhatsApp messages ----------------------------------------------

PUSHED = sid("pushed on whatsapp")


def receipt(status: str, error: str | None = None) -> dict[str, str]:
    """A StatusCallback for an outgoing WhatsApp message (`read` comes after delivered)."""
    form = {
        "SmsSid": PUSHED,
        "SmsStatus": status,
        "MessageStatus": status,
        "ChannelToAddress": "+2547123XXXXX",
        "To": "whatsapp:" + AMINA,
        "ChannelPrefix": "whatsapp",
        "MessageSid": PUSHED,
        "AccountSid": SECRETS["twilio_account_sid"],
        "From": SANDBOX,
        "ApiVersion": "2010-04-01",
        "ChannelInstallSid": "XE" + "0" * 32,
    }
    if error:
        form.update(ErrorCode=error, ErrorMessage="Message failed to send")
    return form


def rows(world) -> list[tuple]:
    with world.session() as s:
        return [
            (m.channel, m.status, m.delivery_status, m.delivery_error, m.retry_of is not None)
            for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


RECEIPTS = [
    pytest.param(
        [("sent", None), ("delivered", None), ("read", None)],
        [("whatsapp", "sent", "delivered", None, False)],
        id="sent, delivered, read",
    ),
    pytest.param(
        [("undelivered", "63016"), ("undelivered", "63016")],
        [("whatsapp", "sent", "undelivered", "63016", False), ("sms", "pending", None, None, True)],
        id="outside the window (63016): the code goes once by SMS",
    ),
]


@pytest.mark.parametrize("receipts, expected", RECEIPTS)
def test_twilio_receipts_for_whatsapp_land_on_their_rows(wa, receipts, expected):
    wrote(wa)
    message = push(wa)
    with wa.session() as s:
        row = s.get(OutboxMessage, message.id)
        row.status, row.provider_message_id, row.attempts = "sent", PUSHED, 1
    client = wa.client()
    for status, error in receipts:
        response = twilio_post(client, receipt(status, error), path="/webhooks/twilio/status")
        assert (response.status_code, response.get_data()) == (200, b"")
    assert rows(wa) == expected
