"""Every webhook route fuzzed with hostile requests (hypothesis), in-process, on SQLite and
(with TEST_DATABASE_URL) PostgreSQL.

One world per test function (one route, on each database), its Flask test client, and many
requests: wrong types, missing and repeated fields, huge and tiny numbers (2**63, -2**63-1, 1e308,
1e-1000027, as strings and as JSON numbers), bytes that are not UTF-8, NUL, lone
surrogates, strings up to ~70 KB (the app refuses bodies over 64 KB), JSON nested 10,000
deep, USSD paths of thousands of inputs, every Telegram update type, contacts of odd
types. Most requests are a real provider payload with a few things spoiled (a field's
value, a field dropped or repeated, one nobody asked for), so they get past the first
check; the rest are junk. Signed routes get both correctly signed hostile payloads (they
pass the guard and reach the parser) and forged ones. Every request must:

- never get a 5xx, a traceback, an ERROR record or a record with exc_info in the log;
- never get an HTML page (the providers read JSON, TwiML or text);
- when refused (a 4xx; for USSD an END refusal screen), change no row of any table;
- when forged (a signed route without the right signature), be refused;
- on USSD (a POST), be a 200 whose body starts with "CON " or "END ";
- run at most MAX_STATEMENTS SQL statements, whatever its size (work bounded by the
  request's meaning, not its length: the busiest real requests, a mint, run under 40).

FUZZ_EXAMPLES sets the number of requests per route (150 by default).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, update
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder, encode_multipart

from bot.storage.models import Agent, Base
from bot.text.templates import Messages
from tests.fakes import payment_signature
from tests.harness import (
    ADMIN,
    ADMIN_PIN,
    AGENT,
    OTHER_OWNER,
    OWNER,
    PIN,
    SECRETS,
    STRANGER,
    build_world,
    populate_agents,
)
from webhooks.app import MAX_BODY

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MESSAGES = Messages.load()
TWILIO_PATH = "/webhooks/twilio/sms"
TELEGRAM_PATH = "/webhooks/telegram"
PAYMENTS_PATH = "/webhooks/payments"
USSD_PATH = "/webhooks/ussd"
TELEGRAM_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SERVICE_CODE = "*384*123#"
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD"]
MAX_STATEMENTS = 200


# -- requests, and what every answer must be -----------------------------------------------


def _clip(body: bytes) -> str:
    if len(body) <= 240:
        return repr(body)
    return f"{body[:160]!r} ... {body[-60:]!r} ({len(body)} bytes)"


class ShortRepr:
    """Hypothesis prints failing examples with `_repr_pretty_`: keep them short."""

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


@dataclass(repr=False)
class Req(ShortRepr):
    """One hostile request."""

    path: str
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    method: str = "POST"
    forged: bool = False  # a signed route, without the right signature
    restricted: bool = False  # USSD: sent to the client serving only SERVICE_CODE
    unlocked: bool = False  # USSD: the agents' wrong PINs forgotten before it is sent

    def __repr__(self) -> str:
        return (
            f"Req({self.method} {self.path}{'?' + self.query if self.query else ''}, "
            f"content_type={self.content_type!r}, headers={self.headers!r:.300}, "
            f"forged={self.forged}, restricted={self.restricted}, unlocked={self.unlocked}, "
            f"body={_clip(self.body)})"
        )


def row_counts(world) -> dict[str, int]:
    with world.services.engine.connect() as conn:
        return {
            table.name: conn.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def send(world, client, req: Req, caplog, is_refusal=None):
    """Send `req`, check what every answer must be, and return the response."""
    caplog.clear()
    before = row_counts(world)
    kwargs: dict = dict(
        method=req.method, headers=req.headers, query_string=req.query, data=req.body
    )
    if req.content_type is not None:
        kwargs["content_type"] = req.content_type
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(world.services.engine, "before_cursor_execute", count)
    try:
        response = client.open(req.path, **kwargs)
    finally:
        event.remove(world.services.engine, "before_cursor_execute", count)
    body = response.get_data()
    shown = f"{response.status_code} {response.mimetype} {_clip(body)}"

    assert response.status_code < 500, shown
    troubles = [
        f"{r.levelname} {r.name}: {r.getMessage()[:300]}" + (" (exc_info)" if r.exc_info else "")
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or "Traceback" in r.getMessage()
    ]
    assert not troubles, (shown, troubles)
    assert b"Traceback" not in body, shown
    assert len(statements) <= MAX_STATEMENTS, (f"{len(statements)} SQL statements", shown)
    html = (response.mimetype == "text/html" and body.strip()) or body.lower().startswith(
        b"<!doctype html"
    )
    assert not html, ("an HTML page", shown)
    if req.forged:
        assert 400 <= response.status_code < 500, ("a forged request was not refused", shown)
    refused = 400 <= response.status_code < 500 or bool(is_refusal and is_refusal(response))
    if refused:
        assert row_counts(world) == before, ("a refused request changed rows", shown)
    return response


@dataclass(repr=False)
class Site(ShortRepr):
    """A world with agents and owners, its client, and a client serving only SERVICE_CODE."""

    world: object
    client: object
    restricted: object

    def __repr__(self) -> str:
        return "Site(...)"


@pytest.fixture
def site(database_url, tmp_path, caplog):
    """On SQLite, and on PostgreSQL with TEST_DATABASE_URL (NUL, for one, is its concern)."""
    caplog.set_level(logging.WARNING)
    world = populate_agents(build_world(database_url, tmp_path))
    world.pay(1001, 30, "fuzz-seed-1001")
    yield Site(world, world.client(), world.client(ussd_service_codes=(SERVICE_CODE,)))
    world.services.close()


# -- hostile values ----------------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, each drawn in proportion to its weight."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True once in `n` draws (hypothesis favours the first of sampled values)."""
    return st.sampled_from([False] * (n - 1) + [True])


