"""The Omnivoltaic client against a hand-written fake of the API (httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from bot.omnivoltaic.client import (
    AuthFailed,
    InvalidRequest,
    NotAssigned,
    OmnivoltaicClient,
    OmnivoltaicError,
    OutcomeUnknown,
    ProtocolError,
    Rejected,
    Unavailable,
)
from bot.omnivoltaic.types import HistoryRow, Item, MintedCode, code_to_hex

USER, PASSWORD = "distributor@example.com", "pa55-w0rd-SECRET"
DAYS = "/otp/daysCode"
ITEM = "/oves/assignedItems/1001"


def fmt(hex16: str) -> str:
    """16 hex -> *ddd ddd ddd ddd ddd ddd ddd# (OMNIVOLTAIC.md §2), written independently."""
    digits = "0" + f"{int(hex16[:8], 16):010d}" + f"{int(hex16[8:], 16):010d}"
    return "*" + " ".join(digits[i : i + 3] for i in range(0, 21, 3)) + "#"


class FakeApi:
    """Just enough of the API: a fleet, tokens, mints, history; plus queued faults per path."""

    def __init__(self, items: int = 250, envelope: str = "items", login_delay: float = 0.0):
        self.fleet = {
            pid: {
                "productItemID": pid,
                "productItemOEM_SN": f"OVES{pid:06d}",
                "productItemPAYG_SN": f"PAYG{pid - 1000}",
                "valuePerDay": 50,
                "lifeCycleStatus": "ASSIGNED",
            }
            for pid in range(1001, 1001 + items)
        }
        self.envelope, self.login_delay = envelope, login_delay
        self.tokens: set[str] = set()
        self.logins = 0
        self.calls: list[tuple[str, str]] = []
        self.requests: list[httpx.Request] = []
        self.minted = 0
        self.faults: dict[str, list] = {}
        self.lock = threading.Lock()

    def fail(self, path: str, *faults) -> None:
        """Each fault (a status, an httpx.Response or an httpx exception class) answers one call."""
        self.faults.setdefault(path, []).extend(faults)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            self.calls.append((request.method, path))
            self.requests.append(request)
            fault = self.faults.get(path, []).pop(0) if self.faults.get(path) else None
        if isinstance(fault, int):
            return httpx.Response(fault, json={"message": f"injected {fault}"})
        if isinstance(fault, httpx.Response):
            return fault
        if fault is not None:
            raise fault("injected", request=request)
        if path == "/user/login":
            return self.login(json.loads(request.content))
        if request.headers.get("Authorization") not in self.tokens:
            return httpx.Response(401, json={"message": "token expired"})
        return self.route(request.method, path, request)

    def login(self, body: dict) -> httpx.Response:
        time.sleep(self.login_delay)
        if body != {"username": USER, "password": PASSWORD}:
            return httpx.Response(401, json={"message": "bad credentials"})
        with self.lock:
            self.logins += 1
            token = f"tok-{self.logins}-{'x' * 20}"
            self.tokens.add(token)
        return httpx.Response(200, json={"accessToken": token, "user_role": "DISTRIBUTOR"})

    def route(self, method: str, path: str, request: httpx.Request) -> httpx.Response:
        parts = path.strip("/").split("/")
        if parts[:2] == ["oves", "assignedItemsList"]:
            offset, limit = int(parts[2]), int(parts[3])
            rows = list(self.fleet.values())[offset : offset + limit]
            total = len(self.fleet)
            body = rows if self.envelope == "list" else {self.envelope: rows, "total": total}
            return httpx.Response(200, json=body)
        if parts[:2] == ["oves", "assignedItems"]:
            item = self.fleet.get(int(parts[2]))
            if item is None:
                return httpx.Response(404, json={"message": "not assigned"})
            return httpx.Response(200, json=item)
        if method == "POST" and path in (DAYS, "/code/code/freecodeotp", "/code/code/resetcode"):
            with self.lock:
                self.minted += 1
                hex16 = f"{0x9184C537 + self.minted:08X}B9EFDD01"
            return httpx.Response(
                200,
                json={
                    "message": "Succeed",
                    "otpCount": self.minted,
                    "code": fmt(hex16),
                    "otpHash": hex16,
                },
            )
        if parts[:2] == ["oves", "codeHistoryList"]:
            offset, limit = int(parts[3]), int(parts[4])
            rows = [history(n) for n in range(230, 0, -1)][offset : offset + limit]
            return httpx.Response(200, json={"items": rows, "total": 230})
        if path == "/oves/codeHistory_Metadata":
            return httpx.Response(200, json={"totalCodes": 230})
        return httpx.Response(404, json={"message": "no such route"})

    def count(self, path: str) -> int:
        return sum(1 for _, p in self.calls if p == path)


