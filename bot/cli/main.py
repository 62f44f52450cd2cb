"""`ovbot`: the operator's command line. Like the app factory, it is a composition root."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import click

from bot.cli.context import _Context
from bot.settings import ConfigError

if TYPE_CHECKING:
    from bot.cli.chat import Chat

pass_ctx = click.make_pass_decorator(_Context)


@click.group()
@click.version_option(package_name="ovbot", message="ovbot %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """OVES token bot: codes for pay-as-you-go solar devices by SMS, WhatsApp, Telegram and USSD."""
    from bot.settings import read_log_format
    from bot.text import logs

    try:
        log_format = read_log_format()
    except ConfigError:
        log_format = "text"  # the command names the bad setting when it reads the settings
    logs.configure(logging.DEBUG if verbose else logging.INFO, log_format)
    ctx.obj = _Context()
    ctx.call_on_close(ctx.obj.close)


@main.group("db", short_help="Database schema: migrations.")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@pass_ctx
def db_upgrade(c: _Context) -> None:
    """Run the Alembic migrations to head."""
    from bot.storage import db

    engine = db.make_engine(c.settings.database_url)
    try:
        db.upgrade(engine)
        click.echo(f"database at revision {db.current_revision(engine)}")
    finally:
        engine.dispose()


@main.command(short_help="Serve the Omnivoltaic API emulator.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8090, show_default=True, type=int, help="The port to listen on.")
@pass_ctx
def emulator(c: _Context, host: str, port: int) -> None:
    """Serve the Omnivoltaic API emulator on its own."""
    from bot.omnivoltaic.emulator.app import create_emulator

    s = c.settings
    app = create_emulator(
        s.omnivoltaic_emulator_state,
        s.omnivoltaic_emulator_seed,
        fleet=s.omnivoltaic_emulator_fleet,
    )
    click.echo(
        f"Omnivoltaic emulator on http://{host}:{port} (state {s.omnivoltaic_emulator_state});"
        " log in as demo@example.com / demo"
    )
    app.run(host=host, port=port, threaded=True)


@main.command("sync-devices", short_help="Copy the distributor's devices locally.")
@pass_ctx
def sync_devices(c: _Context) -> None:
    """Page through the distributor's assigned items into the devices table.

    Reads every page first (a progress bar on a terminal, a count line per page
    otherwise), then writes them in short transactions. Running it again updates what
    changed; nothing is deleted.
    """
    from bot.cli.progress import counter
    from bot.ledger.fleet import sync_fleet
    from bot.omnivoltaic.client import OmnivoltaicError
    from bot.storage import db

    deps = c.deps
    db.upgrade(deps.engine)
    try:
        with counter("devices read") as progress:
            report = sync_fleet(deps.sessions, deps.omnivoltaic, progress=progress)
    except OmnivoltaicError as exc:
        raise click.ClickException(f"sync failed, nothing changed: {exc}") from None
    click.echo(f"{report.total} devices synced ({report.created} new, {report.updated} updated)")


@main.command("import-owners", short_help="Import device owners from a CSV file.")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@pass_ctx
def import_owners(c: _Context, file: TextIO) -> None:
    """Import who owns which device from FILE, a CSV file.

    Columns: product_id,customer_phone,customer_name[,language] (a header line is
    optional). Running it again changes nothing more. Bad rows are reported by line on
    standard error and the good ones are imported; the exit status is 1 if any was bad.
    """
    from bot.cli.progress import counter
    from bot.ledger.owners import BATCH
    from bot.ledger.owners import import_owners as run_import
    from bot.storage import db

    deps = c.deps
    db.upgrade(deps.engine)
    try:
        with counter("rows read", every=1) as show, db.transaction(deps.sessions) as session:

            def progress(rows: int) -> None:
                session.commit()  # each batch on disk: no write lock held for long
                if rows >= BATCH:  # a small file needs no progress
                    show(rows)

            report = run_import(
                session, file, c.settings.default_region, c.settings.default_language, progress
            )
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{file.name} is not UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); save it as CSV UTF-8. Nothing imported."
        ) from None
    for line, reason in report.errors:
        click.echo(f"line {line}: {reason}", err=True)
    click.echo(
        f"{report.imported} imported, {report.unchanged} unchanged, {len(report.errors)} bad rows"
    )
    if report.errors:
        sys.exit(1)


@main.command(short_help="Record a payment of DAYS days for a device.")
@click.argument("product_id")
@click.argument("days", type=click.IntRange(min=1))
@click.option("--reference", required=True, help="Unique per payment: a repeat changes nothing.")
@pass_ctx
def credit(c: _Context, product_id: str, days: int, reference: str) -> None:
    """Record a payment of DAYS days for PRODUCT_ID (product id or serial).

    Its code is minted at once and shown here, and queued for the owner (the worker
    sends it). A repeat of the same --reference changes nothing.
    """
    from bot import payments
    from bot.cli import settled
    from bot.ledger import InvalidPayment, devices
    from bot.storage import db

    deps = c.deps
    db.upgrade(deps.engine)
    with db.transaction(deps.sessions) as session:
        device = devices.find(session, product_id)
        if device is None:
            raise click.BadParameter(
                f"no device {product_id} (run `ovbot sync-devices`?)", param_hint="PRODUCT_ID"
            )
        try:
            result = deps.ledger.record_payment(
                session, reference=reference, device=device, days=days, source="cli"
            )
        except InvalidPayment as exc:
            raise click.BadParameter(str(exc), param_hint="DAYS") from None
        if not result.created:
            first = result.payment
            if payments.differs(first, device, None, days=days, amount=None) is not None:
                was = payments.describe(session, first)
                raise click.ClickException(
                    f"reference {reference} was already used for another payment: "
                    f"{was['days']} days for device {was['product_id'] or was['product_ref']}, "
                    f"recorded {was['recorded_at'][:10]}; nothing changed"
                )
            click.echo(
                f"payment {reference} was already recorded ({first.days} days); nothing changed"
            )
            return
        answer = payments.settle(deps, session, result.payment, channel="cli")
        lines = settled.describe(session, result.payment, answer)
    deps.committed()
    click.echo(f"recorded {days} days for device {device.product_id} ({reference})")
    for line in lines:
        click.echo(line)


@main.command("alarms", short_help="List integrity alarms (exit 1 if any).")
@pass_ctx
def alarms(c: _Context) -> None:
    """List integrity alarms: answers that came for released mints, answers that differ."""
    from sqlalchemy import select

    from bot.storage import db
    from bot.storage.models import Device, IntegrityAlarm

    deps = c.deps
    db.upgrade(deps.engine)
    with deps.sessions() as session:
        rows = session.execute(
            select(IntegrityAlarm, Device.product_id)
            .join(Device, Device.id == IntegrityAlarm.device_id)
            .order_by(IntegrityAlarm.id)
        ).all()
    for alarm, product_id in rows:
        click.echo(
            f"{alarm.created_at:%Y-%m-%d %H:%M:%S}\t{alarm.kind}\tdevice {product_id}\t"
            f"code {alarm.code_id}\t{alarm.detail}"
        )
    click.echo(f"{len(rows)} integrity alarm(s)")
    if rows:
        sys.exit(1)  # scripts and monitors notice


@main.group("payments", short_help="Unmatched payments: list and assign.")
def payments_group() -> None:
    """Payments the payment systems sent for devices we did not know: list, assign."""


@payments_group.command("unmatched")
@pass_ctx
def payments_unmatched(c: _Context) -> None:
    """List payments for devices we did not know."""
    from bot import payments
    from bot.storage import db
    from bot.text.phones import mask

    deps = c.deps
    with db.transaction(deps.sessions) as session:
        rows = payments.unmatched(session)
        for p in rows:
            what = f"{p.amount} (amount)" if p.amount is not None else f"{p.days} days"
            click.echo(
                f"{p.reference}\t{p.product_ref}\t{what}\t{mask(p.phone or '')}\t"
                f"{p.created_at:%Y-%m-%d %H:%M}"
            )
    click.echo(f"{len(rows)} unmatched payment(s)")


@payments_group.command("assign", short_help="Give an unmatched payment its device.")
@click.argument("reference")
@click.argument("product_id")
@pass_ctx
def payments_assign(c: _Context, reference: str, product_id: str) -> None:
    """Give the unmatched payment REFERENCE its device; its code then goes out."""
    from bot import payments
    from bot.cli import settled
    from bot.ledger import LedgerError
    from bot.storage import db

    deps = c.deps
    try:
        with db.transaction(deps.sessions) as session:
            answer = payments.assign(deps, session, reference, product_id)
            lines = settled.describe(session, settled.payment(session, reference), answer)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    deps.committed()
    click.echo(
        f"assigned {reference} to device {answer.body.get('product_id')}: "
        f"{answer.body.get('days')} days"
    )
    for line in lines:
        click.echo(line)


@main.command(short_help="Run the production server (gunicorn).")
@click.option("--host", help="The address to listen on.  [default: 0.0.0.0]")
@click.option("--port", type=int, help="The port to listen on.  [default: 8000]")
@pass_ctx
def serve(c: _Context, host: str | None, port: int | None) -> None:
    """The production web server: gunicorn with config/gunicorn.conf.py, as installed
    with the package.  Without --host and --port it listens on BIND, else 0.0.0.0:$PORT.
    It does not migrate: run `ovbot db upgrade` first (the release step); until then
    /readyz answers 503 and says why."""
    import os
    from importlib.resources import as_file, files

    from bot import metrics
    from bot.storage import db

    try:
        c.settings.require_for_production()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    engine = db.make_engine(c.settings.database_url)
    try:
        problem = db.schema_problem(engine)
    except Exception as exc:  # noqa: BLE001 - serve anyway: /readyz reports it
        problem = f"database unavailable ({type(exc).__name__})"
    finally:
        engine.dispose()
    if problem:
        # A log line, not an echo: in the format of every other line (LOG_FORMAT).
        logging.getLogger(__name__).warning(
            "not ready: %s; /readyz answers 503 until then", problem
        )
    metrics.prepare_for_workers(c.settings)  # before gunicorn imports prometheus_client
    with as_file(files("bot.config") / "gunicorn.conf.py") as conf:
        command = [sys.executable, "-m", "gunicorn", "-c", str(conf)]
        if host is not None or port is not None:
            command += ["--bind", f"{host or '0.0.0.0'}:{port or 8000}"]
        os.execvp(sys.executable, [*command, "webhooks.app:create_app()"])


@main.command(short_help="Run the demo on the embedded emulator.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port to listen on.")
@pass_ctx
def demo(c: _Context, host: str, port: int) -> None:
    """Seed a demo database on the embedded emulator and serve it; prints what to try."""
    from bot.cli import demo as demo_data
    from webhooks.app import create_app, embed_worker

    if not c.settings.uses_emulator:
        raise click.ClickException(
            "the demo runs on the embedded emulator: unset OMNIVOLTAIC_API_URL"
        )
    # The demo's webhooks take unsigned requests (so the printed curl lines work) and its
    # pushes go to the log: no secret from the environment applies.
    import secrets

    c._settings = c.settings.replace(
        demo=True,
        # The console signs its cookies with this: the environment's, else one for this run.
        console_secret_key=c.settings.console_secret_key or secrets.token_hex(32),
        twilio_account_sid=None,
        twilio_auth_token=None,
        public_base_url=None,
        telegram_secret_token=None,
        payments_secret=None,
        africastalking_callback_token=None,
    )
    deps = c.deps
    demo_data.seed(deps)
    app = create_app(deps=deps)
    embed_worker(deps)
    click.echo(demo_data.instructions(f"http://{host}:{port}"))
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command(short_help="Type messages as a customer; see the replies.")
@click.option("--from", "phone", required=True, help="The customer's phone number.")
@click.option(
    "--channel",
    type=click.Choice(["sms", "whatsapp", "telegram"]),
    default="sms",
    show_default=True,
    help="The channel to write on (WhatsApp: as Twilio posts it, on the same route as SMS).",
)
@click.option(
    "--url",
    metavar="URL",
    help="A running server (e.g. http://127.0.0.1:8000) to post to, signed with this "
    "environment's TWILIO_AUTH_TOKEN, PUBLIC_BASE_URL and TELEGRAM_SECRET_TOKEN. "
    "Without it, the app runs in this process on DATABASE_URL.",
)
@pass_ctx
def chat(c: _Context, phone: str, channel: str, url: str | None) -> None:
    """Type messages as the customer PHONE through the real webhook stack; print the replies.

    Each line is sent as the provider would send it, signed, to the app in this process
    or to the server at --url. On Telegram, /contact shares the number and /pick LABEL
    presses a button. /quit leaves.
    """
    from bot.cli import chat as console
    from bot.text.phones import InvalidPhone, mask, normalise

    try:
        phone = normalise(phone, c.settings.default_region)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None
    try:
        session = _remote_chat(c, url, phone, channel) if url else _local_chat(c, phone, channel)
    except console.ChatError as exc:
        raise click.ClickException(str(exc)) from None
    where = url or "this process"
    click.echo(
        f"Chatting as {mask(phone)} over {channel} with {where}; /quit to leave"
        + (
            ", /contact to share your number, /pick to press a button"
            if channel == "telegram"
            else ""
        )
        + "."
    )
    interactive = sys.stdin.isatty()

    def lines() -> Iterator[str]:
        while True:
            try:
                yield input("you> ") if interactive else next(sys.stdin)
            except (EOFError, StopIteration, KeyboardInterrupt):
                return

    try:
        console.run(session, lines(), click.echo)
    finally:
        session.http.close()


def _local_chat(c: _Context, phone: str, channel: str) -> Chat:
    """The app in this process, on this environment's database; warns when it is empty."""
    import httpx
    from sqlalchemy import func, select

    from bot.cli import chat as chat_module
    from bot.storage import db
    from bot.storage.models import Customer
    from webhooks.app import create_app

    s = c.settings
    c._settings = s.replace(  # local secrets, so every request is really signed and checked
        twilio_auth_token=s.twilio_auth_token or "console-twilio-token",
        public_base_url=s.public_base_url or "http://console.invalid",
        telegram_secret_token=s.telegram_secret_token or "console-telegram-secret",
    )
    deps = c.deps
    db.upgrade(deps.engine)
    with deps.sessions() as session:
        customers = session.scalar(select(func.count()).select_from(Customer))
    if not customers:
        click.echo(
            f"warning: the database {deps.engine.url.render_as_string(hide_password=True)} "
            "has no customers: is this the right directory or DATABASE_URL? (--url URL talks "
            "to a running server instead)",
            err=True,
        )
    app = create_app(deps=deps)
    http = httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url=c.settings.public_base_url or ""
    )
    return chat_module.Chat(
        http, c.settings, phone, channel, pushes=chat_module.outbox_peek(deps.sessions)
    )


