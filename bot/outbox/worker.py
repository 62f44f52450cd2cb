"""`ovbot worker`: drain the outbox, and finish the mints the web process could not.

The loop drains one batch at a time (at once again while batches come back full), and every
`sweep_every` seconds sweeps: devices with an open mint attempt are reconciled from the
code history and any code adopted is pushed to the owner (no one has seen it); with
MINT_ON_PAYMENT, paid days left unminted (the API was down, or a mint was refused) are
minted and pushed; and payment codes whose push a crash lost are pushed.  Each device has
its own transaction; an error is logged and skipped.  Every `remind_every` seconds it runs
the reminder pass its caller hands it (bot/customers/reminders.py, a layer above).

Run workers at scale (PostgreSQL: any number, on any machine).  Without one — the demo,
and the embedded default on SQLite — the app factory calls `install_embedded_drain`:
each inbound transaction, once committed, drains a batch in the web process; with
`background=True` a daemon thread runs this same loop, so retries and the sweep also
happen between inbound messages.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.ledger import ENTRY_ORDER, OPEN, LedgerError, MintPending
from bot.outbox import queue as outbox
from bot.outbox.delivery import drain
from bot.storage import db
from bot.storage.models import (
    Code,
    Customer,
    Device,
    IntegrityAlarm,
    OutboxMessage,
    Payment,
    utcnow,
)

if TYPE_CHECKING:
    from bot.deps import Deps
    from bot.outbox.senders import Sender

log = logging.getLogger(__name__)

SWEEP_EVERY = 30.0  # seconds
REMIND_EVERY = 60.0  # seconds between reminder passes (bot/customers/reminders.py)
RETRY_FAILED_MINT_AFTER = timedelta(minutes=5)
# Codes minted for payments are pushed to the owner (customers' own CODE gets a reply).
PUSHED_CHANNELS = ("payments", "cli", "system", "ussd")
PUSH_SETTLE, PUSH_HORIZON = timedelta(minutes=2), timedelta(days=1)


def sweep(deps: Deps) -> Counter[str]:
    """Settle open mint attempts and mint paid days left over; counts what was done."""
    counts: Counter[str] = Counter()
    with deps.sessions() as session:
        open_ids = set(
            session.scalars(select(Code.device_id).distinct().where(Code.state.in_(OPEN)))
        )
        unminted = (
            set()
            if not deps.settings.mint_on_payment
            else set(
                cast(  # typed `int | None`, but the NULLs are filtered out
                    Iterable[int],
                    session.scalars(
                        select(Payment.device_id)
                        .distinct()
                        .where(
                            Payment.device_id.is_not(None),
                            Payment.code_id.is_(None),
                            Payment.days > 0,
                        )
                    ),
                )
            )
        )
    for device_id in sorted(open_ids):
        _one_device(deps, device_id, _settle, "adopted", counts)
    for device_id in sorted(unminted - open_ids):
        _one_device(deps, device_id, _mint, "minted", counts)
    with db.transaction(deps.sessions) as session:
        if pushed := _push_unsent(deps, session):
            counts["pushed"] += pushed
    return counts


def _push_unsent(deps: Deps, session: Session) -> int:
    """Queue pushes for codes minted for a payment whose push never committed.

    The ledger commits a code before the caller's transaction commits its push; a crash
    in between would leave the owner without it. Only codes old enough that the request
    which minted them has surely finished, and young enough to still matter. A code whose
    answer came late (an integrity alarm) goes out too, whoever asked: its request may
    have been answered long before.
    """
    now = utcnow()
    orphans = session.scalars(
        select(Code)
        .join(Device, Device.id == Code.device_id)
        .join(Customer, Customer.id == Device.owner_id)
        .where(
            Code.state == "minted",
            Code.kind == "days",
            Code.channel.in_(PUSHED_CHANNELS)
            | Code.id.in_(
                select(IntegrityAlarm.code_id).where(IntegrityAlarm.kind == "late_answer")
            ),
            Code.minted_at < now - PUSH_SETTLE,
            Code.minted_at > now - PUSH_HORIZON,
            Customer.opted_out.is_(False),
            ~select(OutboxMessage.id).where(OutboxMessage.code_id == Code.id).exists(),
        )
        .order_by(Code.device_id, Code.id)
    ).all()
    queued = 0
    for code in orphans:
        device = session.get(Device, code.device_id)
        if device is None:  # cannot happen: the query joins each code's device
            raise LookupError(f"device {code.device_id} of code {code.id} not found")
        queued += len(outbox.notify_codes(session, deps.messages, device, [code]))
    return queued


def _one_device(
    deps: Deps,
    device_id: int,
    work: Callable[[Deps, Session, Device], int],
    label: str,
    counts: Counter[str],
) -> None:
    name = f"id {device_id}"
    try:
        with db.transaction(deps.sessions) as session:
            device = session.get(Device, device_id)
            if device is None:  # gone since it was listed: a failure, logged below
                raise LookupError(f"device {device_id} not found")
            name = str(device.product_id)
            if done := work(deps, session, device):
                counts[label] += done
    except MintPending as exc:
        log.info("sweep: device %s: %s", name, exc)
    except LedgerError as exc:
        counts["errors"] += 1
        log.warning("sweep: device %s: %s", name, exc)
    except Exception:
        counts["errors"] += 1
        log.exception("sweep: device %s failed", name)


def _settle(deps: Deps, session: Session, device: Device) -> int:
    """Reconcile; a days code adopted from the history goes to the owner."""
    open_ids = list(
        session.scalars(select(Code.id).where(Code.device_id == device.id, Code.state.in_(OPEN)))
    )
    try:
        deps.ledger.reconcile(session, device)
    except MintPending as exc:  # others still in flight; what was adopted goes out now
        log.info("sweep: device %s: %s", device.product_id, exc)
    adopted = list(
        session.scalars(
            select(Code).where(Code.id.in_(open_ids), Code.state == "minted").order_by(*ENTRY_ORDER)
        )
    )
    for code in adopted:
        log.info("sweep: device %s: adopted %s code %s", device.product_id, code.kind, code.id)
    outbox.notify_codes(session, deps.messages, device, [c for c in adopted if c.kind == "days"])
    return len(adopted)


def _mint(deps: Deps, session: Session, device: Device) -> int:
    ledger = deps.ledger
    if ledger.unspent_days(session, device) <= 0:
        return 0
    if (
        session.scalar(
            select(Code.id)
            .where(
                Code.device_id == device.id,
                Code.state == "failed",
                Code.created_at > utcnow() - RETRY_FAILED_MINT_AFTER,
            )
            .limit(1)
        )
        is not None
    ):
        return 0  # a mint just failed: give the API a rest
    # Stable while nothing changes, so two sweepers share one key; new after any attempt.
    last_payment = session.scalar(
        select(func.max(Payment.id)).where(Payment.device_id == device.id)
    )
    tries = session.scalar(select(func.count(Code.id)).where(Code.device_id == device.id))
    result = ledger.mint_days(
        session,
        device,
        channel="system",
        requested_by="sweep",
        request_key=f"sweep:{device.id}:{last_payment}:{tries}",
    )
    if result.new:
        outbox.notify_codes(session, deps.messages, device, result.codes)
    return len(result.codes) if result.new else 0


def run_worker(
    deps: Deps,
    senders: dict[str, Sender],
    *,
    interval: float = 1.0,
    sweep_every: float = SWEEP_EVERY,
    batch: int = 50,
    stop: threading.Event | None = None,
    wake: threading.Event | None = None,
    reminders: Callable[[], object] | None = None,
    remind_every: float = REMIND_EVERY,
) -> None:
    """Drain and sweep until `stop` is set (or SIGTERM/SIGINT, in the main thread).

    `reminders`, given by whoever runs the worker (the use case sits above the outbox),
    runs every `remind_every` seconds: a reminder pass; what it queues goes out next.
    """
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop)
    next_sweep, next_reminders, waiting_for = 0.0, 0.0, None
    try:
        while not stop.is_set():
            try:
                busy = drain(deps.sessions, senders, batch=batch, stop=stop).total >= batch
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    sweep(deps)
                if reminders is not None and time.monotonic() >= next_reminders:
                    next_reminders = time.monotonic() + remind_every
                    reminders()
                    busy = True  # drain what it queued at once
                waiting_for = None
            except Exception:
                problem = _schema_problem(deps)
                if problem is None:
                    log.exception("worker: pass failed; trying again shortly")
                elif problem != waiting_for:  # said once, not a traceback every pass
                    log.warning("worker: waiting for the database: %s", problem)
                waiting_for, busy = problem, False
            if not busy:
                (wake or stop).wait(interval)
                if wake is not None:
                    wake.clear()
    finally:
        restore()
    log.info("worker stopped")


def _schema_problem(deps: Deps) -> str | None:
    """Why a pass failed, when it is the schema (not migrated yet), else None."""
    try:
        return db.schema_problem(deps.engine)
    except Exception:  # noqa: BLE001 - the database itself is down: the pass's error says it
        return None


def _stop_on_signals(stop: threading.Event) -> Callable[[], object]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]


def install_embedded_drain(
    deps: Deps,
    senders: dict[str, Sender],
    *,
    batch: int = 20,
    background: bool = False,
    reminders: Callable[[], object] | None = None,
) -> threading.Event | None:
    """Drain after each inbound commit, in-process (see the module docstring).

    Synchronous by default: one batch, never raising.  With `background=True` the hook
    only wakes a daemon thread running `run_worker` (with the reminder pass, if given);
    the returned Event stops it.
    """
    if not background:

        def after_commit() -> None:
            try:
                drain(deps.sessions, senders, batch=batch)
            except Exception:
                log.exception("embedded outbox drain failed")

        deps.after_commit = after_commit
        return None
    stop, wake = threading.Event(), threading.Event()
    threading.Thread(
        target=run_worker,
        args=(deps, senders),
        daemon=True,
        kwargs=dict(batch=batch, stop=stop, wake=wake, interval=5.0, reminders=reminders),
        name="ovbot-embedded-worker",
    ).start()
    deps.after_commit = wake.set
    return stop
