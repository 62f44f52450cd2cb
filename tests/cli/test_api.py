"""`ovbot api check`: against the emulator (both generations) and against answers in the
other shapes the public material shows, through httpx.MockTransport. It never mints, and
never prints the password or the token."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3

import httpx
import pytest
from click.testing import CliRunner

from bot.cli.api import run
from bot.cli.main import main
from bot.omnivoltaic.emulator import create_emulator
from bot.settings import Settings
from tests.harness import variables_read

PASSWORD = "pa55-w0rd-SECRET"
TOKEN = "opaque-token-0123456789"


@pytest.fixture(autouse=True)
def keep_logging():
    """`ovbot` configures the root logger; give the test runner its logging back."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in variables_read():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ovbot.db'}")
    monkeypatch.setenv("OMNIVOLTAIC_EMULATOR_STATE", str(tmp_path / "emulator.db"))
    return tmp_path


def ovbot(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def emulator_rows(home, sql: str) -> list:
    with sqlite3.connect(home / "emulator.db") as conn:
        return conn.execute(sql).fetchall()


# -- against the emulator -------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, scheme, history_path",
    [
        ("v1", "raw", "/oves/codeHistoryList/1001/0/10"),
        ("v2", "bearer", "/oves/v2/codeHistoryList/TEST2501001001/0/10"),
    ],
)
def test_the_check_reads_the_emulator_in_each_generation_and_mints_nothing(
    home, monkeypatch, version, scheme, history_path
):
    store = (
        create_emulator(str(home / "emulator.db"), "oves-demo-seed")
        .extensions["omnivoltaic_emulator"]
        .store
    )
    store.mint(1, 1001, "days", 5)  # so the history has a row to look at
    monkeypatch.setenv("OMNIVOLTAIC_API_VERSION", version)
    monkeypatch.setenv("OMNIVOLTAIC_AUTH_SCHEME", scheme)
    result = ovbot("api", "check")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"generation {version}" in out and f"GET {history_path}" in out
    assert "used:     productItemID" in out and "ignored:  activateDate" in out
    assert "used:     codeHistoryID, otpGeneratorID, codeIndex, codeValue" in out
    assert "rows:     1" in out and "Nothing was minted" in out
    assert emulator_rows(home, "SELECT COUNT(*) FROM history") == [(1,)]
    tokens = [t for (t,) in emulator_rows(home, "SELECT token FROM tokens")]
    assert len(tokens) == 1 and tokens[0] not in out


def test_wrong_credentials_exit_1_with_the_reason_and_without_the_password(home, monkeypatch):
    monkeypatch.setenv("OMNIVOLTAIC_USERNAME", "demo@example.com")
    monkeypatch.setenv("OMNIVOLTAIC_PASSWORD", PASSWORD)
    result = CliRunner().invoke(main, ["api", "check"])
    assert result.exit_code == 1
    assert "FAILED: wrong credentials" in result.output and PASSWORD not in result.output


def test_a_real_api_without_credentials_is_refused_by_name(home, monkeypatch):
    monkeypatch.setenv("OMNIVOLTAIC_API_URL", "https://api.example.test")
    result = CliRunner().invoke(main, ["api", "check"])
    assert result.exit_code == 1 and "OMNIVOLTAIC_USERNAME" in result.output


# -- against other shapes (httpx.MockTransport) ----------------------------------------------


