"""The console's pages (GET, any signed-in operator): overview, find, device, and the
lists an admin acts on. The figures come from bot/operators/views.py; each list is bounded.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from bot.domain import AGENT_ROLES, LANGUAGES
from bot.operators import accounts, views
from bot.operators.exports import EXPORTS
from bot.storage import db
from webhooks.console import chart as svg
from webhooks.console.web import bp, deps

STATUSES = ("failed", "pending", "sending", "sent")


@bp.get("/")
def overview() -> str:
    with db.reading(deps().sessions) as s:
        figures = views.overview(s, deps().clock())
    return render_template("console/overview.html", o=figures, chart=svg.render(figures.chart))


@bp.get("/find")
def find() -> str | Response:
    query = request.args.get("q", "").strip()[:100]
    with db.reading(deps().sessions) as s:
        found = views.find(s, query, deps().settings.default_region) if query else []
        if len(found) == 1:
            return redirect(url_for("console.device", product_id=found[0].device.product_id))
        return render_template("console/find.html", q=query, found=found)


@bp.get("/devices/<int:product_id>")
def device(product_id: int) -> str:
    with db.reading(deps().sessions) as s:
        page = views.device_page(s, deps().ledger, product_id, deps().clock())
        if page is None:
            abort(404, description=f"no device {product_id}")
        return render_template("console/device.html", p=page, languages=LANGUAGES)


@bp.get("/payments")
def payments() -> str:
    with db.reading(deps().sessions) as s:
        rows = views.unmatched_payments(s)
        return render_template("console/payments.html", rows=rows)


@bp.get("/outbox")
def outbox() -> str:
    status = request.args.get("status", "failed")
    if status not in STATUSES:
        abort(400, description=f"status must be one of {', '.join(STATUSES)}")
    with db.reading(deps().sessions) as s:
        rows = views.messages(s, status)
        return render_template("console/outbox.html", rows=rows, status=status, statuses=STATUSES)


@bp.get("/agents")
def agents() -> str:
    with db.reading(deps().sessions) as s:
        rows = views.agents(s)
        return render_template(
            "console/agents.html", rows=rows, now=deps().clock(), roles=AGENT_ROLES
        )


@bp.get("/alarms")
def alarms() -> str:
    with db.reading(deps().sessions) as s:
        rows = views.alarms(s)
        return render_template("console/alarms.html", rows=rows)


@bp.get("/audit")
def audit() -> str:
    with db.reading(deps().sessions) as s:
        rows = accounts.recent_audit(s, views.LIST_LIMIT)
        return render_template("console/audit.html", rows=rows)


@bp.get("/exports")
def exports() -> str:
    return render_template("console/exports.html", kinds=sorted(EXPORTS))
