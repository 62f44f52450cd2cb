"""Logs never carry a phone number, a secret or a PIN in clear, and keep everything else
readable."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from bot.settings import Settings
from bot.text import logs
from bot.text.logs import MaskingFormatter, scrub
from tests.harness import SECRETS

MASKED = {
    "E.164": ("from +254712345678 ok", "from +254*****678 ok"),
    "E.164 with spaces": ("from +254 712 345 678 ok", "from +254*****678 ok"),
    "E.164 with hyphens": ("from +254-712-345-678.", "from +254*****678."),
    "E.164 with brackets": ("call +1 (415) 555-2671", "call +1*****671"),
    "E.164 in brackets": ("(+254712345678)", "(+254*****678)"),
    "E.164 in SQL parameters": (
        "[parameters: ('+254712345678', 'Amina')]",
        "[parameters: ('+254*****678', 'Amina')]",
    ),
    "E.164 in a key=value": ("phone=+254712345678,", "phone=+254*****678,"),
    "E.164 in JSON": ('{"phone": "+33612345678"}', '{"phone": "+33*****678"}'),
    "national": ("from 0712345678", "from *****678"),
    "national with spaces": ("from 0712 345 678 today", "from *****678 today"),
    "national with hyphens": ("from 0712-345-678", "from *****678"),
    "national in brackets": ("from (0712) 345-678", "from *****678"),
    "French national pairs": ("tel 06 12 34 56 78", "tel *****678"),
    "international without +": ("contact 254712345678", "contact *****678"),
    "two numbers": ("+254712345678 -> 0712345679", "+254*****678 -> *****679"),
}


@pytest.mark.parametrize("label", sorted(MASKED))
def test_masks_phone_numbers(label):
    given, expected = MASKED[label]
    assert scrub(given) == expected


KEPT = {
    "asctime": "2026-11-26 11:22:23,717 INFO bot.cli.main: started",
    "ISO timestamp": "at 2026-01-05T09:12:13.123456+00:00",
    "ISO date and time": "at 2026-01-05 09:12:13",
    "product id": "device 1001 paid 30 days",
    "short numbers": "took 0.259s, 3 retries, status 200, port :8000",
    "a code, spaced": "code *009 945 688 031 149 268 780#",
    "a code, unspaced": "code *009945688031149268780#",
    "a USSD path": "text 1*1001*30*1",
    "a service code": "serviceCode *384*12#",
    "an IP address": "from 127.0.0.1 and 10.0.0.12",
    "a UUID": "id 550e8400-e29b-41d4-a716-446655440000",
    "a Twilio sid": "sid SM1234567890abcdef1234567890abcd",
    "a decimal": "ratio 3.14159265358",
    "a version": "python 3.11.9",
    "digits in a word": "key abc123456789012def",
    "a masked number": "from +254*****678",
    "a URL with a port": "GET https://api.example.test:8443/v1/items?page=2&limit=50",
    "a Bot API method": "Calling Bot API endpoint `getMe` with parameters `{}`",
    "an error named after a token": "telegram InvalidToken: Not Found",
    "words near the sensitive ones": "agent 7 locked after 3 wrong PINs; tokens: 4 minted",
    "a code in a key=value": "kind=days code=*009945688031149268780#",
    "the PIN screen": "screen: Enter your PIN",
    "a signed request's path": '"POST /webhooks/payments HTTP/1.1" 200 57',
    "dollars": "price $5, 0x2a$ and scrypt itself",
}


@pytest.mark.parametrize("label", sorted(KEPT))
def test_leaves_other_text_alone(label):
    assert scrub(KEPT[label]) == KEPT[label]


BOT_TOKEN = "7000000001:AAHk2xYzAbCdEfGhIjKlMnOpQrStUvWxYz0"

SECRET_CASES = {
    # Telegram bot tokens, bare and in the Bot API's URLs (httpx's and PTB's lines).
    "a bot token": (f"token {BOT_TOKEN} rejected", "token *** rejected"),
    "a bot token in httpx's request line": (
        f'HTTP Request: POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage "HTTP/1.1 200 OK"',
        'HTTP Request: POST https://api.telegram.org/bot***/sendMessage "HTTP/1.1 200 OK"',
    ),
    "a short bot token in a URL": (
        "Set Bot API URL: https://api.telegram.org/bot123:test",
        "Set Bot API URL: https://api.telegram.org/bot***",
    ),
    "a bot token in a file URL": (
        "https://api.telegram.org/file/bot123:abc/photos/1.jpg",
        "https://api.telegram.org/file/bot***/photos/1.jpg",
    ),
    # Authorization.
    "an Authorization header": ("Authorization: Basic QUMwOnRlc3Q=", "Authorization: Basic ***"),
    "a bearer token": ("sent Bearer eyJhbGciOi.J9.xyz", "sent Bearer ***"),
    "headers as a dict": (
        "{'authorization': 'Bearer eyJhbG', 'User-Agent': 'x/1'}",
        "{'authorization': '***', 'User-Agent': 'x/1'}",
    ),
    "headers as byte tuples": (
        "[(b'Authorization', b'Basic QUM6dG9r'), (b'Host', b'api.twilio.com')]",
        "[(b'Authorization', b'***'), (b'Host', b'api.twilio.com')]",
    ),
    "a provider's signature header": ("X-Twilio-Signature : 7bZ+Q3s=", "X-Twilio-Signature : ***"),
    "Telegram's secret header": (
        "X-Telegram-Bot-Api-Secret-Token: s3cr3t-value",
        "X-Telegram-Bot-Api-Secret-Token: ***",
    ),
    # Query strings, whatever the case of the key.
    "query-string secrets": (
        '"GET /cb?token=abc123&page=2&Secret=s3&signature=ab%2Fcd&PASSWORD=x&pin=2468 HTTP/1.1"',
        '"GET /cb?token=***&page=2&Secret=***&signature=***&PASSWORD=***&pin=*** HTTP/1.1"',
    ),
    "camelCase and snake_case keys": (
        "authToken=abc api_key=def apiKey=ghi access_token=jkl",
        "authToken=*** api_key=*** apiKey=*** access_token=***",
    ),
    "JSON": (
        '{"password": "p a s s", "pin": 2468, "name": "Amina"}',
        '{"password": "***", "pin": ***, "name": "Amina"}',
    ),
    "a password in a URL": (
        "postgresql+psycopg://ovbot:hunter22@db.internal:5432/ovbot",
        "postgresql+psycopg://ovbot:***@db.internal:5432/ovbot",
    ),
    # PINs: their hashes (SQLAlchemy's rows at DEBUG), the head of a USSD input path.
    "a PIN hash in a row": (
        "Row (1, '+254*****101', 'scrypt$16384$8$1$00ff11$abcdef', 'agent')",
        "Row (1, '+254*****101', 'scrypt$***', 'agent')",
    ),
    "other password hashes": (
        "$2b$12$R9h/cIPz0gi.URNNX3kh2O pbkdf2_sha256$600000$salt$hash=",
        "$2b$*** pbkdf2_sha256$***",
    ),
    "a USSD path with a PIN": ("text 2468*1*1001*30*1", "text [PIN]*1*1001*30*1"),
    "a USSD path with a PIN, quoted": ("{'text': '97531864*4'}", "{'text': '[PIN]*4'}"),
}


@pytest.mark.parametrize("label", sorted(SECRET_CASES))
def test_masks_secrets(label):
    given, expected = SECRET_CASES[label]
    assert scrub(given) == expected


GIVEN = {label: given for label, (given, _) in {**MASKED, **SECRET_CASES}.items()} | KEPT


@pytest.mark.parametrize("label", sorted(GIVEN))
def test_scrubbing_twice_changes_nothing_more(label):
    once = scrub(GIVEN[label])
    assert scrub(once) == once


@pytest.fixture
def hidden(monkeypatch):
    """A registry of hidden values for this test only."""
    monkeypatch.setattr(logs, "_hidden", set())
    monkeypatch.setattr(logs, "_HIDDEN", None)


def test_hidden_values_are_masked_anywhere_raw_or_encoded(hidden):
    logs.hide("p@ss word/1", None, "")
    assert scrub("login with p@ss word/1!") == "login with ***!"
    assert scrub("body=user%3Dx%26pw%3Dp%40ss%20word%2F1") == "body=user%3Dx%26pw%3D***"
    assert scrub("q=p%40ss+word%2f1") == "q=***"


def test_values_too_short_to_hide_are_left_to_the_patterns(hidden):
    logs.hide("abc")
    assert scrub("abc, pin=abc") == "abc, pin=***"


def test_the_settings_secrets_are_all_hidden(hidden):
    settings = Settings(
        **SECRETS,
        omnivoltaic_username="dist@example.com",
        omnivoltaic_password="Omni-Pa55word",
        database_url="postgresql+psycopg://ovbot:db%40pw-123@db/ovbot",
    )
    logs.hide_settings(settings)
    secrets = [
        SECRETS["twilio_auth_token"],
        SECRETS["telegram_bot_token"],
        SECRETS["telegram_secret_token"],
        SECRETS["payments_secret"],
        "Omni-Pa55word",
        "db@pw-123",
    ]
    text = scrub(" | ".join(secrets) + " dist@example.com " + SECRETS["twilio_account_sid"])
    assert not any(secret in text for secret in secrets), text
    assert "dist@example.com" in text and SECRETS["twilio_account_sid"] in text


@pytest.fixture
def factory():
    """The log record factory as it was, restored after the test."""
    saved = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(saved)


class _Plain(logging.Handler):
    """A third party's handler: a plain formatter, no masking of its own."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_installed_every_record_is_scrubbed_for_every_handler(factory, hidden):
    logs.install()
    logs.install()  # once is enough; twice wraps nothing twice
    logs.hide("hidden-value-42")
    handler = _Plain()
    logger = logging.getLogger("gunicorn.access.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.info('"%(r)s" %(s)s', {"r": "GET /cb?token=abc HTTP/1.1", "s": "200"})
        logger.debug("from %s with %s", "+254712345678", "hidden-value-42")
        try:
            raise ValueError(f"bot {BOT_TOKEN} for 0712345678")
        except ValueError:
            logger.exception("failed for %s", "+254712345678")
        logger.info("stack", stack_info=True)
        logger.info("%s %s", "one argument too few")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(handler.lines)
    assert handler.lines[0] == 'gunicorn.access.test "GET /cb?token=*** HTTP/1.1" 200'
    assert handler.lines[1] == "gunicorn.access.test from +254*****678 with ***"
    assert "Traceback" in text and "ValueError: bot *** for *****678" in text
    assert "unformattable log message '%s %s'" in text
    for clear in ("abc", "712345678", "hidden-value-42", BOT_TOKEN, "AAHk2"):
        assert clear not in text


def _record(msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("bot.test", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_the_formatter_masks_arguments():
    formatter = MaskingFormatter("%(levelname)s %(message)s")
    text = formatter.format(_record("message from %s: %s", "+254712345678", "CODE"))
    assert text == "ERROR message from +254*****678: CODE"


def test_the_formatter_masks_tracebacks():
    def fail(phone):
        raise ValueError(f"no customer {phone} (national 0712 345 678)")

    try:
        fail("+254712345678")
    except ValueError:
        info = sys.exc_info()
    text = MaskingFormatter("%(message)s").format(_record("failed", exc_info=info))
    assert "Traceback" in text and "ValueError" in text
    assert "712345678" not in text and "712 345 678" not in text
    assert "+254*****678" in text


def test_the_formatter_masks_stack_info():
    record = _record("here")
    record.stack_info = "Stack (most recent call last):\n  phone = '+254712345678'"
    assert "+254712345678" not in MaskingFormatter("%(message)s").format(record)


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY}
    yield root
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


def test_configure_installs_one_masking_handler(root_logging, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure(logging.INFO)
    assert len(root_logging.handlers) == 1
    assert isinstance(root_logging.handlers[0].formatter, MaskingFormatter)
    logging.getLogger("bot.anything").info("sms from %s", "+254712345678")
    logging.getLogger("httpx").info("quiet at INFO")
    output = stream.getvalue()
    assert "sms from +254*****678" in output and "712345678" not in output
    assert "quiet at INFO" not in output


def test_configure_at_debug_lets_the_libraries_speak(root_logging, factory, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure(logging.INFO)
    logs.configure(logging.DEBUG)  # -v after a quiet set-up: nothing left at WARNING
    logging.getLogger("httpx").info(
        "HTTP Request: POST https://api.telegram.org/bot%s/getMe", BOT_TOKEN
    )
    output = stream.getvalue()
    assert "HTTP Request: POST https://api.telegram.org/bot***/getMe" in output
    assert BOT_TOKEN not in output


# -- LOG_FORMAT=json and request ids -------------------------------------------------------


def _json_line(record: logging.LogRecord) -> dict:
    import json

    line = logs.JsonFormatter().format(record)
    assert "\n" not in line  # one object a line, tracebacks included
    return json.loads(line)


def test_a_json_line_masks_phones_and_secrets_in_every_field(factory, hidden):
    """The record factory scrubs the message; the JSON formatter also scrubs what it adds
    itself: the traceback it formats again, and `extra=` fields, by value and by key."""
    logs.install()
    logs.hide("json-secret-value-42")
    logger = logging.getLogger("bot.json.test")
    try:
        raise ValueError("no customer 0712345678 with json-secret-value-42")
    except ValueError as exc:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "sms from %s, token=%s",
            ("+254712345678", "json-secret-value-42"),
            (type(exc), exc, exc.__traceback__),
            extra={"phone": "+254712345679", "number": 254712345670, "password": "pw1"},
        )
    line = _json_line(record)
    assert line["message"] == "sms from +254*****678, token=***"
    assert line["level"] == "ERROR" and line["logger"] == "bot.json.test"
    assert "ValueError: no customer *****678 with ***" in line["exc_info"]
    assert (line["phone"], line["number"], line["password"]) == ("+254*****679", "*****670", "***")
    text = str(line)
    for clear in ("712345678", "712345679", "254712345670", "json-secret-value-42", "pw1"):
        assert clear not in text


def test_json_keeps_what_is_not_secret(factory):
    record = _record("device %s paid %d days", "1001", 30)
    record.__dict__.update(attempt=3, done=True)
    line = _json_line(record)
    assert line["message"] == "device 1001 paid 30 days"
    assert (line["attempt"], line["done"]) == (3, True)
    assert line["time"].endswith("+00:00") and "request_id" not in line


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_line_logged_in_a_request_carries_its_id(log_format):
    formatter = logs.formatter(log_format)
    token = logs.REQUEST_ID.set("req-42")
    try:
        inside = formatter.format(_record("inside"))
    finally:
        logs.REQUEST_ID.reset(token)
    outside = formatter.format(_record("outside"))
    assert "req-42" in inside and "req-42" not in outside
    if log_format == "text":
        assert inside.endswith("bot.test [req-42]: inside")
        assert outside.endswith("bot.test: outside")
    # The text formatter leaves no field behind for the next handler (a JSON one).
    record = _record("shared")
    logs.formatter("text").format(record)
    assert "request_tag" not in _json_line(record)


def test_a_records_own_request_id_wins(factory):
    record = _record("access line")
    record.request_id = "from-the-response"
    token = logs.REQUEST_ID.set("bound")
    try:
        assert _json_line(record)["request_id"] == "from-the-response"
    finally:
        logs.REQUEST_ID.reset(token)


def test_configure_writes_json_when_asked(root_logging, monkeypatch):
    import json

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure(logging.INFO, "json")
    logging.getLogger("bot.anything").info("sms from %s", "+254712345678")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "sms from +254*****678"
