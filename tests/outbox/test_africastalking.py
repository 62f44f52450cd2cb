"""bot/outbox/senders.py's Africa's Talking sender, over httpx.MockTransport.

The answers are shaped as Africa's Talking documents its messaging API's (SMSMessageData
with one entry per recipient: statusCode, number, status, cost, messageId); no network.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from bot.outbox.senders import AT_LIVE_URL as LIVE_URL
from bot.outbox.senders import AT_SANDBOX_URL as SANDBOX_URL
from bot.outbox.senders import AfricasTalkingSender, NotSent, OutcomeUnknown, Undeliverable

PHONE = "+254712345678"


def answer(status_code: int = 101, status: str = "Success", message_id: str = "ATXid_1"):
    """An answer for one recipient, as the messaging API gives it."""
    recipient = {
        "statusCode": status_code,
        "number": PHONE,
        "status": status,
        "cost": "KES 0.8000" if status == "Success" else "0",
        "messageId": message_id if status == "Success" else "None",
    }
    return {
        "SMSMessageData": {
            "Message": "Sent to 1/1 Total Cost: KES 0.8000",
            "Recipients": [recipient],
        }
    }


def sender(handler, username: str = "oves", sender_id: str | None = "OVES"):
    """The sender on a MockTransport; `handler` answers each request (and sees it)."""
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return AfricasTalkingSender(http, username, "at-api-key", sender_id)


def test_a_send_posts_the_documented_form_and_returns_the_message_id():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=answer(message_id="ATXid_f00d"))

    result = sender(handler).send(PHONE, "Code *123 456#", link_id="SampleLinkId123")
    assert result.provider_id == "ATXid_f00d"
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", LIVE_URL)
    assert request.headers["apiKey"] == "at-api-key"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "username": ["oves"],
        "to": [PHONE],
        "message": ["Code *123 456#"],
        "from": ["OVES"],
        "linkId": ["SampleLinkId123"],
    }


def test_no_sender_id_and_no_link_leave_from_and_link_id_out_and_sandbox_has_its_host():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=answer())

    sender(handler, username="sandbox", sender_id=None).send(PHONE, "hi")
    assert str(seen[0].url) == SANDBOX_URL
    assert set(parse_qs(seen[0].content.decode())) == {"username", "to", "message"}


def _raise(exc):
    def handler(request):
        raise exc("boom", request=request)

    return handler


# label, how the API answers (status, JSON) or the handler, the error (None: sent)
OUTCOMES = [
    pytest.param((201, answer(100, "Success")), None, id="100 Processed"),
    pytest.param((201, answer(101, "Success")), None, id="101 Sent"),
    pytest.param((201, answer(102, "Success")), None, id="102 Queued"),
    pytest.param((201, answer("101", "Success")), None, id="a code as text"),
    pytest.param((201, answer(405, "InsufficientBalance")), NotSent, id="405: top up, it waits"),
    pytest.param((201, answer(402, "InvalidSenderId")), NotSent, id="402: fix the sender id"),
    pytest.param((201, answer(500, "InternalServerError")), NotSent, id="500 in the answer"),
    pytest.param((201, answer(501, "GatewayError")), NotSent, id="501 GatewayError"),
    pytest.param((201, answer(403, "InvalidPhoneNumber")), Undeliverable, id="403 bad number"),
    pytest.param((201, answer(404, "UnsupportedNumberType")), Undeliverable, id="404 landline"),
    pytest.param((201, answer(406, "UserInBlacklist")), Undeliverable, id="406 blacklisted"),
    pytest.param((201, answer(407, "CouldNotRoute")), Undeliverable, id="407 no route"),
    pytest.param((201, answer(409, "DoNotDisturbRejection")), Undeliverable, id="409 DND"),
    pytest.param((201, answer(401, "RiskHold")), Undeliverable, id="401 RiskHold"),
    pytest.param((201, answer(502, "RejectedByGateway")), Undeliverable, id="502 rejected"),
    pytest.param((201, answer(499, "Whatever")), OutcomeUnknown, id="a code we do not know"),
    pytest.param(
        (201, {"SMSMessageData": {"Message": "InvalidPhoneNumber", "Recipients": []}}),
        Undeliverable,
        id="no recipient accepted",
    ),
    pytest.param((201, {"unexpected": True}), OutcomeUnknown, id="an answer without its data"),
    pytest.param((201, "not json"), OutcomeUnknown, id="an answer that is not JSON"),
    pytest.param((401, "The supplied authentication is invalid"), NotSent, id="HTTP 401 key"),
    pytest.param((429, "Too many requests"), NotSent, id="HTTP 429"),
    pytest.param((500, "Internal error"), NotSent, id="HTTP 500"),
    pytest.param((400, "Invalid linkId"), Undeliverable, id="HTTP 400"),
    pytest.param(_raise(httpx.ConnectError), NotSent, id="no connection"),
    pytest.param(_raise(httpx.ConnectTimeout), NotSent, id="connect timeout"),
    pytest.param(_raise(httpx.ReadTimeout), OutcomeUnknown, id="read timeout: it may have gone"),
    pytest.param(_raise(httpx.RemoteProtocolError), OutcomeUnknown, id="dropped after sending"),
]


@pytest.mark.parametrize("given, error", OUTCOMES)
def test_every_answer_maps_onto_the_send_errors(given, error):
    if callable(given):
        handler = given
    else:
        status, body = given

        def handler(request):
            if isinstance(body, str):
                return httpx.Response(status, text=body)
            return httpx.Response(status, json=body)

    at = sender(handler)
    if error is None:
        assert at.send(PHONE, "x").provider_id == "ATXid_1"
        return
    with pytest.raises(error) as raised:
        at.send(PHONE, "x")
    assert type(raised.value) is error
    assert "at-api-key" not in str(raised.value)


def test_a_429_with_retry_after_says_how_long_to_wait():
    at = sender(lambda request: httpx.Response(429, headers={"Retry-After": "30"}, text="slow"))
    with pytest.raises(NotSent) as raised:
        at.send(PHONE, "x")
    assert raised.value.retry_after == 30.0
