"""`ovbot telegram set-webhook URL`: register the webhook, and the bot's command menu.

The webhook is set with the secret token Telegram then sends on every update, for the
updates the bot reads (messages, and the buttons it offers). The command menu is set once
per language (setMyCommands with language_code), so a Telegram client shows the commands
in its user's language, plus a default list in DEFAULT_LANGUAGE for every other language.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from bot.cli.context import _Context
from bot.settings import ConfigError

if TYPE_CHECKING:
    from telegram import Bot

ALLOWED_UPDATES = ["message", "callback_query"]


def _bot(token: str) -> Bot:
    from telegram import Bot

    return Bot(token)


# How the command builds its Bot; a test hands in one whose HTTP layer is fake.
make_bot: Callable[[str], Bot] = _bot


@click.group("telegram", short_help="Telegram bot set-up.")
def telegram_group() -> None:
    """Telegram bot set-up: the webhook and the command menu."""


@telegram_group.command("set-webhook", short_help="Register the webhook and the commands.")
@click.argument("url")
@click.pass_obj
def telegram_set_webhook(c: _Context, url: str) -> None:
    """Register URL (https://…/webhooks/telegram) with Telegram, with the secret token.

    Also sets the bot's command menu in every language of config/messages (en, fr, sw),
    and in DEFAULT_LANGUAGE for the others.
    """
    from telegram.error import TelegramError

    from bot.customers.telegram_link import bot_commands

    try:
        c.settings.require("TELEGRAM_BOT_TOKEN", "TELEGRAM_SECRET_TOKEN")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    token, secret = c.settings.telegram_bot_token, c.settings.telegram_secret_token
    if token is None or secret is None:  # cannot happen: required just above
        raise click.ClickException("missing required setting(s): TELEGRAM_BOT_TOKEN")
    if not url.startswith("https://"):
        raise click.BadParameter("Telegram only calls https URLs", param_hint="URL")
    from bot.text.templates import Messages

    menu = bot_commands(Messages.load())
    try:
        ok = asyncio.run(register(make_bot(token), url, secret, menu, c.settings.default_language))
    except TelegramError as exc:
        raise click.ClickException(f"Telegram refused: {exc}") from None
    if not ok:
        raise click.ClickException("Telegram did not confirm the webhook")
    click.echo(f"webhook set to {url}")
    click.echo(f"commands set in {', '.join(sorted(menu))} (default {c.settings.default_language})")


async def register(
    bot: Bot,
    url: str,
    secret: str,
    menu: dict[str, list[tuple[str, str]]],
    default_language: str,
) -> bool:
    """setWebhook, then setMyCommands per language and once without one (the default)."""
    from telegram import BotCommand

    async with bot:
        ok = await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
        for lang, entries in sorted(menu.items()):
            commands = [BotCommand(name, description) for name, description in entries]
            await bot.set_my_commands(commands, language_code=lang)
        default = menu.get(default_language) or next(iter(menu.values()))
        await bot.set_my_commands([BotCommand(n, d) for n, d in default])
    return bool(ok)
