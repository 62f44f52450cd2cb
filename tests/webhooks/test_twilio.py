"""`POST /webhooks/twilio/sms` over HTTP: labelled tables of real Twilio payloads.

The payloads have the fields Twilio documents for an incoming message ("Twilio's request
to your incoming message Webhook URL"), as form fields, signed the way Twilio signs them:
HMAC-SHA1 over the public URL it called plus the sorted form fields (twilio's own
RequestValidator computes the signatures here).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.outbox import queue as outbox
from bot.storage.models import (
    Code,
    Customer,
    Device,
    InboundMessage,
    OutboxMessage,
    Payment,
    TelegramLink,
)
from bot.text import gsm7
from bot.text.templates import Messages
from tests.harness import SECRETS, build_world, sqlite_file_url

PATH = "/webhooks/twilio/sms"
URL = SECRETS["public_base_url"] + PATH
AMINA = "+254712345678"
MESSAGES = Messages.load()
ACCOUNT = SECRETS["twilio_account_sid"]


def message_sid(label: str, prefix: str = "SM") -> str:
    """A MessageSid of Twilio's shape (SM or MM and 32 hex digits), one per label."""
    return prefix + hashlib.sha256(label.encode()).hexdigest()[:32]


def twilio_sms(
    body: str = "CODE", sid: str = "SM" + "1" * 32, sender: str = AMINA, **extra
) -> dict[str, str]:
    """An incoming SMS as Twilio posts it (form fields, all strings, empty when unknown)."""
    form = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "KE",
        "To": SECRETS["twilio_from_number"],
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def sign(form: dict, url: str = URL, token: str = SECRETS["twilio_auth_token"]) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post(client, form: dict, signature: str | None = "auto", path: str = PATH, url: str = URL):
    headers = {}
    if signature == "auto":
        headers["X-Twilio-Signature"] = sign(form, url)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, data=form, headers=headers)


def messages(response) -> list[str]:
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def footprint(world) -> tuple:
    """Everything a request could change."""
    with world.session() as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (Code, InboundMessage, Payment, Customer)
        )
        opted = tuple(s.scalars(select(Customer.opted_out).order_by(Customer.id)))
        langs = tuple(s.scalars(select(Customer.language).order_by(Customer.id)))
    return counts + (opted, langs, world.emulator.store.history_page(1, 1001, 0, 1)[1])