@dataclass(frozen=True)
class Raw:
    """A JSON token written as it is: numbers json.dumps cannot write, deep nesting."""

    token: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as a list of pairs: keys may repeat (the last one wins in Python)."""

    pairs: tuple


def dumps(value, ascii_only: bool = True) -> str:
    if isinstance(value, Raw):
        return value.token
    if isinstance(value, Obj):
        items = (
            f"{json.dumps(k, ensure_ascii=ascii_only)}:{dumps(v, ascii_only)}"
            for k, v in value.pairs
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def to_bytes(text: str) -> bytes:
    """UTF-8, lone surrogates kept as they are (bytes that are not valid UTF-8)."""
    return text.encode("utf-8", "surrogatepass")


DEEP = 10_000
NUMBER_TOKENS = [
    "9223372036854775808",  # 2**63
    "-9223372036854775809",  # -2**63 - 1
    "18446744073709551616",
    "9223372036854775807",
    "1e308",
    "-1e308",
    "1e-1000027",
    "1e400",
    "-1e400",
    "1e-400",
    "5e-324",
    "-0",
    "-0.0",
    "0.1e1",
    "1E+2",
    "1.0",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" * 5000,  # over Python's int digit limit
    "0." + "0" * 3000 + "1",
]
BIG_INTS = [2**63, -(2**63) - 1, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30), 2**31, -1, 0]
DEEP_TOKENS = [
    "[" * DEEP + "]" * DEEP,
    '{"a":' * DEEP + "1" + "}" * DEEP,
    "[" * DEEP,
    '{"a":[' * (DEEP // 2) + "]}" * (DEEP // 2),
]
LENGTHS = [200, 1_000, 16_000, 40_000, MAX_BODY - 300, MAX_BODY - 40, MAX_BODY + 1, 70_000]
# NUL, lone surrogates (JSON may carry them as escapes), and other characters out of place.
SURROGATES = ["\ud800", "\udfff", "\udc80"]
ODD = ["\x00", *SURROGATES, "\ufffd", "\u202e", "\U0001f600", "é", "١", "*", "#", "%", "&"]
ODD_CHARS = st.sampled_from(ODD)
# Numbers in exponent notation, from the tiniest to the hugest (as strings, or JSON numbers).
sci_numbers = st.builds(
    "{}{}{}".format,
    st.sampled_from(["1", "-1", "0", "175.5", "9" * 20]),
    st.sampled_from(["e", "E"]),
    st.sampled_from(["-1000027", "-400", "-3", "0", "+2", "308", "400", "1000027"]),
)


def stretch(piece: str, n: int) -> str:
    piece = piece or "x"
    return (piece * (n // len(piece) + 1))[:n]


long_text = st.builds(
    stretch, st.text(min_size=1, max_size=3) | ODD_CHARS, st.sampled_from(LENGTHS)
)
hostile_text = st.one_of(
    st.text(st.characters() | ODD_CHARS, max_size=20),
    st.sampled_from(NUMBER_TOKENS),
    st.sampled_from(["", " ", "\x00", "null", "true", "[]", "{}", "\ud800", "\n\r\t"]),
    long_text,
)
hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(),
    st.sampled_from(NUMBER_TOKENS + DEEP_TOKENS).map(Raw),
    hostile_text,
)
KEYS = st.sampled_from(
    ["id", "text", "from", "chat", "type", "contact", "phone_number", "user_id", "date", "data"]
) | st.text(max_size=8)
hostile_json = st.recursive(
    hostile_scalar,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.tuples(KEYS, children), max_size=4).map(lambda pairs: Obj(tuple(pairs)))
    ),
    max_leaves=8,
)


@st.composite
def near_miss(draw, value):
    """`value` spoiled: a hostile value of any type, or a near miss of its own type."""
    if draw(one_in(3)):
        return draw(hostile_json)
    if isinstance(value, str):
        at = draw(st.integers(0, len(value)))
        return draw(
            st.one_of(
                st.builds(lambda ch: value[:at] + ch + value[at:], ODD_CHARS),
                st.sampled_from(["\x00", *SURROGATES]).map(lambda ch: value[:at] + ch + value[at:]),
                st.sampled_from(["", " ", f" {value} ", value.upper(), *NUMBER_TOKENS]),
                sci_numbers,
                st.builds(lambda n: stretch(value, n), st.sampled_from(LENGTHS)),
                st.just(Raw(value)) if value.lstrip("-").isdigit() else st.nothing(),
            )
        )
    if isinstance(value, bool):
        return draw(st.sampled_from([0, 1, "true", "false", None]))
    if isinstance(value, int):
        return draw(
            st.one_of(
                st.sampled_from(BIG_INTS),
                st.sampled_from(NUMBER_TOKENS).map(Raw),
                sci_numbers.map(Raw),
                st.sampled_from([str(value), float(value), -value, [value], True]),
            )
        )
    return draw(hostile_json)


MUTATIONS = st.sampled_from([0] * 6 + [1, 1, 2])


@st.composite
def record(draw, required: dict, optional: dict | None = None) -> Obj:
    """A JSON object with these fields (the optional ones now and then), then a few
    mutations: a value spoiled, a field dropped or repeated, one nobody asked for."""
    optional = optional or {}
    names = list(required) + [n for n in optional if draw(one_in(3))]
    fields = {**required, **optional}
    pairs = [(name, draw(fields[name])) for name in names]
    for _ in range(draw(MUTATIONS)):
        how = draw(st.sampled_from(["value", "value", "drop", "twice", "extra"]))
        if how == "extra" or not pairs:
            pairs.insert(draw(st.integers(0, len(pairs))), (draw(KEYS), draw(hostile_json)))
            continue
        at = draw(st.integers(0, len(pairs) - 1))
        name, value = pairs[at]
        if how == "value":
            pairs[at] = (name, draw(near_miss(value)))
        elif how == "drop":
            del pairs[at]
        else:
            again = draw(near_miss(value) | st.just(value))
            pairs.insert(draw(st.integers(0, len(pairs))), (name, again))
    return Obj(tuple(pairs))


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"\x00",
            b"\xff\xfe\x00garbage",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"{",
            b"null",
            b"[]",
            b'"\\ud800"',
            b" " * 70_000,
            b"x" * (MAX_BODY + 1),
            b"[" * DEEP + b"]" * DEEP,
            b"[" * (3 * DEEP),
            b'{"update_id": 1, "message": ' + b'{"a":' * DEEP + b"1" + b"}" * (DEEP + 1),
        ]
    ),
    st.builds(lambda token: token.encode(), st.sampled_from(NUMBER_TOKENS + DEEP_TOKENS)),
)
JSON_TYPES = st.sampled_from(
    ["application/json"] * 6
    + [
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/vnd.api+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        None,
    ]
)
FORM_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded"] * 6
    + [
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=xyz",
        None,
    ]
)
# What a proxy could put in a header: latin-1 without controls.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
JUNK_BYTES = [b"\xff", b"\x00", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"]


@st.composite
def spoil(draw, body: bytes) -> bytes:
    """`body` with bytes that are not UTF-8, or a NUL, put in it."""
    at = draw(st.integers(0, len(body)))
    return body[:at] + draw(st.sampled_from(JUNK_BYTES)) + body[at:]


@st.composite
def json_body(draw, payloads, req: Req) -> Req:
    """`req` with a JSON body: mostly one of `payloads`, else junk; now and then sent with
    another method."""
    how = draw(st.sampled_from(["payload"] * 12 + ["json", "raw", "spoiled", "method"]))
    if how == "raw":
        req.body = draw(RAW_BODIES)
    elif how == "json":
        req.body = to_bytes(dumps(draw(hostile_json), draw(st.booleans())))
    else:
        req.body = to_bytes(dumps(draw(payloads), draw(st.booleans())))
        if how == "spoiled":
            req.body = draw(spoil(req.body))
        if how == "method":
            req.method = draw(st.sampled_from(OTHER_METHODS))
    return req


# -- forms (Twilio, USSD) --------------------------------------------------------------------

form_bytes = st.one_of(
    hostile_text.map(to_bytes),
    st.binary(max_size=16),
    st.sampled_from([b"\xff\xfe", b"\x00", b"%zz", b"a&b=c", b"\xed\xa0\x80"]),
)


@st.composite
def near_miss_bytes(draw, value: bytes) -> bytes:
    return draw(
        st.one_of(
            form_bytes,
            spoil(value),
            st.builds(
                lambda n: stretch(value.decode(errors="replace"), n).encode(),
                st.sampled_from(LENGTHS),
            ),
            st.sampled_from([b"", b" ", b"\t", b"\x00", b" " + value + b" "]),
        )
    )


@st.composite
def form_pairs(draw, fields: list[tuple[str, st.SearchStrategy]]) -> list[tuple[bytes, bytes]]:
    """A provider's form, then a few mutations: a value spoiled, a field dropped or
    repeated, one nobody asked for; now and then in another order."""
    pairs = [(name.encode(), to_bytes(draw(plausible))) for name, plausible in fields]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        how = draw(st.sampled_from(["value", "value", "drop", "twice", "extra"]))
        if how == "extra" or not pairs:
            pairs.insert(draw(st.integers(0, len(pairs))), (draw(form_bytes), draw(form_bytes)))
            continue
        at = draw(st.integers(0, len(pairs) - 1))
        name, value = pairs[at]
        if how == "value":
            pairs[at] = (name, draw(near_miss_bytes(value)))
        elif how == "drop":
            del pairs[at]
        else:
            again = draw(near_miss_bytes(value) | st.just(value))
            pairs.insert(draw(st.integers(0, len(pairs))), (name, again))
    if draw(one_in(6)):
        pairs = draw(st.permutations(pairs))
    return pairs


def urlencode(pairs) -> bytes:
    return b"&".join(
        quote_from_bytes(k, safe="").encode() + b"=" + quote_from_bytes(v, safe="").encode()
        for k, v in pairs
    )


@st.composite
def form_request(draw, path: str, fields) -> Req:
    pairs = draw(form_pairs(fields))
    how = draw(st.sampled_from(["urlencoded"] * 11 + ["spoiled", "raw", "multipart", "method"]))
    content_type = draw(FORM_TYPES) if draw(one_in(6)) else "application/x-www-form-urlencoded"
    req = Req(path=path, content_type=content_type)
    if how == "multipart":
        values = MultiDict(
            [(k.decode(errors="replace"), v.decode(errors="replace")) for k, v in pairs]
        )
        boundary, req.body = encode_multipart(values, boundary="fuzz-boundary")
        req.content_type = f"multipart/form-data; boundary={boundary}"
    elif how == "raw":
        req.body = draw(RAW_BODIES)
    else:
        req.body = urlencode(pairs)
        if how == "spoiled":
            req.body = draw(spoil(req.body))
        if how == "method":
            req.method = draw(st.sampled_from(OTHER_METHODS))
    return req


def served_form(req: Req) -> MultiDict:
    """The form as the app will read it (what Twilio's signature covers)."""
    builder = EnvironBuilder(
        path=req.path,
        method=req.method,
        query_string=req.query,
        data=req.body,
        content_type=req.content_type,
    )
    try:
        return builder.get_request().form
    except Exception:
        return MultiDict()
    finally:
        builder.close()


# -- Twilio ----------------------------------------------------------------------------------

SIDS = st.sampled_from(["SM" + "1" * 32, "SMfuzz"]) | st.text(
    "0123456789abcdef", min_size=32, max_size=32
).map(lambda hex_: "SM" + hex_)
PHONES = st.sampled_from(
    [OWNER, OWNER, "254712345678", "0712345678", OTHER_OWNER, STRANGER]
) | st.text("+0123456789 ", max_size=16)
BODIES = st.sampled_from(
    ["CODE", "code 1001", "STATUS 1001", "HELP", "STOP", "START", "RESEND 1001", "LANG sw"]
) | st.text(max_size=60)
TWILIO_FIELDS = [
    ("MessageSid", SIDS),
    ("SmsSid", SIDS),
    ("AccountSid", st.just(SECRETS["twilio_account_sid"])),
    ("From", PHONES),
    ("To", st.just(SECRETS["twilio_from_number"])),
    ("Body", BODIES),
    ("NumMedia", st.just("0")),
    ("NumSegments", st.just("1")),
    ("FromCountry", st.just("KE")),
]


# Delivery receipts (POST /webhooks/twilio/status), signed the same way.
STATUS_PATH = "/webhooks/twilio/status"
STATUS_FIELDS = [
    ("MessageSid", SIDS),
    ("MessageStatus", st.sampled_from(["delivered", "undelivered", "failed", "sent"]) | st.text()),
    ("ErrorCode", st.sampled_from(["", "30003", "21610"]) | st.text(max_size=8)),
    ("AccountSid", st.just(SECRETS["twilio_account_sid"])),
    ("To", PHONES),
]


@st.composite
def twilio_requests(draw, path: str = TWILIO_PATH, fields=TWILIO_FIELDS) -> Req:
    req = draw(form_request(path, fields))
    if draw(one_in(5)):
        req.query = draw(st.sampled_from(["tenant=ke", "a=%ff", "a=1&a=2", "x=" + "y" * 500]))
    url = SECRETS["public_base_url"] + path + ("?" + req.query if req.query else "")
    token = SECRETS["twilio_auth_token"]
    how = draw(
        st.sampled_from(["signed"] * 18 + ["none", "empty", "garbage", "token", "url", "other"])
    )
    form = served_form(req)
    if any(not isinstance(name, str) for name in form):  # a nameless multipart part: Twilio
        form = MultiDict(  # never sends one, and the app refuses it whatever its signature
            [(k, v) for k, v in form.items(multi=True) if isinstance(k, str)]
        )
        if how == "signed":
            how = "other"
    signature = {
        "signed": lambda: RequestValidator(token).compute_signature(url, form),
        "empty": lambda: "",
        "garbage": lambda: draw(header_text),
        "token": lambda: RequestValidator("not-the-token").compute_signature(url, form),
        "url": lambda: RequestValidator(token).compute_signature(
            url.replace("https", "http"), form
        ),
        "other": lambda: RequestValidator(token).compute_signature(
            url, MultiDict([*form.items(multi=True), ("Forged", "yes")])
        ),
        "none": lambda: None,
    }[how]()
    if signature is not None:
        req.headers["X-Twilio-Signature"] = signature
    req.forged = how != "signed"
    return req


@FUZZ
@given(req=twilio_requests())
def test_twilio_survives_hostile_requests(site, caplog, req):
    send(site.world, site.client, req, caplog)


@FUZZ
@given(req=twilio_requests(STATUS_PATH, STATUS_FIELDS))
def test_twilio_receipts_survive_hostile_requests(site, caplog, req):
    send(site.world, site.client, req, caplog)


# -- Telegram ----------------------------------------------------------------------------------

TELEGRAM_USER = 111222333
DATES = weighted(
    (6, st.integers(1_600_000_000, 1_900_000_000)),
    (1, st.integers()),
    (1, st.sampled_from(BIG_INTS)),
)
IDS = weighted(
    (4, st.sampled_from([TELEGRAM_USER, 444555666, -4001234567])),
    (1, st.sampled_from(BIG_INTS)),
    (1, st.integers()),
)
NAMES = st.sampled_from(["Amina", ""]) | st.text(max_size=10)
TEXTS = st.sampled_from(
    [
        "/start",
        "/code",
        "code",
        "/stop",
        "/start@OvesTokenBot",
        "STATUS 1001",
        "/resend 1001",
        "help",
    ]
) | st.text(max_size=30)
CONTACT_PHONES = st.sampled_from(["254712345678", OWNER, "0712345678", "not a number"]) | st.text(
    "+0123456789", max_size=16
)
CHAT_TYPES = st.sampled_from(["private"] * 6 + ["group", "supergroup", "channel"])


def user(ids=IDS) -> st.SearchStrategy[Obj]:
    return record(
        {"id": ids, "is_bot": st.just(False), "first_name": NAMES},
        {"username": NAMES, "language_code": st.sampled_from(["en", "sw", "fr", "xx"])},
    )


def chat(ids=IDS) -> st.SearchStrategy[Obj]:
    return record({"id": ids, "type": CHAT_TYPES}, {"title": NAMES, "first_name": NAMES})


SIZES = weighted((4, st.integers(1, 2048)), (1, IDS))
photo = record(
    {"file_id": NAMES, "file_unique_id": NAMES, "width": SIZES, "height": SIZES},
    {"file_size": SIZES},
)
sticker = record(
    {
        "file_id": NAMES,
        "file_unique_id": NAMES,
        "type": st.sampled_from(["regular", "mask", "custom_emoji"]),
        "width": SIZES,
        "height": SIZES,
        "is_animated": st.booleans(),
        "is_video": st.booleans(),
    },
    {"emoji": ODD_CHARS},
)


@st.composite
def telegram_message(draw) -> Obj:
    """A message from one user in (mostly) their own chat: a text, a contact (mostly
    their own), or something else."""
    who = st.just(draw(st.just(TELEGRAM_USER) | IDS))  # the one who can link, often
    who = st.one_of(who, who, IDS)
    content = draw(st.sampled_from(["text"] * 3 + ["contact"] * 2 + ["sticker", "caption", "none"]))
    required = {"message_id": IDS, "from": user(who), "chat": chat(who), "date": DATES}
    required.update(
        {
            "text": {"text": TEXTS},
            "contact": {
                "contact": record(
                    {"phone_number": CONTACT_PHONES, "first_name": NAMES, "user_id": who},
                    {"last_name": NAMES, "vcard": hostile_text},
                )
            },
            "sticker": {"sticker": sticker},
            "caption": {"caption": TEXTS, "photo": st.lists(photo, max_size=2)},
            "none": {},
        }[content]
    )
    optional = {
        "entities": st.lists(
            record({"type": st.just("bot_command"), "offset": IDS, "length": IDS}), max_size=2
        ),
        "sender_chat": chat(),
        "reply_to_message": record({"message_id": IDS, "chat": chat(), "date": DATES}),
        "edit_date": DATES,
    }
    return draw(record(required, optional))


MESSAGE_UPDATES = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
]


