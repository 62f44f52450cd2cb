"""Senders: the seam between the outbox and the providers (Twilio SMS and WhatsApp, Africa's
Talking SMS, Telegram).

A sender has `channel` and `send(recipient, body) -> SendResult` (`link_id=`: the Africa's
Talking linkId of the message a row answers; only rows that carry one pass it, and only
Africa's Talking takes such rows); whatever goes wrong surfaces as one of the errors
below, never as a provider or HTTP exception:

    SendError
     ├── NotSent          surely did not leave (refused connection, 429, 5xx): retry later
     ├── Undeliverable    permanent for this message (bad number, bot blocked): do not retry
     │    └── Unsubscribed   Twilio 21610: the recipient texted STOP
     └── OutcomeUnknown   may have left (timeout after sending): sent again after a backoff

Unlike a mint, a message whose outcome is unknown is sent again (bot/outbox/delivery.py):
the same code twice is harmless, a code that never arrives is not.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from bot.text.phones import mask

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.error import TelegramError
    from twilio.rest import Client

    from bot.settings import Settings

SEND_TIMEOUT = 15.0  # seconds; keep it below the outbox lease (bot/outbox/delivery.py)
# Where Twilio posts delivery receipts (webhooks/twilio.py serves it; bot/outbox/receipts.py
# records them), under PUBLIC_BASE_URL.
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
_TWILIO_RETRYABLE_CODES = {21611}  # the From number's queue is full
WHATSAPP = "whatsapp:"  # Twilio's prefix of a WhatsApp address


@dataclass(frozen=True)
class SendResult:
    provider_id: str


class Sender(Protocol):
    """What the outbox sends through: one per channel (and one per provider a row may
    name, bot/outbox/delivery.py)."""

    channel: str

    def send(self, recipient: str, body: str, link_id: str | None = None) -> SendResult: ...

    def close(self) -> None: ...


class SendError(Exception):
    """A message was not (known to be) delivered to the provider; the text is for operators."""


class NotSent(SendError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it did


class Undeliverable(SendError):
    pass


class Unsubscribed(Undeliverable):
    pass


class OutcomeUnknown(SendError):
    pass


class TwilioSmsSender:
    channel = "sms"

    def __init__(
        self, client: Client, from_number: str, status_callback: str | None = None
    ) -> None:
        self.client, self.from_number = client, from_number
        # A Messaging Service SID (MG...) may stand in for the From number.
        self._sender: dict[str, str] = (
            {"messaging_service_sid": from_number}
            if from_number.startswith("MG")
            else {"from_": from_number}
        )
        if status_callback:  # Twilio posts each status change there (delivery receipts)
            self._sender["status_callback"] = status_callback

    def send(self, recipient: str, body: str, link_id: str | None = None) -> SendResult:
        from twilio.base.exceptions import TwilioException

        try:
            message = self.client.messages.create(
                to=self.address(recipient), body=body, **self._sender
            )
        except TwilioException as exc:  # TwilioRestException, TwilioServiceException
            raise _twilio_error(exc) from exc
        except Exception as exc:
            raise _connection_error(exc) from exc
        return SendResult(str(message.sid))

    def address(self, recipient: str) -> str:
        return recipient

    def close(self) -> None:
        pass


class TwilioWhatsAppSender(TwilioSmsSender):
    """WhatsApp through Twilio: the same API, both ends written `whatsapp:+254…`.

    Only sent inside the customer's 24-hour session window (bot/outbox/queue.py): outside
    it Twilio refuses free text (error 63016) and the row fails; its receipt hands a code
    to SMS (bot/outbox/receipts.py).
    """

    channel = "whatsapp"

    def __init__(
        self, client: Client, from_number: str, status_callback: str | None = None
    ) -> None:
        if not from_number.startswith(("MG", WHATSAPP)):
            from_number = WHATSAPP + from_number
        super().__init__(client, from_number, status_callback)

    def address(self, recipient: str) -> str:
        return recipient if recipient.startswith(WHATSAPP) else WHATSAPP + recipient


def _twilio_error(exc: Exception) -> SendError:
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    detail = getattr(exc, "msg", None) or exc.__class__.__name__
    text = f"twilio HTTP {status} error {code}: {detail}"
    if status is None:
        return OutcomeUnknown(text)
    if code == 21610:
        return Unsubscribed(text)
    if status in (401, 429) or status >= 500 or code in _TWILIO_RETRYABLE_CODES:
        return NotSent(text)  # refused before the message was created; 401: fix the token
    if 400 <= status < 500:
        return Undeliverable(text)
    return OutcomeUnknown(text)


def _connection_error(exc: Exception) -> SendError:
    """requests' errors: only a connection never made is surely not sent."""
    from requests import exceptions as rex
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    text = f"twilio: {exc.__class__.__name__}: {exc}"
    if isinstance(exc, (rex.ConnectTimeout, rex.SSLError, rex.ProxyError)):
        return NotSent(text)
    if isinstance(exc, rex.ConnectionError) and exc.args:
        cause = exc.args[0]
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError):
            return NotSent(text)
    return OutcomeUnknown(text)  # read timeout, connection dropped after sending, ...


