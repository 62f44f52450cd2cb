"""Logging set-up: no log line, at any level, carries a secret, a PIN or a phone number.

`scrub(text)` masks, in this order:

- the live secret values registered with `hide` / `hide_settings` (bootstrap.build
  registers the settings' tokens, secrets and passwords), raw or percent-encoded;
- credentials anywhere: a Telegram bot token (`123456:AAH...`, and the `/bot<token>` of a
  Bot API URL), a password in a URL (`scheme://user:***@host`), a password or PIN hash
  (`scrypt$***`: SQLAlchemy logs result rows at DEBUG), a Bearer token, and the value of
  any key named token, secret, signature, password, PIN, authorization, ... (`?token=...`,
  `secret: ...`, `"password": "..."`, `X-Twilio-Signature: ...`);
- the PIN at the head of a USSD input path (`2468*1*1001` -> `[PIN]*1*1001`);
- phone numbers (E.164, national, or 9 to 15 bare digits), token codes kept as they are.

Scrubbing happens twice, so it holds whatever handler a record reaches (ours, a test
runner's, gunicorn's own, a library's): `install` wraps the log record factory, so every
record is scrubbed as it is made (its message formatted with its arguments, its traceback
and stack); and our formatters scrub what they write: `MaskingFormatter` each whole line,
`JsonFormatter` (LOG_FORMAT=json, one JSON object a line) every value of the object, the
traceback it formats again and any `extra=` field included.

Every line written while a web request is handled carries its request id (`REQUEST_ID`,
bound by the app factory for the request; gunicorn's access line takes it from the
response): `[id]` after the logger's name in text, `"request_id"` in JSON.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import IO, Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from bot.settings import Settings
from bot.text.phones import mask

MASK = "***"
MIN_SECRET = 4  # shorter values are not hidden by value (they would mask ordinary words)
FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"
# The id of the web request this thread is handling (None outside a request: the CLI, the
# worker, gunicorn's master).  A record's own `request_id` (an `extra=`) wins over it.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
NOISY = ("httpx", "httpcore", "alembic", "werkzeug", "twilio.http_client")

# -- phone numbers --------------------------------------------------------------------------

# A token code (kept as it is), else a phone number: "+" and 9 to 15 digits with spaces,
# hyphens or brackets between; a national number (leading 0, 9 to 12 digits, spaced or
# not); or 9 to 15 bare digits in a row.
_PHONE = re.compile(
    r"(?P<code>\*\d[\d ]*#)"
    r"|\+\d(?:[ ()-]{0,2}\d){8,14}(?!\w)"
    r"|(?<![\w*.:+-])\(?0\d(?:\)?[ -]?\d){7,10}(?!\w)"
    r"|(?<![\w*.:-])\d{9,15}(?!\w)"
)

# -- credentials ----------------------------------------------------------------------------

_CREDENTIALS = [
    # A password in a URL: scheme://user:password@host.
    (re.compile(r"(?<=://)(?P<user>[^/\s:@]*):[^/\s@]+@"), r"\g<user>:" + MASK + "@"),
    # The Bot API URL form, whatever the token looks like: /bot<id>:<secret>.
    (re.compile(r"/bot\d+:[^/\s?#\"'<>]+"), "/bot" + MASK),
    # A Telegram bot token on its own.
    (re.compile(r"\d+:[A-Za-z0-9_-]{30,}"), MASK),
    # A password or PIN hash (scrypt$n$r$p$salt$digest, pbkdf2, argon2, bcrypt): a short
    # PIN is found again from its hash in minutes.
    (
        re.compile(
            r"(?<!\w)(?P<scheme>\$?(?:scrypt|pbkdf2[\w-]*|argon2\w*|bcrypt|2[aby]))\$[^\s'\",)]+"
        ),
        r"\g<scheme>$" + MASK,
    ),
    # An OAuth-style bearer token, with or without an Authorization key before it.
    (re.compile(r"(?i)\b(?P<scheme>bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\g<scheme> " + MASK),
]

# A key, bare or quoted (b'...' too), then "=", ":" (or "," after a quoted key, as in a
# tuple of headers); whether it is sensitive is decided by its words (see _sensitive).
_KEY = re.compile(
    r"""(?<![\w-])(?:b?(?P<q>["']))?(?P<key>[A-Za-z][\w-]*)(?(q)(?P=q))"""
    r"""\s*(?:[:=]|(?(q),|(?!)))\s*"""
)
# The value after a sensitive key: an optional auth scheme, then a quoted string or a bare
# run up to whitespace, "&" (a query string) or punctuation that closes a container.
_VALUE = re.compile(
    r"""(?P<scheme>(?i:basic|bearer|digest|token)\s+)?"""
    r"""(?:b?(?P<q>["'])(?P<quoted>.*?)(?P=q)|(?P<bare>[^\s&"',;)\]}>]+))"""
)
_SENSITIVE_WORDS = frozenset(
    {
        "token",
        "secret",
        "signature",
        "sig",
        "password",
        "passwd",
        "pwd",
        "pass",
        "pin",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "apikey",
        "cookie",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# The PIN an agent types first: 4 to 8 digits at the head of a "*"-separated USSD path.
_PIN_PATH = re.compile(r"""(?<![\w*#+.:/-])\d{4,8}(?=\*[^\s#]*(?:$|[\s"',;)\]}]))""")


# Names of errors, not of values: "InvalidToken: the token was rejected".
_NOT_A_VALUE = frozenset({"invalid", "missing", "bad", "wrong", "expired", "unknown", "no"})


def _sensitive(key: str) -> bool:
    words = [w.lower() for part in re.split(r"[_-]+", key) for w in _CAMEL.split(part) if w]
    if words and words[0] in _NOT_A_VALUE:
        return False
    return (
        any(w in _SENSITIVE_WORDS for w in words)
        or "apikey" in "".join(words)
        or "accesskey" in "".join(words)
    )


def _mask_values(text: str) -> str:
    out: list[str] = []
    done = 0
    for key in _KEY.finditer(text):
        if key.start() < done or not _sensitive(key.group("key")):
            continue
        value = _VALUE.match(text, key.end())
        if value is None:
            continue
        if value.group("q"):  # keep the scheme, a b prefix and the quotes
            opened = value.start("q") + 1
            masked = text[value.start() : opened] + MASK + value.group("q")
        else:
            masked = text[value.start() : value.start("bare")] + MASK
        out.append(text[done : value.start()] + masked)
        done = value.end()
    out.append(text[done:])
    return "".join(out)


# -- the secrets of this process ------------------------------------------------------------

_hidden: set[str] = set()
_hidden_lock = threading.Lock()
_HIDDEN: re.Pattern[str] | None = None


def _forms(value: str) -> Iterable[str]:
    """The value as it may appear in a log: raw, and percent-encoded (either hex case)."""
    for form in (value, quote(value, safe=""), quote_plus(value, safe="")):
        yield form
        yield re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form)


def hide(*values: str | None) -> None:
    """Mask these values wherever they appear in a log from now on (this process).

    For the live secrets (tokens, passwords); values shorter than MIN_SECRET characters
    are not hidden by value, the patterns in `scrub` still apply.
    """
    global _HIDDEN
    with _hidden_lock:
        new = {f for v in values if v and len(v.strip()) >= MIN_SECRET for f in _forms(v.strip())}
        if new <= _hidden:
            return
        _hidden.update(new)
        ordered = sorted(_hidden, key=len, reverse=True)  # the longest form first
        _HIDDEN = re.compile("|".join(re.escape(v) for v in ordered))


def secrets_of(settings: Settings) -> list[str]:
    """The secret values in `settings`: every token, secret, password or key it holds,
    and the password in the database URL."""
    values: list[str] = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if re.search(r"token|secret|password|key", field.name) and isinstance(value, str):
            values.append(value)
    try:
        password = urlsplit(settings.database_url).password
    except ValueError:  # not a URL we can read: the URL pattern in `scrub` still applies
        password = None
    if password:
        values += [password, unquote(password)]
    return values


def hide_settings(settings: Settings) -> None:
    """Hide the settings' secrets (`secrets_of`) in every log of this process, whatever
    handler it goes to (this installs the scrubbing record factory)."""
    hide(*secrets_of(settings))
    install()


# -- scrubbing ------------------------------------------------------------------------------


def _mask_phone(m: re.Match[str]) -> str:
    return m.group(0) if m.group("code") else mask(re.sub(r"[ ()-]", "", m.group(0)))


def scrub(text: str) -> str:
    """`text` with secrets, PINs and phone numbers masked (see the module's docstring)."""
    hidden = _HIDDEN
    if hidden is not None:
        text = hidden.sub(MASK, text)
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    text = _mask_values(text)
    text = _PIN_PATH.sub("[PIN]", text)
    return _PHONE.sub(_mask_phone, text)


_TRACEBACKS = logging.Formatter()


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Fold the arguments into the message and scrub it, the traceback and the stack."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - logging's own error report would print it in clear
        message = f"unformattable log message {record.msg!r} with arguments {record.args!r}"
    record.msg, record.args = scrub(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = _TRACEBACKS.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    return record


class _ScrubbingFactory:
    """A log record factory that scrubs every record the one it wraps makes."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(self.inner(*args, **kwargs))


def install() -> None:
    """Scrub every log record of this process as it is made, whichever handler gets it."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _ScrubbingFactory):
        logging.setLogRecordFactory(_ScrubbingFactory(factory))


def request_id_of(record: logging.LogRecord) -> str | None:
    """The request a record was logged for: its own `request_id`, else the bound one."""
    own = getattr(record, "request_id", None)
    return str(own) if own else REQUEST_ID.get()


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then scrubs the line, tracebacks and SQL parameters included.

    A format may place `%(request_tag)s`: " [<request id>]" in a request, else nothing."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = request_id_of(record)
        record.__dict__["request_tag"] = f" [{request_id}]" if request_id else ""
        try:
            return scrub(super().format(record))
        finally:  # not a field of the record for the next handler (a JSON one would show it)
            record.__dict__.pop("request_tag", None)


def _scrub_fields(fields: dict[Any, Any]) -> dict[Any, Any]:
    """An object's fields scrubbed: a sensitive key's value (`password`, `pin`, ...)
    masked whole, every other value by `_scrub_value`."""
    return {
        key: MASK if _sensitive(str(key)) and value else _scrub_value(value)
        for key, value in fields.items()
    }


def _scrub_value(value: Any) -> Any:
    """A JSON value with every string scrubbed; a number that scrubs as a phone becomes
    its masked string (a phone passed as an int in `extra=`)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return _scrub_fields(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        masked = scrub(str(value))
        return value if masked == str(value) else masked
    return value


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, process, the
    request id in a request, a traceback as `exc_info`, and any `extra=` fields; every
    value scrubbed (the traceback is formatted again from the exception, so it is scrubbed
    here, not only by the record factory)."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s %(process)d",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        request_id = request_id_of(record)
        if request_id:
            log_data["request_id"] = request_id

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        first = {"time": log_data.pop("time", None)}  # a reader's eye starts at the time
        return _scrub_fields(first | log_data)


def formatter(log_format: str = "text") -> logging.Formatter:
    """The project's formatter for LOG_FORMAT ("text" or "json"), scrubbing either way."""
    if log_format == "json":
        return JsonFormatter()
    return MaskingFormatter(FORMAT)


def handler(stream: IO[str] | None = None, log_format: str = "text") -> logging.Handler:
    """The project's log handler: to `stream` (stderr by default), every line scrubbed."""
    result: logging.Handler = (
        logging.StreamHandler() if stream is None else logging.StreamHandler(stream)
    )
    result.setFormatter(formatter(log_format))
    return result


def configure(level: int = logging.INFO, log_format: str = "text") -> None:
    """The CLI's logging (`ovbot -v` is DEBUG): our handler alone on the root, scrubbing."""
    install()
    root = logging.getLogger()
    root.handlers[:] = [handler(log_format=log_format)]
    root.setLevel(level)
    # One line per request is the client's job, not httpx's; at DEBUG, everything.
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING if level > logging.DEBUG else 0)


def ensure_configured(level: int = logging.INFO, log_format: str = "text") -> None:
    """Scrub every record; add our handler unless the host process (gunicorn with a log
    configuration, a test runner) already set handlers up."""
    install()
    if not logging.getLogger().handlers:
        configure(level, log_format)
