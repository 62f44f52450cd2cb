"""What an admin does from the console (POST, CSRF, admin only): each calls the same core
function as the CLI, and writes its audit row in the same transaction. No second path
to the ledger: an assignment is `payments.assign`, a retry `outbox.admin.retry`, an agent
`bot.agents.pins`, an export `bot.operators.exports`.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import payments as payment_use_case
from bot.agents import pins
from bot.ledger import LedgerError
from bot.operators import accounts
from bot.operators.customers import set_preferences
from bot.operators.exports import EXPORTS, write
from bot.outbox import admin as outbox_admin
from bot.outbox import queue
from bot.storage import db
from bot.storage.models import Agent, AuditEntry, Device, Operator, OutboxMessage, Payment
from bot.text.phones import InvalidPhone, mask, normalise
from webhooks.console.web import admin_only, back, bp, deps, operator


def _back(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values))  # type: ignore[return-value]


def _audit(session: Session, action: str, target: str, before: object, after: object) -> AuditEntry:
    """The audit row of this action, naming the signed-in operator, in `session`."""
    signed = operator()
    actor: Operator | str = session.get(Operator, signed.operator_id) or signed.email
    return accounts.audit(session, actor, action, target, before, after)


@bp.post("/payments/<path:reference>/assign")
@admin_only
def assign(reference: str) -> Response:
    """The unmatched payment gets its device; its code then goes out (`payments assign`)."""
    product_ref = request.form.get("product_id", "").strip()
    if not product_ref:
        abort(400, description="give the device's product id or serial")
    try:
        with db.transaction(deps().sessions) as s:
            payment = s.scalar(select(Payment).where(Payment.reference == reference))
            if payment is None:
                abort(404, description=f"no payment {reference}")
            if payment.device_id is not None:
                abort(409, description=f"payment {reference} already has its device")
            before = {"device": None, "product_ref": payment.product_ref, "days": payment.days}
            # Written first: the ledger commits the mint's attempt (and so the assignment)
            # before it calls the API, and the audit row must be on disk with it.
            entry = _audit(s, "payment.assign", f"payment:{reference}", before, None)
            answer = payment_use_case.assign(deps(), s, reference, product_ref)
            entry.after = _json(
                {k: answer.body.get(k) for k in ("product_id", "days", "code", "held_days")}
            )
            product_id = answer.body.get("product_id")
    except LedgerError as exc:
        flash(f"Not assigned: {exc}", "error")
        return _back("console.payments")
    deps().committed()
    flash(f"Payment {reference} assigned to device {product_id}: code {answer.body.get('code')}.")
    return _back("console.device", product_id=product_id)


@bp.post("/outbox/<int:message_id>/retry")
@admin_only
def retry(message_id: int) -> Response:
    """A failed message goes back to the queue (`ovbot outbox retry ID`)."""
    with db.transaction(deps().sessions) as s:
        row = s.get(OutboxMessage, message_id)
        before = {"status": row.status, "attempts": row.attempts} if row else None
        report = outbox_admin.retry(s, [message_id], deps().clock())
        if report.retried:
            assert row is not None  # retried, so it exists
            _audit(s, "outbox.retry", f"outbox:{message_id}", before, {"status": row.status})
    if report.refused:
        flash(f"Message {message_id} not retried: {report.refused[0][1]}.", "error")
    else:
        deps().committed()
        flash(f"Message {message_id} queued again.")
    return redirect(back(url_for("console.outbox")))  # type: ignore[return-value]


@bp.post("/devices/<int:product_id>/resend")
@admin_only
def resend(product_id: int) -> Response:
    """The device's latest codes again, to its owner (as the USSD menu's "Resend code")."""
    with db.transaction(deps().sessions) as s:
        device = s.scalar(select(Device).where(Device.product_id == product_id))
        if device is None:
            abort(404, description=f"no device {product_id}")
        codes = deps().ledger.latest_codes(s, device)
        queued = queue.resend_codes(s, deps().messages, device, codes) if codes else []
        if queued:
            _audit(
                s,
                "device.resend",
                f"device:{product_id}",
                None,
                {"codes": [c.id for c in codes], "messages": [m.id for m in queued]},
            )
    if not codes:
        flash(f"Device {product_id} has no code to resend.", "error")
    elif not queued:
        flash("Not sent: the device has no owner, or the owner opted out.", "error")
    else:
        deps().committed()
        flash(f"{len(queued)} message(s) queued for the owner.")
    return _back("console.device", product_id=product_id)


@bp.post("/customers/<int:customer_id>/preferences")
@admin_only
def preferences(customer_id: int) -> Response:
    language = request.form.get("language", "")
    opted_out = request.form.get("opted_out") == "on"
    where = back(url_for("console.overview"))
    try:
        with db.transaction(deps().sessions) as s:
            customer, before = set_preferences(s, customer_id, language, opted_out)
            after = {"language": customer.language, "opted_out": customer.opted_out}
            if after != before:
                _audit(s, "customer.preferences", f"customer:{customer_id}", before, after)
    except accounts.InvalidOperator as exc:
        abort(400, description=str(exc))
    flash("Customer's preferences saved.")
    return redirect(where)  # type: ignore[return-value]


def _agent_snapshot(agent: Agent) -> dict[str, Any]:
    return {
        "phone": mask(agent.phone),
        "name": agent.name,
        "role": agent.role,
        "locked_until": agent.locked_until,
        "removed_at": agent.removed_at,
    }


@bp.post("/agents/add")
@admin_only
def agent_add() -> Response:
    """Create or update an agent, or reset its PIN (`ovbot agent add`)."""
    form = request.form
    try:
        phone = normalise(form.get("phone", ""), deps().settings.default_region)
    except InvalidPhone as exc:
        flash(f"Agent not saved: {exc}.", "error")
        return _back("console.agents")
    try:
        with db.transaction(deps().sessions) as s:
            old = s.scalar(select(Agent).where(Agent.phone == phone))
            before = _agent_snapshot(old) if old else None
            agent, created = pins.add_agent(
                s, phone, form.get("name", ""), form.get("pin", ""), form.get("role", "agent")
            )
            action = "agent.add" if created else "agent.update"
            _audit(s, action, f"agent:{agent.id}", before, {**_agent_snapshot(agent), "pin": "new"})
    except pins.InvalidAgent as exc:
        flash(f"Agent not saved: {exc}.", "error")
        return _back("console.agents")
    flash(f"Agent {mask(phone)} {'created' if created else 'updated, with the new PIN'}.")
    return _back("console.agents")


@bp.post("/agents/<int:agent_id>/<any(unlock, remove):what>")
@admin_only
def agent_change(agent_id: int, what: str) -> Response:
    """Lift an agent's lock-out, or retire it (`ovbot agent unlock|remove`)."""
    with db.transaction(deps().sessions) as s:
        agent = s.get(Agent, agent_id)
        if agent is None:
            abort(404, description=f"no agent {agent_id}")
        before = _agent_snapshot(agent)
        if what == "unlock":
            pins.unlock(s, agent.phone)
            changed = True
        else:
            changed = pins.remove(s, agent.phone)[1]
        if changed:
            _audit(s, f"agent.{what}", f"agent:{agent_id}", before, _agent_snapshot(agent))
    flash(f"Agent {mask(agent.phone)} {'unlocked' if what == 'unlock' else 'removed'}.")
    return _back("console.agents")


@bp.post("/exports/<any(payments, codes):kind>.csv")
@admin_only
def export(kind: str) -> Response:
    """A CSV download, the rows of `ovbot export` (phones masked unless asked in clear)."""
    since = _since(request.form.get("since", ""))
    clear = request.form.get("clear_phones") == "on"
    columns, rows = EXPORTS[kind]
    with db.transaction(deps().sessions) as s:
        found = list(rows(s, since, clear_phones=clear))
        _audit(
            s,
            f"export.{kind}",
            f"export:{kind}",
            None,
            {"rows": len(found), "since": since, "clear_phones": clear},
        )
    out = io.StringIO()
    write(out, columns, found)
    name = f"ovbot-{kind}-{deps().clock():%Y%m%d}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _since(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d")
    except ValueError:
        abort(400, description="since must be a date, YYYY-MM-DD")


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)