@pytest.fixture
def w(sqlite_world):
    sqlite_world.customer(AMINA, 1001)
    sqlite_world.pay(1001, 7, "paid-1")
    return sqlite_world


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One world for the tables of requests that must change nothing (SQLite)."""
    directory = tmp_path_factory.mktemp("twilio")
    world = build_world(sqlite_file_url(directory), directory)
    world.customer(AMINA, 1001)
    world.pay(1001, 7, "paid-1")
    yield world
    world.services.close()


# -- accepted ---------------------------------------------------------------------------

ACCEPTED = [
    pytest.param(twilio_sms("CODE"), "code", id="CODE, the documented fields"),
    pytest.param(
        twilio_sms("code", MessagingServiceSid="MG" + "2" * 32),
        "code",
        id="sent through a Messaging Service",
    ),
    pytest.param(
        twilio_sms(
            "Code 1001",
            AddOns='{"status":"successful","results":{}}',
            ReferralNumMedia="0",
            SomeFieldTwilioAddsLater="x",
        ),
        "code",
        id="extra and unknown fields are tolerated",
    ),
    pytest.param(
        twilio_sms("HELP", FromCity="NAIROBI", FromState="", FromZip="00100"),
        "help",
        id="help with sender location",
    ),
    pytest.param(
        twilio_sms(
            "",
            NumMedia="1",
            MediaContentType0="image/jpeg",
            MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME1",
        ),
        "help",
        id="MMS photo without text",
    ),
    pytest.param(
        twilio_sms("Nataka CODE tafadhali 🙏", NumSegments="2"), "help", id="unicode chatter"
    ),
    pytest.param(
        twilio_sms("CODE", sender="+254799000000"), "not_registered", id="a number we do not know"
    ),
    pytest.param(twilio_sms("CODE", sid=message_sid("mms", "MM")), "code", id="an MMS's sid"),
]


@pytest.mark.parametrize("form, expect", ACCEPTED)
def test_a_signed_twilio_message_gets_a_twiml_reply(w, form, expect):
    response = post(w.client(), form)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    (text,) = messages(response)
    if expect == "code":
        (code,) = _codes(w)
        assert code.code in text and "7 days" in text
        assert w.simulator(1001).enter(code.code).days == 7
    else:
        assert text == MESSAGES.render("en", expect)
        assert _codes(w) == []


def _codes(world) -> list[Code]:
    with world.session() as s:
        return list(s.scalars(select(Code).where(Code.state == "minted")))


@pytest.mark.parametrize(
    "body, lang",
    [
        pytest.param("STOP", "en", id="STOP"),
        pytest.param("ARRÊT", "fr", id="ARRÊT, French customer"),
        pytest.param("simama", "sw", id="simama, Swahili customer"),
    ],
)
def test_stop_gets_a_one_segment_confirmation_in_twiml(w, body, lang):
    with w.session() as s:
        s.scalar(select(Customer).where(Customer.phone == AMINA)).language = lang
    response = post(w.client(), twilio_sms(body))
    assert response.status_code == 200
    assert messages(response) == [MESSAGES.render(lang, "opted_out")]
    assert gsm7.fits_one_sms(messages(response)[0])
    assert footprint(w)[4] == (True,)


def test_the_same_message_sid_again_returns_the_identical_reply_and_mints_nothing(w):
    client = w.client()
    first = post(client, twilio_sms("CODE", sid=message_sid("repeat")))
    before = footprint(w)
    w.pay(1001, 3, "paid-2")  # even with new credit, a redelivery does nothing new
    again = post(client, twilio_sms("CODE", sid=message_sid("repeat")))
    assert again.status_code == 200 and again.get_data() == first.get_data()
    after = footprint(w)
    assert after[0] == before[0] and after[-1] == before[-1]  # no code, no mint upstream


def test_a_signed_url_with_a_query_string_is_checked_with_it(w):
    client = w.client()
    form = twilio_sms("HELP", sid=message_sid("query"))
    assert post(client, form, path=PATH + "?tenant=ke", url=URL + "?tenant=ke").status_code == 200
    assert post(client, form, path=PATH + "?tenant=ke", url=URL).status_code == 403


def test_a_signature_over_the_url_with_its_default_port_is_accepted_too(w):
    """Twilio may sign https://host:443/...: the one-HMAC check misses it, Twilio's own
    check (with and without the port) still accepts it; another port is refused."""
    client = w.client()
    host = URL.split("/")[2]
    with_port = URL.replace(host, host + ":443", 1)
    form = twilio_sms("HELP", sid=message_sid("port"))
    assert post(client, form, url=with_port).status_code == 200
    assert post(client, form, url=URL.replace(host, host + ":8443", 1)).status_code == 403


RENDERED = [
    pytest.param((), id="no reply"),
    pytest.param(("Your code: *123 456 789 012 345 678 901#",), id="one code"),
    pytest.param(("a & b < c > d \"q\" 'x'", "second\nline"), id="markup and quotes"),
    pytest.param(("Siku 3 zimebaki ✓ é ñ", "]]> <![CDATA[ &amp;"), id="non-ascii and cdata"),
]


@pytest.mark.parametrize("texts", RENDERED)
def test_twiml_is_what_twilios_messaging_response_writes(texts):
    from twilio.twiml.messaging_response import MessagingResponse

    from bot.inbound import Reply
    from webhooks.twilio import render

    expected = MessagingResponse()
    for text in texts:
        expected.message(text)
    response = render(Reply.say(*texts))
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True) == str(expected)
    assert [m.text or "" for m in ET.fromstring(response.get_data()).findall("Message")] == list(
        texts
    )


# -- refused ------------------------------------------------------------------------------

OTHER_TOKEN = "not-the-auth-token"
FORM = twilio_sms("CODE", sid=message_sid("forged"))
STOP = twilio_sms("STOP", sid=message_sid("forgedstop"))
REFUSED = [
    # label, form, signature (or "auto" = signed correctly), settings, status
    pytest.param(FORM, None, {}, 403, id="no signature header"),
    pytest.param(FORM, "", {}, 403, id="empty signature header"),
    pytest.param(FORM, "garbage", {}, 403, id="signature that is not base64"),
    pytest.param(FORM, sign(FORM, token=OTHER_TOKEN), {}, 403, id="signed with another token"),
    pytest.param(STOP, sign(STOP, token=OTHER_TOKEN), {}, 403, id="forged STOP"),
    pytest.param(
        FORM,
        sign(FORM, url="http://bot.example.test" + PATH),
        {},
        403,
        id="signed for http, not https",
    ),
    pytest.param(
        FORM,
        sign(FORM, url="https://evil.example.test" + PATH),
        {},
        403,
        id="signed for another host",
    ),
    pytest.param(
        FORM,
        sign(FORM, url=SECRETS["public_base_url"] + "/webhooks/other"),
        {},
        403,
        id="signed for another path",
    ),
    pytest.param(FORM, sign(dict(FORM, Body="HELP")), {}, 403, id="body changed after signing"),
    pytest.param(
        FORM, sign(dict(FORM, From="+254700000001")), {}, 403, id="sender changed after signing"
    ),
    pytest.param(
        FORM, "auto", {"twilio_auth_token": None}, 403, id="auth token unset: fail closed"
    ),
    pytest.param(FORM, "auto", {"public_base_url": None}, 403, id="public URL unset: fail closed"),
    pytest.param(FORM, None, {"demo": True}, 403, id="demo with a token still needs a signature"),
    pytest.param(
        {k: v for k, v in FORM.items() if k != "MessageSid"},
        "auto",
        {},
        400,
        id="signed but no MessageSid",
    ),
    pytest.param(
        {k: v for k, v in FORM.items() if k != "From"}, "auto", {}, 400, id="signed but no From"
    ),
    pytest.param(dict(FORM, MessageSid="   "), "auto", {}, 400, id="signed but blank MessageSid"),
    pytest.param({}, "auto", {}, 400, id="signed empty form"),
]


@pytest.mark.parametrize("form, signature, settings, status", REFUSED)
def test_forged_unsigned_or_malformed_requests_are_refused_and_change_nothing(
    shared, form, signature, settings, status
):
    before = footprint(shared)
    response = post(shared.client(**settings), form, signature=signature)
    assert response.status_code == status
    assert response.mimetype == "text/plain" and response.get_data(as_text=True).strip()
    assert footprint(shared) == before


def _shifted(form: dict, name: str) -> dict:
    """`form` with the field after MessageSid moved into its value: signed alike."""
    shifted = {k: v for k, v in form.items() if k != name}
    shifted["MessageSid"] = form["MessageSid"] + name + form[name]
    return shifted


SID = FORM["MessageSid"]
SHIFTED = _shifted(FORM, "NumMedia")
# label, form, signature ("auto" = signed correctly), settings, the field the 400 names
BAD_IDS = [
    pytest.param(SHIFTED, sign(FORM), {}, "MessageSid", id="NumMedia shifted into MessageSid"),
    pytest.param(
        _shifted(FORM, "NumSegments"), "auto", {}, "MessageSid", id="NumSegments shifted in"
    ),
    pytest.param(dict(FORM, MessageSid="SMforged"), "auto", {}, "MessageSid", id="short sid"),
    pytest.param(dict(FORM, MessageSid=SID[:-1]), "auto", {}, "MessageSid", id="31 hex digits"),
    pytest.param(dict(FORM, MessageSid=SID + "0"), "auto", {}, "MessageSid", id="33 hex digits"),
    pytest.param(dict(FORM, MessageSid=SID.upper()), "auto", {}, "MessageSid", id="upper-case hex"),
    pytest.param(
        dict(FORM, MessageSid="sm" + SID[2:]), "auto", {}, "MessageSid", id="lower-case prefix"
    ),
    pytest.param(
        dict(FORM, MessageSid="MG" + SID[2:]), "auto", {}, "MessageSid", id="a service's sid"
    ),
    pytest.param(
        dict(FORM, MessageSid=SID + " "), "auto", {}, "MessageSid", id="sid with a space after"
    ),
    pytest.param(
        dict(FORM, MessageSid=SID + "\n"), "auto", {}, "MessageSid", id="sid with a newline"
    ),
    pytest.param(
        dict(FORM, AccountSid="AC" + "1" * 32), "auto", {}, "AccountSid", id="another account"
    ),
    pytest.param(
        {k: v for k, v in FORM.items() if k != "AccountSid"},
        "auto",
        {},
        "AccountSid",
        id="no AccountSid",
    ),
    pytest.param(dict(FORM, AccountSid=""), "auto", {}, "AccountSid", id="empty AccountSid"),
    pytest.param(
        dict(FORM, AccountSid=ACCOUNT + "x"), "auto", {}, "AccountSid", id="AccountSid suffixed"
    ),
    pytest.param(
        dict(FORM, MessageSid="SMchat1", AccountSid="anything"),
        "auto",
        {"twilio_account_sid": None},
        "MessageSid",
        id="no account configured, still a bad sid",
    ),
]


def test_a_shifted_field_boundary_keeps_the_signature():
    """Why the sid is checked: Twilio's signature cannot see where a field ends."""
    assert sign(SHIFTED) == sign(FORM) and SHIFTED != FORM


