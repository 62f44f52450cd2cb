"""Africa's Talking SMS: the outbox's sender, over httpx against the documented endpoint.

`POST https://api.africastalking.com/version1/messaging` (the sandbox's host when the
username is `sandbox`), form `username, to, message, from, linkId`, header `apiKey`,
`Accept: application/json`.  The answer names each recipient:

    {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
      "Recipients": [{"statusCode": 101, "number": "+254712345678", "status": "Success",
                      "cost": "KES 0.8000", "messageId": "ATXid_..."}]}}

and its `messageId` is what the delivery reports name (bot/outbox/receipts.py).  Every
failure becomes one of bot/outbox/senders.py's errors, never an httpx exception:

- no connection made, 401/403 (the key: fix it, the message waits), 429, 5xx, and the
  recipient codes that are ours or the gateway's to fix (402 InvalidSenderId,
  405 InsufficientBalance, 500 InternalServerError, 501 GatewayError) → NotSent;
- another 4xx, no recipient in the answer, and the recipient codes that are about this
  number or this message (401 RiskHold, 403 InvalidPhoneNumber, 404 UnsupportedNumberType,
  406 UserInBlacklist, 407 CouldNotRoute, 409 DoNotDisturbRejection, 502
  RejectedByGateway) → Undeliverable;
- a timeout after the request went, an answer we cannot read, a code we do not know
  → OutcomeUnknown (sent again after a backoff: a code twice is harmless).
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.outbox.senders import (
    SEND_TIMEOUT,
    NotSent,
    OutcomeUnknown,
    SendError,
    SendResult,
    Undeliverable,
)
from bot.settings import Settings

LIVE_URL = "https://api.africastalking.com/version1/messaging"
SANDBOX_URL = "https://api.sandbox.africastalking.com/version1/messaging"
ACCEPTED = {100, 101, 102}  # Processed, Sent, Queued
RETRY_LATER = {402, 405, 500, 501}
REFUSED = {401, 403, 404, 406, 407, 409, 502}


class AfricasTalkingSender:
    channel = "sms"

    def __init__(
        self,
        http: httpx.Client,
        username: str,
        api_key: str,
        sender_id: str | None = None,
    ) -> None:
        self.http, self.username, self.api_key, self.sender_id = http, username, api_key, sender_id
        self.url = SANDBOX_URL if username == "sandbox" else LIVE_URL

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
        return _result(response)

    def close(self) -> None:
        self.http.close()


def _result(response: httpx.Response) -> SendResult:
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
    return _recipient(recipients[0])


def _recipient(recipient: Any) -> SendResult:
    if not isinstance(recipient, dict):
        raise OutcomeUnknown(f"africastalking: unreadable recipient {recipient!r}")
    code, status = recipient.get("statusCode"), recipient.get("status")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if code in ACCEPTED or (code is None and status == "Success"):
        return SendResult(str(recipient.get("messageId") or ""))
    raise _refusal(code, f"africastalking: recipient status {code} {status}")


def _refusal(code: object, text: str) -> SendError:
    if code in RETRY_LATER:
        return NotSent(text)
    if code in REFUSED:
        return Undeliverable(text)
    return OutcomeUnknown(text)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
