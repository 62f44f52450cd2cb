"""`ovbot chat`: type as a customer; each line goes through the real webhook stack.

Requests are built exactly as the providers send them and signed as the server checks
them (Twilio's signature with TWILIO_AUTH_TOKEN over PUBLIC_BASE_URL + path, Telegram's
secret header), then posted over httpx: to the app in-process (`httpx.WSGITransport`), or
to a running server (`--url`). The reply is read back from the TwiML or the JSON.
WhatsApp is Twilio's same form on the same route, both addresses written `whatsapp:+…`.

On Telegram, buttons are shown in brackets: `/contact` shares one's number (the
request_contact button), `/pick LABEL` presses an inline button (a callback_query). A
pressed button is answered with answerCallbackQuery and its reply is pushed through the
outbox; in-process, `pushes` shows what was queued for the chat (read only).
"""

from __future__ import annotations

import itertools
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from bot.settings import Settings
from bot.storage.models import OutboxMessage

SMS_PATH, TELEGRAM_PATH = "/webhooks/twilio/sms", "/webhooks/telegram"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)  # a reply may wait for a mint (REPLY_BUDGET)
CHANNELS = ("sms", "whatsapp", "telegram")
TWILIO_CHANNELS = ("sms", "whatsapp")  # one route, one form
WHATSAPP_SANDBOX = "whatsapp:+14155238886"  # Twilio's WhatsApp sandbox number
# Why a server refuses a signed request: the secrets here are not the server's.
FORBIDDEN = {
    "sms": "refused: the server's TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL must be the ones here",
    "whatsapp": (
        "refused: the server's TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL must be the ones here"
    ),
    "telegram": "refused: the server's TELEGRAM_SECRET_TOKEN must be the one here",
}


class ChatError(Exception):
    """The server could not be reached or did not answer; the text says which."""


