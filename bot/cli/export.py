"""`ovbot export payments|codes`: CSV for accounting and audits.

The rows, their columns (a contract: add at the end, never rename or reorder), the masked
phone numbers and the spreadsheet-safe text are bot/operators/exports.py's, shared with
the web console's downloads. Times are UTC, ISO 8601 (`2026-12-01T08:30:00Z`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import click
from sqlalchemy.orm import Session

from bot.cli.context import _Context
from bot.operators.exports import (
    CODE_COLUMNS,
    PAYMENT_COLUMNS,
    Row,
    code_rows,
    payment_rows,
)
from bot.operators.exports import write as _write
from bot.storage import db


def _help(what: str, columns: Sequence[str], order: str) -> str:
    return f"{what}\n\nColumns: {', '.join(columns)}.\n\n{order}"


@click.group("export", short_help="Export payments or codes as CSV.")
def export_group() -> None:
    """Payments or codes as CSV (UTF-8, a header line, UTC times), for accounting and audits."""


def _common(command: Callable[..., None]) -> Callable[..., None]:
    options = (
        click.option(
            "--since",
            type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
            metavar="DATE",
            help="Only rows from this UTC date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SS) on.",
        ),
        click.option(
            "--output",
            type=click.Path(dir_okay=False, writable=True),
            help="Write to this file (replaced) instead of standard output.",
        ),
        click.option(
            "--clear-phones",
            is_flag=True,
            help="Phone numbers in clear, not masked: keep such a file as safe as the database.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return click.pass_obj(command)


@export_group.command(
    "payments",
    short_help="Payments as CSV.",
    help=_help(
        "Every payment recorded: from agents, payment systems and the CLI.",
        PAYMENT_COLUMNS,
        "Oldest first. state: `unmatched` (no device yet, `ovbot payments assign`), "
        "`in code` (its days are in code code_id) or `credit` (paid days not yet in a code).",
    ),
)
@_common
def export_payments(
    c: _Context, since: datetime | None, output: str | None, clear_phones: bool
) -> None:
    def rows(session: Session) -> Iterable[Row]:
        return payment_rows(session, since, clear_phones=clear_phones)

    _export(c, PAYMENT_COLUMNS, rows, output, clear_phones)


@export_group.command(
    "codes",
    short_help="Minted codes as CSV, in entry order.",
    help=_help(
        "Every code minted (days, free and reset codes).",
        CODE_COLUMNS,
        "By device, and for each device in the order its codes must be entered "
        "(upstream_index is the API's code index). requested_by is a phone number "
        "(masked), or `sweep` for codes the worker minted.",
    ),
)
@_common
def export_codes(
    c: _Context, since: datetime | None, output: str | None, clear_phones: bool
) -> None:
    def rows(session: Session) -> Iterable[Row]:
        return code_rows(session, since, clear_phones=clear_phones)

    _export(c, CODE_COLUMNS, rows, output, clear_phones)


def _export(
    c: _Context,
    columns: Sequence[str],
    rows: Callable[[Session], Iterable[Row]],
    output: str | None,
    clear_phones: bool,
) -> None:
    """Query first, then write: a failed query leaves no half-written file behind."""
    engine = db.make_engine(c.settings.database_url)
    try:
        if db.current_revision(engine) != db.head_revision():
            raise click.ClickException(
                "the database is not at the latest revision: run `ovbot db upgrade` first"
            )
        with db.make_sessionmaker(engine)() as session:
            found = list(rows(session))
    finally:
        engine.dispose()
    if output is None:
        _write(sys.stdout, columns, found)
    else:
        with open(output, "w", encoding="utf-8", newline="") as file:
            _write(file, columns, found)
        click.echo(f"{len(found)} row(s) written to {output}", err=True)
    if clear_phones:
        click.echo("phone numbers are in clear: keep this export safe", err=True)
