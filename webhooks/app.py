"""The Flask app factory: the web composition root (`webhooks.app:create_app`)."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import text

from bot import bootstrap
from bot.deps import Deps
from bot.settings import Settings
from bot.text import logs
from webhooks import payments, telegram, twilio, ussd

MAX_BODY = 64 * 1024
CHANNELS = [twilio, telegram, payments, ussd]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, deps: Deps | None = None) -> Flask:
    logs.ensure_configured()
    if settings is None and deps is None:  # production: read and check the environment
        settings = Settings.from_env()
        settings.require_for_production()
    if settings is None:
        assert deps is not None  # both None is the production case, handled above
        settings = deps.settings
    if deps is None:
        deps = bootstrap.build(settings)
        if settings.database_url.startswith("sqlite"):  # the embedded default: no worker
            embed_worker(deps)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # providers send a few KB; refuse floods
    app.extensions["ovbot"] = deps
    for module in CHANNELS:
        app.register_blueprint(module.bp)

    @app.get("/healthz")
    def healthz() -> dict[str, str] | tuple[dict[str, str], int]:
        try:
            with deps.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            log.exception("health check: database did not answer")
            return {"status": "database unavailable"}, 503
        return {"status": "ok"}

    return app


def embed_worker(deps: Deps) -> None:
    """Drain the outbox and settle deferred codes in this process, after each commit."""
    from bot.outbox.senders import build_senders
    from bot.outbox.worker import install_embedded_drain

    install_embedded_drain(deps, build_senders(deps.settings), background=True)