class TelegramSender:
    """python-telegram-bot is async: each sender runs its own event loop, one send at a time."""

    channel = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def send(self, recipient: str, body: str, link_id: str | None = None) -> SendResult:
        from telegram.error import TelegramError

        chat_id = int(recipient) if recipient.lstrip("-").isdigit() else recipient
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.bot.initialize())  # getMe, once
            except Exception as exc:
                raise NotSent(f"telegram: cannot start the bot: {exc}") from exc
            try:
                message = self._loop.run_until_complete(
                    self.bot.send_message(chat_id=chat_id, text=body)
                )
            except TelegramError as exc:
                raise _telegram_error(exc) from exc
            except Exception as exc:
                raise OutcomeUnknown(f"telegram: {exc!r}") from exc
        return SendResult(str(message.message_id))

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.run_until_complete(self.bot.shutdown())
                self._loop.close()
                self._loop = None


def _telegram_error(exc: TelegramError) -> SendError:
    from telegram import error

    text = f"telegram {exc.__class__.__name__}: {exc.message}"
    if isinstance(exc, error.RetryAfter):
        with warnings.catch_warnings():  # PTB 22 deprecates the int form
            warnings.simplefilter("ignore")
            wait = exc.retry_after
        return NotSent(
            text, retry_after=wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        )
    if isinstance(exc, (error.Forbidden, error.BadRequest, error.ChatMigrated)):
        return Undeliverable(text)  # blocked by the user, chat not found, ...
    if isinstance(exc, error.InvalidToken):
        return NotSent(text)  # configuration: fix the token, the message waits
    if isinstance(exc, error.NetworkError):  # TimedOut is one too
        cause = exc.__cause__
        if cause is None:  # Telegram answered with an error status (5xx, 429 without hint)
            return NotSent(text)
        if isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            return NotSent(text)
    return OutcomeUnknown(text)  # read timeout, dropped connection, unreadable answer


# -- Africa's Talking SMS, over httpx against the documented endpoint ------------------
#
# `POST https://api.africastalking.com/version1/messaging` (the sandbox's host when the
# username is `sandbox`), form `username, to, message, from, linkId`, header `apiKey`,
# `Accept: application/json`.  The answer names each recipient:
#
#     {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
#       "Recipients": [{"statusCode": 101, "number": "+254712345678", "status": "Success",
#                       "cost": "KES 0.8000", "messageId": "ATXid_..."}]}}
#
# and its `messageId` is what the delivery reports name (bot/outbox/receipts.py).  Every
# failure becomes one of the errors above, never an httpx exception:
#
# - no connection made, 401/403 (the key: fix it, the message waits), 429, 5xx, and the
#   recipient codes that are ours or the gateway's to fix (402 InvalidSenderId,
#   405 InsufficientBalance, 500 InternalServerError, 501 GatewayError) → NotSent;
# - another 4xx, no recipient in the answer, and the recipient codes that are about this
#   number or this message (401 RiskHold, 403 InvalidPhoneNumber, 404 UnsupportedNumberType,
#   406 UserInBlacklist, 407 CouldNotRoute, 409 DoNotDisturbRejection, 502
#   RejectedByGateway) → Undeliverable;
# - a timeout after the request went, an answer we cannot read, a code we do not know
#   → OutcomeUnknown (sent again after a backoff: a code twice is harmless).

AT_LIVE_URL = "https://api.africastalking.com/version1/messaging"
AT_SANDBOX_URL = "https://api.sandbox.africastalking.com/version1/messaging"
AT_ACCEPTED = {100, 101, 102}  # Processed, Sent, Queued
AT_RETRY_LATER = {402, 405, 500, 501}
AT_REFUSED = {401, 403, 404, 406, 407, 409, 502}