@pytest.mark.parametrize("form, signature, settings, field", BAD_IDS)
def test_a_signed_request_with_a_bad_message_or_account_sid_is_refused_naming_it(
    shared, form, signature, settings, field
):
    before = footprint(shared)
    response = post(shared.client(**settings), form, signature=signature)
    assert response.status_code == 400
    assert response.mimetype == "text/plain" and field in response.get_data(as_text=True)
    assert footprint(shared) == before


def test_with_no_account_configured_any_account_sid_is_accepted(w):
    client = w.client(twilio_account_sid=None)
    form = twilio_sms("HELP", sid=message_sid("no account"), AccountSid="AC" + "1" * 32)
    response = post(client, form)
    assert response.status_code == 200 and messages(response) == [MESSAGES.render("en", "help")]


MALFORMED = [
    pytest.param(dict(data="{not json", content_type="application/json"), id="JSON body"),
    pytest.param(
        dict(data=b"\xff\xfe\x00garbage", content_type="application/x-www-form-urlencoded"),
        id="bytes that are not UTF-8",
    ),
    pytest.param(
        dict(
            data="MessageSid=SM1&From=%2B254712345678&Body=" + "A" * 20000,
            content_type="application/x-www-form-urlencoded",
        ),
        id="huge body",
    ),
]