class Chat:
    """One customer's console session against a server (in-process or remote)."""

    def __init__(
        self,
        http: httpx.Client,
        settings: Settings,
        phone: str,
        channel: str = "sms",
        telegram_user_id: int | None = None,
        *,
        sign_base_url: str | None = None,
        pushes: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.http, self.settings, self.phone, self.channel = http, settings, phone, channel
        # One Telegram user per phone, so chatting as another number is another person.
        self.user_id = telegram_user_id or int("".join(filter(str.isdigit, phone)) or 777000111)
        self._ids = itertools.count(time.time_ns() // 1000)  # new ids in every session
        # The URL Twilio would have called: what the server checks the signature against.
        self.sign_base_url = settings.public_base_url or sign_base_url or str(http.base_url)
        self.pushes = pushes
        self.buttons: dict[str, str] = {}  # inline button label (upper case) -> callback data

    def send(self, text: str) -> list[str]:
        if self.channel in TWILIO_CHANNELS:
            return self._sms(text)
        return self._telegram(text=text)

    def share_contact(self) -> list[str]:
        """Telegram: share one's own contact, as the request_contact button does."""
        return self._telegram(
            contact={
                "phone_number": self.phone.lstrip("+"),
                "first_name": "Demo",
                "user_id": self.user_id,
            }
        )

    def pick(self, label: str) -> list[str]:
        """Telegram: press the inline button `label` of the last reply (a callback_query)."""
        data = self.buttons.get(label.strip().upper())
        if data is None:
            shown = ", ".join(self.buttons) or "none"
            return [f"[no button {label.strip() or '?'}; buttons: {shown}]"]
        update_id = next(self._ids)
        query = {
            "id": str(update_id),
            "from": self._user(),
            "chat_instance": str(self.user_id),
            "data": data,
            "message": {
                "message_id": update_id,
                "date": 1_800_000_000,
                "chat": self._chat(),
                "text": "(the message with the buttons)",
            },
        }
        return self._post_telegram({"update_id": update_id, "callback_query": query})

    # -- the providers' requests ------------------------------------------------------------

    def _sms(self, text: str) -> list[str]:
        form = {
            "MessageSid": f"SM{next(self._ids):032x}",  # Twilio's shape: SM + 32 hex
            "AccountSid": self.settings.twilio_account_sid or "AC" + "0" * 32,
            "From": self.phone,
            "To": self.settings.twilio_from_number or "+15005550006",
            "Body": text,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        if self.channel == "whatsapp":  # as Twilio posts a WhatsApp message
            form["From"] = "whatsapp:" + self.phone
            form["To"] = self.settings.twilio_whatsapp_from or WHATSAPP_SANDBOX
            if not form["To"].startswith("whatsapp:"):
                form["To"] = "whatsapp:" + form["To"]
            form.update(WaId=self.phone.lstrip("+"), ProfileName="Demo", MessageType="text")
        headers = {}
        if self.settings.twilio_auth_token:  # unsigned: only a demo server takes it
            url = self.sign_base_url.rstrip("/") + SMS_PATH
            validator = RequestValidator(self.settings.twilio_auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(url, form)
        response = self._post(SMS_PATH, data=form, headers=headers)
        if response.status_code != 200:
            return [self._refused(response)]
        return [m.text or "" for m in ET.fromstring(response.content).iter("Message")]

    def _user(self) -> dict[str, Any]:
        return {"id": self.user_id, "is_bot": False, "first_name": "Demo"}

    def _chat(self) -> dict[str, Any]:
        return {"id": self.user_id, "type": "private", "first_name": "Demo"}

    def _telegram(self, **content: object) -> list[str]:
        update_id = next(self._ids)
        message = {
            "message_id": update_id,
            "date": 1_800_000_000,
            "from": self._user(),
            "chat": self._chat(),
            **content,
        }
        return self._post_telegram({"update_id": update_id, "message": message})

    def _post_telegram(self, update: dict[str, Any]) -> list[str]:
        secret = self.settings.telegram_secret_token
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        response = self._post(TELEGRAM_PATH, json=update, headers=headers)
        if response.status_code != 200:
            return [self._refused(response)]
        if not response.content:
            return []
        return self._shown(json.loads(response.content))

    def _shown(self, call: dict[str, Any]) -> list[str]:
        """What a Bot API call in a webhook answer shows the user."""
        if call.get("method") == "answerCallbackQuery":
            pushed = self.pushes(str(self.user_id)) if self.pushes else None
            if pushed is None:
                return ["[button answered; the reply is pushed to the chat by the worker]"]
            return pushed
        lines = [str(call.get("text", ""))]
        markup = call.get("reply_markup") or {}
        for row in markup.get("keyboard", []):
            for button in row:
                if button.get("request_contact"):
                    lines.append(f"[button: {button['text']} - type /contact]")
        inline = [b for row in markup.get("inline_keyboard", []) for b in row]
        if inline:
            self.buttons = {str(b["text"]).upper(): str(b["callback_data"]) for b in inline}
            labels = " | ".join(str(b["text"]) for b in inline)
            lines.append(f"[buttons: {labels} - type /pick {inline[0]['text']}]")
        return lines

    def _refused(self, response: httpx.Response) -> str:
        if response.status_code == 403:
            return f"[HTTP 403 {FORBIDDEN[self.channel]}]"
        return f"[HTTP {response.status_code}]"

    def _post(self, path: str, **request: Any) -> httpx.Response:
        try:
            return self.http.post(path, **request)
        except httpx.TimeoutException:
            raise ChatError(f"{self.http.base_url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise ChatError(f"cannot reach {self.http.base_url}: {exc}") from None


def remote(url: str, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client for a running server at `url`; ChatError unless its /healthz answers."""
    http = httpx.Client(base_url=url, timeout=TIMEOUT, transport=transport)
    try:
        http.get("/healthz")
    except httpx.HTTPError as exc:
        http.close()
        raise ChatError(f"cannot reach the server at {url}: {exc} (is it running?)") from None
    return http


def outbox_peek(sessions: sessionmaker[Session]) -> Callable[[str], list[str]]:
    """The messages queued for a Telegram chat since the last look (read only: the worker
    still sends them)."""
    with sessions() as session:
        seen = session.scalar(select(func.max(OutboxMessage.id))) or 0

    def look(chat_id: str) -> list[str]:
        nonlocal seen
        with sessions() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.id > seen, OutboxMessage.recipient == chat_id)
                .order_by(OutboxMessage.id)
            ).all()
            seen = max([seen, *(r.id for r in rows)])
            return [f"(pushed) {r.body}" for r in rows]

    return look


def run(chat: Chat, lines: Iterable[str], write: Callable[[str], None]) -> None:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if line.lower() in {"/quit", "/exit"}:
            break
        try:
            replies = _one(chat, line)
        except ChatError as exc:
            replies = [f"[{exc}]"]
        for reply in replies or ["(no reply)"]:
            write("bot> " + reply.replace("\n", "\n     "))


def _one(chat: Chat, line: str) -> list[str]:
    if chat.channel == "telegram":
        if line == "/contact":
            return chat.share_contact()
        if line.lower().startswith("/pick"):
            return chat.pick(line[len("/pick") :])
    return chat.send(line)
