"""`ovbot worker` and `ovbot outbox`: drain the outbox, and see what it holds."""

from __future__ import annotations

import logging

import click
from sqlalchemy.engine import Engine

from bot.cli.context import _Context
from bot.outbox.delivery import drain, pending_and_failed
from bot.outbox.senders import build_senders, close_senders
from bot.outbox.worker import SWEEP_EVERY, run_worker, sweep
from bot.settings import ConfigError
from bot.storage import db
from bot.text.phones import mask

log = logging.getLogger(__name__)


@click.command("worker")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between idle polls.")
@click.option("--sweep-every", default=SWEEP_EVERY, show_default=True, help="Seconds.")
@click.option("--once", is_flag=True, help="Drain one batch and sweep once, then exit.")
@click.pass_obj
def worker_command(c: _Context, interval: float, sweep_every: float, once: bool) -> None:
    """Drain the outbox and finish interrupted mints, until SIGTERM or Ctrl+C."""
    settings = c.settings
    if not settings.uses_emulator:
        try:
            settings.require_for_production()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    deps = c.deps
    _require_migrated(deps.engine)
    senders = build_senders(settings)
    if not senders:
        log.warning(
            "worker: no sender configured (TWILIO_*, TELEGRAM_BOT_TOKEN): messages stay pending"
        )
    try:
        if once:
            report, swept = drain(deps.sessions, senders), sweep(deps)
            click.echo(
                f"sent {report.sent}, retried {report.retried}, failed {report.failed};"
                f" sweep: {dict(swept) or 'nothing to do'}"
            )
        else:
            log.info("worker: draining the outbox (%s)", ", ".join(senders) or "no senders")
            run_worker(deps, senders, interval=interval, sweep_every=sweep_every)
    finally:
        close_senders(senders)


@click.command("outbox")
@click.option("--limit", default=200, show_default=True)
@click.pass_obj
def outbox_command(c: _Context, limit: int) -> None:
    """List the messages not sent: pending, in flight and failed."""
    engine = db.make_engine(c.settings.database_url)
    try:
        _require_migrated(engine)
        with db.make_sessionmaker(engine)() as session:
            rows = pending_and_failed(session, limit)
    finally:
        engine.dispose()
    for m in rows:
        click.echo(
            f"{m.id}\t{m.status}\t{m.channel}\t{mask(m.recipient)}\tattempts {m.attempts}"
            f"\tnext {m.next_attempt_at:%Y-%m-%d %H:%M:%S}\t{m.last_error or ''}"
        )
    click.echo(f"{len(rows)} message(s) pending or failed")


def _require_migrated(engine: Engine) -> None:
    if db.current_revision(engine) != db.head_revision():
        raise click.ClickException(
            "the database is not at the latest revision: run `ovbot db upgrade` first"
        )
