"""The emulator over the Flask test client and over httpx through EmulatorTransport."""

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime

import httpx
import pytest

from bot.omnivoltaic import acp1
from bot.omnivoltaic.emulator.app import EmulatorTransport, create_emulator
from bot.omnivoltaic.simulator import Device, Entry

SEED = "test-seed"
DEMO = {"username": "demo@example.com", "password": "demo"}
WARM_ITEMS = (1001, 1002, 1003)  # checkpoints precomputed once per session
BASE = "http://emulator.test"


@pytest.fixture(scope="session")
def template_state(tmp_path_factory):
    """A state file with checkpoints for WARM_ITEMS, so tests skip the 100k-hash warm-up."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    store = create_emulator(str(path), SEED).extensions["omnivoltaic_emulator"].store
    for product_id in WARM_ITEMS:
        store.top(product_id)
    conn = sqlite3.connect(path)
    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    conn.close()
    assert busy == 0  # everything is in the main file, so a plain copy is complete
    return path


@pytest.fixture
def state_path(tmp_path, template_state):
    path = tmp_path / "emu" / "state.db"
    path.parent.mkdir()
    shutil.copy(template_state, path)
    return str(path)


@pytest.fixture
def app(state_path):
    return create_emulator(state_path, SEED)


@pytest.fixture
def emulator(app):
    return app.extensions["omnivoltaic_emulator"]


class Api:
    """The same calls over either client; `call` returns (status, json body)."""

    def __init__(self, app, kind):
        self.kind, self.token = kind, None
        if kind == "flask":
            self.client = app.test_client()
        else:
            self.client = httpx.Client(transport=EmulatorTransport(app), base_url=BASE)

    def call(self, method, path, body=None, token=None):
        headers = {"Authorization": token or self.token} if (token or self.token) else {}
        kwargs = {"headers": headers} if body is None else {"headers": headers, "json": body}
        if self.kind == "flask":
            response = self.client.open(path, method=method, **kwargs)
            return response.status_code, response.get_json()
        response = self.client.request(method, path, **kwargs)
        return response.status_code, response.json()

    def login(self, credentials=DEMO):
        status, body = self.call("POST", "/user/login", credentials)
        assert status == 200, body
        self.token = body["accessToken"]
        return self.token

    def mint(self, path, expect=200, **body):
        status, reply = self.call("POST", path, body)
        assert status == expect, reply
        return reply

    def days(self, product_id, days, expect=200):
        return self.mint("/otp/daysCode", expect, productId=product_id, days=days)

    def free(self, product_id, expect=200):
        return self.mint("/code/code/freecodeotp", expect, productId=product_id)

    def reset(self, product_id, expect=200):
        return self.mint("/code/code/resetcode", expect, productId=product_id)

    def history(self, product_id, offset=0, limit=100):
        status, body = self.call("GET", f"/oves/codeHistoryList/{product_id}/{offset}/{limit}")
        assert status == 200, body
        return body

    def top(self, product_id):
        status, body = self.call("GET", f"/_emulator/items/{product_id}/top")
        assert status == 200, body
        return body["top"]


@pytest.fixture(params=["flask", "httpx"])
def api(request, app):
    client = Api(app, request.param)
    client.login()
    return client


def assert_chain(top, rows):
    """History rows (any order) form one chain down from `top`, each its jump below the last."""
    rows = sorted(rows, key=lambda r: r["codeIndex"])
    assert [r["codeIndex"] for r in rows] == list(range(1, len(rows) + 1))
    above = top
    for row in rows:
        jump = {"free": acp1.FREE_JUMP, "reset": acp1.RESET_JUMP}.get(row["codeDays"])
        value = acp1.parse_code(row["codeValue"])
        assert acp1.walk(value, jump or int(row["codeDays"])) == above
        above = value
    assert len({r["codeValue"] for r in rows}) == len(rows)


# -- auth -----------------------------------------------------------------------------
def test_login_returns_token_and_role(api):
    status, body = api.call("POST", "/user/login", DEMO)
    assert status == 200 and body["user_role"] == "DISTRIBUTOR" and body["accessToken"]


BAD_LOGINS = [  # (credentials, expected status)
    ({"username": "demo@example.com", "password": "wrong"}, 401),
    ({"username": "nobody@example.com", "password": "demo"}, 401),
    ({"username": "demo@example.com"}, 400),
    ({"username": "demo@example.com", "password": 5}, 400),
    ({}, 400),
]


def test_login_refused(api):
    for credentials, status in BAD_LOGINS:
        assert api.call("POST", "/user/login", credentials)[0] == status, credentials


def test_renew_token_over_graphql(api):
    query = (
        "mutation renewToken($username: String!, $password: String!) { renewToken { accessToken } }"
    )
    status, body = api.call("POST", "/graphql", {"query": query, "variables": DEMO})
    assert status == 200
    token = body["data"]["renewToken"]["accessToken"]
    assert api.call("GET", "/oves/assignedItems/1001", token=token)[0] == 200
    bad = {"query": query, "variables": {**DEMO, "password": "x"}}
    assert api.call("POST", "/graphql", bad)[0] == 401
    assert api.call("POST", "/graphql", {"query": "{ me { id } }", "variables": DEMO})[0] == 400


def test_bad_token_is_401(api):
    for token in ["nonsense", "Bearer nonsense", "Bearer ", api.token + "x"]:
        status, body = api.call("GET", "/oves/assignedItems/1001", token=token)
        assert status == 401 and body["message"], token


def test_missing_token_is_401(app):
    client = Api(app, "flask")
    for method, path in [
        ("GET", "/oves/assignedItemsList/0/10"),
        ("GET", "/oves/codeHistory_Metadata"),
        ("POST", "/otp/daysCode"),
    ]:
        assert client.call(method, path, {"productId": 1001, "days": 1})[0] == 401


def test_bearer_prefix_accepted(api):
    assert api.call("GET", "/oves/assignedItems/1001", token="Bearer " + api.token)[0] == 200


def test_token_expires(state_path):
    client = Api(create_emulator(state_path, SEED, token_ttl=0.05), "httpx")
    client.login()
    assert client.call("GET", "/oves/assignedItems/1001")[0] == 200
    time.sleep(0.1)
    assert client.call("GET", "/oves/assignedItems/1001")[0] == 401


def test_token_from_one_emulator_works_in_another(app, state_path):
    token = Api(app, "flask").login()
    other = Api(create_emulator(state_path, SEED), "httpx")
    assert other.call("GET", "/oves/assignedItems/1001", token=token)[0] == 200


# -- items ----------------------------------------------------------------------------
LEGACY_ITEM_FIELDS = {
    "productItemID",
    "productItemOEM_SN",
    "productItemPAYG_SN",
    "lifeCycleStatus",
    "firmwareVersion",
    "assignedItemsID",
    "distributorID",
    "itemAssignDate",
    "valuePerDay",
    "valueDays",
    "longevityDays",
    "activateDate",
    "deployNotes",
    "oemItemID",
    "sellerItemID",
}


def test_assigned_items_pages(api):
    status, first = api.call("GET", "/oves/assignedItemsList/0/60")
    assert status == 200 and first["total"] == 100 and len(first["items"]) == 60
    assert (first["offset"], first["limit"]) == (0, 60)
    second = api.call("GET", "/oves/assignedItemsList/60/60")[1]
    ids = [i["productItemID"] for i in first["items"] + second["items"]]
    assert ids == list(range(1001, 1101))
    assert api.call("GET", "/oves/assignedItemsList/100/10")[1]["items"] == []


def test_item_has_legacy_fields(api):
    status, item = api.call("GET", "/oves/assignedItems/1001")
    assert status == 200 and set(item) == LEGACY_ITEM_FIELDS
    assert item["productItemID"] == 1001 and item["productItemOEM_SN"] == "OVES001001"
    assert item["valuePerDay"] == 50 and item["valueDays"] == 0


def test_value_days_follow_days_codes(api):
    api.days(1001, 3)
    api.days(1001, 4)
    assert api.call("GET", "/oves/assignedItems/1001")[1]["valueDays"] == 7


BAD_PAGES = [
    "/oves/assignedItemsList/0/101",
    "/oves/assignedItemsList/-1/10",
    "/oves/assignedItemsList/0/0",
    "/oves/assignedItemsList/x/10",
    "/oves/codeHistoryList/1001/0/101",
    "/oves/codeHistoryList/1001/-5/10",
    "/oves/assignedItems/abc",
    "/oves/assignedItems/" + "9" * 30,
]
NOT_MINE = [
    "/oves/assignedItems/1101",
    "/oves/assignedItems/9999",
    "/oves/codeHistoryList/1101/0/10",
    "/oves/codeHistoryList/9999/0/10",
]


def test_bad_paging_is_400(api):
    for path in BAD_PAGES:
        status, body = api.call("GET", path)
        assert status == 400 and body["message"], path


def test_foreign_or_unknown_item_is_404(api):
    for path in NOT_MINE:
        assert api.call("GET", path)[0] == 404, path


def test_other_distributor_sees_its_own_fleet(api):
    api.login({"username": "other@example.com", "password": "other"})
    body = api.call("GET", "/oves/assignedItemsList/0/100")[1]
    assert [i["productItemID"] for i in body["items"]] == list(range(1101, 1111))
    assert api.call("GET", "/oves/assignedItems/1001")[0] == 404


# -- codes ----------------------------------------------------------------------------
def test_mint_reply_shape_and_otp_hash(api):
    reply = api.days(1001, 5)
    assert list(reply) == ["message", "otpCount", "code", "otpHash"]
    assert reply["message"] == "Succeed" and reply["otpCount"] == 1
    assert acp1.parse_code(reply["code"]) == reply["otpHash"]
    assert acp1.format_code(reply["otpHash"]) == reply["code"]


def test_successive_days_codes_are_their_days_apart(api):
    top = api.top(1001)
    first, second = api.days(1001, 5), api.days(1001, 12)
    assert second["otpCount"] == 2
    assert acp1.walk(first["otpHash"], 5) == top
    assert acp1.walk(second["otpHash"], 12) == first["otpHash"]


def test_free_and_reset_jumps(api):
    days = api.days(1002, 1)
    free = api.free(1002)
    reset = api.reset(1002)
    assert acp1.walk(free["otpHash"], acp1.FREE_JUMP) == days["otpHash"]
    assert acp1.walk(reset["otpHash"], acp1.RESET_JUMP) == free["otpHash"]
    assert reset["otpCount"] == 3


@pytest.mark.parametrize("mint", ["free", "reset"])
def test_allowance_of_five_then_403(api, mint):
    for _ in range(5):
        getattr(api, mint)(1003)
    assert getattr(api, mint)(1003, expect=403)["message"]
    assert api.history(1003)["total"] == 5
    assert api.days(1003, 1)["otpCount"] == 6  # the other allowances are untouched


def test_chain_exhausted_is_409(api):
    for _ in range(91):  # 91 * 1095 = 99645 of the chain's 100000 steps
        api.days(1001, acp1.MAX_DAYS)
    assert api.days(1001, acp1.MAX_DAYS, expect=409)["message"]
    last = api.days(1001, acp1.CHAIN_LENGTH - 91 * acp1.MAX_DAYS)  # down to the root itself
    assert last["otpHash"] == acp1.root_for(SEED, 1001)
    api.days(1001, 1, expect=409)
    assert api.history(1001, limit=1)["total"] == 92


BAD_DAYS_BODIES = [{"productId": 1001, "days": days} for days in (0, 1096, -3, "x", "5", 2.5, True)]
BAD_DAYS_BODIES += [
    {"productId": 1001},
    {"productId": "1001", "days": 5},
    {"days": 5},
    {"productId": 10**30, "days": 5},
]


def test_bad_days_request_is_400(api):
    for body in BAD_DAYS_BODIES:
        status, reply = api.call("POST", "/otp/daysCode", body)
        assert status == 400 and reply["message"], body
    assert api.history(1001)["total"] == 0


def test_non_json_body_is_400(app):
    client = app.test_client()
    token = Api(app, "flask").login()
    response = client.post("/otp/daysCode", data="days=5", headers={"Authorization": token})
    assert response.status_code == 400 and response.get_json()["message"]


def test_mint_for_foreign_or_unknown_item_is_404(api):
    for path in ["/otp/daysCode", "/code/code/freecodeotp", "/code/code/resetcode"]:
        for product_id in [1101, 9999]:
            assert api.mint(path, 404, productId=product_id, days=5)["message"]


def test_history_newest_first_with_legacy_fields(api):
    minted = [api.days(1001, 5), api.free(1001), api.reset(1001)]
    body = api.history(1001)
    assert body["total"] == 3
    rows = body["items"]
    assert [r["codeIndex"] for r in rows] == [3, 2, 1]
    assert [r["codeDays"] for r in rows] == ["reset", "free", "5"]
    assert [r["codeValue"] for r in rows] == [m["code"] for m in reversed(minted)]
    for row in rows:
        assert set(row) == {
            "codeHistoryID",
            "otpGeneratorID",
            "codeIndex",
            "codeValue",
            "codeDate",
            "codeDays",
        }
        assert row["otpGeneratorID"] == 1001
        assert datetime.fromisoformat(row["codeDate"]).utcoffset().total_seconds() == 0
    assert [r["codeIndex"] for r in api.history(1001, offset=1, limit=1)["items"]] == [2]
    assert_chain(api.top(1001), rows)


def test_history_metadata(api):
    api.days(1001, 2)
    api.days(1002, 2)
    status, body = api.call("GET", "/oves/codeHistory_Metadata")
    assert status == 200 and body["codeCount"] == 2 and body["itemsWithCodes"] == 2
    assert body["itemCount"] == 100


def test_unknown_route_is_json_404(api):
    status, body = api.call("GET", "/no/such/path")
    assert status == 404 and body["message"]


def test_restart_continues_the_chain(state_path):
    first = Api(create_emulator(state_path, SEED), "flask")
    first.login()
    before = first.days(1001, 9)
    again = Api(create_emulator(state_path, SEED), "httpx")
    again.login()
    after = again.days(1001, 4)
    assert after["otpCount"] == 2
    assert acp1.walk(after["otpHash"], 4) == before["otpHash"]


def test_same_seed_gives_same_codes(tmp_path, app):
    other = Api(create_emulator(str(tmp_path / "new" / "dir" / "fresh.db"), SEED), "flask")
    other.login()
    here = Api(app, "flask")
    here.login()
    assert here.days(1001, 3)["code"] == other.days(1001, 3)["code"]


def test_other_seed_on_existing_state_is_refused(state_path):
    with pytest.raises(ValueError, match="seed"):
        create_emulator(state_path, "another-seed")


# -- the device simulator and /_emulator ---------------------------------------------------
def test_device_accepts_emulator_codes(api):
    device = Device(api.top(1002))
    assert device.enter(api.days(1002, 3)["code"]) == Entry("days", 3)
    skipped, latest = api.days(1002, 4), api.days(1002, 6)
    assert device.enter(latest["code"]) == Entry("days", 10)
    assert device.enter(skipped["code"]).outcome == "rejected"
    assert device.enter(api.free(1002)["code"]) == Entry("free")
    assert device.enter(api.reset(1002)["code"]) == Entry("reset")
    assert device.days_credited == 13 and device.locked


def test_top_needs_no_auth_and_404s_unknown(app):
    client = app.test_client()
    assert client.get("/_emulator/items/1001/top").get_json()["productId"] == 1001
    assert client.get("/_emulator/items/5/top").status_code == 404


# -- fault injection (test-only) and the transport ----------------------------------------
def test_fail_next_answers_status_and_changes_nothing(api, emulator):
    emulator.fail_next(2, 503)
    for _ in range(2):
        status, body = api.call("POST", "/otp/daysCode", {"productId": 1001, "days": 5})
        assert (status, body) == (503, {"message": "injected fault"})
    assert api.history(1001)["total"] == 0
    assert api.days(1001, 5)["otpCount"] == 1


def test_faults_over_http(api, emulator):
    status, body = api.call(
        "POST", "/_emulator/faults", {"fail_next": {"count": 1, "status": 500}, "latency": 0.01}
    )
    assert status == 200 and body["faults"]["fail_next"] == {"count": 1, "status": 500}
    assert api.call("GET", "/oves/assignedItems/1001")[0] == 500
    assert api.call("GET", "/oves/assignedItems/1001")[0] == 200
    assert api.call("DELETE", "/_emulator/faults")[1]["faults"]["latency"] == 0.0
    assert api.call("POST", "/_emulator/faults", {"fail_next": {"count": 1}})[0] == 400


def test_latency_delays_calls(api, emulator):
    emulator.set_latency(0.05)
    started = time.monotonic()
    api.call("GET", "/oves/assignedItems/1001")
    assert time.monotonic() - started >= 0.05


def test_mint_then_timeout_records_the_code(app, emulator):
    client = Api(app, "httpx")
    client.login()
    client.client.timeout = httpx.Timeout(0.2)
    emulator.mint_then_timeout(1, delay=0.4)
    with pytest.raises(httpx.ReadTimeout):
        client.call("POST", "/otp/daysCode", {"productId": 1001, "days": 7})
    rows = client.history(1001)["items"]  # the lost call's code is in the history already
    assert [(r["codeIndex"], r["codeDays"]) for r in rows] == [(1, "7")]
    following = client.days(1001, 2)
    assert following["otpCount"] == 2
    assert acp1.walk(following["otpHash"], 2) == acp1.parse_code(rows[0]["codeValue"])


def test_mint_then_timeout_over_http(app):
    client = Api(app, "httpx")
    client.login()
    client.call("POST", "/_emulator/faults", {"mint_then_timeout": {"count": 1, "delay": 0.4}})
    with pytest.raises(httpx.ReadTimeout):
        client.client.post(
            "/code/code/freecodeotp",
            json={"productId": 1002},
            headers={"Authorization": client.token},
            timeout=0.2,
        )
    assert client.history(1002)["items"][0]["codeDays"] == "free"


def test_transport_is_thread_safe(app):
    client = Api(app, "httpx")
    client.login()
    replies, errors = [], []

    def mint(days):
        try:
            for _ in range(4):
                replies.append(client.days(1003, days))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=mint, args=(d,)) for d in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r["otpCount"] for r in replies) == list(range(1, 17))
    assert_chain(client.top(1003), client.history(1003)["items"])


# -- several processes, one state file ----------------------------------------------------
CHILD = textwrap.dedent("""
    import json, sys
    from bot.omnivoltaic.emulator.app import create_emulator
    client = create_emulator(sys.argv[1], sys.argv[2]).test_client()
    token = client.post("/user/login", json={"username": "demo@example.com",
                                             "password": "demo"}).get_json()["accessToken"]
    for line in sys.stdin:  # one days code per line read
        reply = client.post("/otp/daysCode", json={"productId": 1001, "days": int(line)},
                            headers={"Authorization": token})
        print(json.dumps([reply.status_code, reply.get_json()]), flush=True)
