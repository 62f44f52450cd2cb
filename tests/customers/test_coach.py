"""The code coach: a code typed back to us, told apart from the sender's own records.

Three parts: `judge` on its own (a labelled table of crafted codes), the conversation in
every language (a labelled table over real minted codes, replies compared with the
templates filled in), and the Twilio webhook end to end on SQLite and PostgreSQL (no API
call, nothing written).
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from sqlalchemy import event, func, select
from twilio.request_validator import RequestValidator

from bot.customers import coach
from bot.customers.coach import (
    EXTRA,
    MISSING,
    NEAR,
    NEWEST,
    NOT_OURS,
    OTHER_DEVICE,
    SUPERSEDED,
    WRONG,
    Known,
    Verdict,
    judge,
)
from bot.inbound import Inbound
from bot.storage.models import Code, Customer, Device, InboundMessage
from bot.text import gsm7
from bot.text.templates import Messages
from tests.harness import SECRETS, build_world, converse, sqlite_file_url

MESSAGES = Messages.load()
LANGUAGES = ("en", "fr", "sw")
_ids = itertools.count(1)


def fmt(digits: str) -> str:
    """21 digits as the API shows them: "*024 413 975 593 119 504 641#"."""
    return "*" + " ".join(digits[i : i + 3] for i in range(0, len(digits), 3)) + "#"


def bare(code: str) -> str:
    return "".join(ch for ch in code if ch.isdigit())


def changed(code: str, *positions: int) -> str:
    """`code`'s digits with the digit at each position turned into another."""
    d = list(bare(code))
    for p in positions:
        d[p] = str((int(d[p]) + 1) % 10)
    return "".join(d)


def first_pair(code: str, *, within_group: bool) -> int:
    """The first position whose digit differs from the next one, inside a group of three
    or across two groups."""
    d = bare(code)
    return next(i for i in range(20) if d[i] != d[i + 1] and ((i % 3 != 2) is within_group))


def swapped(code: str, i: int) -> str:
    d = list(bare(code))
    d[i], d[i + 1] = d[i + 1], d[i]
    return "".join(d)


def dropped(code: str, i: int) -> str:
    d = bare(code)
    return d[:i] + d[i + 1 :]


def inserted(code: str, i: int) -> str:
    d = bare(code)
    return d[:i] + str((int(d[i]) + 1) % 10) + d[i:]


def dropable(code: str, start: int) -> int:
    """A position from `start` on whose digit differs from the next: dropping it leaves
    the first difference exactly there."""
    d = bare(code)
    return next(i for i in range(start, 20) if d[i] != d[i + 1])


# -- judge, on its own ----------------------------------------------------------------

A = "012345678901234567890"
B = "098765432109876543210"
C = "055555555555555555555"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def known(*codes: str, start: datetime = T0) -> list[Known]:
    return [Known(fmt(c), start + timedelta(days=i)) for i, c in enumerate(codes)]


