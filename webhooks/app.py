"""The Flask app factory: the web composition root (`webhooks.app:create_app`).

Refusals answer in each provider's language (`refusal`): JSON on the JSON routes and on
unknown paths, a short text on Twilio's form route, and always a 200 END screen on USSD
(a gateway ends the agent's session on anything else). Status codes are kept.

`/healthz` is liveness (the database answers); `/readyz` is readiness (its schema is at
the migrations' head).  Every request has an id: the caller's `X-Request-ID` when it is
sane, else a new one; it is on every log line of the request and echoed in the response.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from bot import bootstrap
from bot.agents import menu as agent_menu
from bot.deps import Deps
from bot.settings import Settings
from bot.storage import db
from bot.text import logs
from webhooks import africastalking, console, mpesa, payments, telegram, twilio, ussd
from webhooks.metrics import bp as metrics_bp

MAX_BODY = 64 * 1024
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is kept if it is short and plain (it goes into every log line).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")
CHANNELS = [twilio, telegram, payments, ussd, africastalking, mpesa]
# What turns each signed channel on: without these its guard refuses every request.
SWITCHES = {
    "Twilio SMS and WhatsApp": ("TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"),
    "Telegram": ("TELEGRAM_SECRET_TOKEN",),
    "payments": ("PAYMENTS_SECRET",),
    "Africa's Talking SMS": ("AFRICASTALKING_CALLBACK_TOKEN",),
    "M-Pesa": ("MPESA_CALLBACK_TOKEN", "MPESA_SHORTCODE"),
    # Not a webhook: the operator console (webhooks/console/) is off without its key.
    "operator console": ("CONSOLE_SECRET_KEY",),
}

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, deps: Deps | None = None) -> Flask:
    logs.install()
    if settings is None and deps is None:  # production: read and check the environment
        settings = Settings.from_env()
        settings.require_for_production()
    if settings is None:
        assert deps is not None  # both None is the production case, handled above
        settings = deps.settings
    logs.ensure_configured(log_format=settings.log_format)
    if deps is None:
        deps = bootstrap.build(settings)
        if settings.database_url.startswith("sqlite"):  # the embedded default: no worker
            embed_worker(deps)
    warn_of_channels_off(deps.settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # providers send a few KB; refuse floods
    app.extensions["ovbot"] = deps
    for module in CHANNELS:
        app.register_blueprint(module.bp)
    track_requests(app)
    app.register_blueprint(metrics_bp)  # GET /metrics
    console.install(app, deps.settings)  # /console/, when CONSOLE_SECRET_KEY is set
    # Each route's channel by its path: a 405 or a 413 may come before any view runs.
    channels = {rule.rule: rule.endpoint.partition(".")[0] for rule in app.url_map.iter_rules()}

    @app.errorhandler(HTTPException)
    def refused(error: HTTPException) -> Response:
        return refusal(deps, channels.get(request.path), error)

    @app.get("/healthz")
    def healthz() -> dict[str, str] | tuple[dict[str, str], int]:
        try:
            with deps.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            log.exception("health check: database did not answer")
            return {"status": "database unavailable"}, 503
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> tuple[dict[str, str], int]:
        try:
            problem = db.schema_problem(deps.engine)
        except Exception:
            log.exception("readiness check: database did not answer")
            return {"status": "not ready", "reason": "database unavailable"}, 503
        if problem:
            return {"status": "not ready", "reason": problem}, 503
        return {"status": "ready"}, 200

    return app


def request_id(given: str | None) -> str:
    """The caller's request id when it is sane (bounded, plain characters), else a new one."""
    if given and SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def track_requests(app: Flask) -> None:
    """Bind each request's id to its log lines (bot/text/logs.py) and echo it back."""

    @app.before_request
    def bind() -> None:
        g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_token = logs.REQUEST_ID.set(g.request_id)

    @app.after_request
    def echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.teardown_request
    def unbind(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.REQUEST_ID.reset(token)


def warn_of_channels_off(settings: Settings) -> None:
    """One warning naming the channels (and the console) that refuse everything, and what
    turns each on."""
    if settings.demo:  # the demo accepts unsigned requests
        return
    off = []
    for channel, names in SWITCHES.items():
        missing = [name for name in names if not getattr(settings, name.lower())]
        if missing:
            off.append(f"{channel} (set {' and '.join(missing)})")
    if off:
        log.warning("refusing every request, not configured: %s", "; ".join(off))


def refusal(deps: Deps, channel: str | None, error: HTTPException) -> Response:
    """`error` in the language of the provider that called `channel` (None: no route)."""
    if channel == ussd.bp.name:
        key = "ussd_bad_request" if (error.code or 500) < 500 else "error_try_again"
        return ussd.render(agent_menu.refuse(deps, key))  # always a 200 END screen
    render = FORMATS.get(channel or "", _json)
    response = render(error)
    response.status_code = error.code or 500
    for name, value in error.get_headers():
        if name.lower() != "content-type":  # e.g. a 405's Allow
            response.headers[name] = value
    return response


def _reason(error: HTTPException) -> str:
    """What the view said (`abort(400, description=...)`), else the status's name."""
    if error.description and error.description != type(error).description:
        return error.description
    return error.name


def _json(error: HTTPException) -> Response:
    body: dict[str, object] = {"status": "rejected", "error": _reason(error)}
    field = getattr(error, "field", None)  # a channel's refusal may name the bad field
    if field:
        body["field"] = field
    return jsonify(body)


def _text(error: HTTPException) -> Response:
    return Response(_reason(error) + "\n", mimetype="text/plain")


FORMATS: dict[str, Callable[[HTTPException], Response]] = {
    twilio.bp.name: _text,
    africastalking.bp.name: _text,
    telegram.bp.name: _json,
    payments.bp.name: _json,
    mpesa.bp.name: mpesa.refusal,
}


def embed_worker(deps: Deps) -> None:
    """Drain the outbox, settle deferred codes and send reminders in this process."""
    from bot.customers import reminders
    from bot.outbox.senders import build_senders
    from bot.outbox.worker import install_embedded_drain

    install_embedded_drain(
        deps, build_senders(deps.settings), background=True, reminders=lambda: reminders.run(deps)
    )