""")


def _ask(child, *days):
    child.stdin.write("".join(f"{d}\n" for d in days))
    child.stdin.flush()


def _answers(child, n):
    return [json.loads(child.stdout.readline()) for _ in range(n)]


def test_processes_share_one_chain(app, state_path):
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, state_path, SEED],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        alternating = []
        for days in range(1, 6):  # strictly in turn: each sees the other's last code
            for offset, child in zip((0, 10), children, strict=True):
                _ask(child, days + offset)
                alternating += _answers(child, 1)
        assert [body["otpCount"] for _, body in alternating] == list(range(1, 11))
        for offset, child in zip((20, 30), children, strict=True):  # then both at once
            _ask(child, *range(offset + 1, offset + 6))
        concurrent = [reply for child in children for reply in _answers(child, 5)]
    finally:
        for child in children:
            child.stdin.close()
            child.wait(timeout=30)
    replies = alternating + concurrent
    assert [status for status, _ in replies] == [200] * 20
    parent = Api(app, "flask")
    parent.login()
    rows = parent.history(1001)["items"]
    assert sorted(r["codeValue"] for r in rows) == sorted(body["code"] for _, body in replies)
    top = parent.top(1001)
    assert_chain(top, rows)
    device = Device(top)
    for row in sorted(rows, key=lambda r: r["codeIndex"]):
        assert device.enter(row["codeValue"]) == Entry("days", int(row["codeDays"]))
    assert device.days_credited == sum(int(r["codeDays"]) for r in rows)


# -- the v2 generation: string product ids, on the same state ------------------------------
V2_MINTS = ["/otp/daysCode/v2", "/code/code/freecodeotp/v2", "/code/code/resetcode/v2"]


@pytest.mark.parametrize(
    "ref", ["OVES001002", "TEST2501001002", "ACC001002"], ids=["serial", "oemItemID", "account"]
)
def test_v2_names_an_item_by_any_of_its_string_ids_on_the_v1_chain(api, ref):
    top = api.top(1002)
    first = api.days(1002, 3)  # v1
    second = api.mint("/otp/daysCode/v2", productId=ref, days=4)
    assert second["otpCount"] == 2 and acp1.walk(second["otpHash"], 4) == first["otpHash"]
    status, body = api.call("GET", f"/oves/v2/codeHistoryList/{ref}/0/10")
    assert status == 200 and body["total"] == 2
    assert [r["codeIndex"] for r in body["items"]] == [2, 1]
    assert body["items"] == api.history(1002, limit=10)["items"]  # one history, two paths
    assert_chain(top, body["items"])


V2_REFUSED = [
    # label, body, status
    pytest.param({"productId": 1001, "days": 5}, 400, id="an integer id"),
    pytest.param({"productId": "", "days": 5}, 400, id="empty"),
    pytest.param({"productId": "X" * 65, "days": 5}, 400, id="too long"),
    pytest.param({"productId": "OVES009999", "days": 5}, 404, id="unknown"),
    pytest.param({"productId": "OVES001101", "days": 5}, 404, id="another distributor's"),
]


@pytest.mark.parametrize("body, status", V2_REFUSED)
def test_v2_refusals_change_nothing(api, body, status):
    for path in V2_MINTS:
        assert api.call("POST", path, body)[0] == status, path
    assert api.call("POST", V2_MINTS[0], {"productId": "OVES001001", "days": 1096})[0] == 400
    assert api.call("GET", "/oves/v2/codeHistoryList/OVES009999/0/10")[0] == 404
    assert api.history(1001)["total"] == 0


def test_v2_paths_need_a_token_too(app):
    client = Api(app, "flask")
    for path in V2_MINTS:
        assert client.call("POST", path, {"productId": "OVES001001", "days": 1})[0] == 401
    assert client.call("GET", "/oves/v2/codeHistoryList/OVES001001/0/10")[0] == 401


# -- how a refused token is answered (test-only), and the login count ---------------------
@pytest.mark.parametrize(
    "style, status, has_errors",
    [("401", 401, False), ("403", 403, False), ("200", 200, True)],
)
def test_a_refused_token_in_each_style(api, emulator, style, status, has_errors):
    emulator.refuse_tokens_as(style)
    emulator.store.expire_tokens()
    answer_status, body = api.call("GET", "/oves/assignedItemsList/0/10")
    assert answer_status == status and ("errors" in body) is has_errors
    assert api.call("POST", "/otp/daysCode", {"productId": 1001, "days": 1})[0] == status
    api.login()  # a fresh token works
    assert api.history(1001)["total"] == 0  # the refused mint minted nothing


def test_logins_are_counted_and_the_style_is_a_fault_over_http(app, emulator):
    client = Api(app, "httpx")
    client.login()
    client.login()
    assert emulator.logins == 2
    assert (
        client.call("POST", "/_emulator/faults", {"auth_failure": "403"})[1]["faults"][
            "auth_failure"
        ]
        == "403"
    )
    assert client.call("POST", "/_emulator/faults", {"auth_failure": "418"})[0] == 400
    assert client.call("DELETE", "/_emulator/faults")[1]["faults"]["auth_failure"] == "401"


# -- the fleet's size (OMNIVOLTAIC_EMULATOR_FLEET) ---------------------------------------


@pytest.mark.parametrize(
    "fleet, first, last",
    [
        pytest.param(1, [1001], [1001], id="one item"),
        pytest.param(100, [1001, 1002], [1099, 1100], id="the default: 1001-1100"),
        pytest.param(103, [1001, 1002], [1100, 200001, 200002, 200003], id="then from 200001"),
    ],
)
def test_the_demo_distributor_holds_the_fleet_it_is_given(tmp_path, fleet, first, last):
    app = create_emulator(str(tmp_path / "fleet.db"), SEED, fleet=fleet)
    items = app.extensions["omnivoltaic_emulator"].store
    held = [row["product_id"] for row in items.items_page(1, 0, 1000)[0]]
    assert len(held) == fleet
    assert held[: len(first)] == first and held[-len(last) :] == last
    assert not set(held) & set(range(1101, 1111))  # still the other distributor's


def test_a_state_file_grows_to_a_larger_fleet_and_keeps_its_chains(tmp_path):
    path = str(tmp_path / "grow.db")
    small = Api(create_emulator(path, SEED, fleet=100), "httpx")
    small.login()
    code = small.days(1001, 3)["code"]
    large = create_emulator(path, SEED, fleet=150)
    store = large.extensions["omnivoltaic_emulator"].store
    rows, total = store.items_page(1, 0, 1000)
    assert total == len(rows) == 150 and rows[-1]["oem_sn"] == "OVES200050"
    again = Api(large, "httpx")
    again.login()
    assert code in str(again.history(1001))


def test_a_fleet_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fleet"):
        create_emulator(str(tmp_path / "none.db"), SEED, fleet=0)
