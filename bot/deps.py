"""The dependency bag: everything a use case needs, built once by bot/bootstrap.py.

Use cases (the conversation, the agent menu, payments, the worker) take a `Deps` and read
what they need from it; none of them builds anything.  Settings live here and only here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.ledger import Ledger
from bot.omnivoltaic.client import OmnivoltaicClient
from bot.settings import Settings
from bot.storage import db
from bot.storage.models import utcnow
from bot.text.templates import Messages

log = logging.getLogger(__name__)


@dataclass
class Deps:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    http: httpx.Client
    omnivoltaic: OmnivoltaicClient
    ledger: Ledger
    messages: Messages
    clock: Callable[[], datetime] = utcnow
    # Work to run once an inbound message's transaction has committed (the embedded
    # outbox drain); set by whoever runs one.
    after_commit: Callable[[], None] | None = field(default=None)

    def say(self, language: str | None, key: str, **values: object) -> str:
        return self.messages.render(language, key, **values)

    def committed(self, session: Session | None = None) -> None:
        """Run the after-commit hook, never failing the caller: the work is on disk.

        Given the session that committed, only if it queued a message: an answer that
        queued nothing wakes no drain.
        """
        if self.after_commit is None or (session is not None and not db.queued(session)):
            return
        try:
            self.after_commit()
        except Exception:
            log.exception("after-commit work failed")

    def close(self) -> None:
        self.http.close()
        self.engine.dispose()