def history(n: int, days="5") -> dict:
    return {
        "codeHistoryID": 9000 + n,
        "otpGeneratorID": 1001,
        "codeIndex": n,
        "codeValue": fmt(f"{n:016X}"),
        "codeDate": "2025-03-01T10:00:00Z",
        "codeDays": days,
    }


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api():
    return FakeApi()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(api, clock, sleeps):
    return make_client(api, clock=clock, sleep=sleeps.append)


def make_client(api: FakeApi, password: str = PASSWORD, **options) -> OmnivoltaicClient:
    http = httpx.Client(transport=httpx.MockTransport(api.handler), base_url="http://api.test")
    return OmnivoltaicClient(http, USER, password, **options)


# --- authentication -------------------------------------------------------------------------

GET_ITEM = lambda c: c.assigned_item(1001)  # noqa: E731
MINT_DAYS = lambda c: c.days_code(1001, 5)  # noqa: E731


def test_login_is_lazy_cached_and_sends_the_raw_token(api, client):
    assert api.calls == []
    client.assigned_item(1001)
    client.assigned_item(1002)
    assert api.logins == 1
    assert api.requests[-1].headers["Authorization"] == "tok-1-" + "x" * 20


@pytest.mark.parametrize("elapsed, logins", [(0, 1), (3299.9, 1), (3300, 2), (7000, 2)])
def test_token_renewed_by_logging_in_again_before_expiry(api, client, clock, elapsed, logins):
    client.assigned_item(1001)
    clock.now += elapsed
    client.assigned_item(1001)
    assert api.logins == logins


def test_explicit_login_and_renew_token(api, client):
    client.login()
    client.renew_token()
    assert api.logins == 2 and api.count(ITEM) == 0


@pytest.mark.parametrize(
    "call, path",
    [
        (lambda c: c.assigned_item(1001), ITEM),
        (lambda c: c.days_code(1001, 5), DAYS),
    ],
)
def test_401_logs_in_again_once_and_repeats_the_call_once(api, client, call, path):
    client.login()
    api.tokens.clear()  # the upstream forgot our token
    call(client)
    assert api.logins == 2 and api.count(path) == 2
    assert api.minted == (1 if path == DAYS else 0)


@pytest.mark.parametrize(
    "call, path",
    [
        (lambda c: c.assigned_item(1001), ITEM),
        (lambda c: c.days_code(1001, 5), DAYS),
    ],
)
def test_401_again_after_fresh_login_is_auth_failed(api, client, call, path):
    api.fail(path, 401, 401)
    with pytest.raises(AuthFailed):
        call(client)
    assert api.logins == 2 and api.count(path) == 2


EXPIRED_403 = httpx.Response(403, json={"message": "Token expired, please log in again"})
EXPIRED_200 = httpx.Response(
    200, json={"data": None, "errors": [{"message": "jwt expired", "extensions": {"code": "X"}}]}
)
ALLOWANCE_403 = httpx.Response(403, json={"message": "free code allowance used up"})

REFUSALS = [
    # label, call, path, faults, expected error, calls of path, logins, minted
    pytest.param(GET_ITEM, ITEM, [EXPIRED_403] * 2, AuthFailed, 2, 2, 0, id="read: 403 expired x2"),
    pytest.param(GET_ITEM, ITEM, [EXPIRED_200] * 2, AuthFailed, 2, 2, 0, id="read: 200 error x2"),
    pytest.param(GET_ITEM, ITEM, [EXPIRED_403], None, 2, 2, 0, id="read: 403 expired, then ok"),
    pytest.param(GET_ITEM, ITEM, [EXPIRED_200], None, 2, 2, 0, id="read: 200 error, then ok"),
    pytest.param(
        MINT_DAYS, DAYS, [EXPIRED_403] * 2, AuthFailed, 2, 2, 0, id="mint: 403 expired x2"
    ),
    pytest.param(MINT_DAYS, DAYS, [EXPIRED_403], None, 2, 2, 1, id="mint: 403 expired, then ok"),
    pytest.param(
        MINT_DAYS, DAYS, [EXPIRED_200], OutcomeUnknown, 1, 1, 0, id="mint: 200 error, not resent"
    ),
    pytest.param(
        MINT_DAYS, DAYS, [ALLOWANCE_403], Rejected, 1, 1, 0, id="mint: 403 refusal, no login"
    ),
]


