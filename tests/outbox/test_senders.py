"""The senders, against twilio's real Client and PTB's real Bot on fake transports.

No network: twilio's Client takes an `http_client`, PTB's Bot takes a `request`; the fakes
(Twilio's in tests/fakes.py, Telegram's below) answer with canned provider payloads and
record what was asked.
"""

from __future__ import annotations

import json

import httpx
import pytest
import requests
from telegram import Bot
from telegram.error import TimedOut
from telegram.request import BaseRequest
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from bot.outbox.senders import (
    AfricasTalkingSender,
    LogSender,
    NotSent,
    OutcomeUnknown,
    TelegramSender,
    TwilioSmsSender,
    TwilioWhatsAppSender,
    Undeliverable,
    Unsubscribed,
    build_senders,
    close_senders,
    status_callback_url,
)
from bot.settings import Settings
from tests.fakes import TWILIO_FROM, FakeTwilioHttp, twilio_sender

PHONE = "+254712345678"


def test_twilio_sends_to_from_and_body_and_returns_the_sid():
    sender, http = twilio_sender((201, {"sid": "SM123", "status": "queued"}))
    assert sender.send(PHONE, "Your code *123#").provider_id == "SM123"
    [sent] = http.requests
    assert sent["method"] == "POST" and sent["uri"].endswith("/Messages.json")
    assert sent["data"] == {"To": PHONE, "From": TWILIO_FROM, "Body": "Your code *123#"}