def member(status: str, **extra) -> st.SearchStrategy[Obj]:
    return record({"user": user(), "status": st.just(status), **extra})


member_update = record(
    {
        "chat": chat(),
        "from": user(),
        "date": DATES,
        "old_chat_member": member("member"),
        "new_chat_member": member("kicked", until_date=DATES),
    }
)
boost = record(
    {
        "boost_id": NAMES,
        "add_date": DATES,
        "expiration_date": DATES,
        "source": record({"source": st.just("premium"), "user": user()}),
    }
)
# Every other kind of Update the Bot API sends, with its required fields.
OTHER_UPDATES = {
    "callback_query": record(
        {"id": NAMES, "from": user(), "chat_instance": NAMES},
        {"data": TEXTS, "message": telegram_message(), "inline_message_id": NAMES},
    ),
    "inline_query": record({"id": NAMES, "from": user(), "query": TEXTS, "offset": NAMES}),
    "chosen_inline_result": record({"result_id": NAMES, "from": user(), "query": TEXTS}),
    "shipping_query": record(
        {
            "id": NAMES,
            "from": user(),
            "invoice_payload": TEXTS,
            "shipping_address": record(
                {
                    "country_code": st.just("KE"),
                    "state": NAMES,
                    "city": NAMES,
                    "street_line1": NAMES,
                    "street_line2": NAMES,
                    "post_code": NAMES,
                }
            ),
        }
    ),
    "pre_checkout_query": record(
        {
            "id": NAMES,
            "from": user(),
            "currency": st.just("KES"),
            "total_amount": IDS,
            "invoice_payload": TEXTS,
        }
    ),
    "poll": record(
        {
            "id": NAMES,
            "question": TEXTS,
            "options": st.lists(record({"text": TEXTS, "voter_count": SIZES}), max_size=3),
            "total_voter_count": SIZES,
            "is_closed": st.booleans(),
            "is_anonymous": st.booleans(),
            "type": st.sampled_from(["regular", "quiz"]),
            "allows_multiple_answers": st.booleans(),
        }
    ),
    "poll_answer": record(
        {
            "poll_id": NAMES,
            "user": user(),
            "option_ids": st.lists(SIZES, max_size=3),
            "option_persistent_ids": st.lists(NAMES, max_size=3),
        }
    ),
    "my_chat_member": member_update,
    "chat_member": member_update,
    "chat_join_request": record(
        {"chat": chat(), "from": user(), "date": DATES, "user_chat_id": IDS}
    ),
    "chat_boost": record({"chat": chat(), "boost": boost}),
    "removed_chat_boost": record(
        {
            "chat": chat(),
            "boost_id": NAMES,
            "remove_date": DATES,
            "source": record({"source": st.just("premium"), "user": user()}),
        }
    ),
    "message_reaction": record(
        {
            "chat": chat(),
            "message_id": IDS,
            "date": DATES,
            "user": user(),
            "old_reaction": st.just([]),
            "new_reaction": st.lists(
                record({"type": st.just("emoji"), "emoji": ODD_CHARS}), max_size=2
            ),
        }
    ),
    "message_reaction_count": record(
        {"chat": chat(), "message_id": IDS, "date": DATES, "reactions": st.just([])}
    ),
    "business_connection": record(
        {
            "id": NAMES,
            "user": user(),
            "user_chat_id": IDS,
            "date": DATES,
            "is_enabled": st.booleans(),
        },
        {"can_reply": st.booleans()},
    ),
    "deleted_business_messages": record(
        {"business_connection_id": NAMES, "chat": chat(), "message_ids": st.lists(IDS, max_size=3)}
    ),
    "purchased_paid_media": record({"from": user(), "paid_media_payload": TEXTS}),
    "an_update_type_from_the_future": hostile_json,
}
UPDATE_KINDS = st.sampled_from(["message"] * 30 + MESSAGE_UPDATES + list(OTHER_UPDATES))
UPDATE_IDS = weighted((6, st.integers(1, 2**31)), (1, st.sampled_from([1, 2, *BIG_INTS])))


