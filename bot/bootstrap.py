"""The composition root: builds the engine, the Omnivoltaic client and the senders.

Nothing is built at import time; the app factory and the CLI call `build()` once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.storage import db
from bot.customers.conversation import Core
from bot.ledger import Ledger
from bot.text.templates import Messages
from bot.omnivoltaic.client import OmnivoltaicClient
from bot.settings import Settings

log = logging.getLogger(__name__)

EMULATOR_BASE_URL = "http://omnivoltaic-emulator.invalid"


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    http: httpx.Client
    omnivoltaic: OmnivoltaicClient
    core: Core
    extras: dict = field(default_factory=dict)

    def close(self) -> None:
        self.http.close()
        self.engine.dispose()


def omnivoltaic_http(settings: Settings) -> httpx.Client:
    """An httpx client for the real API, or for the emulator mounted in-process."""
    timeout = httpx.Timeout(settings.omnivoltaic_timeout)
    if settings.uses_emulator:
        from bot.omnivoltaic.emulator.app import EmulatorTransport, create_emulator

        app = create_emulator(settings.omnivoltaic_emulator_state,
                              settings.omnivoltaic_emulator_seed)
        return httpx.Client(transport=EmulatorTransport(app), base_url=EMULATOR_BASE_URL,
                            timeout=timeout)
    return httpx.Client(base_url=settings.omnivoltaic_api_url, timeout=timeout)


def build(settings: Settings, *, http: httpx.Client | None = None) -> Services:
    engine = db.make_engine(settings.database_url)
    http = http or omnivoltaic_http(settings)
    username, password = settings.omnivoltaic_credentials
    client = OmnivoltaicClient(http, username, password, timeout=settings.omnivoltaic_timeout)
    # An attempt not seen in the history is released only after the grace: it must outlast
    # any call still in flight, or the same days could be minted twice.
    grace = timedelta(seconds=max(60.0, 3 * settings.omnivoltaic_timeout))
    core = Core(ledger=Ledger(client, grace=grace), messages=Messages.load(), settings=settings)
    return Services(settings=settings, engine=engine, sessions=db.make_sessionmaker(engine),
                    http=http, omnivoltaic=client, core=core)
