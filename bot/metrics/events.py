"""The counters, their bounded labels, and the events the rest of `bot/` reports.

A label value is a short lower-case word from a known set or becomes "other" (`label`):
never a phone number, a device id or free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import Counter

OTHER = "other"
_WORD = re.compile(r"[a-z][a-z_]{0,31}")  # no digits: never a phone, an id or a code

INBOUND = Counter(
    "ovbot_inbound_messages",
    "Inbound messages received, by channel and parsed command (unknown text is other).",
    ["channel", "command"],
)
INBOUND_ERRORS = Counter(
    "ovbot_inbound_errors",
    "Inbound messages whose handling failed and got the apology, by channel.",
    ["channel"],
)
REPLIES = Counter("ovbot_replies", "Replies given to inbound messages, by channel.", ["channel"])
MINTS = Counter(
    "ovbot_mints",
    "Code mints by kind and outcome: the answer to each mint call (minted, unknown, "
    "failed), and adopted when reconciliation finds an open attempt in the code history.",
    ["kind", "outcome"],
)
RECONCILIATIONS = Counter(
    "ovbot_reconciliations",
    "Open mint attempts examined by reconciliation, by result (adopted, released, "
    "waiting, unavailable: the history could not be read).",
    ["result"],
)
ALARMS = Counter("ovbot_integrity_alarms", "Integrity alarms raised, by kind.", ["kind"])
RECEIPTS = Counter(
    "ovbot_delivery_receipts",
    "Delivery receipts received from the SMS providers, by provider and status.",
    ["provider", "status"],
)
LOCKOUTS = Counter("ovbot_agent_lockouts", "Agents locked out after too many wrong PINs.")
CONSOLE_LOGINS = Counter(
    "ovbot_console_logins",
    "Sign-ins to the operator console, by outcome (ok, wrong, locked).",
    ["outcome"],
)
CONSOLE_OUTCOMES = ("ok", "wrong", "locked")
MINT_KINDS = ("days", "free", "reset")
MINT_OUTCOMES = ("minted", "unknown", "failed", "adopted")
RECONCILE_RESULTS = ("adopted", "released", "waiting", "unavailable")
RECEIPT_PROVIDERS = ("twilio", "africastalking")
# Twilio's MessageStatus values and Africa's Talking's delivery statuses, lower-cased.
RECEIPT_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "accepted",
    "canceled",
    "submitted",
    "buffered",
    "rejected",
    "success",
)
ALARM_KINDS = ("late_answer", "answer_differs")  # bot/ledger/book.py's `_alarm` calls
# The series an alert watches exist from the start, at zero (a labelled series would
# otherwise appear only with its first event).
for _kind in MINT_KINDS:
    for _outcome in MINT_OUTCOMES:
        MINTS.labels(_kind, _outcome)
for _result in RECONCILE_RESULTS:
    RECONCILIATIONS.labels(_result)
for _alarm in ALARM_KINDS:
    ALARMS.labels(_alarm)
for _login in CONSOLE_OUTCOMES:
    CONSOLE_LOGINS.labels(_login)


def label(value: object, allowed: Iterable[str] | None = None) -> str:
    """`value` as a label if it is a short lower-case word (from `allowed`), else "other"."""
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        return OTHER
    if allowed is not None and value not in allowed:
        return OTHER
    return value


# -- events: what the rest of bot/ calls ------------------------------------------------


def inbound(channel: str, command: str) -> None:
    INBOUND.labels(label(channel), label(command)).inc()


def replied(channel: str) -> None:
    REPLIES.labels(label(channel)).inc()


def inbound_failed(channel: str) -> None:
    INBOUND_ERRORS.labels(label(channel)).inc()


def mint(kind: str, outcome: str) -> None:
    MINTS.labels(label(kind, MINT_KINDS), label(outcome, MINT_OUTCOMES)).inc()


def reconciled(kind: str, result: str) -> None:
    """One open attempt examined; an adopted one is also a mint whose outcome is adopted."""
    RECONCILIATIONS.labels(label(result, RECONCILE_RESULTS)).inc()
    if result == "adopted":
        mint(kind, "adopted")


def integrity_alarm(kind: str) -> None:
    ALARMS.labels(label(kind)).inc()


def delivery_receipt(provider: str, status: str) -> None:
    """A provider's delivery report (Twilio's MessageStatus, e.g. "undelivered")."""
    status = status.lower() if isinstance(status, str) else status
    RECEIPTS.labels(label(provider, RECEIPT_PROVIDERS), label(status, RECEIPT_STATUSES)).inc()


def agent_locked_out() -> None:
    LOCKOUTS.inc()


def console_login(outcome: str) -> None:
    """A sign-in to the console: `ok`, `wrong` (email or password) or `locked`."""
    CONSOLE_LOGINS.labels(label(outcome, CONSOLE_OUTCOMES)).inc()
