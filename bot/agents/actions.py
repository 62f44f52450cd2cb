"""What the agent menu does when a session ends: each action returns the END screen.

Actions run only for the last input of a path (bot/agents/menu.py makes sure), and every
write is idempotent on the USSD session: the payment reference and the mint request keys
derive from it, so a replayed confirm returns the same code and mints nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from bot.agents.state import Ctx, State, label
from bot.inbound import Reply
from bot.ledger.outcome import attempt
from bot.outbox import queue as outbox
from bot.storage.models import Code, Customer, Device, OutboxMessage
from bot.text.phones import mask
from bot.text.templates import format_date

log = logging.getLogger(__name__)
SCREEN_SIZE = 160


def end(text: str) -> Reply:
    return Reply.say(text, end=True)


SALE_FAILED = {
    "pending": "ussd_sold_pending",
    "unavailable": "ussd_sold_unavailable",
    "refused": "ussd_sold_refused",
}
SPECIAL_FAILED = {
    "already_free": "ussd_already_free",
    "pending": "ussd_special_pending",
    "unavailable": "ussd_unavailable",
    "refused": "ussd_special_refused",
}


def sell(ctx: Ctx, state: State) -> Reply:
    device, days = state.data["device"], state.data["days"]
    ledger, values = ctx.deps.ledger, dict(device=label(device), days=days)
    ledger.record_payment(
        ctx.session,
        reference=ctx.reference,
        device=device,
        days=days,
        source="agent",
        agent_id=ctx.agent.id,
        phone=device.owner.phone,
    )
    outcome = attempt(
        lambda: ledger.mint_days(
            ctx.session,
            device,
            request_key=f"{ctx.reference}:sell:{device.id}",
            channel="ussd",
            requested_by=ctx.agent.phone,
            timeout=ctx.settings.ussd_mint_budget,
        ),
        f"USSD sale for device {device.product_id}",
    )
    result = outcome.result
    if result is None:  # recorded, not minted yet: a repeat of this request tries again
        failed = SALE_FAILED[outcome.failure or "unavailable"]
        return Reply.say(ctx.say(failed, **values), final=outcome.failure == "refused")
    if not result.codes:
        if not result.new:  # a retry of a session whose mint had failed
            return end(ctx.say("ussd_sold_unavailable", **values))
        if result.held:  # over the credit-ahead cap (the days screen checked; a race)
            return end(ctx.say("ussd_sold_held", **values))
        # A concurrent request minted these days first: its code holds them.
        latest = ledger.latest_code(ctx.session, device)
        if latest is None:
            return end(ctx.say("ussd_sold_pending", **values))
        return end(_sold_screen(ctx, device, (latest,), sent=False))
    return end(_sold_screen(ctx, device, result.codes, _push(ctx, device, result.codes)))


def _push(ctx: Ctx, device: Device, codes: tuple[Code, ...]) -> bool:
    """Queue the codes for the owner, unless already queued (a retry after a crash)."""
    queued = set(
        ctx.session.scalars(
            select(OutboxMessage.code_id).where(OutboxMessage.code_id.in_([c.id for c in codes]))
        )
    )
    fresh = [c for c in codes if c.id not in queued]
    if fresh:
        return bool(outbox.notify_codes(ctx.session, ctx.deps.messages, device, fresh))
    return bool(queued)


def _sold_screen(ctx: Ctx, device: Device, codes: tuple[Code, ...], sent: bool) -> str:
    if len(codes) == 1:
        text = ctx.say("ussd_sold", device=label(device), days=codes[0].days, code=codes[0].code)
    else:
        text = _codes_screen(ctx, device, codes)
    if sent:
        text += "\n" + ctx.say("ussd_sent")
    if len(text) > SCREEN_SIZE:  # four codes or more: they went out by message
        text = ctx.say("ussd_sold_too_many", device=label(device), count=len(codes))
        if sent:
            text += "\n" + ctx.say("ussd_sent")
    return text


def _codes_screen(ctx: Ctx, device: Device, codes: tuple[Code, ...]) -> str:
    """Several codes on one screen, in the order to enter them."""
    return ctx.say(
        "ussd_sold_many",
        device=label(device),
        count=len(codes),
        codes="\n".join(_text(c) for c in codes),
    )


def _text(code: Code) -> str:
    """The text of a minted code: the schema's CHECK (minted_has_code) makes it non-null."""
    assert code.code is not None, f"minted code {code.id} has no text"
    return code.code


