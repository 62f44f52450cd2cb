"""The Flask app factory: the web composition root (`webhooks.app:create_app`)."""
from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import text

from bot.text import logs
from bot import bootstrap as wiring
from bot.settings import Settings
from webhooks import payments, telegram, twilio, ussd

MAX_BODY = 64 * 1024
CHANNELS = [twilio, telegram, payments, ussd]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: "wiring.Services | None" = None
               ) -> Flask:
    logs.ensure_configured()
    if settings is None and services is None:  # production: read and check the environment
        settings = Settings.from_env()
        settings.require_for_production()
    settings = settings or services.settings
    if services is None:
        services = wiring.build(settings)
        if settings.database_url.startswith("sqlite"):  # the embedded default: no worker
            embed_worker(services)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # providers send a few KB; refuse floods
    app.extensions["ovbot"] = services
    for module in CHANNELS:
        app.register_blueprint(module.bp)

    @app.get("/healthz")
    def healthz():
        try:
            with services.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means unhealthy
            log.exception("health check: database did not answer")
            return {"status": "database unavailable"}, 503
        return {"status": "ok"}

    return app


def embed_worker(services: "wiring.Services") -> None:
    """Drain the outbox and settle deferred codes in this process, after each commit."""
    from bot.outbox.senders import build_senders
    from bot.outbox.worker import install_embedded_drain

    install_embedded_drain(services, build_senders(services.settings), background=True)
