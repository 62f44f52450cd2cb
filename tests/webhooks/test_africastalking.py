"""Africa's Talking SMS: `POST /webhooks/africastalking/sms` and `/status`, labelled tables of
the forms Africa's Talking posts (inbound: `id, from, to, text, date, linkId`; delivery
reports: `id, status, phoneNumber, networkCode, failureReason, retryCount`), negatives
included.  The reply goes out through the outbox and Africa's Talking's messaging API
(over httpx.MockTransport here), with the linkId passed back.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select

from bot.outbox.delivery import drain
from bot.outbox.senders import AfricasTalkingSender
from bot.storage.models import Code, Customer, InboundMessage, OutboxMessage
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

SMS_PATH, STATUS_PATH = "/webhooks/africastalking/sms", "/webhooks/africastalking/status"
TOKEN = SECRETS["africastalking_callback_token"]
AMINA = "+254712345678"
LINK = "03090445075804249226"
MESSAGES = Messages.load()


def at_sms(text: str = "CODE", id: str = "ec9adc86-51d5-4bc8-8eb0-d8ab0bb53dc3", **extra):
    """An inbound SMS as Africa's Talking posts it to the SMS callback URL."""
    form = {
        "linkId": LINK,
        "text": text,
        "to": "21512",
        "id": id,
        "date": "2026-12-02T06:04:45Z",
        "from": AMINA,
        "networkCode": "63902",
    }
    form.update(extra)
    return {k: v for k, v in form.items() if v is not None}


def post(client, form: dict, token: str | None = TOKEN, path: str = SMS_PATH):
    return client.post(path + (f"?token={token}" if token is not None else ""), data=form)


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


def queued(world) -> list[OutboxMessage]:
    with world.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def footprint(world) -> tuple:
    """Everything a request could change."""
    with world.session() as s:
        customers = tuple(s.execute(select(Customer.last_channel, Customer.opted_out)).all())
    return (
        count_rows(world.services.sessions, Code),
        count_rows(world.services.sessions, InboundMessage),
        count_rows(world.services.sessions, OutboxMessage),
        customers,
    )


# -- accepted: answered 200, the reply queued for Africa's Talking -----------------------

ACCEPTED = [
    # label, form, what the reply says, the linkId its row carries
    pytest.param(at_sms("CODE"), "code", LINK, id="CODE on an on-demand number (linkId)"),
    pytest.param(at_sms("code", linkId=None), "code", None, id="a two-way short code, no linkId"),
    pytest.param(at_sms("CODE", linkId=""), "code", None, id="an empty linkId"),
    pytest.param(at_sms("CODE", date="2026-12-02 06:04:45"), "code", LINK, id="the other date"),
    pytest.param(at_sms("HELP", retryCount="0", cost="KES 0"), "help", LINK, id="extra fields"),
    pytest.param(at_sms(""), "help", LINK, id="an empty text gets the help"),
    pytest.param(at_sms("Nataka CODE 🙏"), "help", LINK, id="unicode chatter"),
    pytest.param(
        at_sms("CODE", **{"from": "+254799000000"}), "not_registered", LINK, id="a stranger"
    ),
]


@pytest.mark.parametrize("form, expect, link", ACCEPTED)
def test_an_inbound_sms_is_a_200_and_its_reply_is_queued_for_africastalking(w, form, expect, link):
    response = post(w.client(), form)
    assert (response.status_code, response.get_data()) == (200, b"")
    (row,) = queued(w)
    assert (row.channel, row.provider, row.link_id, row.recipient) == (
        "sms",
        "africastalking",
        link,
        form["from"],
    )
    with w.session() as s:
        codes = list(s.scalars(select(Code).where(Code.state == "minted")))
    if expect == "code":
        (code,) = codes
        assert code.code in row.body and "7 days" in row.body
        assert w.simulator(1001).enter(code.code).days == 7
    else:
        assert row.body == MESSAGES.render("en", expect) and codes == []
    if expect == "not_registered":
        assert row.customer_id is None


def test_a_repeat_of_the_same_id_is_the_stored_reply_and_nothing_new(both):
    w = both
    client = w.client()
    assert post(client, at_sms("CODE", id="repeat-1")).status_code == 200
    before = footprint(w)
    w.pay(1001, 3, "paid-2")  # even with new credit, a redelivery does nothing new
    for form in (at_sms("CODE", id="repeat-1"), at_sms("STATUS", id="repeat-1")):
        assert post(client, form).status_code == 200
    assert footprint(w) == before


def test_stop_is_confirmed_through_africastalking_even_though_pushes_stop(w):
    assert post(w.client(), at_sms("STOP", id="stop-1")).status_code == 200
    (row,) = queued(w)
    assert row.body == MESSAGES.render("en", "opted_out") and row.customer_id is None
    sender = FakeSender()
    assert drain(w.services.sessions, {"africastalking": sender}).sent == 1
    assert sender.sent == [(AMINA, row.body)] and sender.links == [LINK]


# -- refused: nothing changes -------------------------------------------------------------