@pytest.mark.parametrize("call, path, faults, error, calls, logins, minted", REFUSALS)
def test_a_refused_token_is_renewed_once_and_a_mint_never_sent_twice_unless_safe(
    api, client, call, path, faults, error, calls, logins, minted
):
    client.login()
    api.fail(path, *faults)
    if error is None:
        call(client)
    else:
        with pytest.raises(error):
            call(client)
    assert (api.count(path), api.logins, api.minted) == (calls, logins, minted)


def test_a_200_auth_error_to_a_mint_makes_the_next_call_log_in(api, client):
    client.login()
    api.fail(DAYS, EXPIRED_200)
    with pytest.raises(OutcomeUnknown):
        client.days_code(1001, 5)
    client.code_history(1001)
    assert api.logins == 2 and api.count("/oves/codeHistoryList/1001/0/100") == 1


def test_wrong_password_is_auth_failed(api):
    with pytest.raises(AuthFailed):
        make_client(api, password="wrong").assigned_item(1001)


def run_in_threads(target, n: int = 8) -> list:
    """Run `target` in `n` threads released together; the exceptions they raised."""
    barrier, errors = threading.Barrier(n), []

    def worker():
        barrier.wait()
        try:
            target()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_callers_share_one_login():
    api = FakeApi(login_delay=0.05)
    client = make_client(api)
    assert run_in_threads(lambda: client.assigned_item(1001)) == []
    assert api.logins == 1 and api.count(ITEM) == 8


def test_concurrent_401s_share_one_fresh_login():
    api = FakeApi(login_delay=0.05)
    client = make_client(api)
    client.login()
    api.tokens.clear()
    assert run_in_threads(lambda: client.assigned_item(1001)) == []
    assert api.logins == 2


# --- error mapping --------------------------------------------------------------------------

VECTOR_CODE, VECTOR_HEX = "*024 413 975 593 119 504 641#", "9184C537B9EFDD01"


def ok(**body) -> httpx.Response:
    return httpx.Response(200, json=body)


def html(status: int) -> httpx.Response:
    return httpx.Response(
        status, text="<html><h1>Bad Gateway</h1></html>", headers={"Content-Type": "text/html"}
    )


GET = lambda c: c.assigned_item(1001)  # noqa: E731
MINT = lambda c: c.days_code(1001, 30)  # noqa: E731