@st.composite
def telegram_update(draw) -> Obj:
    kinds = draw(st.lists(UPDATE_KINDS, min_size=1, max_size=2, unique=True))
    required = {"update_id": UPDATE_IDS}
    for kind in kinds:
        required[kind] = telegram_message() if kind in MESSAGE_UPDATES else OTHER_UPDATES[kind]
    return draw(record(required))


@st.composite
def telegram_requests(draw) -> Req:
    req = draw(json_body(telegram_update(), Req(path=TELEGRAM_PATH, content_type=draw(JSON_TYPES))))
    secret = SECRETS["telegram_secret_token"]
    forgeries = st.sampled_from([None, "", secret + " ", secret.upper(), "é" * 20]) | header_text
    given_secret = draw(forgeries) if draw(one_in(5)) else secret
    if given_secret is not None:
        req.headers[TELEGRAM_HEADER] = given_secret
    req.forged = given_secret != secret
    return req


@FUZZ
@given(req=telegram_requests())
def test_telegram_survives_hostile_requests(site, caplog, req):
    send(site.world, site.client, req, caplog)


# -- payments --------------------------------------------------------------------------------

REFERENCES = st.sampled_from(["QKL7ABC123", " QKL7ABC123 ", "R" * 128]) | st.text(
    "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=6, max_size=16
)
PRODUCTS = st.sampled_from([1001, 1002, 1003, "1001", "OVES001001", "payg001001", 999999, 1101])
# Huge and tiny numbers, as strings and as JSON numbers.
EXTREMES = st.one_of(
    st.sampled_from(BIG_INTS),
    st.sampled_from(NUMBER_TOKENS),
    st.sampled_from(NUMBER_TOKENS).map(Raw),
    sci_numbers,
    sci_numbers.map(Raw),
)
AMOUNTS = weighted(
    (2, st.integers(1, 20_000)),
    (2, st.sampled_from(["175.50", "175", 500.0, "1e2", 0.5, "0.01"])),
    (1, EXTREMES),
)
DAYS = weighted((3, st.integers(1, 1095)), (1, EXTREMES))


