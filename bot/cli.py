"""`ovbot`: the operator's command line. Like the app factory, it is a composition root."""
from __future__ import annotations

import logging
import sys

import click

from bot.settings import ConfigError, Settings


class _Context:
    """Builds settings and services on first use, so `--help` needs no configuration."""

    def __init__(self):
        self._settings: Settings | None = None
        self._services = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env()
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def services(self):
        if self._services is None:
            from bot import wiring

            self._services = wiring.build(self.settings)
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()


pass_ctx = click.make_pass_decorator(_Context)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """OVES token bot: codes for pay-as-you-go solar devices by SMS, Telegram and USSD."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = _Context()
    ctx.call_on_close(ctx.obj.close)


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@pass_ctx
def db_upgrade(c: _Context) -> None:
    """Run the Alembic migrations to head."""
    from bot import db

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
    from bot.omnivoltaic.emulator import create_emulator

    s = c.settings
    app = create_emulator(s.omnivoltaic_emulator_state, s.omnivoltaic_emulator_seed)
    click.echo(f"Omnivoltaic emulator on http://{host}:{port} (state {s.omnivoltaic_emulator_state});"
               " log in as demo@example.com / demo")
    app.run(host=host, port=port, threaded=True)


@main.command("sync-devices")
@pass_ctx
def sync_devices(c: _Context) -> None:
    """Page through the distributor's assigned items into the devices table."""
    from bot import db
    from bot.fleet import sync_devices as sync
    from bot.omnivoltaic.client import OmnivoltaicError

    services = c.services
    db.upgrade(services.engine)
    try:
        with db.transaction(services.sessions) as session:
            report = sync(session, services.omnivoltaic, progress=_progress("devices synced"))
    except OmnivoltaicError as exc:
        raise click.ClickException(f"sync failed, nothing changed: {exc}") from None
    click.echo(f"\r{report.total} devices synced ({report.created} new, {report.updated} updated)")


def _progress(label: str):
    def show(count: int) -> None:
        if count % 50 == 0:
            click.echo(f"\r{count} {label}...", nl=False, err=True)
    return show


@main.command("import-owners")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@pass_ctx
def import_owners(c: _Context, file) -> None:
    """Import owners from FILE.csv: product_id,customer_phone,customer_name[,language]."""
    from bot import db
    from bot.owners import import_owners as run_import

    services = c.services
    db.upgrade(services.engine)
    with db.transaction(services.sessions) as session:
        report = run_import(session, file, c.settings.default_region, c.settings.default_language)
    for line, reason in report.errors:
        click.echo(f"line {line}: {reason}", err=True)
    click.echo(f"{report.imported} imported, {report.unchanged} unchanged, "
               f"{len(report.errors)} bad rows")
    if report.errors:
        sys.exit(1)


@main.group("agent")
def agent_group() -> None:
    """Field agents."""


@agent_group.command("add")
@click.argument("phone")
@click.option("--name", required=True)
@click.option("--pin", required=True, help="4 to 8 digits; stored hashed.")
@click.option("--role", type=click.Choice(["agent", "admin"]), default="agent", show_default=True)
@pass_ctx
def agent_add(c: _Context, phone: str, name: str, pin: str, role: str) -> None:
    """Create or update an agent."""
    from bot import db
    from bot.agents import InvalidAgent, add_agent
    from bot.phones import InvalidPhone, mask, normalise

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


if __name__ == "__main__":  # pragma: no cover
    main()