ERRORS = [
    # label, call, path, faults, expected error, calls made
    ("GET 400", GET, ITEM, [400], Rejected, 1),
    ("GET 404", GET, ITEM, [404], NotAssigned, 1),
    ("GET 418 text body", GET, ITEM, [httpx.Response(418, text="teapot")], Rejected, 1),
    ("GET 500 x3", GET, ITEM, [500, 500, 500], Unavailable, 3),
    ("GET 502 html x3", GET, ITEM, [html(502)] * 3, Unavailable, 3),
    ("GET 429 x3", GET, ITEM, [429, 429, 429], Unavailable, 3),
    ("GET ConnectError x3", GET, ITEM, [httpx.ConnectError] * 3, Unavailable, 3),
    ("GET ReadTimeout x3", GET, ITEM, [httpx.ReadTimeout] * 3, Unavailable, 3),
    ("GET 200 not JSON", GET, ITEM, [httpx.Response(200, text="oops")], ProtocolError, 1),
    ("GET 200 no productItemID", GET, ITEM, [ok(x=1)], ProtocolError, 1),
    ("GET 302", GET, ITEM, [httpx.Response(302, headers={"Location": "/x"})], ProtocolError, 1),
    ("mint 400", MINT, DAYS, [400], Rejected, 1),
    ("mint 403 allowance", MINT, DAYS, [403], Rejected, 1),
    ("mint 404", MINT, DAYS, [404], NotAssigned, 1),
    ("mint 409 exhausted", MINT, DAYS, [409], Rejected, 1),
    ("mint 429", MINT, DAYS, [429], Unavailable, 1),
    ("mint ConnectError", MINT, DAYS, [httpx.ConnectError], Unavailable, 1),
    ("mint ConnectTimeout", MINT, DAYS, [httpx.ConnectTimeout], Unavailable, 1),
    ("mint PoolTimeout", MINT, DAYS, [httpx.PoolTimeout], Unavailable, 1),
    ("mint ReadTimeout", MINT, DAYS, [httpx.ReadTimeout], OutcomeUnknown, 1),
    ("mint WriteTimeout", MINT, DAYS, [httpx.WriteTimeout], OutcomeUnknown, 1),
    ("mint ReadError", MINT, DAYS, [httpx.ReadError], OutcomeUnknown, 1),
    ("mint RemoteProtocolError", MINT, DAYS, [httpx.RemoteProtocolError], OutcomeUnknown, 1),
    ("mint 500", MINT, DAYS, [500], OutcomeUnknown, 1),
    ("mint 503 html", MINT, DAYS, [html(503)], OutcomeUnknown, 1),
    ("mint 200 not JSON", MINT, DAYS, [httpx.Response(200, text="Succeed")], OutcomeUnknown, 1),
    ("mint 200 no code", MINT, DAYS, [ok(message="Succeed")], OutcomeUnknown, 1),
    (
        "mint 200 short code",
        MINT,
        DAYS,
        [ok(otpCount=1, code="*024 413 975#", otpHash=VECTOR_HEX)],
        OutcomeUnknown,
        1,
    ),
    (
        "mint 200 code without spaces",
        MINT,
        DAYS,
        [ok(otpCount=1, code=VECTOR_CODE.replace(" ", ""), otpHash=VECTOR_HEX)],
        OutcomeUnknown,
        1,
    ),
    (
        "mint code out of range",
        MINT,
        DAYS,
        [ok(otpCount=1, code="*099 999 999 999 999 999 999#", otpHash=VECTOR_HEX)],
        OutcomeUnknown,
        1,
    ),
    ("mint no otpCount", MINT, DAYS, [ok(code=VECTOR_CODE, otpHash=VECTOR_HEX)], OutcomeUnknown, 1),
    ("mint no otpHash", MINT, DAYS, [ok(otpCount=1, code=VECTOR_CODE)], OutcomeUnknown, 1),
    (
        "mint otpHash mismatch",
        MINT,
        DAYS,
        [ok(otpCount=1, code=VECTOR_CODE, otpHash="9184C537B9EFDD02")],
        OutcomeUnknown,
        1,
    ),
    ("login 500 x3", GET, "/user/login", [500, 500, 500], Unavailable, 3),
    ("login ConnectError x3", GET, "/user/login", [httpx.ConnectError] * 3, Unavailable, 3),
    ("login 200 no token", GET, "/user/login", [ok()], ProtocolError, 1),
    ("login 200 a list", GET, "/user/login", [httpx.Response(200, json=["t"])], ProtocolError, 1),
    ("login 403", GET, "/user/login", [403], AuthFailed, 1),
]


@pytest.mark.parametrize(
    "label, call, path, faults, error, calls", ERRORS, ids=[e[0] for e in ERRORS]
)
def test_every_failure_maps_into_the_error_tree(
    api, client, label, call, path, faults, error, calls
):
    api.fail(path, *faults)
    with pytest.raises(error) as raised:
        call(client)
    assert type(raised.value) is error  # the exact class, not merely a parent
    assert isinstance(raised.value, OmnivoltaicError)
    assert api.count(path) == calls
    assert api.minted == 0


def test_rejected_carries_upstream_message_and_status(api, client):
    api.fail(DAYS, httpx.Response(403, json={"message": "free code allowance used up"}))
    with pytest.raises(Rejected) as raised:
        client.days_code(1001, 30)
    assert (raised.value.status, raised.value.message) == (403, "free code allowance used up")


def test_unassigned_product_is_not_assigned(client):
    with pytest.raises(NotAssigned) as raised:
        client.assigned_item(1400)
    assert raised.value.status == 404 and raised.value.message == "not assigned"


def test_reads_retry_with_backoff_and_can_recover(api, client, sleeps):
    api.fail(ITEM, 503, httpx.ReadTimeout)
    assert client.assigned_item(1001).product_id == 1001
    assert api.count(ITEM) == 3 and sleeps == [0.2, 0.4]


def test_timeout_applies_to_every_request(api, clock):
    make_client(api, timeout=3.5, clock=clock).assigned_item(1001)
    for request in api.requests:
        assert request.extensions["timeout"] == httpx.Timeout(3.5).as_dict()


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.days_code(1001, 0),
        lambda c: c.days_code(1001, 1096),
        lambda c: c.days_code(1001, "5"),
        lambda c: c.days_code(1001, True),
        lambda c: c.days_code(1001, 5.0),
        lambda c: c.days_code("OVES001001", 5),
        lambda c: c.days_code("", 5),
        lambda c: c.free_code(None),
        lambda c: c.assigned_items(0, 0),
        lambda c: c.assigned_items(0, 101),
        lambda c: c.assigned_items(-1, 10),
        lambda c: c.code_history(1001, 0, 101),
    ],
    ids=[
        "days 0",
        "days 1096",
        "days '5'",
        "days True",
        "days 5.0",
        "v1 product 'OVES001001'",
        "v1 product ''",
        "product None",
        "limit 0",
        "limit 101",
        "offset -1",
        "history limit 101",
    ],
)
def test_invalid_requests_fail_before_any_call(api, client, call):
    with pytest.raises(InvalidRequest):
        call(client)
    assert api.calls == []