JUDGE_CASES = [
    pytest.param(A, {1: known(A)}, Verdict(NEWEST, 1, fmt(A)), id="the newest code"),
    pytest.param(
        A, {1: known(A), 2: []}, Verdict(OTHER_DEVICE, 1, fmt(A)), id="newest, several devices"
    ),
    pytest.param(
        B, {1: known(C), 2: known(A, B)}, Verdict(OTHER_DEVICE, 2, fmt(B)), id="another device"
    ),
    pytest.param(
        A,
        {1: known(A, B, C)},
        Verdict(SUPERSEDED, 1, fmt(A), (fmt(B), fmt(C))),
        id="superseded by two, in entry order",
    ),
    pytest.param(
        B, {1: known(A, B, C)}, Verdict(SUPERSEDED, 1, fmt(B), (fmt(C),)), id="superseded by one"
    ),
    pytest.param(
        "112345678901234567890",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=WRONG, groups=(1,)),
        id="first digit wrong",
    ),
    pytest.param(
        "012345678901234567899",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=WRONG, groups=(7,)),
        id="last digit wrong",
    ),
    pytest.param(
        "012345678901234500890",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=WRONG, groups=(6,)),
        id="two wrong in one group",
    ),
    pytest.param(
        "012945678901234567810",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=WRONG, groups=(2, 7)),
        id="two wrong in two groups",
    ),
    pytest.param(
        "013245678901234567890",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=WRONG, groups=(1, 2)),
        id="neighbours swapped across groups",
    ),
    pytest.param("013245678901234567809", {1: known(A)}, Verdict(NOT_OURS), id="three wrong"),
    pytest.param(
        "12345678901234567890",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=MISSING, groups=(1,)),
        id="20 digits: the first missing",
    ),
    pytest.param(
        "01234567890123456789",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=MISSING, groups=(7,)),
        id="20 digits: the last missing",
    ),
    pytest.param(
        "01234567890234567890",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=MISSING, groups=(4,)),
        id="20 digits: one missing in group 4",
    ),
    pytest.param(
        "0123456789012345678905",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=EXTRA, groups=(7,)),
        id="22 digits: one extra at the end",
    ),
    pytest.param(
        "5012345678901234567890",
        {1: known(A)},
        Verdict(NEAR, 1, fmt(A), slip=EXTRA, groups=(1,)),
        id="22 digits: one extra at the start",
    ),
    pytest.param("01234567890234567899", {1: known(A)}, Verdict(NOT_OURS), id="20 digits, 2 slips"),
    pytest.param(
        "9912345678901234567890", {1: known(A)}, Verdict(NOT_OURS), id="22 digits, 2 slips"
    ),
    pytest.param(
        "012345678901234567891",
        {1: known("012345678901234567899", "012345678901234567800")},
        Verdict(
            NEAR, 1, fmt("012345678901234567899"), (fmt("012345678901234567800"),), WRONG, (7,)
        ),
        id="two near codes: the fewest differing digits, though older",
    ),
    pytest.param(
        "012345678901234567891",
        {
            1: known("012345678901234567892"),
            2: known("012345678901234567893", start=T0 + timedelta(1)),
        },
        Verdict(NEAR, 2, fmt("012345678901234567893"), slip=WRONG, groups=(7,)),
        id="two near codes, as near: the newest",
    ),
    pytest.param(
        "012345678901234567891",
        {1: [Known(fmt("012345678901234567892"), T0), Known(fmt("012345678901234567893"), T0)]},
        Verdict(NEAR, 1, fmt("012345678901234567893"), slip=WRONG, groups=(7,)),
        id="minted at once: the later in entry order",
    ),
    pytest.param(
        A,
        {1: known(A, *(f"0{n:020d}" for n in range(coach.WINDOW)))},
        Verdict(NOT_OURS),
        id="older than the window: not compared",
    ),
    pytest.param(A, {}, Verdict(NOT_OURS), id="no devices"),
    pytest.param(A, {1: []}, Verdict(NOT_OURS), id="no codes"),
]


@pytest.mark.parametrize("sent, codes, expected", JUDGE_CASES)
def test_judge(sent, codes, expected):
    assert judge(sent, codes) == expected


def test_an_exact_match_wins_over_a_nearer_looking_newer_code():
    # A's neighbour is the newest code of device 1; A itself, older, is device 2's.
    near_a = changed(fmt(A), 20)
    assert judge(A, {1: known(near_a, start=T0 + timedelta(9)), 2: known(A)}).kind == OTHER_DEVICE


def test_judge_reads_each_code_of_the_window_once(monkeypatch):
    """Bounded and linear: 3 devices of 30 codes each cost 3 x WINDOW code reads."""
    reads = []
    monkeypatch.setattr(coach, "digits", lambda code: reads.append(code) or bare(code))
    codes = {d: known(*(f"0{d}{n:019d}" for n in range(30))) for d in range(1, 4)}
    assert judge("1" * 21, codes).kind == NOT_OURS
    assert len(reads) == 3 * coach.WINDOW


# -- the conversation, in every language ------------------------------------------------

MULTI, SINGLE, CLOSE, OTHER, STRANGER = (
    "+254712345678",  # owns 1001 (three codes) and 1002 (one)
    "+254722000111",  # owns 1003 (two codes)
    "+254744000222",  # owns 1005: two recorded codes one digit apart
    "+254733999888",  # owns 1004 (one code): another customer
    "+254755000999",  # not registered
)
K1, K2 = "012345678901234567890", "012345678901234567891"


