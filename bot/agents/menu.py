"""The agent USSD menu: `respond(deps, session, inbound) -> Reply` (no Flask here).

USSD gateways send the whole input path on every request ("1234*1*1001*30"), so the menu
keeps no session state: it replays the path, screen by screen (bot/agents/screens.py),
against the database, and ends with the screen the last input leads to.  Only the last
input may act (bot/agents/actions.py); an action reached earlier in a path means the
path is not one a gateway sends, and ends the session.

Navigation: `0` goes back one step and `00` to the menu, on every screen after the PIN.
No legitimate input is ever exactly `0` or `00` (days are 1..1095, PINs 4 to 8 digits,
devices, phones and names are longer), so these keys are never ambiguous; `0` on the menu
itself has nowhere to go and is re-asked.  The PIN screen has no navigation.

PINs: the PIN is inside every later path, so it is verified on every request, but a
wrong PIN counts as a failure only once: when it is the last input, or when its prefix
of the path was never answered before (a crafted path cannot test PINs for free).  A
correct fresh PIN resets the count; three failures lock the agent for
`settings.agent_lock_minutes`.  The PIN is never logged, and the provider id stores a
digest of the path, not the path (see `provider_id`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import metrics
from bot.agents.actions import ACTIONS, end
from bot.agents.pins import verify_pin
from bot.agents.screens import MENU, PIN, SCREENS, render
from bot.agents.state import Ctx, Finish, Next, Retry, State
from bot.deps import Deps
from bot.domain import is_pin
from bot.inbound import Inbound, Reply, Responder
from bot.storage.models import Agent, InboundMessage
from bot.text.phones import mask, try_normalise

log = logging.getLogger(__name__)

BACK, HOME = "0", "00"
MAX_PIN_FAILURES = 3


def provider_id(session_id: str, text: str) -> str:
    """The inbound id of one USSD request: the session plus a digest of the input path.

    A digest, not the path itself, because the path holds the agent's PIN and provider
    ids are stored and may be logged.
    """
    return f"{session_id}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def session_id(inbound: Inbound) -> str:
    return inbound.provider_id.rsplit(":", 1)[0]


def respond(deps: Deps, session: Session, inbound: Inbound) -> Reply:
    language = deps.settings.default_language
    agent = _agent(deps, session, inbound.sender)
    if agent is None or agent.removed_at is not None:
        what = "unknown number" if agent is None else "retired agent"
        log.info("USSD from %s %s refused", what, mask(inbound.sender))
        # A retired agent is answered as a stranger: the number learns nothing more.
        # Not stored (not final): a stranger's requests leave no row behind.
        return Reply.say(deps.say(language, "ussd_unknown_agent"), final=False)
    ctx = Ctx(deps, session, agent, session_id(inbound))
    if agent.locked_until is not None and agent.locked_until > deps.clock():
        minutes = -(-(agent.locked_until - deps.clock()).total_seconds() // 60)
        return end(ctx.say("ussd_locked", minutes=int(minutes)))
    return _replay(ctx, inbound.text.split("*") if inbound.text else [])


def refuse(deps: Deps, key: str) -> Reply:
    """The END screen for a request the edge could not hand on (`ussd_bad_request`, ...)."""
    return end(deps.say(deps.settings.default_language, key))


RESPONDER = Responder(
    respond=respond,
    language=lambda deps, session, inbound: deps.settings.default_language,
    command=lambda inbound: "menu",  # a USSD step; its text holds the PIN: never a label
)


def _agent(deps: Deps, session: Session, sender: str) -> Agent | None:
    phone = try_normalise(sender, deps.settings.default_region)
    if phone is None:
        return None
    # Locked: one request per agent at a time keeps PIN counts and the daily cap exact.
    return session.scalar(select(Agent).where(Agent.phone == phone).with_for_update())


def _replay(ctx: Ctx, inputs: list[str]) -> Reply:
    """Walk the path once: O(its length), with at most MAX_PIN_FAILURES PIN checks."""
    back: list[State] = []
    state, hint, pins = State(PIN), None, 0
    for position, value in enumerate(inputs):
        last, hint = position == len(inputs) - 1, None
        if state.screen == PIN:
            pins += is_pin(value)
            if pins > MAX_PIN_FAILURES:  # no gateway sends this: a replayed guessing path
                return end(ctx.say("ussd_session_over"))
            outcome = _pin(ctx, value, fresh=_freshness(ctx, inputs, position, last))
        elif value == HOME:
            state, back = State(MENU), []
            continue
        elif value == BACK and back:
            state = back.pop()
            continue
        else:
            step = SCREENS[state.screen].step
            assert step is not None  # only the PIN screen has no step, and it is handled above
            outcome = step(ctx, state, value)
        if isinstance(outcome, Next):
            if state.screen != PIN:
                back.append(state)
            state = outcome.state
        elif isinstance(outcome, Retry):
            hint = outcome
        elif last:
            return ACTIONS[outcome.action](ctx, outcome.state)
        else:
            return end(ctx.say("ussd_session_over"))
    return Reply.say(render(ctx, state, hint), end=False)


def _pin(ctx: Ctx, value: str, fresh: Callable[[], bool]) -> Next | Retry | Finish:
    """Check one PIN entry; only a fresh entry changes the agent's failure count.

    `fresh` (a look-up) is asked only for a well-formed PIN, so inputs that are not PINs
    cost nothing but the hint.
    """
    if not is_pin(value):
        return Retry("ussd_hint_pin_format")  # not a PIN at all: not a guess either
    agent = ctx.agent
    if verify_pin(value, agent.pin_hash):
        if fresh():
            agent.failed_attempts, agent.locked_until = 0, None
        return Next(State(MENU))
    if fresh():
        agent.failed_attempts += 1
        if agent.failed_attempts >= MAX_PIN_FAILURES:
            agent.failed_attempts = 0
            agent.locked_until = ctx.deps.clock() + timedelta(
                minutes=ctx.settings.agent_lock_minutes
            )
            log.warning(
                "agent %s (%s) locked for %s minutes after %d wrong PINs",
                agent.id,
                mask(agent.phone),
                ctx.settings.agent_lock_minutes,
                MAX_PIN_FAILURES,
            )
            metrics.agent_locked_out()
            return Finish("locked", State(PIN))
    return Retry("ussd_hint_pin_wrong", {"left": MAX_PIN_FAILURES - agent.failed_attempts})


def _freshness(ctx: Ctx, inputs: list[str], position: int, last: bool) -> Callable[[], bool]:
    """Whether the PIN at `position` is a fresh entry, looked up only when asked."""
    return lambda: last or not _answered(ctx, inputs[: position + 1])


def _answered(ctx: Ctx, path: list[str]) -> bool:
    """Whether the request for this prefix of the path was answered before."""
    return (
        ctx.session.scalar(
            select(InboundMessage.id).where(
                InboundMessage.channel == "ussd",
                InboundMessage.provider_id == provider_id(ctx.session_id, "*".join(path)),
            )
        )
        is not None
    )