# --- results --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, path",
    [
        (lambda c: c.days_code(1001, 1), DAYS),
        (lambda c: c.days_code(1001, 1095), DAYS),
        (lambda c: c.free_code(1001), "/code/code/freecodeotp"),
        (lambda c: c.reset_code(1001), "/code/code/resetcode"),
    ],
)
def test_mints_return_checked_codes(api, client, call, path):
    minted = call(client)
    assert isinstance(minted, MintedCode) and minted.otp_count == 1
    assert re.fullmatch(r"\*0\d\d( \d{3}){6}#", minted.code)
    assert code_to_hex(minted.code) == minted.otp_hash
    assert json.loads(api.requests[-1].content)["productId"] == 1001
    assert api.count(path) == 1


def test_mint_answer_with_the_documented_vector(api, client):
    api.fail(DAYS, ok(message="Succeed", otpCount=4, code=VECTOR_CODE, otpHash=VECTOR_HEX.lower()))
    assert client.days_code(1001, 3) == MintedCode(VECTOR_CODE, VECTOR_HEX, 4)


def test_code_decoding_matches_the_documented_vector():
    assert code_to_hex(VECTOR_CODE) == VECTOR_HEX
    assert fmt(VECTOR_HEX) == VECTOR_CODE


def test_item_fields_are_parsed(client):
    item = client.assigned_item(1001)
    assert item == Item(
        product_id=1001,
        api_id="1001",
        oem_serial="OVES001001",
        payg_serial="PAYG1",
        value_per_day=Decimal("50"),
        lifecycle_status="ASSIGNED",
        raw={},
    )
    assert item.raw["productItemID"] == 1001


@pytest.mark.parametrize(
    "envelope, items, calls",
    [
        ("items", 250, 3),
        ("data", 250, 3),
        ("rows", 250, 3),
        ("list", 250, 3),
        ("list", 200, 3),
        ("items", 200, 2),
        ("items", 0, 1),
    ],
)
def test_paging_through_all_assigned_items(clock, envelope, items, calls):
    api = FakeApi(items=items, envelope=envelope)
    ids = [item.product_id for item in make_client(api, clock=clock).iter_assigned_items()]
    assert ids == list(range(1001, 1001 + items))
    assert sum(1 for _, p in api.calls if p.startswith("/oves/assignedItemsList/")) == calls


def test_one_page_reports_total(client):
    page = client.assigned_items(200, 100)
    assert page.total == 250 and [i.product_id for i in page.items] == list(range(1201, 1251))


@pytest.mark.parametrize(
    "code_days, kind, days",
    [
        ("5", "days", 5),
        (30, "days", 30),
        ("1095", "days", 1095),
        ("free", "free", None),
        ("Free code", "free", None),
        ("FREE UNLOCK", "free", None),
        ("reset", "reset", None),
        ("Reset code", "reset", None),
        ("", "reset", None),
    ],
)
def test_history_rows_are_parsed(api, client, code_days, kind, days):
    api.fail(
        "/oves/codeHistoryList/1001/0/100",
        httpx.Response(200, json={"items": [history(3, code_days)], "total": 1}),
    )
    [row] = client.code_history(1001)
    assert row == HistoryRow(
        history_id=9003,
        product_id=1001,
        index=3,
        code=fmt(f"{3:016X}"),
        created_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
        kind=kind,
        days=days,
    )


def test_history_pages_newest_first(api, client):
    rows = list(client.iter_code_history(1001))
    assert [r.index for r in rows] == list(range(230, 0, -1))
    assert api.count("/oves/codeHistoryList/1001/200/100") == 1


def test_history_metadata_is_returned_as_is(client):
    assert client.code_history_metadata() == {"totalCodes": 230}


# --- secrets --------------------------------------------------------------------------------


def test_neither_password_nor_token_is_logged(api, client, caplog):
    caplog.set_level(logging.DEBUG)
    client.assigned_item(1001)
    client.days_code(1001, 7)
    api.tokens.clear()
    api.fail(DAYS, httpx.ReadTimeout)
    errors = []
    for call in (
        lambda: client.days_code(1001, 7),
        lambda: make_client(api, password="nope").login(),
    ):
        try:
            call()
        except OmnivoltaicError as exc:
            errors.append(repr(exc))
    text = caplog.text + " ".join(errors) + repr(client)
    assert "GET /oves/assignedItems/1001 -> 200" in caplog.text
    assert PASSWORD not in text and "nope" not in text
    assert "tok-" not in text