def mint(world, product_id: int, days: int, key: str) -> None:
    world.pay(product_id, days, key)
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == product_id))
        world.ledger.mint_days(s, device, request_key=key, channel="cli")


def record(world, product_id: int, digits: str, key: str, minted_at: datetime) -> None:
    """A code in our records (as a mint leaves it) without the API: crafted digits."""
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == product_id))
        s.add(
            Code(
                device_id=device.id,
                kind="days",
                days=1,
                code=fmt(digits),
                state="minted",
                request_key=key,
                channel="cli",
                minted_at=minted_at,
            )
        )


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """One world for the whole table: the coach changes nothing (SQLite)."""
    directory = tmp_path_factory.mktemp("coach")
    world = build_world(sqlite_file_url(directory), directory)
    world.customer(MULTI, 1001, 1002)
    world.customer(SINGLE, 1003, name="Baraka")
    world.customer(CLOSE, 1005, name="Chausiku")
    world.customer(OTHER, 1004, name="Juma")
    for n, (product_id, days) in enumerate(
        [(1001, 5), (1001, 3), (1001, 2), (1002, 4), (1003, 6), (1003, 7), (1004, 5)]
    ):
        mint(world, product_id, days, f"table-{n}")
    record(world, 1005, K1, "table-k1", T0)
    record(world, 1005, K2, "table-k2", T0 + timedelta(days=1))
    yield world
    world.services.close()


def codes_by_product(world) -> dict[int, list[str]]:
    with world.session() as s:
        rows = s.execute(select(Device.product_id, Code.code).join(Device).order_by(Code.id)).all()
    found: dict[int, list[str]] = {}
    for product_id, code in rows:
        found.setdefault(product_id, []).append(code)
    return found


def send(world, sender: str, text: str, language: str | None = None):
    if language is not None:
        with world.session() as s:
            s.scalar(select(Customer).where(Customer.phone == sender)).language = language
    inbound = Inbound("sms", f"SM{next(_ids):032d}", sender, text)
    return converse(world.services, inbound)


RANDOM = "".join(random.Random(13).choice("0123456789") for _ in range(21))


def newest(ref, serial=None):
    return lambda c: [("coach_newest", dict(device=ref, code=c[int(ref)][-1]))]


def other_device(product_id):
    ref, serial = str(product_id), f"OVES00{product_id}"
    return lambda c: [("coach_other_device", dict(device=ref, serial=serial))]


def not_ours(c):
    return [("coach_not_ours", {})]


