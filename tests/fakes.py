"""Fakes that stand in for the outside world in tests: what providers and payers send.

- `payment_signature`: the signature a payment system puts on its webhook;
- `FakeSender`: a sender (bot/outbox/senders.py's seam) answering from a script;
- `FakeTwilioHttp` / `twilio_sender`: twilio's real Client on a fake HTTP client with
  canned provider payloads, recording what was asked;
- `FakeTime`: one hand-moved clock for the ledger and the API client;
- `PausedBeforeSending`: the API client of a process that stops just before a mint;
- `FakeTelegramRequest`: python-telegram-bot's HTTP layer, recording Bot API calls.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

from telegram.request import BaseRequest
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bot.omnivoltaic.client import OmnivoltaicClient
from bot.outbox.senders import SendResult, TwilioSmsSender

TWILIO_FROM = "+15005550006"


def payment_signature(secret: str, body: bytes) -> str:
    """The X-Signature a payment system sends: hex HMAC-SHA256 of the exact body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class FakeSender:
    """Answers from a script (a SendError to raise, or None to succeed); counts every send."""

    channel = "sms"

    def __init__(self, *script, on_send=None):
        self.script, self.on_send = list(script), on_send
        self.sent: list[tuple[str, str]] = []
        self.links: list[str | None] = []  # the link_id each send was given (Africa's Talking)
        self._lock = threading.Lock()

    def send(self, recipient: str, body: str, link_id: str | None = None) -> SendResult:
        with self._lock:
            outcome = self.script.pop(0) if self.script else None
            self.sent.append((recipient, body))
            self.links.append(link_id)
            number = len(self.sent)
        if self.on_send is not None:
            self.on_send(body)
        if outcome is not None:
            raise outcome
        return SendResult(f"SM{number}")

    def close(self) -> None:
        pass


class FakeTwilioHttp(HttpClient):
    """Answers each request with the next canned (status, body) or raises it."""

    def __init__(self, *answers):
        super().__init__(logging.getLogger("fake-twilio"), is_async=False)
        self.answers, self.requests = list(answers), []

    def request(
        self,
        method,
        uri,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ):
        self.requests.append(dict(method=method, uri=uri, data=data, auth=auth))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return Response(status, json.dumps(body))


def twilio_sender(*answers, from_number=TWILIO_FROM):
    """A TwilioSmsSender on twilio's real Client over a FakeTwilioHttp; both, to inspect."""
    http = FakeTwilioHttp(*answers)
    client = Client("AC" + "0" * 32, "token", http_client=http)
    return TwilioSmsSender(client, from_number), http


class FakeTime:
    """One clock for the ledger (UTC) and the client (monotonic and UTC), moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def wall(self) -> datetime:
        return self.now

    def mono(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class PausedBeforeSending:
    """The API client of a process that stops (SIGSTOP, a long GC, a slow login) just
    before a mint leaves, while `meanwhile` runs; then it resumes and goes on."""

    def __init__(self, client: OmnivoltaicClient, meanwhile) -> None:
        self._client, self._meanwhile = client, meanwhile

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def days_code(self, *args, **kwargs):
        self._meanwhile()
        return self._client.days_code(*args, **kwargs)


class FakeTelegramRequest(BaseRequest):
    """python-telegram-bot's HTTP layer, faked: records each Bot API call (method name and
    parameters as sent) and answers `ok`, so a real `telegram.Bot` runs with no network.
    `answers` maps a method to its result (default `true`; getMe answers a bot user)."""

    BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "OVES", "username": "OvesBot"}

    def __init__(self, answers=None):
        super().__init__()
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, dict]] = []

    @property
    def read_timeout(self):
        return None

    async def initialize(self):
        pass

    async def shutdown(self):
        pass

    async def do_request(self, url, method, request_data=None, **timeouts):
        name = url.rsplit("/", 1)[-1]
        self.calls.append((name, dict(request_data.json_parameters) if request_data else {}))
        result = self.answers.get(name, self.BOT_USER if name == "getMe" else True)
        return 200, json.dumps({"ok": True, "result": result}).encode()
