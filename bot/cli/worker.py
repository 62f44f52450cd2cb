"""`ovbot worker` and `ovbot outbox`: drain the outbox, and see what it holds."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

import click
from sqlalchemy.engine import Engine

from bot.cli.context import _Context
from bot.customers import reminders
from bot.outbox import admin
from bot.outbox.delivery import drain
from bot.outbox.senders import build_senders, close_senders
from bot.outbox.worker import SWEEP_EVERY, run_worker, sweep
from bot.settings import ConfigError
from bot.storage import db
from bot.storage.models import utcnow
from bot.text.phones import mask

log = logging.getLogger(__name__)


@click.command("worker", short_help="Drain the outbox; finish interrupted mints.")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    help="Seconds to wait before looking again when the outbox is empty.",
)
@click.option(
    "--sweep-every",
    default=SWEEP_EVERY,
    show_default=True,
    help="Seconds between sweeps: mint attempts whose outcome is unknown are settled from "
    "the code history, paid days left unminted are minted, lost pushes are sent.",
)
@click.option(
    "--once", is_flag=True, help="Drain one batch, sweep and queue due reminders once, then exit."
)
@click.pass_obj
def worker_command(c: _Context, interval: float, sweep_every: float, once: bool) -> None:
    """Drain the outbox, finish interrupted mints and send reminders, until SIGTERM or Ctrl+C."""
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
            reminded = reminders.run(deps)
            click.echo(
                f"sent {report.sent}, retried {report.retried}, failed {report.failed};"
                f" sweep: {dict(swept) or 'nothing to do'}; reminders queued {reminded.queued}"
            )
        else:
            log.info("worker: draining the outbox (%s)", ", ".join(senders) or "no senders")
            run_worker(
                deps,
                senders,
                interval=interval,
                sweep_every=sweep_every,
                reminders=lambda: reminders.run(deps),
            )
    finally:
        close_senders(senders)


@click.group(
    "outbox", invoke_without_command=True, short_help="List unsent messages; retry failed ones."
)
@click.option("--failed", "failed_only", is_flag=True, help="Only the failed messages.")
@click.option("--limit", default=200, show_default=True, help="At most this many, oldest first.")
@click.pass_context
def outbox_command(ctx: click.Context, failed_only: bool, limit: int) -> None:
    """List the messages not sent: pending, in flight and failed (or only the failed).

    Each line: id, status, channel (and the provider it must go through, if one),
    masked recipient, attempts, age, last error.
    `ovbot outbox retry` sends failed ones again.
    """
    if ctx.invoked_subcommand is not None:
        return
    c = ctx.find_object(_Context)
    assert c is not None  # `main` sets it
    engine = db.make_engine(c.settings.database_url)
    try:
        _require_migrated(engine)
        with db.make_sessionmaker(engine)() as session:
            rows = admin.unsent(session, failed_only=failed_only, limit=limit)
    finally:
        engine.dispose()
    now = utcnow()
    for m in rows:
        channel = f"{m.channel}/{m.provider}" if m.provider else m.channel  # who must send it
        click.echo(
            f"{m.id}\t{m.status}\t{channel}\t{mask(m.recipient)}\tattempts {m.attempts}"
            f"\t{_age(now - m.created_at)} old\t{m.last_error or ''}"
        )
    what = "failed" if failed_only else "pending or failed"
    click.echo(f"{len(rows)} message(s) {what}")


@outbox_command.command("retry", short_help="Send failed messages again.")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1), metavar="[ID]...")
@click.option("--failed", "all_failed", is_flag=True, help="Every failed message.")
@click.pass_obj
def outbox_retry(c: _Context, ids: tuple[int, ...], all_failed: bool) -> None:
    """Put failed messages back to pending, due now: the IDs given, or every one (--failed).

    A message that is not failed is refused (the worker still has it, or it was sent),
    and so is one whose customer opted out. The worker sends the others.
    """
    if bool(ids) == all_failed:
        raise click.UsageError("give message IDs or --failed (one of them)")
    engine = db.make_engine(c.settings.database_url)
    try:
        _require_migrated(engine)
        with db.transaction(db.make_sessionmaker(engine)) as session:
            report = admin.retry(session, list(ids) if ids else None, utcnow())
    finally:
        engine.dispose()
    for message_id, why in report.refused:
        click.echo(f"message {message_id} not retried: {why}", err=True)
    click.echo(f"{len(report.retried)} message(s) back to pending; the worker sends them")
    if ids and report.refused:
        sys.exit(1)


def _age(elapsed: timedelta) -> str:
    """A short age: 42s, 17m, 5h, 3d."""
    seconds = max(int(elapsed.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _require_migrated(engine: Engine) -> None:
    if db.current_revision(engine) != db.head_revision():
        raise click.ClickException(
            "the database is not at the latest revision: run `ovbot db upgrade` first"
        )
