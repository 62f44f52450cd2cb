"""`ovbot telegram set-webhook URL`: the webhook and the command menu, per language.

A real `telegram.Bot` runs on a fake HTTP layer (tests/fakes.py `FakeTelegramRequest`):
the Bot API calls it would make are recorded, nothing reaches the network.
"""

from __future__ import annotations

import json
import re

import pytest
from telegram import Bot

from bot.cli import telegram as telegram_cli
from bot.customers import commands
from bot.customers.telegram_link import MENU, bot_commands
from bot.text.templates import Messages
from tests.fakes import FakeTelegramRequest
from tests.harness import ovbot

URL = "https://bot.example.com/webhooks/telegram"
NAME = re.compile(r"[a-z0-9_]{1,32}")


@pytest.fixture
def telegram(home, monkeypatch):
    """The Bot API as the command sees it; set-webhook's settings in the environment."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "secret")
    fake = FakeTelegramRequest()
    monkeypatch.setattr(
        telegram_cli, "make_bot", lambda token: Bot(token, request=fake, get_updates_request=fake)
    )
    return fake


def test_set_webhook_registers_the_secret_and_the_updates_it_reads(telegram):
    result = ovbot("telegram", "set-webhook", URL)
    assert result.exit_code == 0 and f"webhook set to {URL}" in result.stdout
    [webhook] = [params for name, params in telegram.calls if name == "setWebhook"]
    assert webhook["url"] == URL and webhook["secret_token"] == "secret"
    assert json.loads(webhook["allowed_updates"]) == ["message", "callback_query"]


def test_set_webhook_sets_the_commands_in_every_language_and_a_default(telegram, monkeypatch):
    monkeypatch.setenv("DEFAULT_LANGUAGE", "sw")
    assert ovbot("telegram", "set-webhook", URL).exit_code == 0
    menus = {
        params.get("language_code"): [c["command"] for c in json.loads(params["commands"])]
        for name, params in telegram.calls
        if name == "setMyCommands"
    }
    assert set(menus) == {"en", "fr", "sw", None}
    assert menus["en"] == ["code", "resend", "status", "history", "devices", "lang", "help", "stop"]
    assert menus["fr"][:3] == ["code", "renvoyer", "solde"]
    assert menus[None] == menus["sw"] and menus["sw"][0] == "namba"


@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_every_menu_command_is_read_back_as_its_command(lang):
    """A command tapped in the Telegram menu arrives as "/name": the parser must read it."""
    menu = bot_commands(Messages.load())[lang]
    assert [commands.parse("/" + name).name for name, _ in menu] == list(MENU)
    for name, description in menu:
        assert NAME.fullmatch(name) and 0 < len(description) <= 256
    assert len({name for name, _ in menu}) == len(menu)


def test_telegram_refusing_is_a_clean_error(telegram):
    telegram.answers["setWebhook"] = False
    result = ovbot("telegram", "set-webhook", URL)
    assert result.exit_code == 1 and "did not confirm" in result.stderr