def test_twilio_messaging_service_sid_stands_in_for_the_from_number():
    sender, http = twilio_sender((201, {"sid": "SM1"}), from_number="MG" + "1" * 32)
    sender.send(PHONE, "hi")
    assert http.requests[0]["data"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in http.requests[0]["data"]


def _error(status, code, message="error"):
    return (status, {"code": code, "message": message, "more_info": "", "status": status})


def _refused():
    return requests.exceptions.ConnectionError(
        MaxRetryError(None, "/Messages.json", NewConnectionError(None, "Connection refused"))
    )


@pytest.mark.parametrize(
    "answer, error",
    [
        pytest.param(
            _error(400, 21610, "Attempt to send to unsubscribed recipient"),
            Unsubscribed,
            id="21610-unsubscribed",
        ),
        pytest.param(
            _error(400, 21211, f"The 'To' number {PHONE} is not valid"),
            Undeliverable,
            id="21211-invalid-number",
        ),
        pytest.param(_error(400, 21611, "queue full"), NotSent, id="21611-queue-full"),
        pytest.param(_error(429, 20429, "Too Many Requests"), NotSent, id="429"),
        pytest.param(_error(500, 20500, "Internal Server Error"), NotSent, id="500"),
        pytest.param((503, "<html>down</html>"), NotSent, id="503-not-json"),
        pytest.param(_error(401, 20003, "Authenticate"), NotSent, id="401-bad-credentials"),
        pytest.param(_refused(), NotSent, id="connection-refused"),
        pytest.param(
            requests.exceptions.ConnectTimeout("connect timed out"), NotSent, id="connect-timeout"
        ),
        pytest.param(
            requests.exceptions.ReadTimeout("read timed out"), OutcomeUnknown, id="read-timeout"
        ),
        pytest.param(
            requests.exceptions.ConnectionError(ProtocolError("Connection aborted.")),
            OutcomeUnknown,
            id="dropped-after-sending",
        ),
        pytest.param((201, "not json"), OutcomeUnknown, id="accepted-but-unreadable"),
    ],
)
def test_twilio_errors_map_onto_the_seam(answer, error):
    sender, _ = twilio_sender(answer)
    with pytest.raises(error) as raised:
        sender.send(PHONE, "hi")
    assert type(raised.value) is error


class FakeTelegramRequest(BaseRequest):
    """Bot API over nothing: getMe answers; sendMessage gets the next canned answer."""

    def __init__(self, *answers):
        self.answers, self.sent = list(answers), []

    @property
    def read_timeout(self):
        return 5.0

    async def initialize(self):
        pass

    async def shutdown(self):
        pass

    async def do_request(self, url, method, request_data=None, **timeouts):
        if url.endswith("/getMe"):
            return 200, _ok({"id": 1, "is_bot": True, "first_name": "OVES", "username": "oves_bot"})
        self.sent.append((url.rsplit("/", 1)[-1], request_data.parameters))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _ok(result) -> bytes:
    return json.dumps({"ok": True, "result": result}).encode()


def _tg_error(status, description, **parameters) -> tuple[int, bytes]:
    body = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, json.dumps(body).encode()


def _timed_out(cause):
    try:
        raise TimedOut() from cause
    except TimedOut as exc:
        return exc


SENT = (
    200,
    _ok({"message_id": 42, "date": 0, "chat": {"id": 987654321, "type": "private"}, "text": "hi"}),
)


def telegram_sender(*answers):
    request = FakeTelegramRequest(*answers)
    return TelegramSender(Bot("123:abc", request=request)), request


def test_telegram_sends_to_the_chat_and_returns_the_message_id():
    sender, request = telegram_sender(SENT, SENT)
    try:
        assert sender.send("987654321", "Your code *123#").provider_id == "42"
        assert sender.send("987654321", "again").provider_id == "42"  # same loop, reused
    finally:
        sender.close()
    assert request.sent[0] == ("sendMessage", {"chat_id": 987654321, "text": "Your code *123#"})


@pytest.mark.parametrize(
    "answer, error",
    [
        pytest.param(
            _tg_error(403, "Forbidden: bot was blocked by the user"),
            Undeliverable,
            id="403-blocked",
        ),
        pytest.param(_tg_error(400, "Bad Request: chat not found"), Undeliverable, id="400"),
        pytest.param(
            _tg_error(429, "Too Many Requests: retry after 7", retry_after=7),
            NotSent,
            id="429-retry-after",
        ),
        pytest.param(_tg_error(502, "Bad Gateway"), NotSent, id="502"),
        pytest.param(_tg_error(500, "Internal Server Error"), NotSent, id="500"),
        pytest.param(_tg_error(401, "Unauthorized"), NotSent, id="401-bad-token"),
        pytest.param(httpx.ConnectError("refused"), NotSent, id="connection-refused"),
        pytest.param(_timed_out(httpx.ConnectTimeout("connect")), NotSent, id="connect-timeout"),
        pytest.param(_timed_out(httpx.ReadTimeout("read")), OutcomeUnknown, id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("dropped"), OutcomeUnknown, id="dropped"),
        pytest.param((200, b"not json"), OutcomeUnknown, id="accepted-but-unreadable"),
    ],
)
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB's own
def test_telegram_errors_map_onto_the_seam(answer, error):
    sender, _ = telegram_sender(answer)
    try:
        with pytest.raises(error) as raised:
            sender.send("987654321", "hi")
    finally:
        sender.close()
    assert type(raised.value) is error
    if isinstance(answer, tuple) and answer[0] == 429:
        assert raised.value.retry_after == 7


def test_log_sender_masks_the_phone():
    lines = []
    result = LogSender("sms", write=lines.append).send(PHONE, "Your code *123#")
    assert result.provider_id == "log-sms-1"
    assert lines == ["[sms to +254*****678] Your code *123#"]


def test_build_senders_only_for_configured_channels():
    assert build_senders(Settings()) == {}
    twilio = dict(
        twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t", twilio_from_number=TWILIO_FROM
    )
    assert set(build_senders(Settings(**twilio))) == {"sms"}
    both = build_senders(Settings(**twilio, telegram_bot_token="123:abc"))
    assert (type(both["sms"]), type(both["telegram"])) == (TwilioSmsSender, TelegramSender)
    demo = build_senders(Settings(**twilio, demo=True))
    assert {type(s) for s in demo.values()} == {LogSender}
    assert set(demo) == {"sms", "telegram", "whatsapp", "africastalking"}


TWILIO = dict(
    twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t", twilio_from_number=TWILIO_FROM
)


AT = dict(africastalking_username="sandbox", africastalking_api_key="k")
# label, settings, the sender's type under each key
BUILT = [
    pytest.param({}, {}, id="nothing configured"),
    pytest.param(
        dict(TWILIO, twilio_whatsapp_from="whatsapp:+14155238886"),
        {"sms": TwilioSmsSender, "whatsapp": TwilioWhatsAppSender},
        id="Twilio with a WhatsApp sender",
    ),
    pytest.param(
        dict(TWILIO, **AT),
        {"sms": TwilioSmsSender, "africastalking": AfricasTalkingSender},
        id="both SMS providers, Twilio sends pushes (the default)",
    ),
    pytest.param(
        dict(TWILIO, **AT, sms_provider="africastalking"),
        {"sms": AfricasTalkingSender, "africastalking": AfricasTalkingSender},
        id="SMS_PROVIDER=africastalking: Africa's Talking sends SMS pushes",
    ),
    pytest.param(
        dict(AT, sms_provider="africastalking"),
        {"sms": AfricasTalkingSender, "africastalking": AfricasTalkingSender},
        id="Africa's Talking alone",
    ),
    pytest.param(
        dict(twilio_whatsapp_from="whatsapp:+14155238886"), {}, id="WhatsApp without the account"
    ),
]


@pytest.mark.parametrize("settings, types", BUILT)
def test_build_senders_per_provider(settings, types):
    senders = build_senders(Settings(**settings))
    try:
        assert {key: type(sender) for key, sender in senders.items()} == types
        if settings.get("sms_provider") == "africastalking":
            assert senders["sms"] is senders["africastalking"]  # one client, closed once
    finally:
        close_senders(senders)


def test_whatsapp_goes_through_twilio_with_both_addresses_prefixed():
    http = FakeTwilioHttp((201, {"sid": "SM" + "a" * 32, "status": "queued"}))
    client = Client("AC" + "0" * 32, "token", http_client=http)
    sender = TwilioWhatsAppSender(client, "+14155238886", "https://bot.example.test/s")
    assert sender.send("+254712345678", "Code *123#").provider_id == "SM" + "a" * 32
    data = http.requests[0]["data"]
    assert (data["From"], data["To"]) == ("whatsapp:+14155238886", "whatsapp:+254712345678")
    assert data["StatusCallback"] == "https://bot.example.test/s"


def test_a_whatsapp_error_maps_like_an_sms_one():
    """63016: free text outside the 24-hour window (Twilio answers 400): undeliverable."""
    answer = (400, {"code": 63016, "message": "Failed to send freeform message", "status": 400})
    client = Client("AC" + "0" * 32, "token", http_client=FakeTwilioHttp(answer))
    with pytest.raises(Undeliverable, match="63016"):
        TwilioWhatsAppSender(client, "whatsapp:+14155238886").send("+254712345678", "x")


@pytest.mark.parametrize(
    "base_url, callback",
    [
        pytest.param(
            "https://bot.example.test",
            "https://bot.example.test/webhooks/twilio/status",
            id="public URL set",
        ),
        pytest.param(
            "https://bot.example.test/",
            "https://bot.example.test/webhooks/twilio/status",
            id="trailing slash",
        ),
        pytest.param(None, None, id="no public URL: no receipts asked"),
    ],
)
def test_sms_sends_ask_for_delivery_receipts_at_the_public_url(base_url, callback):
    sender = build_senders(Settings(**TWILIO, public_base_url=base_url))["sms"]
    http = FakeTwilioHttp((201, {"sid": "SM9"}))
    sender.client.http_client = http  # the real Client, its transport faked
    assert status_callback_url(Settings(public_base_url=base_url)) == callback
    sender.send(PHONE, "Your code *123#")
    data = http.requests[0]["data"]
    assert data.get("StatusCallback") == callback
    assert (data["To"], data["Body"]) == (PHONE, "Your code *123#")
