"""`ovbot`: the operator's command line. Like the app factory, it is a composition root."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import click

from bot.cli.context import _Context
from bot.domain import AGENT_ROLES
from bot.settings import ConfigError

pass_ctx = click.make_pass_decorator(_Context)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """OVES token bot: codes for pay-as-you-go solar devices by SMS, Telegram and USSD."""
    from bot.settings import read_log_format
    from bot.text import logs

    try:
        log_format = read_log_format()
    except ConfigError:
        log_format = "text"  # the command names the bad setting when it reads the settings
    logs.configure(logging.DEBUG if verbose else logging.INFO, log_format)
    ctx.obj = _Context()
    ctx.call_on_close(ctx.obj.close)


@main.group("db")
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
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


@main.command("sync-devices")
@pass_ctx
def sync_devices(c: _Context) -> None:
    """Page through the distributor's assigned items into the devices table."""
    from bot.ledger.fleet import sync_fleet
    from bot.omnivoltaic.client import OmnivoltaicError
    from bot.storage import db

    deps = c.deps
    db.upgrade(deps.engine)
    try:
        report = sync_fleet(deps.sessions, deps.omnivoltaic, progress=_progress("devices read"))
    except OmnivoltaicError as exc:
        raise click.ClickException(f"sync failed, nothing changed: {exc}") from None
    click.echo(f"\r{report.total} devices synced ({report.created} new, {report.updated} updated)")


def _progress(label: str) -> Callable[[int], None]:
    def show(count: int) -> None:
        if count % 50 == 0:
            click.echo(f"\r{count} {label}...", nl=False, err=True)

    return show


@main.command("import-owners")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@pass_ctx
def import_owners(c: _Context, file: TextIO) -> None:
    """Import owners from FILE.csv: product_id,customer_phone,customer_name[,language]."""
    from bot.ledger.owners import import_owners as run_import
    from bot.storage import db

    deps = c.deps
    db.upgrade(deps.engine)
    try:
        with db.transaction(deps.sessions) as session:
            report = run_import(
                session, file, c.settings.default_region, c.settings.default_language
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


@main.group("agent")
def agent_group() -> None:
    """Field agents."""


@agent_group.command("add")
@click.argument("phone")
@click.option("--name", required=True)
@click.option(
    "--pin",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="4 to 8 digits; stored hashed. Prompted, hidden, when not given (keeps it out of "
    "the shell's history).",
)
@click.option("--role", type=click.Choice(AGENT_ROLES), default="agent", show_default=True)
@pass_ctx
def agent_add(c: _Context, phone: str, name: str, pin: str, role: str) -> None:
    """Create or update an agent."""
    from bot.agents.pins import InvalidAgent, add_agent
    from bot.storage import db
    from bot.text.phones import InvalidPhone, mask, normalise

    try:
        e164 = normalise(phone, c.settings.default_region)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None
    engine = db.make_engine(c.settings.database_url)
    try:
        db.upgrade(engine)
        with db.transaction(db.make_sessionmaker(engine)) as session:
            _, created = add_agent(session, e164, name, pin, role)
    except InvalidAgent as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"{'created' if created else 'updated'} {role} {name} ({mask(e164)})")


@agent_group.command("unlock")
@click.argument("phone")
@pass_ctx
def agent_unlock(c: _Context, phone: str) -> None:
    """Lift an agent's lock-out after wrong PINs (anyone can cause one: USSD is unsigned)."""
    from bot.agents.pins import unlock
    from bot.storage import db
    from bot.text.phones import InvalidPhone, mask, normalise

    try:
        e164 = normalise(phone, c.settings.default_region)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None
    deps = c.deps
    db.upgrade(deps.engine)
    with db.transaction(deps.sessions) as session:
        agent = unlock(session, e164)
    if agent is None:
        raise click.ClickException(f"no agent {mask(e164)}")
    click.echo(f"unlocked {agent.name} ({mask(e164)})")


@agent_group.command("list")
@pass_ctx
def agent_list(c: _Context) -> None:
    """The agents: role, name, masked phone, and whether each is locked out now."""
    from bot.agents.pins import agents
    from bot.storage import db
    from bot.text.phones import mask

    deps = c.deps
    db.upgrade(deps.engine)
    now = deps.clock()
    with deps.sessions() as session:
        rows = agents(session)
    for a in rows:
        locked = a.locked_until is not None and a.locked_until > now
        state = f"locked until {a.locked_until:%Y-%m-%d %H:%M} UTC" if locked else "active"
        click.echo(f"{mask(a.phone)}\t{a.role}\t{a.name}\t{state}")
    click.echo(f"{len(rows)} agent(s)")