@st.composite
def payment(draw) -> Obj:
    product = draw(st.sampled_from(["product_id"] * 3 + ["serial"]))
    units = draw(st.sampled_from(["days", "amount"]))
    required = {
        "reference": REFERENCES,
        product: PRODUCTS,
        units: DAYS if units == "days" else AMOUNTS,
    }
    optional = {"phone": PHONES, "currency": st.just("KES"), "payer": NAMES}
    return draw(record(required, optional))


@st.composite
def payments_requests(draw) -> Req:
    req = draw(json_body(payment(), Req(path=PAYMENTS_PATH, content_type=draw(JSON_TYPES))))
    secret = SECRETS["payments_secret"]
    good = payment_signature(secret, req.body)
    how = draw(
        st.sampled_from(
            ["signed"] * 20 + ["upper", "padded", "none", "empty", "secret", "body", "junk"]
        )
    )
    signature = {
        "signed": lambda: good,
        "upper": lambda: good.upper(),
        "padded": lambda: f"  {good} ",
        "none": lambda: None,
        "empty": lambda: "",
        "secret": lambda: payment_signature("not-the-secret", req.body),
        "body": lambda: payment_signature(secret, req.body + b" "),
        "junk": lambda: draw(header_text),
    }[how]()
    if signature is not None:
        req.headers["X-Signature"] = signature
    req.forged = how not in ("signed", "upper", "padded")
    return req


