"""The agent menu's vocabulary: the request context, the state of a path, step outcomes.

A step of bot/agents/screens.py returns `Next` (go to a new screen), `Retry` (the same
screen again, with a hint) or `Finish` (a named action of bot/agents/actions.py,
which ends the session).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.settings import Settings
from bot.storage.models import Agent, Device
from bot.text.phones import mask


@dataclass(frozen=True)
class Ctx:
    """One request: the dependencies, the open session, the logged-in agent, the session id."""

    deps: Deps
    session: Session
    agent: Agent
    session_id: str

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    @property
    def reference(self) -> str:
        """The payment reference (and mint key prefix) of this USSD session.

        The agent is part of it (by id: references are logged, phones never): a gateway
        may reuse a session id, and agent B's session must never get agent A's sale.
        """
        return f"ussd:{self.agent.id}:{self.session_id}"

    def say(self, key: str, **values: object) -> str:
        return self.deps.say(self.settings.default_language, key, **values)


@dataclass(frozen=True)
class State:
    screen: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to(self, screen: str, **values: object) -> Next:
        return Next(State(screen, {**self.data, **values}))


@dataclass(frozen=True)
class Next:
    state: State


@dataclass(frozen=True)
class Retry:
    key: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    action: str
    state: State


Outcome = Next | Retry | Finish


@dataclass(frozen=True)
class Screen:
    prompt: Callable[[Ctx, State], str]
    step: Callable[[Ctx, State, str], Outcome] | None
    nav: bool = True  # shows "0 Back 00 Menu"


def label(device: Device) -> str:
    return device.oem_serial or str(device.product_id)


def owner_phone(device: Device) -> str:
    return mask(device.owner.phone) if device.owner is not None else ""