# --- through the emulator (the same client, the emulated API in-process) --------------------


GENERATIONS = [
    pytest.param(("v1", "raw"), id="v1-raw"),
    pytest.param(("v2", "bearer"), id="v2-bearer"),
    pytest.param(("v1", "bearer"), id="v1-bearer"),
    pytest.param(("v2", "raw"), id="v2-raw"),
]


@pytest.fixture
def emulator_app(tmp_path):
    from bot.omnivoltaic.emulator.app import create_emulator

    return create_emulator(str(tmp_path / "emu.db"), "seed")


@pytest.fixture(params=GENERATIONS)
def generation(request):
    return request.param


@pytest.fixture
def emulated(emulator_app, generation):
    return connect(emulator_app, generation=generation), emulator_app.extensions[
        "omnivoltaic_emulator"
    ]


def connect(app, timeout: float = 2.0, generation=("v1", "raw")) -> OmnivoltaicClient:
    from bot.omnivoltaic.emulator.app import EmulatorTransport

    version, scheme = generation
    http = httpx.Client(transport=EmulatorTransport(app), base_url="http://emulator")
    return OmnivoltaicClient(
        http,
        "demo@example.com",
        "demo",
        api_version=version,
        auth_scheme=scheme,
        timeout=timeout,
        sleep=lambda s: None,
    )


def api_id(client: OmnivoltaicClient, product_id: int) -> int | str:
    """How the client's generation names an emulator item: its id (v1), OEM serial (v2)."""
    return product_id if client.api_version == "v1" else f"OVES{product_id:06d}"


def test_emulator_demo_fleet(emulated):
    client, _ = emulated
    items = list(client.iter_assigned_items())
    assert [i.product_id for i in items] == list(range(1001, 1101))
    expected = "1001" if client.api_version == "v1" else "TEST2501001001"  # its oemItemID
    assert items[0].api_id == expected
    item = client.assigned_item(1001)
    assert (item.oem_serial, item.value_per_day) == ("OVES001001", Decimal(50))
    with pytest.raises(NotAssigned):
        client.assigned_item(1101)
    with pytest.raises(NotAssigned):
        client.days_code(api_id(client, 1101), 5)


def test_emulator_mints_and_history_agree(emulated):
    client, _ = emulated
    pid = api_id(client, 1001)
    minted = [client.days_code(pid, 5), client.free_code(pid), client.reset_code(pid)]
    assert [m.otp_count for m in minted] == [1, 2, 3]
    rows = client.code_history(pid)
    assert [(r.code, r.kind, r.days, r.index) for r in rows] == [
        (minted[2].code, "reset", None, 3),
        (minted[1].code, "free", None, 2),
        (minted[0].code, "days", 5, 1),
    ]
    assert isinstance(client.code_history_metadata(), dict)


def test_both_generations_share_one_chain(emulator_app):
    """A code minted through v1 is in the v2 history of the same item, and the next
    code follows it on the one chain, whichever generation mints it."""
    old, new = connect(emulator_app), connect(emulator_app, generation=("v2", "bearer"))
    first = old.days_code(1002, 3)
    second = new.days_code("TEST2501001002", 4)  # its OEM item id
    third = new.free_code("ACC001002")  # its account number
    rows = new.code_history("OVES001002")
    assert [r.code for r in rows] == [third.code, second.code, first.code]
    assert [r.index for r in old.code_history(1002)] == [3, 2, 1]


def test_emulator_read_failures_are_retried(emulated):
    client, emulator = emulated
    client.login()
    emulator.fail_next(2, 503)
    assert client.assigned_item(1002).product_id == 1002


def test_emulator_mint_5xx_is_outcome_unknown_and_not_repeated(emulated):
    client, emulator = emulated
    client.login()
    emulator.fail_next(1, 500)
    with pytest.raises(OutcomeUnknown):
        client.days_code(api_id(client, 1003), 5)
    # this fault changed nothing, and we did not retry
    assert client.code_history(api_id(client, 1003)) == []