FORM = at_sms("CODE", id="refused-1")
REFUSED = [
    # label, form, token in the URL, settings, status, what the refusal names
    pytest.param(FORM, None, {}, 403, "", id="no token"),
    pytest.param(FORM, "", {}, 403, "", id="an empty token"),
    pytest.param(FORM, "not-the-token", {}, 403, "", id="the wrong token"),
    pytest.param(FORM, TOKEN + "x", {}, 403, "", id="the token and more"),
    pytest.param(FORM, TOKEN, {"africastalking_callback_token": None}, 403, "", id="unset: closed"),
    pytest.param(FORM, None, {"demo": True}, 403, "", id="demo with a token still needs it"),
    pytest.param(at_sms(id=None), TOKEN, {}, 400, "id", id="no id"),
    pytest.param(at_sms(id="  "), TOKEN, {}, 400, "id", id="a blank id"),
    pytest.param(at_sms(**{"from": None}), TOKEN, {}, 400, "from", id="no from"),
    pytest.param(at_sms(text=None), TOKEN, {}, 400, "text", id="no text"),
    pytest.param(at_sms(text="CODE\x00"), TOKEN, {}, 400, "text", id="a NUL in the text"),
    pytest.param(at_sms(id="x" * 200), TOKEN, {}, 400, "id", id="an id far too long"),
    pytest.param({}, TOKEN, {}, 400, "id", id="an empty form"),
]


@pytest.mark.parametrize("form, token, settings, status, named", REFUSED)
def test_unauthorised_or_malformed_messages_are_refused_and_change_nothing(
    w, form, token, settings, status, named
):
    before = footprint(w)
    response = post(w.client(**settings), form, token=token)
    assert response.status_code == status
    if named:
        assert f"field {named}" in response.get_data(as_text=True)
    assert footprint(w) == before


def test_demo_without_a_token_accepts_the_gateway(w):
    client = w.client(demo=True, africastalking_callback_token=None)
    assert post(client, at_sms("CODE", id="demo-1"), token=None).status_code == 200
    assert len(queued(w)) == 1


def test_get_is_not_allowed(w):
    response = w.client().get(SMS_PATH + f"?token={TOKEN}")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


# -- end to end: the same answers as Twilio SMS, sent with the linkId, reported back -------


def api(seen: list, status: int = 201, recipient_status: str = "Success", code: int = 101):
    """Africa's Talking's messaging API on a MockTransport: one message id per request."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(request.content.decode()))
        recipient = {
            "statusCode": code,
            "number": AMINA,
            "status": recipient_status,
            "cost": "KES 0.8000",
            "messageId": f"ATXid_{len(seen):032x}",
        }
        return httpx.Response(status, json={"SMSMessageData": {"Recipients": [recipient]}})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return AfricasTalkingSender(http, "oves", "at-api-key", "OVES")


def conversation(tmp_path, provider: str, language: str, seen: list) -> list[str]:
    """STATUS, CODE, STATUS, CODE from Amina through `provider`, in a world of its own."""
    directory = tmp_path / provider
    directory.mkdir()
    world = build_world(sqlite_file_url(directory), directory)
    try:
        world.customer(AMINA, 1001, language=language)
        world.pay(1001, 7, "paid-1")
        client, texts = world.client(), []
        for n, body in enumerate(("STATUS", "CODE", "STATUS", "CODE")):
            if provider == "twilio":
                form = twilio_message(body, "SM" + f"{n:032x}", AMINA)
                texts += twiml_messages(twilio_post(client, form))
            else:
                assert post(client, at_sms(body, id=f"at-{n}")).status_code == 200
        if provider == "africastalking":
            report = drain(world.services.sessions, {"africastalking": api(seen)})
            assert report.sent == 4
            texts = [sent["message"][0] for sent in seen]
        return texts
    finally:
        world.services.close()


@pytest.mark.parametrize("language", ["en", "fr", "sw"])
def test_status_and_code_through_africastalking_are_worded_as_on_twilio(tmp_path, language):
    seen: list = []
    on_twilio = conversation(tmp_path, "twilio", language, [])
    assert conversation(tmp_path, "africastalking", language, seen) == on_twilio
    assert on_twilio[1] != on_twilio[3]  # a new code, then the latest again
    assert all(sent["linkId"] == [LINK] and sent["from"] == ["OVES"] for sent in seen)
    assert all(sent["to"] == [AMINA] for sent in seen)


def test_an_answer_goes_through_africastalking_even_when_twilio_sends_sms_pushes(w):
    """SMS_PROVIDER=twilio: "sms" is Twilio's, yet the answer keeps to its provider."""
    post(w.client(), at_sms("HELP", id="route-1"))
    twilio, seen = FakeSender(), []
    report = drain(w.services.sessions, {"sms": twilio, "africastalking": api(seen)})
    assert (report.sent, twilio.sent, len(seen)) == (1, [], 1)
    assert seen[0]["linkId"] == [LINK]


