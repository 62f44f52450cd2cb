"""The Flask app factory: the web composition root (`webhooks.app:create_app`)."""
from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import text

from bot import wiring
from bot.settings import Settings
from webhooks import payments, telegram, twilio

CHANNELS = [twilio, telegram, payments]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: "wiring.Services | None" = None
               ) -> Flask:
    settings = settings or (services.settings if services else Settings.from_env())
    services = services or wiring.build(settings)
    app = Flask(__name__)
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