@FUZZ
@given(req=payments_requests())
def test_payments_survive_hostile_requests(site, caplog, req):
    send(site.world, site.client, req, caplog)


# -- M-Pesa (Daraja C2B) ------------------------------------------------------------------------

MPESA_PATHS = st.sampled_from(
    ["/webhooks/mpesa/validation", "/webhooks/mpesa/confirmation", "/webhooks/c2b/confirmation"]
)
TRANS_IDS = st.sampled_from(["RKTQDM7W6S", " RKTQDM7W6S ", "R" * 40]) | st.text(
    "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=12
)
C2B_AMOUNTS = weighted(
    (2, st.integers(1, 20_000).map(str)),
    (2, st.sampled_from(["150", "150.00", "49.99", "182550", 150, 150.0, "-150"])),
    (1, EXTREMES),
)
MSISDNS = st.sampled_from(["25470****149", "2547 ***** 126", "254708374149", "ab" * 32])


@st.composite
def c2b(draw) -> Obj:
    shortcode = SECRETS["mpesa_shortcode"]
    required = {
        "TransactionType": st.sampled_from(["Pay Bill", "Buy Goods"]),
        "TransID": TRANS_IDS,
        "TransTime": st.just("20191122063845"),
        "TransAmount": C2B_AMOUNTS,
        "BusinessShortCode": st.sampled_from([shortcode] * 6 + [int(shortcode), "174379"]),
        "BillRefNumber": PRODUCTS.map(str) | st.sampled_from(["", " oves 001001 "]),
        "MSISDN": MSISDNS,
    }
    optional = {
        "InvoiceNumber": st.just(""),
        "OrgAccountBalance": st.just("49197.00"),
        "ThirdPartyTransID": st.just(""),
        "FirstName": NAMES,
        "MiddleName": NAMES,
        "LastName": NAMES,
    }
    return draw(record(required, optional))