def _remote_chat(c: _Context, url: str, phone: str, channel: str) -> Chat:
    """A running server: requests signed with this environment's secrets, as it checks them."""
    from bot.cli import chat as chat_module

    s = c.settings
    needed = ("TELEGRAM_SECRET_TOKEN",) if channel == "telegram" else ("TWILIO_AUTH_TOKEN",)
    missing = [name for name in needed if not getattr(s, name.lower())]
    if missing:
        click.echo(
            f"warning: {', '.join(missing)} is not set here: requests go unsigned, and only "
            "a demo server takes them",
            err=True,
        )
    return chat_module.Chat(chat_module.remote(url), s, phone, channel, sign_base_url=url)


from bot.cli.agents import agent_group  # noqa: E402 - the groups register below `main`
from bot.cli.export import export_group  # noqa: E402
from bot.cli.operators import operator_group  # noqa: E402 - the web console's accounts
from bot.cli.telegram import telegram_group  # noqa: E402
from bot.cli.worker import outbox_command, worker_command  # noqa: E402

main.add_command(worker_command)
main.add_command(outbox_command)
main.add_command(agent_group)
main.add_command(export_group)
main.add_command(operator_group)
main.add_command(telegram_group)

from bot.cli.api import api_group  # noqa: E402 - `ovbot api check` (issue 15)

main.add_command(api_group)

from bot.cli.reminders import reminders_command  # noqa: E402 - `ovbot reminders` (issue 13)

main.add_command(reminders_command)

if __name__ == "__main__":  # pragma: no cover
    main()