class AfricasTalkingSender:
    """Africa's Talking SMS over httpx (the notes above)."""

    channel = "sms"

    def __init__(
        self,
        http: httpx.Client,
        username: str,
        api_key: str,
        sender_id: str | None = None,
    ) -> None:
        self.http, self.username, self.api_key, self.sender_id = http, username, api_key, sender_id
        self.url = AT_SANDBOX_URL if username == "sandbox" else AT_LIVE_URL

    @classmethod
    def configured(cls, settings: Settings) -> AfricasTalkingSender:
        assert settings.africastalking_username and settings.africastalking_api_key
        http = httpx.Client(timeout=httpx.Timeout(SEND_TIMEOUT, connect=5.0))
        return cls(
            http,
            settings.africastalking_username,
            settings.africastalking_api_key,
            settings.africastalking_sender_id,
        )

    def send(self, recipient: str, body: str, link_id: str | None = None) -> SendResult:
        form = {"username": self.username, "to": recipient, "message": body}
        if self.sender_id:
            form["from"] = self.sender_id
        if link_id:
            form["linkId"] = link_id
        headers = {"apiKey": self.api_key, "Accept": "application/json"}
        try:
            response = self.http.post(self.url, data=form, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"africastalking: {exc.__class__.__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # read timeout, dropped connection: it may have gone
            raise OutcomeUnknown(f"africastalking: {exc.__class__.__name__}: {exc}") from exc
        return _at_result(response)

    def close(self) -> None:
        self.http.close()


def _at_result(response: httpx.Response) -> SendResult:
    status = response.status_code
    text = f"africastalking HTTP {status}: {response.text[:200]!r}"
    if status in (401, 403, 429) or status >= 500:
        raise NotSent(text, retry_after=_retry_after(response))
    if status >= 400:
        raise Undeliverable(text)
    try:
        data: Any = response.json()
        recipients = data["SMSMessageData"]["Recipients"]
        if not isinstance(recipients, list):
            raise TypeError("Recipients is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise OutcomeUnknown(f"{text}: unreadable answer ({exc})") from exc
    if not recipients:
        message = data["SMSMessageData"].get("Message", "")
        raise Undeliverable(f"africastalking: no recipient accepted: {message!r}")
    return _at_recipient(recipients[0])


def _at_recipient(recipient: Any) -> SendResult:
    if not isinstance(recipient, dict):
        raise OutcomeUnknown(f"africastalking: unreadable recipient {recipient!r}")
    code, status = recipient.get("statusCode"), recipient.get("status")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if code in AT_ACCEPTED or (code is None and status == "Success"):
        return SendResult(str(recipient.get("messageId") or ""))
    raise _at_refusal(code, f"africastalking: recipient status {code} {status}")


def _at_refusal(code: object, text: str) -> SendError:
    if code in AT_RETRY_LATER:
        return NotSent(text)
    if code in AT_REFUSED:
        return Undeliverable(text)
    return OutcomeUnknown(text)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class LogSender:
    """The demo's sender: prints what would be sent, the phone masked."""

    def __init__(self, channel: str, write: Callable[[str], None] = print) -> None:
        self.channel, self.write, self._count = channel, write, 0
        self._lock = threading.Lock()

    def send(self, recipient: str, body: str, link_id: str | None = None) -> SendResult:
        with self._lock:
            self._count += 1
            number = self._count
        self.write(f"[{self.channel} to {mask(recipient)}] {body}")
        return SendResult(f"log-{self.channel}-{number}")

    def close(self) -> None:
        pass


def build_senders(settings: Settings) -> dict[str, Sender]:
    """A sender per channel whose credentials are set; log senders in the demo.

    "sms" is SMS_PROVIDER's; "africastalking" (when configured) also takes the answers
    to Africa's Talking messages, whoever sends the SMS pushes.
    """
    if settings.demo:
        senders: dict[str, Sender] = {
            channel: LogSender(channel) for channel in ("sms", "telegram", "whatsapp")
        }
        senders["africastalking"] = LogSender("africastalking")
        return senders
    senders = {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=TwilioHttpClient(timeout=SEND_TIMEOUT),
        )
        if settings.twilio_from_number and settings.sms_provider == "twilio":
            senders["sms"] = TwilioSmsSender(
                client, settings.twilio_from_number, status_callback_url(settings)
            )
        if settings.twilio_whatsapp_from:
            senders["whatsapp"] = TwilioWhatsAppSender(
                client, settings.twilio_whatsapp_from, status_callback_url(settings)
            )
    if settings.africastalking_username and settings.africastalking_api_key:
        senders["africastalking"] = AfricasTalkingSender.configured(settings)
        if settings.sms_provider == "africastalking":
            senders["sms"] = senders["africastalking"]
    if settings.telegram_bot_token:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        request = HTTPXRequest(
            connect_timeout=5.0, read_timeout=SEND_TIMEOUT, write_timeout=SEND_TIMEOUT
        )
        senders["telegram"] = TelegramSender(Bot(settings.telegram_bot_token, request=request))
    return senders


def status_callback_url(settings: Settings) -> str | None:
    """PUBLIC_BASE_URL + the receipts route; None (no receipts asked) when it is unset."""
    if not settings.public_base_url:
        return None
    return settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH


def close_senders(senders: dict[str, Sender]) -> None:
    for sender in {id(s): s for s in senders.values()}.values():  # one may serve two keys
        sender.close()
