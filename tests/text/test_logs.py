"""Logs never carry a phone number in clear, and keep everything else readable."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from bot.text import logs
from bot.text.logs import MaskingFormatter, scrub

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
}


@pytest.mark.parametrize("label", sorted(KEPT))
def test_leaves_other_text_alone(label):
    assert scrub(KEPT[label]) == KEPT[label]


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
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "alembic", "werkzeug")}
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
