"""Logging set-up: phone numbers never reach a log in clear, whatever code logged them."""

from __future__ import annotations

import logging
import re

from bot.text.phones import mask

# A token code (kept as it is), else a phone number: "+" and 9 to 15 digits with spaces,
# hyphens or brackets between; a national number (leading 0, 9 to 12 digits, spaced or
# not); or 9 to 15 bare digits in a row.
_PHONE = re.compile(
    r"(?P<code>\*\d[\d ]*#)"
    r"|\+\d(?:[ ()-]{0,2}\d){8,14}(?!\w)"
    r"|(?<![\w*.:+-])\(?0\d(?:\)?[ -]?\d){7,10}(?!\w)"
    r"|(?<![\w*.:-])\d{9,15}(?!\w)"
)


def scrub(text: str) -> str:
    return _PHONE.sub(
        lambda m: m.group(0) if m.group("code") else mask(re.sub(r"[ ()-]", "", m.group(0))), text
    )


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then masks phone numbers, tracebacks and SQL parameters included."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level > logging.DEBUG:  # one line per request is the client's job, not httpx's
        for noisy in ("httpx", "alembic", "werkzeug", "twilio.http_client"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def ensure_configured(level: int = logging.INFO) -> None:
    """Configure masked logging unless the host process (e.g. a test runner) already did."""
    if not logging.getLogger().handlers:
        configure(level)