def register(ctx: Ctx, state: State) -> Reply:
    device, phone, name = state.data["device"], state.data["phone"], state.data["name"]
    customer = ctx.session.scalar(select(Customer).where(Customer.phone == phone))
    if customer is None:
        customer = Customer(phone=phone, language=ctx.settings.default_language)
        ctx.session.add(customer)
    customer.name = name
    ctx.session.flush()
    device.owner = customer
    ctx.session.flush()
    log.info(
        "agent %s registered device %s to customer %s", ctx.agent.id, device.product_id, customer.id
    )
    return end(ctx.say("ussd_registered", device=label(device), name=name, phone=mask(phone)))


def resend(ctx: Ctx, state: State) -> Reply:
    """The latest mint's codes again (all of them, in entry order), and to the owner."""
    device = state.data["device"]
    codes = ctx.deps.ledger.latest_codes(ctx.session, device)
    if not codes:
        return end(ctx.say("ussd_no_code", device=label(device)))
    latest = codes[-1]
    if len(codes) == 1:
        text = ctx.say(
            "ussd_resent",
            device=label(device),
            code=latest.code,
            date=format_date(latest.minted_at),
        )
    else:
        text = _codes_screen(ctx, device, codes)
    if outbox.resend_codes(ctx.session, ctx.deps.messages, device, codes):
        text += "\n" + ctx.say("ussd_sent")
    if len(text) > SCREEN_SIZE:
        text = ctx.say("ussd_sold_too_many", device=label(device), count=len(codes))
    return end(text)


def status(ctx: Ctx, state: State) -> Reply:
    device = state.data["device"]
    latest = ctx.deps.ledger.latest_code(ctx.session, device)
    until = {"free": "ussd_state_free", "locked": "ussd_state_locked"}.get(device.state)
    owner = mask(device.owner.phone) if device.owner else ctx.say("ussd_no_owner")
    return end(
        ctx.say(
            "ussd_status",
            device=label(device),
            owner=owner,
            until=ctx.say(until) if until else format_date(device.credit_until),
            date=format_date(latest.minted_at) if latest else "-",
        )
    )


def special(ctx: Ctx, state: State) -> Reply:
    device, kind = state.data["device"], state.data["kind"]
    outcome = attempt(
        lambda: ctx.deps.ledger.mint_special(
            ctx.session,
            device,
            kind,
            request_key=f"{ctx.reference}:{kind}:{device.id}",
            channel="ussd",
            requested_by=ctx.agent.phone,
            timeout=ctx.settings.ussd_mint_budget,
        ),
        f"USSD {kind} code for device {device.product_id}",
    )
    if outcome.result is None:
        failed = SPECIAL_FAILED[outcome.failure or "unavailable"]
        final = outcome.failure in ("refused", "already_free")
        return Reply.say(ctx.say(failed, device=label(device)), final=final)
    codes = outcome.result.codes
    adopted = tuple(c for c in codes if c.kind == "days")
    if adopted:  # never shown before: the owner gets them too
        _push(ctx, device, adopted)
    if not codes:  # a retry of a session whose mint had failed
        return end(ctx.say("ussd_unavailable"))
    if any(c.kind == kind for c in codes):
        log.info("agent %s made a %s code for device %s", ctx.agent.id, kind, device.product_id)
    if len(codes) == 1 and codes[0].kind == kind:
        return end(ctx.say(f"ussd_{kind}_done", device=label(device), code=_text(codes[0])))
    # Days codes adopted on the way come first, in the order to enter them; when the
    # special code could not be made, they are still shown (and were pushed).
    text = _codes_screen(ctx, device, codes)
    if len(text) > SCREEN_SIZE:
        text = ctx.say("ussd_sold_too_many", device=label(device), count=len(codes))
    return end(text)


def admin_only(ctx: Ctx, state: State) -> Reply:
    return end(ctx.say("ussd_admin_only"))


def locked(ctx: Ctx, state: State) -> Reply:
    return end(ctx.say("ussd_locked", minutes=ctx.settings.agent_lock_minutes))


ACTIONS: dict[str, Callable[[Ctx, State], Reply]] = {
    "sell": sell,
    "register": register,
    "resend": resend,
    "status": status,
    "special": special,
    "admin_only": admin_only,
    "locked": locked,
}