@main.command()
@click.argument("product_id")
@click.argument("days", type=click.IntRange(min=1))
@click.option("--reference", required=True, help="Unique per payment: a repeat changes nothing.")
@pass_ctx
def credit(c: _Context, product_id: str, days: int, reference: str) -> None:
    """Record a payment of DAYS days for PRODUCT_ID (product id or serial)."""
    from bot import payments
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
    deps.committed()
    click.echo(
        f"recorded {days} days for device {device.product_id} ({reference}); "
        f"code: {answer.body.get('code')}"
    )


@main.command("alarms")
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


@main.group("payments")
def payments_group() -> None:
    """Payments the payment systems sent."""


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


@payments_group.command("assign")
@click.argument("reference")
@click.argument("product_id")
@pass_ctx
def payments_assign(c: _Context, reference: str, product_id: str) -> None:
    """Give the unmatched payment REFERENCE its device; its code then goes out."""
    from bot import payments
    from bot.ledger import LedgerError
    from bot.storage import db

    deps = c.deps
    try:
        with db.transaction(deps.sessions) as session:
            answer = payments.assign(deps, session, reference, product_id)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    deps.committed()
    click.echo(
        f"assigned {reference} to device {answer.body.get('product_id')}: "
        f"{answer.body.get('days')} days, code {answer.body.get('code')}"
    )


@main.command()
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
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
    c._settings = c.settings.replace(
        demo=True,
        twilio_account_sid=None,
        twilio_auth_token=None,
        public_base_url=None,
        telegram_secret_token=None,
        payments_secret=None,
    )
    deps = c.deps
    demo_data.seed(deps)
    app = create_app(deps=deps)
    embed_worker(deps)
    click.echo(demo_data.instructions(f"http://{host}:{port}"))
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@click.option("--from", "phone", required=True, help="The customer's phone number.")
@click.option("--channel", type=click.Choice(["sms", "telegram"]), default="sms", show_default=True)
@pass_ctx
def chat(c: _Context, phone: str, channel: str) -> None:
    """Type messages as PHONE through the real webhook stack; prints the replies."""
    from bot.cli import chat as console
    from bot.storage import db
    from bot.text.phones import InvalidPhone, normalise
    from webhooks.app import create_app

    try:
        phone = normalise(phone, c.settings.default_region)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None
    s = c.settings
    c._settings = s.replace(  # local secrets, so every request is really signed and checked
        twilio_auth_token=s.twilio_auth_token or "console-twilio-token",
        public_base_url=s.public_base_url or "http://console.invalid",
        telegram_secret_token=s.telegram_secret_token or "console-telegram-secret",
    )
    db.upgrade(c.deps.engine)
    app = create_app(deps=c.deps)
    session = console.Chat(app.test_client(), c.settings, phone, channel)
    click.echo(
        f"Chatting as {phone} over {channel}; /quit to leave"
        + (", /contact to share your number" if channel == "telegram" else "")
        + "."
    )
    interactive = sys.stdin.isatty()

    def lines() -> Iterator[str]:
        while True:
            try:
                yield input("you> ") if interactive else next(sys.stdin)
            except (EOFError, StopIteration, KeyboardInterrupt):
                return

    console.run(session, lines(), click.echo)


@main.group("telegram")
def telegram_group() -> None:
    """Telegram bot set-up."""


@telegram_group.command("set-webhook")
@click.argument("url")
@pass_ctx
def telegram_set_webhook(c: _Context, url: str) -> None:
    """Register URL (…/webhooks/telegram) with Telegram, with the secret token."""
    import asyncio

    from telegram import Bot
    from telegram.error import TelegramError

    try:
        c.settings.require("TELEGRAM_BOT_TOKEN", "TELEGRAM_SECRET_TOKEN")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    token = c.settings.telegram_bot_token
    if token is None:  # cannot happen: required just above
        raise click.ClickException("missing required setting(s): TELEGRAM_BOT_TOKEN")
    if not url.startswith("https://"):
        raise click.BadParameter("Telegram only calls https URLs", param_hint="URL")

    async def register() -> bool:
        async with Bot(token) as bot:
            return await bot.set_webhook(
                url, secret_token=c.settings.telegram_secret_token, allowed_updates=["message"]
            )

    try:
        ok = asyncio.run(register())
    except TelegramError as exc:
        raise click.ClickException(f"Telegram refused: {exc}") from None
    click.echo(f"webhook set to {url}" if ok else "Telegram did not confirm the webhook")


from bot.cli.worker import outbox_command, worker_command  # noqa: E402 - needs `main` defined

main.add_command(worker_command)
main.add_command(outbox_command)

from bot.cli.api import api_group  # noqa: E402 - `ovbot api check` (issue 15)

main.add_command(api_group)

if __name__ == "__main__":  # pragma: no cover
    main()
