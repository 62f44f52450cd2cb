"""`ovbot reminders [--dry-run]`: the reminders due now; without --dry-run, one pass."""

from __future__ import annotations

import click

from bot.cli.context import _Context
from bot.cli.worker import _require_migrated
from bot.customers import reminders
from bot.text.phones import mask


@click.command("reminders", short_help="List the reminders due now, or queue them.")
@click.option("--dry-run", is_flag=True, help="List what is due now; queue nothing.")
@click.option("--limit", default=200, show_default=True, help="List at most this many.")
@click.pass_obj
def reminders_command(c: _Context, dry_run: bool, limit: int) -> None:
    """The reminders due now: masked number, device, offset, language (--dry-run), or
    queue them for the worker to send (one reminder pass). During QUIET_HOURS nothing is
    queued: it says how many wait for the quiet hours to end."""
    deps = c.deps
    _require_migrated(deps.engine)
    settings, now = deps.settings, deps.clock()
    if dry_run:
        due, report = reminders.preview(deps, now=now, limit=limit)
        for item in due:
            click.echo(
                f"{mask(item.phone)}\t{item.device}\t{reminders.describe(item.days_before)}"
                f"\t{item.language}"
            )
        total = report.queued + report.waiting
        click.echo(
            f"{total} reminder(s) due now" + (f", {len(due)} listed" if total > len(due) else "")
        )
    else:
        report = reminders.run(deps, now=now)
        click.echo(f"{report.queued} reminder(s) queued; the worker sends them")
    if report.quiet_until is not None:
        local = report.quiet_until.astimezone(reminders.Schedule.of(settings).zone)
        click.echo(
            f"{report.waiting} wait for the quiet hours to end at {local:%Y-%m-%d %H:%M}"
            f" ({settings.timezone})"
        )
    else:
        click.echo("0 wait for the quiet hours")
