"""First contact with a real API (`ovbot api check`): look, read, mint nothing.

The public material leaves the envelopes, the token and the error bodies undocumented
(OMNIVOLTAIC.md section 3). So before serving customers an operator runs this once: it
logs in, reads one page of assigned items and one item's code history through the very
client and parsers the product uses, and says what it saw: the token's shape (never the
token), each answer's envelope and field names, which fields the parsers used, ignored
or missed, and what they could not read. The provider's field names stay in this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.omnivoltaic.client import (
    AuthFailed,
    LoginSeen,
    OmnivoltaicClient,
    OmnivoltaicError,
    ProtocolError,
    Rejected,
    Unavailable,
    page_rows,
)
from bot.omnivoltaic.types import HISTORY_FIELDS, ITEM_FIELDS, history_row_from_api, item_from_api

PAGE = 10  # rows asked for: enough to see the fields, little load on the API


@dataclass(frozen=True)
class Answer:
    """What one answer looked like, and how much of it the parsers could use."""

    what: str
    path: str
    envelope: str
    rows: int
    used: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    login: LoginSeen | None = None
    answers: tuple[Answer, ...] = ()
    notes: tuple[str, ...] = ()
    failure: str | None = None  # the plain reason it failed; None when it all read well

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class _Run:
    client: OmnivoltaicClient
    answers: list[Answer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def done(self, failure: str | None = None) -> Check:
        broken = [a for a in self.answers if a.problems]
        if failure is None and broken:
            failure = f"the {broken[0].what} answer cannot be read: {broken[0].problems[0]}"
        return Check(self.client.last_login, tuple(self.answers), tuple(self.notes), failure)


def check(client: OmnivoltaicClient) -> Check:
    """Log in, read a page of items and one history; never mint. Any failure is explained."""
    run = _Run(client)
    try:
        client.login()
        items = _items(run)
        if items is None:
            return run.done()
        if not items:
            run.notes.append("no item is assigned to this account: no code history to read")
            return run.done()
        _history(run, items[0])
    except OmnivoltaicError as exc:
        return run.done(explain(exc, client))
    return run.done()


def _items(run: _Run) -> list[Any] | None:
    """The first page of assigned items, analysed; the parsed items (None if unreadable)."""
    path = run.client.items_path(0, PAGE)
    body = run.client.read(path)
    rows, answer = _analyse("assigned items", path, body, ITEM_FIELDS)
    parsed, problems = [], list(answer.problems)
    for number, row in enumerate(rows, start=1):
        try:
            parsed.append(item_from_api(row, run.client.api_version))
        except ValueError as exc:
            problems.append(f"item {number}: {exc}")
    run.answers.append(_with(answer, problems))
    if parsed:
        first = parsed[0]
        run.notes.append(
            f"item {first.product_id} is addressed as {first.api_id!r} in "
            f"{run.client.api_version} (serial {first.oem_serial or 'none'})"
        )
    return None if problems else parsed


def _history(run: _Run, item: Any) -> None:
    path = run.client.history_path(item.api_id, 0, PAGE)
    body = run.client.read(path)
    rows, answer = _analyse("code history", path, body, HISTORY_FIELDS)
    problems = list(answer.problems)
    for number, row in enumerate(rows, start=1):
        try:
            history_row_from_api(row)
        except ValueError as exc:
            problems.append(f"row {number}: {exc}")
    if not rows:
        run.notes.append(f"item {item.product_id} has no code yet: its row fields are unseen")
    run.answers.append(_with(answer, problems))


def _analyse(what: str, path: str, body: Any, known: tuple[str, ...]) -> tuple[list[Any], Answer]:
    envelope = shape(body)
    try:
        rows, _ = page_rows(body)
    except ProtocolError as exc:
        return [], Answer(what, path, envelope, 0, problems=(str(exc),))
    names = sorted({str(k) for row in rows if isinstance(row, dict) for k in row})
    answer = Answer(
        what,
        path,
        envelope,
        len(rows),
        used=tuple(n for n in known if n in names),
        ignored=tuple(n for n in names if n not in known),
        missing=tuple(n for n in known if n not in names) if rows else (),
    )
    return rows, answer


def _with(answer: Answer, problems: list[str]) -> Answer:
    return Answer(
        answer.what,
        answer.path,
        answer.envelope,
        answer.rows,
        answer.used,
        answer.ignored,
        answer.missing,
        tuple(problems),
    )


def shape(value: Any, depth: int = 2) -> str:
    """A JSON value's outline: its field names and kinds, never its values."""
    if isinstance(value, dict):
        if depth == 0:
            return "object"
        inner = ", ".join(f"{k}: {shape(v, depth - 1)}" for k, v in list(value.items())[:12])
        more = ", ..." if len(value) > 12 else ""
        return "{" + inner + more + "}"
    if isinstance(value, list):
        return f"list of {len(value)}"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return {int: "int", float: "number", str: "text"}.get(type(value), type(value).__name__)


def explain(exc: OmnivoltaicError, client: OmnivoltaicClient) -> str:
    """A failure in words an operator can act on."""
    cause = exc.__cause__
    if isinstance(exc, AuthFailed):
        return f"wrong credentials, or a wrong login URL: {exc}"
    if isinstance(cause, httpx.ConnectTimeout):
        return f"cannot reach the API ({cause.request.url.host}): the connection timed out"
    if isinstance(cause, httpx.ConnectError):
        host = cause.request.url.host
        return f"cannot reach the API ({host}): wrong host, DNS, TLS or a firewall ({cause})"
    if isinstance(cause, httpx.TimeoutException):
        return f"the API did not answer in time ({cause.request.url.host})"
    if isinstance(exc, ProtocolError):
        return f"an answer we cannot read: {exc}"
    if isinstance(exc, Rejected):
        where = "is this the right host and generation?" if exc.status == 404 else ""
        return f"the API refused a read ({exc.status}: {exc.message}) {where}".strip()
    if isinstance(exc, Unavailable):
        return f"the API is unavailable: {exc}"
    return f"{type(exc).__name__}: {exc}"
