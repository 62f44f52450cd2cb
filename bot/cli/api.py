"""`ovbot api check`: the first thing to run against the real Omnivoltaic API.

It logs in with the configured URL, generation and auth scheme, reads one page of assigned
items and one item's code history, mints nothing, and prints what it saw (the work is in
bot/omnivoltaic/probe.py). The password and the token are never printed: only the
token's shape and dates. Exit status 1, with a plain reason, when something fails.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import click
import httpx

from bot import bootstrap
from bot.cli.context import _Context
from bot.omnivoltaic import probe
from bot.omnivoltaic.client import LoginSeen, OmnivoltaicClient
from bot.settings import ConfigError, Settings

Echo = Callable[[str], None]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@click.group("api", short_help="Talk to the upstream Omnivoltaic API.")
def api_group() -> None:
    """The upstream Omnivoltaic API."""


@api_group.command("check", short_help="First contact with the API; mints nothing.")
@click.pass_obj
def api_check(c: _Context) -> None:
    """Log in, read one page of items and one code history, mint nothing, report the shapes.

    Run it first against the real API: it prints the token's shape and lifetime, each
    answer's envelope and fields (used, ignored, missing), never the password or token,
    and exits 1 with a plain reason when something is wrong."""
    settings = c.settings
    try:
        settings.omnivoltaic_credentials  # noqa: B018 - fails by name when unset
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    http = bootstrap.omnivoltaic_http(settings)
    try:
        status = run(settings, http, click.echo, lambda line: click.echo(line, err=True))
    finally:
        http.close()
    if status:
        raise SystemExit(status)


def run(settings: Settings, http: httpx.Client, echo: Echo, complain: Echo) -> int:
    """The check on `http`; its exit status (0 when every answer could be read)."""
    client = bootstrap.omnivoltaic_client(settings, http)
    _configuration(settings, client, http, echo)
    result = probe.check(client)
    if result.login is not None:
        _login(result.login, echo)
    for answer in result.answers:
        _answer(answer, echo)
    for note in result.notes:
        echo(f"note: {note}")
    if result.failure is not None:
        complain(f"FAILED: {result.failure}")
        complain("Nothing was minted.")
        return 1
    echo("OK: logged in and read both answers. Nothing was minted.")
    return 0


def _configuration(
    settings: Settings, client: OmnivoltaicClient, http: httpx.Client, echo: Echo
) -> None:
    where = "the embedded emulator" if settings.uses_emulator else str(http.base_url)
    scheme = "Bearer <token>" if client.auth_scheme == "bearer" else "the raw token"
    echo(f"API:      {where} (generation {client.api_version}, sends {scheme})")
    login = http.build_request("POST", client.login_url).url
    echo(f"login:    POST {login} as {settings.omnivoltaic_credentials[0]}")
    if login.scheme == "http" and login.host not in LOCAL_HOSTS and not settings.uses_emulator:
        echo("warning:  the login URL is plain http: the password would cross in clear")


def _login(seen: LoginSeen, echo: Echo) -> None:
    shape = seen.shape
    kind = f"JWT ({shape.algorithm or 'no alg'})" if shape.kind == "JWT" else "opaque"
    echo(f"token:    {kind}, {shape.length} characters, found at `{seen.token_at}`")
    if shape.claims:
        echo(f"          claims: {', '.join(shape.claims)}")
    if shape.expires_at is not None:
        lives = f", lives {shape.lifetime:.0f} s" if shape.lifetime is not None else ""
        echo(f"          expires {_when(shape.expires_at)}{lives}")
    else:
        echo("          no expiry in the token: the documented hour is assumed")
    echo(f"          renewed by logging in again after {seen.renew_after:.0f} s")
    echo(f"          login answer fields: {', '.join(seen.fields) or '(none)'}")


def _answer(answer: probe.Answer, echo: Echo) -> None:
    echo(f"{answer.what}: GET {answer.path}")
    echo(f"  envelope: {answer.envelope}")
    echo(f"  rows:     {answer.rows}")
    for label, names in (
        ("used", answer.used),
        ("ignored", answer.ignored),
        ("missing", answer.missing),
    ):
        if names:
            echo(f"  {label + ':':<9} {', '.join(names)}")
    for problem in answer.problems:
        echo(f"  cannot read: {problem}")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
