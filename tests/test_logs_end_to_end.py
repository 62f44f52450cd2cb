"""No log line, at any level, carries a secret, a PIN or a phone number in clear.

The product runs at DEBUG (`ovbot -v`: root, httpx, telegram, twilio, SQLAlchemy, ...) in
this process, configured as in production (SECRETS plus an Omnivoltaic password the
emulator is told to expect), and every channel is driven: a Twilio SMS signed as Twilio
signs it, Telegram updates with the secret header, an agent's USSD session with a PIN, a
signed payment, and the outbox drained through the real Twilio and Telegram senders over
fake transports (their libraries log as they would).  Everything logged, as caplog saw
it and as the project's handler wrote it, is searched for each secret, the PIN and the
phone numbers in E.164 and national form.  Then the web servers' request lines: gunicorn's
access log (with config/gunicorn.conf.py) and werkzeug's (the demo's server).
"""

from __future__ import annotations

import io
import json
import logging
import runpy
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import httpx
import pytest
import requests
from gunicorn import glogging
from gunicorn.config import Config
from sqlalchemy import select
from telegram import Bot
from telegram.request import HTTPXRequest
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.serving import WSGIRequestHandler

from bot.agents.pins import add_agent
from bot.omnivoltaic.emulator import create_emulator
from bot.outbox.delivery import drain
from bot.outbox.senders import TelegramSender, TwilioSmsSender
from bot.settings import DEMO_USERNAME
from bot.storage.models import Agent
from bot.text import logs
from tests.fakes import payment_signature
from tests.harness import SECRETS, build_world, sqlite_file_url

OMNIVOLTAIC_PASSWORD = "Omni-Distributor-Pa55!"
AMINA, JUMA, AGENT = "+254712345678", "+254722000333", "+254700000101"
PIN = "97531864"
TELEGRAM_USER = {"id": 111222333, "is_bot": False, "first_name": "Amina", "language_code": "en"}
LIBRARIES = (
    "httpx",
    "httpcore",
    "telegram",
    "twilio",
    "urllib3",
    "requests",
    "werkzeug",
    "sqlalchemy",
    "gunicorn.error",
    "gunicorn.access",
)
CONF = Path(__file__).resolve().parents[1] / "config" / "gunicorn.conf.py"


SECRET_VALUES = [
    SECRETS["twilio_auth_token"],
    SECRETS["telegram_bot_token"],
    SECRETS["telegram_secret_token"],
    SECRETS["payments_secret"],
    OMNIVOLTAIC_PASSWORD,
]


def forbidden() -> list[str]:
    """What must never be in a log: each secret (raw and URL-encoded), the PIN, the phones."""
    secrets = SECRET_VALUES
    phones = [AMINA, JUMA, AGENT]
    return [
        *secrets,
        *(quote(s, safe="") for s in secrets),
        PIN,
        *phones,
        *(p.removeprefix("+254") for p in phones),  # national, without the leading 0
        *(p.removeprefix("+") for p in phones),  # international without the "+"
    ]


# -- logging at DEBUG, captured twice -------------------------------------------------------


@pytest.fixture
def debug_logs(caplog, monkeypatch):
    """`ovbot -v`'s logging (logs.configure at DEBUG) writing to a buffer, plus caplog,
    with every library's logger at DEBUG; all of it restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in (*LIBRARIES, *logs.NOISY)}
    stream = io.StringIO()
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", stream)  # the project's handler writes to stderr
        logs.configure(logging.DEBUG)
    root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield lambda: {"the project's handler": stream.getvalue(), "caplog": caplog.text}
    root.handlers[:], level, factory = saved
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


# -- the providers' fakes -------------------------------------------------------------------


class TwilioApi(requests.adapters.BaseAdapter):
    """api.twilio.com under requests: each message is created."""

    def __init__(self):
        super().__init__()
        self.created: list[str] = []

    def send(self, request, **kwargs):
        self.created.append(request.body)
        response = requests.Response()
        response.status_code, response.url, response.request = 201, request.url, request
        response.headers["Content-Type"] = "application/json"
        sid = f"SM{len(self.created):032d}"
        response._content = json.dumps({"sid": sid, "status": "queued"}).encode()
        return response

    def close(self):
        pass


class TelegramApi:
    """api.telegram.org under httpx: getMe and sendMessage."""

    def __init__(self):
        self.sent: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1]
        if method == "getMe":
            result = {"id": 7000000001, "is_bot": True, "first_name": "OVES", "username": "ovb"}
        else:
            self.sent.append(request.content.decode())
            result = {
                "message_id": len(self.sent),
                "date": 0,
                "chat": {"id": TELEGRAM_USER["id"], "type": "private"},
                "text": "sent",
            }
        return httpx.Response(200, json={"ok": True, "result": result})


def senders(settings):
    """The worker's senders (bot/outbox/senders.py build_senders), over the fakes."""
    twilio_api, telegram_api = TwilioApi(), TelegramApi()
    http = TwilioHttpClient(timeout=5)
    http.session.mount("https://", twilio_api)
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
    request = HTTPXRequest(httpx_kwargs={"transport": httpx.MockTransport(telegram_api)})
    return (
        {
            "sms": TwilioSmsSender(client, settings.twilio_from_number),
            "telegram": TelegramSender(Bot(settings.telegram_bot_token, request=request)),
        },
        twilio_api,
        telegram_api,
    )