def test_an_answer_waits_while_africastalking_is_not_configured(w, caplog, monkeypatch):
    monkeypatch.setattr("bot.outbox.delivery._warned", set())
    post(w.client(), at_sms("HELP", id="wait-1"))
    twilio = FakeSender()
    with caplog.at_level("WARNING", logger="bot.outbox.delivery"):
        assert drain(w.services.sessions, {"sms": twilio}).total == 0
    assert [row.status for row in queued(w)] == ["pending"] and twilio.sent == []
    assert any("no africastalking sender" in r.getMessage() for r in caplog.records)


# -- delivery reports: POST /webhooks/africastalking/status --------------------------------


def report(status: str, id: str, failure: str | None = None) -> dict[str, str]:
    """A delivery report as Africa's Talking posts it (failureReason only on failures)."""
    form = {
        "phoneNumber": AMINA,
        "retryCount": "0",
        "status": status,
        "networkCode": "63902",
        "id": id,
    }
    if failure is not None:
        form["failureReason"] = failure
    return form


def sent_answer(world) -> str:
    """Amina's CODE answered and sent through Africa's Talking: its message id."""
    post(world.client(), at_sms("CODE", id="reported-1"))
    seen: list = []
    assert drain(world.services.sessions, {"africastalking": api(seen)}).sent == 1
    (row,) = queued(world)
    return row.provider_message_id


def receipt_state(world) -> list[tuple]:
    return [(m.status, m.delivery_status, m.delivery_error) for m in queued(world)]


REPORTS = [
    # label, reports (status, failureReason), the row after (status, delivery, error)
    pytest.param([("Sent", None), ("Success", None)], ("sent", "delivered", None), id="delivered"),
    pytest.param(
        [("Buffered", None), ("Submitted", None), ("Success", None), ("Failed", "DeliveryFailure")],
        ("sent", "delivered", None),
        id="the first final status stays",
    ),
    pytest.param(
        [("Failed", "UserInBlackList")],
        ("failed", "failed", "UserInBlackList"),
        id="failed, blacklisted",
    ),
    pytest.param(
        [("Rejected", "UserAccountSuspended")],
        ("failed", "undelivered", "UserAccountSuspended"),
        id="rejected by the network",
    ),
    pytest.param([("Expired", None)], ("failed", "failed", None), id="expired"),
    pytest.param([("Queued", None)], ("sent", None, None), id="a status we do not know: ignored"),
]


@pytest.mark.parametrize("reports, after", REPORTS)
def test_a_delivery_report_lands_on_its_outbox_row(both, reports, after):
    w = both
    message_id = sent_answer(w)
    client = w.client()
    for status, failure in reports:
        response = post(client, report(status, message_id, failure), path=STATUS_PATH)
        assert (response.status_code, response.get_data()) == (200, b"")
    assert receipt_state(w) == [after]
    if after[0] == "failed":
        (row,) = queued(w)
        assert f"Africa's Talking: {after[2] or 'none given'}" in row.last_error


def test_a_report_for_an_unknown_id_is_a_200_and_changes_nothing(w):
    sent_answer(w)
    before = receipt_state(w)
    response = post(
        w.client(), report("Failed", "ATXid_unknown", "UserInBlackList"), path=STATUS_PATH
    )
    assert (response.status_code, response.get_data()) == (200, b"")
    assert receipt_state(w) == before


def test_an_africastalking_report_never_lands_on_a_whatsapp_row(w):
    message_id = sent_answer(w)
    with w.session() as s:  # a Twilio SMS row with the same id (never so in practice)
        s.add(
            OutboxMessage(
                channel="whatsapp",
                recipient=AMINA,
                body="x",
                status="sent",
                provider_message_id=message_id,
            )
        )
    post(w.client(), report("Success", message_id), path=STATUS_PATH)
    assert [m.delivery_status for m in queued(w)] == ["delivered", None]


REPORTS_REFUSED = [
    # label, form, token, status, what a 400 names
    pytest.param(report("Success", "ATXid_1"), None, 403, "", id="no token"),
    pytest.param(report("Success", "ATXid_1"), "wrong", 403, "", id="the wrong token"),
    pytest.param({"status": "Success"}, TOKEN, 400, "field id", id="no id"),
    pytest.param({"id": "ATXid_1"}, TOKEN, 400, "field status", id="no status"),
    pytest.param(report("Succ ess!", "ATXid_1"), TOKEN, 400, "status", id="an odd status"),
    pytest.param(report("Failed", "ATXid_1", "no; drop"), TOKEN, 400, "failureReason", id="odd"),
]


@pytest.mark.parametrize("form, token, status, named", REPORTS_REFUSED)
def test_unauthorised_or_malformed_reports_are_refused_and_change_nothing(
    w, form, token, status, named
):
    message_id = sent_answer(w)
    if "id" in form:
        form = dict(form, id=message_id)
    before = receipt_state(w)
    response = post(w.client(), form, token=token, path=STATUS_PATH)
    assert response.status_code == status and named in response.get_data(as_text=True)
    assert receipt_state(w) == before
