"""The agent menu's screens: what each one asks, and where each answer leads.

`SCREENS` is the table: a screen has a prompt and a step that reads one input and returns
an outcome (bot/agents/state.py).  Steps have no side effects, so the menu can replay
a whole input path on every request; the PIN screen's step is the exception and lives in
bot/agents/menu.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.agents.state import (
    Ctx,
    Finish,
    Outcome,
    Retry,
    Screen,
    State,
    label,
    owner_phone,
)
from bot.domain import ADMIN, MAX_CODE_DAYS
from bot.ledger import devices, room
from bot.storage.models import Device, Payment
from bot.text import gsm7
from bot.text.phones import mask, try_normalise

PIN, MENU = "pin", "menu"
_DAYS = re.compile(r"[0-9]{1,4}")
NAME_LENGTH = (2, 40)


def days_left_today(ctx: Ctx) -> int | None:
    """Days this agent may still sell in the rolling 24 hours; None when there is no cap."""
    cap = ctx.settings.agent_daily_days_cap
    if cap <= 0:
        return None
    sold = ctx.session.scalar(
        select(func.coalesce(func.sum(Payment.days), 0)).where(
            Payment.agent_id == ctx.agent.id,
            Payment.reference != ctx.reference,
            Payment.created_at >= ctx.deps.clock() - timedelta(hours=24),
        )
    )
    assert sold is not None  # COALESCE(SUM(...), 0): an aggregate always has its one row
    return max(cap - int(sold), 0)


# -- steps ----------------------------------------------------------------------------

FLOWS = {
    "1": ("sell_device", {}),
    "2": ("register_device", {}),
    "3": ("resend_device", {}),
    "4": ("status_device", {}),
    "5": ("special_device", {"kind": "free"}),
    "6": ("special_device", {"kind": "reset"}),
}
ADMIN_ONLY = ("5", "6")


def menu(ctx: Ctx, state: State, value: str) -> Outcome:
    if value not in FLOWS:
        return Retry("ussd_hint_choice")
    screen, values = FLOWS[value]
    if value in ADMIN_ONLY and ctx.agent.role != ADMIN:
        return Finish("admin_only", state)
    return state.to(screen, **values)


def device_then(
    then: Callable[[State, Device], Outcome],
) -> Callable[[Ctx, State, str], Outcome]:
    """A step that reads a device of the fleet, then hands on to `then`."""

    def step(ctx: Ctx, state: State, value: str) -> Outcome:
        device = devices.find(ctx.session, value)
        if device is None:
            return Retry("ussd_hint_device")
        return then(State(state.screen, {**state.data, "device": device}), device)

    return step


def _sell_device(state: State, device: Device) -> Outcome:
    if device.owner_id is None:
        return Retry("ussd_hint_no_owner", {"device": label(device)})
    return state.to("sell_days")


def sell_days(ctx: Ctx, state: State, value: str) -> Outcome:
    days = int(value) if _DAYS.fullmatch(value) else 0
    if not 1 <= days <= MAX_CODE_DAYS:
        return Retry("ussd_hint_days")
    left = days_left_today(ctx)
    if left is not None and days > left:
        return Retry("ussd_hint_cap", {"left": left})
    fits = days_that_fit(ctx, state.data["device"])
    if days > fits:  # the credit-ahead cap: say how many days can be sold now
        return Retry("ussd_hint_room", {"left": fits})
    return state.to("sell_confirm", days=days)


def days_that_fit(ctx: Ctx, device: Device) -> int:
    """Days one more code may carry now, after the paid days already held as credit."""
    held = max(ctx.deps.ledger.unspent_days(ctx.session, device), 0)
    return max(room(device, ctx.deps.clock()) - held, 0)


def one_then(then: Callable[[State], Outcome]) -> Callable[[Ctx, State, str], Outcome]:
    """A confirm step: `1` goes on to `then`; anything else is re-asked."""

    def step(ctx: Ctx, state: State, value: str) -> Outcome:
        return then(state) if value == "1" else Retry("ussd_hint_confirm")

    return step


def phone(ctx: Ctx, state: State, value: str) -> Outcome:
    number = try_normalise(value, ctx.settings.default_region)
    if number is None:
        return Retry("ussd_hint_phone")
    return state.to("register_name", phone=number)


def name(ctx: Ctx, state: State, value: str) -> Outcome:
    text = " ".join(value.split())
    low, high = NAME_LENGTH
    if not low <= len(text) <= high or not gsm7.is_gsm7(text):
        return Retry("ussd_hint_name")
    return state.to("register_confirm", name=text)


# -- the table ------------------------------------------------------------------------


def _ask(key: str, **extra: Callable[[State], Any]) -> Callable[[Ctx, State], str]:
    """A prompt: template `key` with the device's label and values drawn from the state."""

    def prompt(ctx: Ctx, state: State) -> str:
        values = {k: f(state) for k, f in extra.items()}
        if "device" in state.data:
            values.setdefault("device", label(state.data["device"]))
        return ctx.say(key, **values)

    return prompt


def _special_prompt(ctx: Ctx, state: State) -> str:
    return ctx.say(f"ussd_confirm_{state.data['kind']}", device=label(state.data["device"]))


SCREENS: dict[str, Screen] = {
    PIN: Screen(_ask("ussd_pin"), None, nav=False),
    MENU: Screen(_ask("ussd_menu"), menu, nav=False),
    "sell_device": Screen(_ask("ussd_ask_device"), device_then(_sell_device)),
    "sell_days": Screen(_ask("ussd_ask_days"), sell_days),
    "sell_confirm": Screen(
        _ask(
            "ussd_confirm_sale",
            owner=lambda s: owner_phone(s.data["device"]),
            days=lambda s: s.data["days"],
        ),
        one_then(lambda s: Finish("sell", s)),
    ),
    "register_device": Screen(
        _ask("ussd_ask_device"),
        device_then(lambda s, d: s.to("register_transfer" if d.owner_id else "register_phone")),
    ),
    "register_transfer": Screen(
        _ask("ussd_confirm_transfer", owner=lambda s: owner_phone(s.data["device"])),
        one_then(lambda s: s.to("register_phone")),
    ),
    "register_phone": Screen(_ask("ussd_ask_phone"), phone),
    "register_name": Screen(_ask("ussd_ask_name"), name),
    "register_confirm": Screen(
        _ask(
            "ussd_confirm_register",
            name=lambda s: s.data["name"],
            phone=lambda s: mask(s.data["phone"]),
        ),
        one_then(lambda s: Finish("register", s)),
    ),
    "resend_device": Screen(_ask("ussd_ask_device"), device_then(lambda s, d: Finish("resend", s))),
    "status_device": Screen(_ask("ussd_ask_device"), device_then(lambda s, d: Finish("status", s))),
    "special_device": Screen(
        _ask("ussd_ask_device"), device_then(lambda s, d: s.to("special_confirm"))
    ),
    "special_confirm": Screen(_special_prompt, one_then(lambda s: Finish("special", s))),
}


def render(ctx: Ctx, state: State, hint: Retry | None) -> str:
    """The screen's text: the hint (if re-asked), the prompt, and the navigation line."""
    screen = SCREENS[state.screen]
    parts = [ctx.say(hint.key, **hint.values)] if hint is not None else []
    parts.append(screen.prompt(ctx, state))
    if screen.nav:
        parts.append(ctx.say("ussd_nav"))
    return "\n".join(parts)