@pytest.mark.parametrize("request_kwargs", MALFORMED)
def test_malformed_bodies_never_get_a_5xx(shared, request_kwargs):
    before = footprint(shared)
    response = shared.client().post(PATH, headers={"X-Twilio-Signature": "x"}, **request_kwargs)
    assert 400 <= response.status_code < 500
    assert footprint(shared) == before


def test_get_is_not_allowed(w):
    response = w.client().get(PATH)
    assert (response.status_code, response.mimetype) == (405, "text/plain")
    assert "POST" in response.headers["Allow"]


def test_demo_without_a_token_accepts_unsigned_messages(w):
    client = w.client(demo=True, twilio_auth_token=None)
    response = post(client, twilio_sms("CODE", sid=message_sid("demo")), signature=None)
    assert response.status_code == 200 and "7 days" in messages(response)[0]


def test_a_multipart_part_without_a_name_is_refused_not_a_500(w):
    """Found by the fuzz test: a nameless part made the signature check itself crash."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="\n\r\t"\r\n\r\nx\r\n'
        b'--b\r\nContent-Disposition: form-data; name="MessageSid"\r\n\r\nSM' + b"1" * 32 + b"\r\n"
        b"--b--\r\n"
    )
    response = w.client().post(
        PATH,
        data=body,
        content_type="multipart/form-data; boundary=b",
        headers={"X-Twilio-Signature": "0"},
    )
    assert response.status_code == 403


# -- delivery receipts: POST /webhooks/twilio/status -------------------------------------

STATUS_PATH = "/webhooks/twilio/status"
STATUS_URL = SECRETS["public_base_url"] + STATUS_PATH
PUSHED = message_sid("pushed code")


def twilio_status(
    status: str = "delivered", sid: str = PUSHED, error: str | None = None, **extra
) -> dict[str, str]:
    """A StatusCallback as Twilio posts it for an outgoing SMS (ErrorCode only on errors)."""
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": AMINA,
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": SECRETS["twilio_from_number"],
        "ApiVersion": "2010-04-01",
    }
    if error is not None:
        form["ErrorCode"] = error
    form.update(extra)
    return form


def post_status(client, form: dict, signature: str | None = "auto", url: str = STATUS_URL):
    return post(client, form, signature=signature, path=STATUS_PATH, url=url)


def pushed(world, *, telegram: bool = False) -> int:
    """The code of a 7-day payment pushed to Amina by SMS, accepted by Twilio as PUSHED."""
    with world.session() as s:
        customer = s.scalar(select(Customer).where(Customer.phone == AMINA))
        if telegram:
            s.add(TelegramLink(customer_id=customer.id, telegram_user_id=77, chat_id=77))
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        result = world.ledger.mint_days(s, device, request_key="push", channel="payments")
        (message,) = outbox.notify_codes(s, MESSAGES, device, result.codes)
        message.status, message.provider_message_id, message.attempts = "sent", PUSHED, 1
        return message.id


def receipt_state(world) -> tuple:
    with world.session() as s:
        rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        opted = s.scalar(select(Customer.opted_out).where(Customer.phone == AMINA))
        return tuple(
            (m.channel, m.status, m.delivery_status, m.delivery_error) for m in rows
        ), opted


RECEIPT_FLOWS = [
    # label, telegram linked, receipts (status, error), outbox rows after, opted out after
    pytest.param(
        False,
        [("sent", None), ("delivered", None)],
        (("sms", "sent", "delivered", None),),
        False,
        id="sent then delivered",
    ),
    pytest.param(
        False,
        [("delivered", None), ("sent", None), ("delivered", None)],
        (("sms", "sent", "delivered", None),),
        False,
        id="out of order and repeated",
    ),
    pytest.param(
        False,
        [("undelivered", "30003")],
        (("sms", "failed", "undelivered", "30003"),),
        False,
        id="undelivered, no Telegram: failed",
    ),
    pytest.param(
        True,
        [("undelivered", "30003"), ("undelivered", "30003")],
        (("sms", "sent", "undelivered", "30003"), ("telegram", "pending", None, None)),
        False,
        id="undelivered, Telegram linked: queued there once",
    ),
    pytest.param(
        True,
        [("failed", "21610")],
        (("sms", "failed", "failed", "21610"),),
        True,
        id="21610: opted out, not retried",
    ),
]


@pytest.mark.parametrize("telegram, receipts, rows, opted", RECEIPT_FLOWS)
def test_a_signed_receipt_is_recorded_and_answered_with_an_empty_200(
    w, telegram, receipts, rows, opted
):
    pushed(w, telegram=telegram)
    client = w.client()
    for status, error in receipts:
        response = post_status(client, twilio_status(status, error=error))
        assert (response.status_code, response.get_data()) == (200, b"")
    assert receipt_state(w) == (rows, opted)


def test_a_receipt_for_an_unknown_message_is_a_200_and_changes_nothing(w, caplog):
    pushed(w)
    before = receipt_state(w), footprint(w)
    with caplog.at_level("INFO", logger="bot.outbox.receipts"):
        response = post_status(
            w.client(), twilio_status("undelivered", message_sid("other"), "30003")
        )
    assert (response.status_code, response.get_data()) == (200, b"")
    assert (receipt_state(w), footprint(w)) == before
    assert any("no such message" in r.getMessage() for r in caplog.records)


RECEIPT = twilio_status("undelivered", error="30003")
RECEIPTS_REFUSED = [
    # form, signature ("auto" = signed correctly), settings, status, the field a 400 names
    pytest.param(RECEIPT, None, {}, 403, None, id="no signature"),
    pytest.param(RECEIPT, sign(RECEIPT, token=OTHER_TOKEN), {}, 403, None, id="another token"),
    pytest.param(RECEIPT, sign(RECEIPT, url=URL), {}, 403, None, id="signed for the SMS route"),
    pytest.param(
        RECEIPT, sign(dict(RECEIPT, ErrorCode="21610")), {}, 403, None, id="error code changed"
    ),
    pytest.param(
        RECEIPT, "auto", {"twilio_auth_token": None}, 403, None, id="auth token unset: fail closed"
    ),
    pytest.param(
        RECEIPT, "auto", {"public_base_url": None}, 403, None, id="public URL unset: fail closed"
    ),
    pytest.param(
        {k: v for k, v in RECEIPT.items() if k != "MessageSid"},
        "auto",
        {},
        400,
        "MessageSid",
        id="no MessageSid",
    ),
    pytest.param(
        {k: v for k, v in RECEIPT.items() if k != "MessageStatus"},
        "auto",
        {},
        400,
        "MessageStatus",
        id="no MessageStatus",
    ),
    pytest.param(dict(RECEIPT, MessageStatus=" "), "auto", {}, 400, "MessageStatus", id="blank"),
    pytest.param(
        dict(RECEIPT, MessageStatus="Delivered!"), "auto", {}, 400, "MessageStatus", id="odd status"
    ),
    pytest.param(dict(RECEIPT, MessageSid="SM1"), "auto", {}, 400, "MessageSid", id="short sid"),
    pytest.param(dict(RECEIPT, ErrorCode="3000x"), "auto", {}, 400, "ErrorCode", id="odd code"),
    pytest.param(
        dict(RECEIPT, AccountSid="AC" + "1" * 32), "auto", {}, 400, "AccountSid", id="other account"
    ),
    pytest.param(
        {k: v for k, v in RECEIPT.items() if k != "AccountSid"},
        "auto",
        {},
        400,
        "AccountSid",
        id="no AccountSid",
    ),
]


@pytest.mark.parametrize("form, signature, settings, status, field", RECEIPTS_REFUSED)
def test_forged_or_malformed_receipts_are_refused_and_change_nothing(
    w, form, signature, settings, status, field
):
    pushed(w, telegram=True)
    before = receipt_state(w), footprint(w)
    response = post_status(w.client(**settings), form, signature=signature)
    assert response.status_code == status
    assert response.mimetype == "text/plain"
    if field:
        assert field in response.get_data(as_text=True)
    assert (receipt_state(w), footprint(w)) == before


def test_get_on_the_status_route_is_not_allowed(w):
    assert w.client().get(STATUS_PATH).status_code == 405


def test_each_signed_receipt_moves_the_receipts_metric(w):
    from prometheus_client import REGISTRY

    def count(status: str) -> float:
        labels = {"provider": "twilio", "status": status}
        return REGISTRY.get_sample_value("ovbot_delivery_receipts_total", labels) or 0.0

    pushed(w)
    client = w.client()
    before = count("undelivered"), count("delivered")
    post_status(client, twilio_status("undelivered", error="30003"))
    post_status(client, twilio_status("delivered"))
    post_status(client, twilio_status("delivered"), signature="forged")  # refused: not counted
    assert (count("undelivered"), count("delivered")) == (before[0] + 1, before[1] + 1)
