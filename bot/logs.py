"""Logging set-up: phone numbers never reach a log in clear, whatever code logged them."""
from __future__ import annotations

import logging
import re

from bot.phones import mask

# "+" and 9 to 15 digits (spaces or hyphens allowed between), or 9 to 15 bare digits in a row.
_PHONE = re.compile(r"\+\d(?:[ -]?\d){8,14}(?!\w)|(?<![\w*.:-])\d{9,15}(?!\w)")


def scrub(text: str) -> str:
    return _PHONE.sub(lambda m: mask(re.sub(r"[ -]", "", m.group(0))), text)


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
        for noisy in ("httpx", "alembic", "werkzeug"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