def test_emulator_mint_timeout_is_outcome_unknown_and_the_code_is_in_history(
    emulator_app, generation
):
    connect(emulator_app, generation=generation).days_code(
        api_id(connect(emulator_app, generation=generation), 1004), 1
    )  # warm the chain, so the next mint is quick
    client = connect(emulator_app, timeout=0.3, generation=generation)
    pid = api_id(client, 1004)
    emulator_app.extensions["omnivoltaic_emulator"].mint_then_timeout(1, delay=1.5)
    with pytest.raises(OutcomeUnknown):
        client.days_code(pid, 7)
    deadline = time.monotonic() + 3
    while len(rows := client.code_history(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the ledger's way: look in the history before minting again
    assert (rows[0].kind, rows[0].days, rows[0].index) == ("days", 7, 2)


# --- renewal: one login per token life, however the expiry is signalled ---------------------


def test_fifty_concurrent_first_requests_make_exactly_one_login(emulator_app, generation):
    client = connect(emulator_app, generation=generation)
    emulator = emulator_app.extensions["omnivoltaic_emulator"]
    assert run_in_threads(lambda: client.assigned_items(0, 5), n=50) == []
    assert emulator.logins == 1


@pytest.mark.parametrize("style", ["401", "403", "200"])
def test_an_expired_token_is_renewed_once_for_a_read_however_refused(
    emulator_app, generation, style
):
    client = connect(emulator_app, generation=generation)
    emulator = emulator_app.extensions["omnivoltaic_emulator"]
    client.login()
    emulator.refuse_tokens_as(style)
    emulator.store.expire_tokens()  # the upstream ended our token's life early
    assert run_in_threads(lambda: client.code_history(api_id(client, 1005)), n=10) == []
    assert emulator.logins == 2  # one fresh login, shared by every caller


@pytest.mark.parametrize("style", ["401", "403"])
def test_a_mint_refused_for_its_token_is_sent_again_once_and_minted_once(
    emulator_app, generation, style
):
    client = connect(emulator_app, generation=generation)
    emulator = emulator_app.extensions["omnivoltaic_emulator"]
    client.login()
    emulator.refuse_tokens_as(style)
    emulator.store.expire_tokens()
    minted = client.days_code(api_id(client, 1006), 5)
    assert minted.otp_count == 1 and emulator.logins == 2
    assert [r.code for r in client.code_history(api_id(client, 1006))] == [minted.code]


def test_a_mint_answered_200_with_an_auth_error_is_not_sent_again(emulator_app, generation):
    """A 200 carrying an error does not prove nothing was minted: outcome unknown, never
    a second send; the next call logs in afresh and the history settles it."""
    client = connect(emulator_app, generation=generation)
    emulator = emulator_app.extensions["omnivoltaic_emulator"]
    client.login()
    emulator.refuse_tokens_as("200")
    emulator.store.expire_tokens()
    with pytest.raises(OutcomeUnknown):
        client.days_code(api_id(client, 1007), 5)
    assert emulator.logins == 1
    assert client.code_history(api_id(client, 1007)) == []  # logs in again to read it
    assert emulator.logins == 2


# --- generations, auth scheme, login host, token lifetime (a recording fake) ----------------


def jwt(claims: dict) -> str:
    """An unsigned JWT with these claims (the client never checks a signature)."""
    import base64

    def seg(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJl"


class Recorder:
    """Answers every call plausibly and keeps each request; login hands out `token`."""

    def __init__(self, token: str = "opaque-token-123"):
        self.token, self.requests, self.logins = token, [], 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/user/login"):
            self.logins += 1
            return httpx.Response(200, json={"accessToken": self.token})
        if request.method == "POST":
            return httpx.Response(
                200, json={"otpCount": 1, "code": VECTOR_CODE, "otpHash": VECTOR_HEX}
            )
        return httpx.Response(200, json={"items": [history(1)], "total": 1})


def recording_client(recorder: Recorder, **options) -> OmnivoltaicClient:
    http = httpx.Client(transport=httpx.MockTransport(recorder.handler), base_url="http://api.test")
    return OmnivoltaicClient(http, USER, PASSWORD, **options)


CALLS = [
    # label, version, call, method and path sent, productId in the body
    pytest.param("v1", lambda c: c.days_code("1001", 5), "/otp/daysCode", 1001, id="v1 days"),
    pytest.param("v1", lambda c: c.free_code(1001), "/code/code/freecodeotp", 1001, id="v1 free"),
    pytest.param(
        "v2",
        lambda c: c.days_code("TEST2503000017", 5),
        "/otp/daysCode/v2",
        "TEST2503000017",
        id="v2 days",
    ),
    pytest.param(
        "v2",
        lambda c: c.free_code("OVES001001"),
        "/code/code/freecodeotp/v2",
        "OVES001001",
        id="v2 free",
    ),
    pytest.param(
        "v2", lambda c: c.reset_code(1001), "/code/code/resetcode/v2", "1001", id="v2 reset, int"
    ),
    pytest.param(
        "v1",
        lambda c: c.code_history("1001"),
        "/oves/codeHistoryList/1001/0/100",
        None,
        id="v1 hist",
    ),
    pytest.param(
        "v2",
        lambda c: c.code_history("TEST2503000017"),
        "/oves/v2/codeHistoryList/TEST2503000017/0/100",
        None,
        id="v2 history",
    ),
]


@pytest.mark.parametrize("version, call, path, product", CALLS)
@pytest.mark.parametrize("scheme", ["raw", "bearer"])
def test_each_generation_sends_its_paths_and_ids_with_the_chosen_scheme(
    version, call, path, product, scheme
):
    recorder = Recorder()
    call(recording_client(recorder, api_version=version, auth_scheme=scheme))
    sent = recorder.requests[-1]
    assert sent.url.path == path
    if product is not None:
        assert json.loads(sent.content)["productId"] == product
    expected = "Bearer opaque-token-123" if scheme == "bearer" else "opaque-token-123"
    assert sent.headers["Authorization"] == expected
    assert "Authorization" not in recorder.requests[0].headers  # the login carries none


@pytest.mark.parametrize(
    "product",
    ["OVES/../1001", "a b", "", "x" * 65, None, 0, -3, True, "ÖVES1"],
    ids=["slash", "space", "empty", "too long", "None", "0", "negative", "True", "non-ASCII"],
)
def test_v2_refuses_ids_it_could_not_put_in_a_path_before_any_call(product):
    recorder = Recorder()
    with pytest.raises(InvalidRequest):
        recording_client(recorder, api_version="v2").code_history(product)
    assert recorder.requests == []


def test_the_login_may_live_on_another_host():
    recorder = Recorder()
    client = recording_client(recorder, login_url="https://b2b.example.test/auth/user/login")
    client.code_history(1001)
    login, history_call = recorder.requests
    assert (login.url.host, login.url.path) == ("b2b.example.test", "/auth/user/login")
    assert history_call.url.host == "api.test"


def test_a_token_handed_back_with_bearer_is_not_prefixed_twice():
    recorder = Recorder(token="Bearer abc.def")
    recording_client(recorder, auth_scheme="bearer").code_history(1001)
    assert recorder.requests[-1].headers["Authorization"] == "Bearer abc.def"


@pytest.mark.parametrize(
    "token, elapsed, logins",
    [
        pytest.param(jwt({"iat": 1000, "exp": 1600}), 539, 1, id="10-minute JWT: kept 9 minutes"),
        pytest.param(jwt({"iat": 1000, "exp": 1600}), 540, 2, id="10-minute JWT: renewed after"),
        pytest.param(jwt({"iat": 1, "exp": 90000}), 3299, 1, id="JWT longer than the hour"),
        pytest.param(jwt({"iat": 1, "exp": 90000}), 3300, 2, id="the documented hour wins"),
        pytest.param("opaque-token", 3300, 2, id="opaque: the documented hour"),
    ],
)
def test_a_jwt_is_renewed_before_its_own_exp(token, elapsed, logins):
    clock, recorder = FakeClock(), Recorder(token)
    client = recording_client(recorder, clock=clock)
    client.code_history(1001)
    clock.now += elapsed
    client.code_history(1001)
    assert recorder.logins == logins


@pytest.mark.parametrize(
    "answer, where",
    [
        ({"accessToken": "t1"}, "accessToken"),
        ({"data": {"accessToken": "t1"}}, "data.accessToken"),
        ({"data": {"login": {"accessToken": "t1"}}}, "data.login.accessToken"),
        ({"access_token": "t1", "expires_in": 3600}, "access_token"),
    ],
)
def test_the_token_is_found_in_the_shapes_logins_answer_with(answer, where):
    def handler(request):
        if request.url.path == "/user/login":
            return httpx.Response(200, json=answer)
        assert request.headers["Authorization"] == "t1"
        return httpx.Response(200, json=[])

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://api.test")
    client = OmnivoltaicClient(http, USER, PASSWORD)
    assert client.code_history(1001) == []
    assert client.last_login.token_at == where


def test_a_login_answered_200_with_errors_is_auth_failed():
    def handler(request):
        return httpx.Response(200, json={"errors": [{"message": "Invalid credentials"}]})

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://api.test")
    with pytest.raises(AuthFailed, match="Invalid credentials"):
        OmnivoltaicClient(http, USER, PASSWORD).login()
