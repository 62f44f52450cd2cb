"""`ovbot agent add|list|unlock|remove`: the field agents who use the USSD menu."""

from __future__ import annotations

import click

from bot.cli.context import _Context
from bot.domain import AGENT_ROLES
from bot.storage import db
from bot.text.phones import InvalidPhone, mask, normalise

pass_ctx = click.make_pass_decorator(_Context)


def _phone(c: _Context, phone: str) -> str:
    try:
        return normalise(phone, c.settings.default_region)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None


@click.group("agent", short_help="Field agents: add, list, unlock, remove.")
def agent_group() -> None:
    """Field agents: add, list, unlock and remove them."""


@agent_group.command("add", short_help="Create or update an agent.")
@click.argument("phone")
@click.option("--name", required=True, help="The agent's name, as reports show it.")
@click.option(
    "--pin",
    prompt="PIN",
    hide_input=True,
    confirmation_prompt=True,
    help="4 to 8 digits, stored hashed. Leave it out to be asked for it, hidden and twice: "
    "a PIN given here stays in the shell's history and in the process list.",
)
@click.option(
    "--role",
    type=click.Choice(AGENT_ROLES),
    default="agent",
    show_default=True,
    help="An admin may also make free and reset codes.",
)
@pass_ctx
def agent_add(c: _Context, phone: str, name: str, pin: str, role: str) -> None:
    """Create an agent, or update one (a removed agent is reinstated)."""
    from bot.agents.pins import InvalidAgent, add_agent

    e164 = _phone(c, phone)
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


@agent_group.command("unlock", short_help="Lift an agent's lock-out.")
@click.argument("phone")
@pass_ctx
def agent_unlock(c: _Context, phone: str) -> None:
    """Lift an agent's lock-out after three wrong PINs.

    Anyone can cause one: USSD requests are not signed.
    """
    from bot.agents.pins import unlock

    e164 = _phone(c, phone)
    deps = c.deps
    db.upgrade(deps.engine)
    with db.transaction(deps.sessions) as session:
        agent = unlock(session, e164)
        removed = agent is not None and agent.removed_at is not None
    if agent is None:
        raise click.ClickException(f"no agent {mask(e164)}")
    if removed:
        raise click.ClickException(
            f"agent {mask(e164)} was removed; `ovbot agent add` reinstates it with a new PIN"
        )
    click.echo(f"unlocked {agent.name} ({mask(e164)})")


@agent_group.command("list", short_help="List the agents and their state.")
@pass_ctx
def agent_list(c: _Context) -> None:
    """The agents: masked phone, role, name, and whether each is active now.

    A state is `active`, `locked until …` (wrong PINs) or `removed …`.
    """
    from bot.agents.pins import agents

    deps = c.deps
    db.upgrade(deps.engine)
    now = deps.clock()
    with deps.sessions() as session:
        rows = agents(session)
    for a in rows:
        if a.removed_at is not None:
            state = f"removed {a.removed_at:%Y-%m-%d %H:%M} UTC"
        elif a.locked_until is not None and a.locked_until > now:
            state = f"locked until {a.locked_until:%Y-%m-%d %H:%M} UTC"
        else:
            state = "active"
        click.echo(f"{mask(a.phone)}\t{a.role}\t{a.name}\t{state}")
    click.echo(f"{len(rows)} agent(s)")


@agent_group.command("remove", short_help="Retire an agent.")
@click.argument("phone")
@pass_ctx
def agent_remove(c: _Context, phone: str) -> None:
    """Retire an agent: the USSD menu refuses it from now on.

    The agent is kept, with its PIN wiped, because payments name the agent who sold them;
    `ovbot agent add` reinstates it with a new PIN.
    """
    from bot.agents.pins import remove

    e164 = _phone(c, phone)
    deps = c.deps
    db.upgrade(deps.engine)
    with db.transaction(deps.sessions) as session:
        agent, removed = remove(session, e164)
        name = agent.name if agent else ""
    if agent is None:
        raise click.ClickException(f"no agent {mask(e164)}: nothing removed")
    if not removed:
        click.echo(f"{name} ({mask(e164)}) was already removed; nothing changed")
        return
    click.echo(f"removed {name} ({mask(e164)}): the USSD menu refuses this number now")
