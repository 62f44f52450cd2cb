"""`ovbot chat`: type as a customer; each line goes through the real webhook stack.

Requests are built exactly as the providers send them, signed with the app's own secrets,
and posted to the app in-process; the reply is read back from the TwiML or the JSON.
"""

from __future__ import annotations

import itertools
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twilio.request_validator import RequestValidator

from bot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from flask.testing import FlaskClient

SMS_PATH, TELEGRAM_PATH = "/webhooks/twilio/sms", "/webhooks/telegram"


class Chat:
    """One customer's console session against an app's test client."""

    def __init__(
        self,
        client: FlaskClient,
        settings: Settings,
        phone: str,
        channel: str = "sms",
        telegram_user_id: int | None = None,
    ) -> None:
        self.client, self.settings, self.phone, self.channel = client, settings, phone, channel
        # One Telegram user per phone, so chatting as another number is another person.
        self.user_id = telegram_user_id or int("".join(filter(str.isdigit, phone)) or 777000111)
        self._ids = itertools.count(time.time_ns() // 1000)  # new ids in every session

    def send(self, text: str) -> list[str]:
        return self._sms(text) if self.channel == "sms" else self._telegram(text=text)

    def share_contact(self) -> list[str]:
        """Telegram: share one's own contact, as the request_contact button does."""
        return self._telegram(
            contact={
                "phone_number": self.phone.lstrip("+"),
                "first_name": "Demo",
                "user_id": self.user_id,
            }
        )

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
        base_url = self.settings.public_base_url
        if base_url is None:  # `ovbot chat` always sets one: the signature needs it
            raise ConfigError("missing required setting(s): PUBLIC_BASE_URL")
        url = base_url.rstrip("/") + SMS_PATH
        signature = RequestValidator(self.settings.twilio_auth_token).compute_signature(url, form)
        response = self.client.post(SMS_PATH, data=form, headers={"X-Twilio-Signature": signature})
        if response.status_code != 200:
            return [f"[HTTP {response.status_code}]"]
        return [m.text or "" for m in ET.fromstring(response.data).iter("Message")]

    def _telegram(self, **content: object) -> list[str]:
        update_id = next(self._ids)
        user = {"id": self.user_id, "is_bot": False, "first_name": "Demo"}
        message = {
            "message_id": update_id,
            "date": 1_800_000_000,
            "from": user,
            "chat": {"id": self.user_id, "type": "private", "first_name": "Demo"},
            **content,
        }
        response = self.client.post(
            TELEGRAM_PATH,
            json={"update_id": update_id, "message": message},
            headers={"X-Telegram-Bot-Api-Secret-Token": self.settings.telegram_secret_token},
        )
        if response.status_code != 200:
            return [f"[HTTP {response.status_code}]"]
        if not response.data:
            return []
        call = json.loads(response.data)
        button = call.get("reply_markup", {}).get("keyboard")
        return [call["text"]] + (
            [f"[button: {button[0][0]['text']} - type /contact]"] if button else []
        )


def run(chat: Chat, lines: Iterable[str], write: Callable[[str], None]) -> None:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if line.lower() in {"/quit", "/exit"}:
            break
        replies = (
            chat.share_contact()
            if line == "/contact" and chat.channel == "telegram"
            else chat.send(line)
        )
        for reply in replies or ["(no reply)"]:
            write("bot> " + reply.replace("\n", "\n     "))
