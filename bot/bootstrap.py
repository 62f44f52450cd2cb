"""The composition root: builds the engine, the Omnivoltaic client and the ledger, once.

Nothing is built at import time; the app factory (webhooks/app.py) and the CLI call
`build()` once and hand the resulting `Deps` on.  The outbox senders are built by whoever
runs a worker (bot/outbox/senders.py `build_senders`), since only they send.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from bot import metrics
from bot.deps import Deps
from bot.ledger import Ledger
from bot.omnivoltaic.client import OmnivoltaicClient
from bot.outbox import queue as outbox
from bot.settings import Settings
from bot.storage import db
from bot.text import logs
from bot.text.templates import Messages

log = logging.getLogger(__name__)

EMULATOR_BASE_URL = "http://omnivoltaic-emulator.invalid"


def omnivoltaic_http(settings: Settings) -> httpx.Client:
    """An httpx client for the real API, or for the emulator mounted in-process.

    Either way it is a `metrics.TimedClient`: the upstream latency by call, measured
    without the API client knowing.
    """
    timeout = httpx.Timeout(settings.omnivoltaic_timeout)
    if settings.uses_emulator:
        from bot.omnivoltaic.emulator import EmulatorTransport, create_emulator

        app = create_emulator(
            settings.omnivoltaic_emulator_state,
            settings.omnivoltaic_emulator_seed,
            fleet=settings.omnivoltaic_emulator_fleet,
        )
        return metrics.TimedClient(
            transport=EmulatorTransport(app), base_url=EMULATOR_BASE_URL, timeout=timeout
        )
    return metrics.TimedClient(base_url=settings.omnivoltaic_api_url or "", timeout=timeout)


def omnivoltaic_client(settings: Settings, http: httpx.Client) -> OmnivoltaicClient:
    """The API client as configured: credentials, login URL, generation, auth scheme."""
    username, password = settings.omnivoltaic_credentials
    return OmnivoltaicClient(
        http,
        username,
        password,
        api_version="v2" if settings.omnivoltaic_api_version == "v2" else "v1",
        auth_scheme=settings.omnivoltaic_auth_scheme,
        login_url=settings.omnivoltaic_login_target,
        timeout=settings.omnivoltaic_timeout,
    )


def pool(settings: Settings) -> db.Pool:
    return db.Pool(
        size=settings.db_pool_size,
        overflow=settings.db_max_overflow,
        recycle=settings.db_pool_recycle,
        statement_timeout=settings.db_statement_timeout,
    )


def build(settings: Settings, *, http: httpx.Client | None = None) -> Deps:
    logs.hide_settings(settings)  # the live secrets never reach a log in clear
    engine = db.make_engine(settings.database_url, pool(settings))
    http = http or omnivoltaic_http(settings)
    client = omnivoltaic_client(settings, http)
    # An attempt may start to be sent until its send deadline (reserve + send window); it
    # is released only once the deadline plus the answer window (grace) has passed and
    # the history does not hold it: the grace must outlast any answer still on its way.
    send_window = timedelta(seconds=settings.omnivoltaic_timeout)
    grace = timedelta(seconds=max(60.0, 3 * settings.omnivoltaic_timeout))
    return Deps(
        settings=settings,
        engine=engine,
        sessions=db.make_sessionmaker(engine, outbox.session_info(settings)),
        http=http,
        omnivoltaic=client,
        ledger=Ledger(client, grace=grace, send_window=send_window),
        messages=Messages.configured(settings.config_dir),
    )
