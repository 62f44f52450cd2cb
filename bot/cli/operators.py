"""`ovbot operator add|list|unlock`: the accounts of the web console (/console/)."""

from __future__ import annotations

import click

from bot.cli.context import _Context
from bot.domain import OPERATOR_ROLES
from bot.operators import accounts
from bot.storage import db

pass_ctx = click.make_pass_decorator(_Context)


@click.group("operator", short_help="Web console accounts: add, list, unlock.")
def operator_group() -> None:
    """The accounts that sign in to the web console (/console/)."""


def _check_password(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        accounts.check_password(value)
    except accounts.InvalidOperator as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@operator_group.command("add", short_help="Create or update an operator.")
@click.argument("email")
@click.option(
    "--password",
    prompt="Password",
    hide_input=True,
    confirmation_prompt=True,
    callback=_check_password,
    help=f"{accounts.MIN_PASSWORD} to {accounts.MAX_PASSWORD} characters, stored hashed. "
    "Leave it out to be asked for it, hidden and twice: a password given here stays in "
    "the shell's history and in the process list.",
)
@click.option(
    "--role",
    type=click.Choice(OPERATOR_ROLES),
    default="viewer",
    show_default=True,
    help="A viewer sees everything; an admin may also act (assign, retry, resend...).",
)
@pass_ctx
def operator_add(c: _Context, email: str, password: str, role: str) -> None:
    """Create an operator, or give one a new password and role (signing it out everywhere)."""
    engine = db.make_engine(c.settings.database_url)
    try:
        db.upgrade(engine)
        with db.transaction(db.make_sessionmaker(engine)) as session:
            operator, created = accounts.add_operator(session, email, password, role)
            shown = operator.email
    except accounts.InvalidOperator as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"{'created' if created else 'updated'} {role} {shown}")
    if c.settings.console_secret_key is None:
        click.echo("the console is off until CONSOLE_SECRET_KEY is set", err=True)


@operator_group.command("list", short_help="List the operators.")
@pass_ctx
def operator_list(c: _Context) -> None:
    """The operators: email, role, and whether each is locked out now."""
    deps = c.deps
    db.upgrade(deps.engine)
    now = deps.clock()
    with deps.sessions() as session:
        rows = accounts.operators(session)
    for o in rows:
        locked = o.locked_until is not None and o.locked_until > now
        state = f"locked until {o.locked_until:%Y-%m-%d %H:%M} UTC" if locked else "active"
        click.echo(f"{o.email}\t{o.role}\t{state}")
    click.echo(f"{len(rows)} operator(s)")


@operator_group.command("unlock", short_help="Lift an operator's lock-out.")
@click.argument("email")
@pass_ctx
def operator_unlock(c: _Context, email: str) -> None:
    """Lift the lock-out that repeated wrong passwords put on EMAIL."""
    deps = c.deps
    db.upgrade(deps.engine)
    try:
        with db.transaction(deps.sessions) as session:
            operator = accounts.unlock(session, email)
    except accounts.InvalidOperator as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    if operator is None:
        raise click.ClickException(f"no operator {email}")
    click.echo(f"unlocked {operator.email}")