# -- the channels ---------------------------------------------------------------------------


def sms(client, sender: str, body: str, sid: str):
    url = SECRETS["public_base_url"] + "/webhooks/twilio/sms"
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": SECRETS["twilio_account_sid"],
        "From": sender,
        "To": SECRETS["twilio_from_number"],
        "Body": body,
        "NumMedia": "0",
        "FromCountry": "KE",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(SECRETS["twilio_auth_token"]).compute_signature(url, form)
    response = client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def telegram(client, update_id: int, **message):
    message = {
        "message_id": 1000 + update_id,
        "from": TELEGRAM_USER,
        "chat": {"id": TELEGRAM_USER["id"], "first_name": "Amina", "type": "private"},
        "date": 1717171717,
        **message,
    }
    response = client.post(
        "/webhooks/telegram",
        json={"update_id": update_id, "message": message},
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
    )
    assert response.status_code == 200
    return response.get_json()


def ussd(client, *inputs: str) -> str:
    form = {
        "sessionId": "ATUid_logs",
        "serviceCode": "*384*123#",
        "phoneNumber": AGENT,
        "networkCode": "63902",
        "text": "*".join(inputs),
    }
    response = client.post("/webhooks/ussd", data=form)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def payment(client, payload: dict):
    body = json.dumps(payload).encode()
    signature = payment_signature(SECRETS["payments_secret"], body)
    return client.post(
        "/webhooks/payments",
        data=body,
        headers={"Content-Type": "application/json", "X-Signature": signature},
    )


@pytest.fixture
def world(tmp_path, debug_logs):
    """The product as configured in production: every secret set, a distributor's login."""
    state = tmp_path / "emulator.db"
    create_emulator(str(state), "test-seed")  # the API, told to expect this password
    with sqlite3.connect(state) as conn:
        conn.execute(
            "UPDATE distributors SET password = ? WHERE username = ?",
            (OMNIVOLTAIC_PASSWORD, DEMO_USERNAME),
        )
    world = build_world(
        sqlite_file_url(tmp_path),
        tmp_path,
        omnivoltaic_username=DEMO_USERNAME,
        omnivoltaic_password=OMNIVOLTAIC_PASSWORD,
    )
    with world.session() as s:
        add_agent(s, AGENT, "Wanjiru", PIN)
    world.customer(AMINA, 1001, name="Amina")
    world.customer(JUMA, 1002, name="Juma")
    world.pay(1001, 6, "paid-1")
    yield world
    world.services.close()


def test_the_composition_root_hides_the_live_secrets(world):
    """bootstrap.build registered them: masked by value, whatever they look like."""
    for secret in SECRET_VALUES:
        assert logs.scrub(f"value {secret} here") == f"value {logs.MASK} here"