def jwt(claims: dict) -> str:
    def seg(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJl"


ITEM = {
    "productItemID": 1001,
    "productItemOEM_SN": "OVES001001",
    "oemItemID": "TEST2503000017",
    "productItemPAYG_SN": "PAYG1",
    "valuePerDay": 50,
    "lifeCycleStatus": "ASSIGNED",
    "batteryLevel": 87,
}
ROW = {
    "codeHistoryID": 9,
    "otpGeneratorID": 1001,
    "codeIndex": 1,
    "codeValue": "*024 413 975 593 119 504 641#",
    "codeDate": "2025-03-01T10:00:00Z",
    "codeDays": "5",
}
GRAPHQL_ERROR = {"data": None, "errors": [{"message": "Cannot query field assignedItemsList"}]}


class Upstream:
    """A fake API answering each kind of call with a chosen body; keeps every request."""

    def __init__(self, login=None, items=None, history=None, login_status=200, fail=None):
        self.login = {"accessToken": TOKEN} if login is None else login
        self.items = {"items": [ITEM], "total": 1} if items is None else items
        self.history = {"items": [ROW], "total": 1} if history is None else history
        self.login_status, self.fail, self.requests = login_status, fail, []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail("injected", request=request)
        if request.url.path.endswith("/user/login"):
            return httpx.Response(self.login_status, json=self.login)
        if "assignedItemsList" in request.url.path:
            return httpx.Response(200, json=self.items)
        return httpx.Response(200, json=self.history)


def check(upstream: Upstream, **settings) -> tuple[int, str, str]:
    config = Settings(
        omnivoltaic_api_url="https://api.example.test",
        omnivoltaic_username="dist@example.com",
        omnivoltaic_password=PASSWORD,
        **settings,
    )
    http = httpx.Client(
        transport=httpx.MockTransport(upstream.handler), base_url="https://api.example.test"
    )
    out, err = [], []
    status = run(config, http, out.append, err.append)
    posts = {r.url.path for r in upstream.requests if r.method == "POST"}
    assert posts <= {"/user/login", "/auth/user/login"}  # logins (retried), never a mint
    every = "\n".join(out + err)
    assert PASSWORD not in every and TOKEN not in every
    return status, "\n".join(out), "\n".join(err)


SHAPES = [
    # label, upstream, what the report must say
    pytest.param(Upstream(), "{items: list of 1, total: int}", id="items and total"),
    pytest.param(Upstream(items=[ITEM], history=[ROW]), "envelope: list of 1", id="bare lists"),
    pytest.param(
        Upstream(items={"data": [ITEM]}, history={"data": {"rows": [ROW], "total": 1}}),
        "{data: list of 1}",
        id="data: a list",
    ),
    pytest.param(
        Upstream(items={"data": {"items": [ITEM], "total": 1}}),
        "{data: {items: list of 1, total: int}}",
        id="data: an object",
    ),
]


@pytest.mark.parametrize("upstream, envelope", SHAPES)
def test_answers_in_every_tolerated_shape_are_read_and_described(upstream, envelope):
    status, out, err = check(upstream)
    assert status == 0, err
    assert envelope in out
    assert "ignored:  batteryLevel" in out  # a field our parsers do not read
    assert "used:     codeHistoryID" in out and "OK" in out


FAILURES = [
    # label, upstream, reason the check must give
    pytest.param(
        Upstream(items=GRAPHQL_ERROR),
        "the answer carries an error: Cannot query field assignedItemsList",
        id="GraphQL errors with 200",
    ),
    pytest.param(
        Upstream(login={"errors": [{"message": "Invalid credentials"}]}),
        "wrong credentials, or a wrong login URL: login refused: Invalid credentials",
        id="login: GraphQL errors with 200",
    ),
    pytest.param(
        Upstream(login={"message": "bad password"}, login_status=401),
        "wrong credentials",
        id="login: 401",
    ),
    pytest.param(
        Upstream(login={"user_role": "DISTRIBUTOR"}),
        "login answer has no accessToken",
        id="no token",
    ),
    pytest.param(
        Upstream(items={"items": [{"productItemOEM_SN": "X"}]}),
        "item 1: productItemID is not an integer: None",
        id="an item without productItemID",
    ),
    pytest.param(
        Upstream(items={"count": 3}), "page answer has no list of rows", id="no rows in the page"
    ),
    pytest.param(
        Upstream(history=[{**ROW, "codeDate": "yesterday"}]),
        "the code history answer cannot be read: row 1:",
        id="an unreadable history date",
    ),
    pytest.param(
        Upstream(fail=httpx.ConnectError),
        "cannot reach the API (api.example.test): wrong host",
        id="wrong host",
    ),
]


@pytest.mark.parametrize("upstream, reason", FAILURES)
def test_a_failure_exits_1_with_a_plain_reason(upstream, reason):
    status, _, err = check(upstream)
    assert status == 1
    assert reason in err and "Nothing was minted" in err


def test_a_jwt_shows_its_shape_and_dates_but_never_itself():
    token = jwt({"sub": "dist", "iat": 1764600000, "exp": 1764603600})
    upstream = Upstream(login={"data": {"login": {"accessToken": token}}})
    status, out, _ = check(upstream, omnivoltaic_auth_scheme="bearer")
    assert status == 0
    assert "token:    JWT (HS256)" in out and "found at `data.login.accessToken`" in out
    assert "claims: exp, iat, sub" in out and "lives 3600 s" in out
    assert "expires 2025-12-01 15:40:00 UTC" in out
    assert token not in out and token.split(".")[1] not in out
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {token}"


def test_the_login_url_and_generation_are_the_configured_ones():
    upstream = Upstream(items={"items": [ITEM]})
    status, out, _ = check(
        upstream,
        omnivoltaic_login_url="http://b2b.example.test/auth/user/login",
        omnivoltaic_api_version="v2",
    )
    assert status == 0
    login, items, history = upstream.requests
    assert login.url == "http://b2b.example.test/auth/user/login"
    assert history.url.path == "/oves/v2/codeHistoryList/TEST2503000017/0/10"
    assert "plain http" in out  # the password would cross in clear