@st.composite
def mpesa_requests(draw) -> Req:
    req = draw(json_body(c2b(), Req(path=draw(MPESA_PATHS), content_type=draw(JSON_TYPES))))
    token = SECRETS["mpesa_callback_token"]
    how = draw(st.sampled_from(["token"] * 20 + ["none", "empty", "wrong", "junk", "twice"]))
    req.query = {
        "token": lambda: f"token={token}",
        "none": lambda: "",
        "empty": lambda: "token=",
        "wrong": lambda: "token=not-the-token",
        "junk": lambda: "token=" + quote_from_bytes(draw(header_text).encode()),
        "twice": lambda: f"token=x&token={token}",  # the first one counts
    }[how]()
    req.forged = how != "token"
    return req


@FUZZ
@given(req=mpesa_requests())
def test_mpesa_survives_hostile_requests(site, caplog, req):
    send(site.world, site.client, req, caplog)


# -- USSD -------------------------------------------------------------------------------------

# Journeys through the menu (PIN first), each a list of inputs; "PIN" is the caller's PIN.
JOURNEYS = [
    [],
    ["PIN"],
    ["PIN", "1", "1001", "30", "1"],
    ["PIN", "1", "oves001001", "1095", "1"],
    ["PIN", "1", "1001", "0", "0", "00", "4", "1001"],
    ["PIN", "2", "1002", "0712000111", "Baraka", "1"],
    ["PIN", "2", "1001", "1", OTHER_OWNER, "Juma", "1"],
    ["PIN", "3", "1003"],
    ["PIN", "4", "1002"],
    ["PIN", "5", "1001", "1"],
    ["PIN", "6", "1003", "1"],
]
INPUTS = st.sampled_from(
    [PIN, ADMIN_PIN, "1111", "1", "2", "6", "0", "00", "1001", "1096", "", " ", "*", "#"]
) | st.text(max_size=6)
CALLERS = st.sampled_from(
    [(AGENT, PIN)] * 3
    + [(ADMIN, ADMIN_PIN), ("0700000101", PIN), ("254700000101", PIN), (AGENT, "1111")]
    + [(STRANGER, PIN)]
)