def test_no_secret_pin_or_phone_reaches_any_log_at_debug(world, debug_logs):
    client = world.client()
    # SMS: Amina asks for her code.
    assert "<Message>" in sms(client, AMINA, "CODE", "SM" + "1" * 32)
    # Telegram: Amina starts, shares her contact (no "+", as Telegram often sends it), asks.
    assert "reply_markup" in telegram(client, 1, text="/start")
    contact = {"phone_number": AMINA.removeprefix("+"), "user_id": TELEGRAM_USER["id"]}
    assert "Amina" in telegram(client, 2, contact={**contact, "first_name": "Amina"})["text"]
    assert telegram(client, 3, text="STATUS")["text"]
    # USSD: the agent logs in with the PIN and sells Juma 3 days (pushed to him by SMS).
    path = [PIN, "1", "1002", "3", "1"]
    assert ussd(client).startswith("CON")
    for i in range(1, len(path)):
        assert ussd(client, *path[:i]).startswith("CON")
    assert ussd(client, *path).startswith("END Code for OVES001002")
    # A payment for Amina's device, by her national number (pushed to her on Telegram).
    paid = payment(
        client, {"reference": "pay-1", "product_id": 1001, "days": 5, "phone": "0712345678"}
    )
    assert paid.status_code == 200, paid.get_json()
    # The outbox, through the real senders over fake transports.
    outbox, twilio_api, telegram_api = senders(world.services.settings)
    try:
        report = drain(world.services.sessions, outbox)
    finally:
        for sender in outbox.values():
            sender.close()
    assert report.sent >= 2 and twilio_api.created and telegram_api.sent, report

    with world.session() as s:
        pin_hash = s.scalar(select(Agent.pin_hash).where(Agent.phone == AGENT))
    digest = pin_hash.rsplit("$", 1)[-1]  # a short PIN is found again from its hash
    for where, text in debug_logs().items():
        # The libraries did speak at DEBUG, so the test looks at what they say...
        for spoken in (
            "HTTP Request: POST https://api.telegram.org/bot",
            "-- BEGIN Twilio API Request --",
            "Calling Bot API endpoint `sendMessage`",
            "SELECT agents.id",
        ):
            assert spoken in text, (where, spoken)
        # ...and none of it is in clear.
        leaks = [value for value in [*forbidden(), digest] if value in text]
        lines = [line for line in text.splitlines() if any(v in line for v in leaks)]
        assert leaks == [], (where, lines)


# -- the web servers' request lines ---------------------------------------------------------


def gunicorn_config(**changes) -> Config:
    """gunicorn's Config as `gunicorn -c config/gunicorn.conf.py` builds it."""
    cfg = Config()
    for name, value in runpy.run_path(str(CONF)).items():
        if name in cfg.settings:
            cfg.set(name, value)
    for name, value in changes.items():
        cfg.set(name, value)
    return cfg


@pytest.fixture
def gunicorn_loggers():
    """gunicorn's loggers and the record factory, restored after the test."""
    names = ("gunicorn.error", "gunicorn.access")
    saved = {n: (logging.getLogger(n).propagate, logging.getLogger(n).level) for n in names}
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)
    for name, (propagate, level) in saved.items():
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
            handler.close()
            logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level


CALLBACK = "/webhooks/telegram?token=cb-token-0123&Secret=cb-secret-4567&PIN=2468&page=2"


def access_line(cfg: Config) -> str:
    """The line gunicorn's access log writes for one request to CALLBACK."""
    logger = glogging.Logger(cfg)
    path, _, query = CALLBACK.partition("?")
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "REQUEST_METHOD": "POST",
        "RAW_URI": CALLBACK,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    response = SimpleNamespace(status="200 OK", sent=17, headers=[("Content-Length", "17")])
    request = SimpleNamespace(headers=[("USER-AGENT", "TelegramBot (like TwitterBot)")])
    logger.access(response, request, environ, timedelta(milliseconds=12))
    for handler in logger.access_log.handlers:
        handler.flush()
    return Path(cfg.accesslog).read_text()


def test_gunicorns_access_log_prints_no_query_string(tmp_path, gunicorn_loggers):
    line = access_line(gunicorn_config(accesslog=str(tmp_path / "access.log")))
    assert line == '10.0.0.7 "POST /webhooks/telegram HTTP/1.1" 200 17 0.012000s\n'


def test_gunicorns_default_access_format_is_scrubbed_too(tmp_path, gunicorn_loggers):
    """Without the project's format (gunicorn's own, "%(r)s" with the query string), the
    scrubbing the config installs still masks the query string's secrets."""
    cfg = gunicorn_config(accesslog=str(tmp_path / "access.log"))
    cfg.set("access_log_format", Config().access_log_format)
    line = access_line(cfg)
    assert '"POST /webhooks/telegram?token=***&Secret=***&PIN=***&page=2 HTTP/1.1"' in line
    assert not any(v in line for v in ("cb-token-0123", "cb-secret-4567", "2468"))


def test_werkzeugs_request_line_is_scrubbed(caplog, gunicorn_loggers):
    """The demo's server (`ovbot demo`, `ovbot chat`) logs each request line."""
    logs.install()
    server = WSGIRequestHandler.__new__(WSGIRequestHandler)  # the request line, no socket
    server.command, server.request_version = "GET", "HTTP/1.1"
    server.path, server.client_address = CALLBACK, ("127.0.0.1", 50000)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        server.log_request(200, 17)
    assert "GET /webhooks/telegram?token=***&Secret=***&PIN=***&page=2 HTTP/1.1" in caplog.text
    assert not any(v in caplog.text for v in ("cb-token-0123", "cb-secret-4567", "2468"))
