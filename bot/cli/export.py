"""`ovbot export payments|codes`: CSV for accounting and audits.

The columns are a contract (scripts read them): add at the end, never rename or reorder.
Times are UTC, ISO 8601 (`2026-12-01T08:30:00Z`). Phone numbers are masked unless
`--clear-phones` is given: an export is an operator's deliberate act, but files travel
(mail, spreadsheets, shared drives) further than the database; accounting matches
payments by reference, and only the rare audit needs the numbers themselves.
Text that came from outside (references, product refs, names) and would start a
spreadsheet formula gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TextIO

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from bot.cli.context import _Context
from bot.ledger import ENTRY_ORDER
from bot.storage import db
from bot.storage.models import Agent, Code, Device, Payment
from bot.text.phones import mask

PAYMENT_COLUMNS = (
    "reference",
    "created_at",
    "source",
    "product_id",
    "serial",
    "product_ref",
    "days",
    "amount",
    "payer_phone",
    "agent_phone",
    "agent_name",
    "code_id",
    "state",
)
CODE_COLUMNS = (
    "product_id",
    "serial",
    "code_id",
    "upstream_index",
    "kind",
    "days",
    "code",
    "minted_at",
    "credit_until_after",
    "channel",
    "requested_by",
)
Row = Sequence[object]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Phone = Callable[[str | None], str]


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
    phone = _phones(clear_phones)

    def rows(session: Session) -> Iterator[Row]:
        seller = aliased(Agent)
        query = (
            select(Payment, Device, seller)
            .outerjoin(Device, Device.id == Payment.device_id)
            .outerjoin(seller, seller.id == Payment.agent_id)
            .order_by(Payment.created_at, Payment.id)
        )
        if since is not None:
            query = query.where(Payment.created_at >= _utc(since))
        for p, device, agent in session.execute(query):
            state = "unmatched" if p.device_id is None else ("in code" if p.code_id else "credit")
            yield (
                _text(p.reference),
                _time(p.created_at),
                p.source,
                device.product_id if device else "",
                (device.oem_serial or "") if device else "",
                _text(p.product_ref),
                p.days,
                "" if p.amount is None else str(p.amount),
                phone(p.phone),
                phone(agent.phone if agent else None),
                _text(agent.name if agent else None),
                p.code_id or "",
                state,
            )

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
    phone = _phones(clear_phones)

    def rows(session: Session) -> Iterator[Row]:
        query = (
            select(Code, Device)
            .join(Device, Device.id == Code.device_id)
            .where(Code.state == "minted")
            .order_by(Device.product_id, *ENTRY_ORDER)
        )
        if since is not None:
            query = query.where(Code.minted_at >= _utc(since))
        for code, device in session.execute(query):
            who = code.requested_by or ""
            yield (
                device.product_id,
                device.oem_serial or "",
                code.id,
                "" if code.upstream_index is None else code.upstream_index,
                code.kind,
                "" if code.days is None else code.days,
                code.code,
                _time(code.minted_at),
                _time(code.credit_until_after),
                code.channel,
                phone(who) if who.startswith("+") else who,
            )

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


def _write(file: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> None:
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)


def _phones(clear: bool) -> Phone:
    if clear:
        return lambda phone: phone or ""
    return lambda phone: mask(phone) if phone else ""


def _text(value: str | None) -> str:
    """Text that came from outside (a payer's reference, a name), safe to open in a
    spreadsheet: one that would start a formula gets a leading apostrophe."""
    value = value or ""
    return "'" + value if value[:1] in FORMULA_STARTS else value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""