@st.composite
def ussd_path(draw, pin: str) -> str:
    """A journey (cut short, or not), then a few inputs changed, added or dropped; or a
    journey followed by thousands of inputs."""
    inputs = [pin if value == "PIN" else value for value in draw(st.sampled_from(JOURNEYS))]
    inputs = inputs[: draw(st.integers(0, len(inputs)))] if draw(st.booleans()) else inputs
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        at = draw(st.integers(0, len(inputs)))
        how = draw(st.sampled_from(["insert", "replace", "drop"]))
        if how == "insert" or at == len(inputs):
            inputs.insert(at, draw(INPUTS))
        elif how == "replace":
            inputs[at] = draw(INPUTS | near_miss(inputs[at]).filter(lambda v: isinstance(v, str)))
        else:
            del inputs[at]
    if draw(one_in(5)):
        unit = draw(
            st.sampled_from([["1", "0"], ["0"], ["00"], ["1111"], [pin], ["1", "1001", "0"]])
        )
        inputs += unit * draw(st.sampled_from([500, 2_000, 5_000, 12_000]))
    return "*".join(inputs)


@st.composite
def ussd_fields(draw) -> list[tuple[str, st.SearchStrategy]]:
    phone, pin = draw(CALLERS)
    session = st.text("0123456789abcdef", min_size=8, max_size=8) | st.sampled_from(["ATUid_1"])
    return [
        ("sessionId", session),
        ("serviceCode", st.sampled_from([SERVICE_CODE] * 6 + ["*999#"])),
        ("phoneNumber", st.just(phone)),
        ("networkCode", st.just("63902")),
        ("text", ussd_path(pin)),
    ]


# The screens that refuse a request: the edge's (no Inbound at all) and the unknown
# number's (anyone may reach this unsigned route: a stranger must leave nothing behind).
REFUSALS = {
    "END " + MESSAGES.render("en", key)
    for key in ("ussd_bad_request", "ussd_wrong_service", "ussd_unknown_agent")
}


@st.composite
def ussd_requests(draw) -> Req:
    req = draw(form_request(USSD_PATH, draw(ussd_fields())))
    req.restricted = draw(st.booleans())
    req.unlocked = not draw(one_in(5))
    return req


def ussd_refusal(response) -> bool:
    return response.get_data(as_text=True) in REFUSALS


@FUZZ
@given(req=ussd_requests())
def test_ussd_survives_hostile_requests_and_always_answers_con_or_end(site, caplog, req):
    if req.unlocked:  # else the first three wrong PINs lock the agents for the rest of the test
        with site.world.services.engine.begin() as conn:
            conn.execute(update(Agent).values(failed_attempts=0, locked_until=None))
    client = site.restricted if req.restricted else site.client
    response = send(site.world, client, req, caplog, is_refusal=ussd_refusal)
    if req.method == "POST":
        shown = f"{response.status_code} {_clip(response.get_data())}"
        assert response.status_code == 200, shown
        assert response.get_data(as_text=True).startswith(("CON ", "END ")), shown
