"""`GET /metrics`: the Prometheus text format (bot/metrics.py says what is measured).

Guarded by `METRICS_TOKEN` when it is set: Prometheus sends `Authorization: Bearer
<token>` (its scrape config's `authorization` or `bearer_token`), compared in constant
time; anything else is a 401. Unset, the route is open: bind it where only the
scraper reaches it.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from bot import metrics
from bot.deps import Deps

bp = Blueprint("metrics", __name__)
PATH = "/metrics"


@bp.get(PATH)
def scrape() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings.metrics_token, request.headers.get("Authorization", ""))
    body, content_type = metrics.exposition(
        deps.engine, deps.settings.prometheus_multiproc_dir, request.headers.get("Accept")
    )
    return Response(body, content_type=content_type)


def guard(token: str | None, authorization: str) -> None:
    """401 unless `authorization` is `Bearer <token>` (no token configured: open)."""
    if not token:
        return
    scheme, _, given = authorization.partition(" ")
    expected, offered = token.encode(), given.strip().encode("utf-8", "surrogateescape")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(offered, expected)):
        raise Unauthorized(www_authenticate=WWWAuthenticate("bearer", {"realm": "metrics"}))