def near(key, product_id, position=None, code_index=-1, **values):
    """The near-miss reply for the code `code_index` of `product_id`, the group of
    `position` (or `values`' groups)."""

    def expect(c):
        code = c[product_id][code_index]
        group = dict(group=position // 3 + 1) if position is not None else {}
        return [(key, dict(device=str(product_id), code=code, **group, **values))]

    return expect


C = 1003  # SINGLE's device
CONVERSATION_CASES = [
    # sender, what is typed (from the codes of each product), the reply (key, values)
    pytest.param(SINGLE, lambda c: c[C][-1], newest("1003"), id="the newest code"),
    pytest.param(SINGLE, lambda c: bare(c[C][-1]), newest("1003"), id="digits only"),
    pytest.param(
        SINGLE, lambda c: "*" + bare(c[C][-1]) + "#", newest("1003"), id="star, hash, no spaces"
    ),
    pytest.param(
        SINGLE, lambda c: c[C][-1].strip("*#").replace(" ", "-"), newest("1003"), id="dashes"
    ),
    pytest.param(
        SINGLE,
        lambda c: " " + c[C][-1].replace(" ", "- ", 2) + " ",
        newest("1003"),
        id="spaces and dashes mixed",
    ),
    pytest.param(
        SINGLE,
        lambda c: c[C][0],
        lambda c: [("coach_superseded", dict(device="1003", code=c[C][1]))],
        id="superseded by one",
    ),
    pytest.param(
        MULTI,
        lambda c: c[1001][0],
        lambda c: [
            ("coach_superseded_many", dict(device="1001", count=2)),
            ("coach_part", dict(index=1, count=2, code=c[1001][1])),
            ("coach_part", dict(index=2, count=2, code=c[1001][2])),
        ],
        id="superseded by two, in entry order",
    ),
    pytest.param(MULTI, lambda c: c[1002][-1], other_device(1002), id="another of their devices"),
    pytest.param(MULTI, lambda c: c[1001][-1], other_device(1001), id="newest, several devices"),
    pytest.param(
        SINGLE, lambda c: changed(c[C][-1], 10), near("coach_near_wrong", C, 10), id="one digit"
    ),
    pytest.param(
        SINGLE,
        lambda c: changed(c[C][-1], 4, 5),
        near("coach_near_wrong", C, 4),
        id="two digits in one group",
    ),
    pytest.param(
        SINGLE,
        lambda c: changed(c[C][-1], 1, 19),
        near("coach_near_two", C, 1, other=7),
        id="two digits in two groups",
    ),
    pytest.param(
        SINGLE,
        lambda c: swapped(c[C][-1], first_pair(c[C][-1], within_group=True)),
        lambda c: near("coach_near_wrong", C, first_pair(c[C][-1], within_group=True))(c),
        id="neighbours swapped in a group",
    ),
    pytest.param(
        SINGLE,
        lambda c: swapped(c[C][-1], first_pair(c[C][-1], within_group=False)),
        lambda c: near(
            "coach_near_two",
            C,
            first_pair(c[C][-1], within_group=False),
            other=first_pair(c[C][-1], within_group=False) // 3 + 2,
        )(c),
        id="neighbours swapped across groups",
    ),
    pytest.param(
        SINGLE, lambda c: changed(c[C][-1], 0, 9, 20), not_ours, id="three digits: not near"
    ),
    pytest.param(
        SINGLE,
        lambda c: fmt(dropped(c[C][-1], dropable(c[C][-1], 7))),
        lambda c: near("coach_near_missing", C, dropable(c[C][-1], 7))(c),
        id="20 digits: one missing",
    ),
    pytest.param(
        SINGLE,
        lambda c: inserted(c[C][-1], 13),
        near("coach_near_extra", C, 13),
        id="22 digits: one extra",
    ),
    pytest.param(
        SINGLE,
        lambda c: dropped(changed(c[C][-1], 3), 15),
        not_ours,
        id="20 digits with a wrong one too: not near",
    ),
    pytest.param(
        SINGLE,
        lambda c: changed(c[C][0], 6),
        lambda c: [
            *near("coach_near_wrong", C, 6, code_index=0)(c),
            ("coach_superseded", dict(device="1003", code=c[C][1])),
        ],
        id="near an older code: it, then the newer one",
    ),
    pytest.param(
        CLOSE,
        lambda c: changed(fmt(K1), 4),
        lambda c: [
            ("coach_near_wrong", dict(device="1005", code=fmt(K1), group=2)),
            ("coach_superseded", dict(device="1005", code=fmt(K2))),
        ],
        id="near two codes: the fewest differing digits wins",
    ),
    pytest.param(
        CLOSE,
        lambda c: K1[:-1] + "2",
        lambda c: [("coach_near_wrong", dict(device="1005", code=fmt(K2), group=7))],
        id="near two codes, as near: the newest wins",
    ),
    pytest.param(SINGLE, lambda c: c[1004][-1], not_ours, id="another customer's code"),
    pytest.param(
        SINGLE, lambda c: changed(c[1004][-1], 8), not_ours, id="near another customer's code"
    ),
    pytest.param(MULTI, lambda c: fmt(K1), not_ours, id="another customer's code, several devices"),
    pytest.param(SINGLE, lambda c: fmt(RANDOM), not_ours, id="random digits"),
    pytest.param(SINGLE, lambda c: RANDOM[:20], not_ours, id="random 20 digits"),
    pytest.param(SINGLE, lambda c: RANDOM + "7", not_ours, id="random 22 digits"),
]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("sender, typed, expected", CONVERSATION_CASES)
def test_the_coach_in_every_language(table, lang, sender, typed, expected):
    codes = codes_by_product(table)
    reply = send(table, sender, typed(codes), language=lang)
    assert reply.texts == tuple(MESSAGES.render(lang, k, **v) for k, v in expected(codes))
    for text in reply.texts:
        assert gsm7.fits_one_sms(text), text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_another_customers_code_is_told_as_random_digits_are(table, lang):
    """Byte for byte: whether the digits are a code of someone else's device or not."""
    codes = codes_by_product(table)
    random_reply = send(table, SINGLE, fmt(RANDOM), language=lang).texts
    for sender, typed in [
        (SINGLE, codes[1004][-1]),
        (SINGLE, bare(codes[1004][-1])),
        (SINGLE, codes[1001][0]),
        (MULTI, codes[C][-1]),
        (CLOSE, codes[1004][-1]),
    ]:
        reply = send(table, sender, typed, language=lang)
        assert reply.texts == random_reply
        assert reply.to_json() == send(table, sender, fmt(RANDOM)).to_json()


def test_an_unknown_sender_learns_only_how_to_register(table):
    codes = codes_by_product(table)
    expected = (MESSAGES.render("en", "not_registered"),)
    assert send(table, STRANGER, codes[1004][-1]).texts == expected
    assert send(table, STRANGER, fmt(RANDOM)).texts == expected


def test_the_coach_is_a_read():
    from bot.customers import conversation

    assert conversation.reads(Inbound("sms", "SM1", MULTI, fmt(K1)))
    assert conversation.command_name(Inbound("sms", "SM1", MULTI, fmt(K1))) == "coach"
    assert not conversation.reads(Inbound("sms", "SM1", MULTI, "CODE 1001"))


# -- end to end: the Twilio webhook, on SQLite and PostgreSQL ---------------------------

TWILIO_PATH = "/webhooks/twilio/sms"


def twilio_sms(http, sender: str, text: str) -> tuple[str, ...]:
    """A signed Twilio form post; the texts of the TwiML reply's messages."""
    sid = f"SM{next(_ids):032d}"
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": SECRETS["twilio_account_sid"],
        "From": sender,
        "To": SECRETS["twilio_from_number"],
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(SECRETS["twilio_auth_token"]).compute_signature(
        SECRETS["public_base_url"] + TWILIO_PATH, form
    )
    response = http.post(TWILIO_PATH, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    return tuple(m.text or "" for m in ElementTree.fromstring(response.data).iter("Message"))


class Writes:
    """Every statement that would change the database, while inside the block."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, *args):
        if statement.split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            self.seen.append(statement)


def test_the_coach_over_twilio_calls_no_api_and_writes_nothing(world):
    world.customer(MULTI, 1001, 1002)
    mint(world, 1001, 5, "e2e-1")
    mint(world, 1001, 3, "e2e-2")
    with world.session() as s:  # the channel already recorded: a read changes nothing
        s.scalar(select(Customer).where(Customer.phone == MULTI)).last_channel = "sms"
    first, second = codes_by_product(world)[1001]
    api_calls = []
    world.services.http.event_hooks["request"].append(api_calls.append)
    http = world.client()
    stored = count_rows(world, InboundMessage)
    cases = [
        (second, [("coach_other_device", dict(device="1001", serial="OVES001001"))]),
        (first, [("coach_superseded", dict(device="1001", code=second))]),
        (changed(second, 20), [("coach_near_wrong", dict(device="1001", code=second, group=7))]),
        (fmt(RANDOM), [("coach_not_ours", {})]),
    ]
    with Writes(world.services.engine) as writes:
        for typed, expected in cases:
            texts = twilio_sms(http, MULTI, typed)
            assert texts == tuple(MESSAGES.render("en", k, **v) for k, v in expected)
    assert api_calls == []
    assert writes.seen == []
    assert count_rows(world, InboundMessage) == stored
    # The counter sees API calls: CODE with a new payment mints through the emulator.
    world.pay(1001, 2, "e2e-3")
    assert "New code" in twilio_sms(http, MULTI, "CODE 1001")[0]
    assert api_calls, "the hook saw no call: the test above proved nothing"


def count_rows(world, model) -> int:
    with world.session() as s:
        return s.scalar(select(func.count()).select_from(model))
