"""The Omnivoltaic API, emulated: every endpoint of OMNIVOLTAIC.md section 3.

Both generations on the same state: v1 names a product by its integer productItemID, v2
(the `/v2` paths) by a string, its OEM serial (e.g. `OVES001001`), OEM item id or account
number. A token is accepted raw or as `Bearer <token>`.

`create_emulator(state_path, seed)` builds the Flask app; its state lives in one SQLite
file (emulator/store.py) that any number of processes can share.  Provider field names
(`productItemID`, `codeValue`, ...) stay in this module.  Routes under `/_emulator/` and the
fault-injection methods are NOT part of the real API: they exist for the device simulator
and for tests.  `EmulatorTransport` mounts the app in-process behind an httpx client.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from typing import Any, cast

import httpx
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from bot.omnivoltaic import acp1
from bot.omnivoltaic.emulator.store import DEMO_FLEET, ApiError, EmulatorStore

EXTENSION = "omnivoltaic_emulator"
MAX_LIMIT = 100
api = Blueprint("omnivoltaic_api", __name__)
extras = Blueprint("omnivoltaic_emulator_extras", __name__, url_prefix="/_emulator")
_PUBLIC = {"omnivoltaic_api.login", "omnivoltaic_api.graphql"}
_INTEGER = re.compile(r"-?[0-9]{1,15}")  # bounded: SQLite integers are 64-bit
MAX_REF = 64  # the longest string product id v2 accepts
AUTH_STYLES = ("401", "403", "200")


class Emulator:
    """The app's state (`store`) and its test-only fault switches; thread-safe."""

    def __init__(self, store: EmulatorStore, token_ttl: float) -> None:
        self.store, self.token_ttl = store, token_ttl
        self._lock = threading.Lock()
        self.logins = 0  # successful logins served by this app (tests count them)
        self.clear_faults()

    def count_login(self) -> None:
        with self._lock:
            self.logins += 1

    def refuse_tokens_as(self, style: str) -> None:
        """TEST ONLY: how a missing or expired token is refused: "401" (the default),
        "403", or "200" (a GraphQL-style `{"errors": [...]}` body with status 200)."""
        if style not in AUTH_STYLES:
            raise ValueError(f"token refusal style must be one of {AUTH_STYLES}")
        with self._lock:
            self._auth_style = style

    def auth_style(self) -> str:
        with self._lock:
            return self._auth_style

    def set_latency(self, seconds: float) -> None:
        """TEST ONLY: every API call waits this long first."""
        with self._lock:
            self._latency = max(0.0, float(seconds))

    def fail_next(self, n: int, status: int) -> None:
        """TEST ONLY: the next n API calls answer `status` and change nothing."""
        if not 400 <= int(status) <= 599:
            raise ValueError("an injected fault's status must be 4xx or 5xx")
        with self._lock:
            self._fail = (max(0, int(n)), int(status))

    def mint_then_timeout(self, n: int = 1, delay: float = 5.0) -> None:
        """TEST ONLY: the next n mints are made and recorded, then answer `delay` s late."""
        with self._lock:
            self._late_mints = (max(0, int(n)), max(0.0, float(delay)))

    def mint_then_status(self, n: int, status: int) -> None:
        """TEST ONLY: the next n mints are made and recorded, then answer `status`."""
        if not 300 <= int(status) <= 599:
            raise ValueError("an injected status after minting must be 3xx to 5xx")
        with self._lock:
            self._status_mints = (max(0, int(n)), int(status))

    def clear_faults(self) -> None:
        with self._lock:
            self._latency, self._fail, self._late_mints = 0.0, (0, 0), (0, 0.0)
            self._status_mints, self._auth_style = (0, 0), "401"

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": self._latency,
                "fail_next": {"count": self._fail[0], "status": self._fail[1]},
                "mint_then_timeout": {"count": self._late_mints[0], "delay": self._late_mints[1]},
                "mint_then_status": {
                    "count": self._status_mints[0],
                    "status": self._status_mints[1],
                },
                "auth_failure": self._auth_style,
            }

    def before_call(self) -> int | None:
        """Apply latency; the status to fail this call with, if a failure is armed."""
        with self._lock:
            latency, (count, status) = self._latency, self._fail
            if count:
                self._fail = (count - 1, status)
        if latency:
            time.sleep(latency)
        return status if count else None

    def after_mint(self) -> int | None:
        """Apply a late answer; the status to answer a made mint with, if one is armed."""
        with self._lock:
            count, delay = self._late_mints
            if count:
                self._late_mints = (count - 1, delay)
            armed, status = self._status_mints
            if armed:
                self._status_mints = (armed - 1, status)
        if count:
            time.sleep(delay)
        return status if armed else None


def create_emulator(
    state_path: str, seed: str, token_ttl: float = 3600.0, fleet: int = DEMO_FLEET
) -> Flask:
    """The emulator app on the state file `state_path` (created and seeded if new), the
    demo distributor holding `fleet` items (OMNIVOLTAIC.md section 4)."""
    app = Flask(__name__)
    # Flask types `app.json` as the base JSONProvider; it is its DefaultJSONProvider here.
    cast(DefaultJSONProvider, app.json).sort_keys = False
    app.extensions[EXTENSION] = Emulator(EmulatorStore(state_path, seed, fleet), token_ttl)
    app.register_blueprint(api)
    app.register_blueprint(extras)
    app.register_error_handler(ApiError, lambda e: (jsonify(message=e.message), e.status))
    app.register_error_handler(HTTPException, lambda e: (jsonify(message=e.description), e.code))
    return app


def _emulator() -> Emulator:
    # `extensions` is a dict[str, Any]; create_emulator put an Emulator under EXTENSION.
    return cast(Emulator, current_app.extensions[EXTENSION])


# -- boundary checks ------------------------------------------------------------------
def _path_int(text: str, name: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ApiError(400, f"{name} must be an integer")
    return int(text)


def _page(offset: str, limit: str) -> tuple[int, int]:
    offset_n, limit_n = _path_int(offset, "offset"), _path_int(limit, "limit")
    if offset_n < 0:
        raise ApiError(400, "offset must not be negative")
    if not 1 <= limit_n <= MAX_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {MAX_LIMIT}")
    return offset_n, limit_n


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _body_int(
    body: dict[str, Any], name: str, low: int | None = None, high: int | None = None
) -> int:
    """`body[name]` as an integer; checked against `low`..`high` when both are given."""
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 10**15:
        raise ApiError(400, f"{name} must be an integer")
    if low is not None and high is not None and not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def _text_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{name} is required")
    return value


@api.before_request
def _guard() -> tuple[Response, int] | None:
    status = _emulator().before_call()
    if status is not None:
        return jsonify(message="injected fault"), status
    if request.endpoint in _PUBLIC:
        return None
    token = request.headers.get("Authorization", "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    g.distributor_id = _emulator().store.distributor_for(token) if token else None
    if g.distributor_id is None:
        return _refuse_token(_emulator().auth_style())
    return None


def _refuse_token(style: str) -> tuple[Response, int]:
    """A refused token, in the style a test asked for (the real API's is undocumented)."""
    message = "missing, unknown or expired access token"
    if style == "200":
        error = {"message": message, "extensions": {"code": "UNAUTHENTICATED"}}
        return jsonify(errors=[error], data=None), 200
    return jsonify(message=message), int(style)


# -- provider JSON --------------------------------------------------------------------
def _item_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "productItemID": row["product_id"],
        "productItemOEM_SN": row["oem_sn"],
        "productItemPAYG_SN": row["payg_sn"],
        "lifeCycleStatus": "ASSIGNED",
        "firmwareVersion": row["firmware"],
        "assignedItemsID": row["assignment_id"],
        "distributorID": row["distributor_id"],
        "itemAssignDate": row["assigned_at"],
        "valuePerDay": row["value_per_day"],
        "valueDays": row["days_total"],
        "longevityDays": acp1.MAX_DAYS,
        "activateDate": row["activated_at"],
        "deployNotes": "",
        "oemItemID": row["oem_item_id"],
        "sellerItemID": row["seller_item_id"],
    }


def _history_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "codeHistoryID": row["id"],
        "otpGeneratorID": row["product_id"],
        "codeIndex": row["code_index"],
        "codeValue": acp1.format_code(row["code_hex"]),
        "codeDate": row["created_at"],
        "codeDays": row["code_days"],
    }


def _v2_product(value: Any) -> int:
    """v2 names a product by a string: its OEM serial, OEM item id or account number."""
    if not isinstance(value, str) or not value or len(value) > MAX_REF:
        raise ApiError(400, f"productId must be a string of 1 to {MAX_REF} characters")
    return _emulator().store.find(g.distributor_id, value)


def _mint(kind: str, days: int = 0, v2: bool = False) -> dict[str, Any] | tuple[Response, int]:
    body = _body()
    product_id = _v2_product(body.get("productId")) if v2 else _body_int(body, "productId")
    if kind == "days":
        days = _body_int(body, "days", 1, acp1.MAX_DAYS)
    minted = _emulator().store.mint(g.distributor_id, product_id, kind, days)
    status = _emulator().after_mint()
    if status is not None:  # minted and recorded, but the answer says otherwise
        return jsonify(message="injected fault after minting"), status
    return {
        "message": "Succeed",
        "otpCount": minted.count,
        "code": acp1.format_code(minted.value),
        "otpHash": minted.value,
    }


# -- the API --------------------------------------------------------------------------
def _login_token(data: dict[str, Any]) -> str:
    username, password = _text_field(data, "username"), _text_field(data, "password")
    token = _emulator().store.login(username, password, _emulator().token_ttl)
    if token is None:
        raise ApiError(401, "wrong username or password")
    return token


@api.post("/user/login")
def login() -> dict[str, Any]:
    token = _login_token(_body())
    _emulator().count_login()
    return {"accessToken": token, "user_role": "DISTRIBUTOR"}


@api.post("/graphql")
def graphql() -> dict[str, Any]:
    body = _body()
    if "renewToken" not in str(body.get("query", "")):
        raise ApiError(400, "only the renewToken mutation is emulated")
    variables = body.get("variables")
    token = _login_token(variables if isinstance(variables, dict) else {})
    return {"data": {"renewToken": {"accessToken": token}}}


@api.get("/oves/assignedItemsList/<offset>/<limit>")
def assigned_items_list(offset: str, limit: str) -> dict[str, Any]:
    offset_n, limit_n = _page(offset, limit)
    rows, total = _emulator().store.items_page(g.distributor_id, offset_n, limit_n)
    return {
        "items": [_item_json(r) for r in rows],
        "total": total,
        "offset": offset_n,
        "limit": limit_n,
    }


@api.get("/oves/assignedItems/<product_id>")
def assigned_item(product_id: str) -> dict[str, Any]:
    row = _emulator().store.item(g.distributor_id, _path_int(product_id, "productId"))
    return _item_json(row)


@api.post("/otp/daysCode")
def days_code() -> dict[str, Any] | tuple[Response, int]:
    return _mint("days")


@api.post("/code/code/freecodeotp")
def free_code() -> dict[str, Any] | tuple[Response, int]:
    return _mint("free")


@api.post("/code/code/resetcode")
def reset_code() -> dict[str, Any] | tuple[Response, int]:
    return _mint("reset")


@api.post("/otp/daysCode/v2")
def days_code_v2() -> dict[str, Any] | tuple[Response, int]:
    return _mint("days", v2=True)


@api.post("/code/code/freecodeotp/v2")
def free_code_v2() -> dict[str, Any] | tuple[Response, int]:
    return _mint("free", v2=True)


@api.post("/code/code/resetcode/v2")
def reset_code_v2() -> dict[str, Any] | tuple[Response, int]:
    return _mint("reset", v2=True)


@api.get("/oves/codeHistoryList/<product_id>/<offset>/<limit>")
def code_history_list(product_id: str, offset: str, limit: str) -> dict[str, Any]:
    return _history(_path_int(product_id, "productId"), offset, limit)


@api.get("/oves/v2/codeHistoryList/<product_ref>/<offset>/<limit>")
def code_history_list_v2(product_ref: str, offset: str, limit: str) -> dict[str, Any]:
    offset_n, limit_n = _page(offset, limit)  # a bad page is a 400 before any lookup
    return _history(_v2_product(product_ref), str(offset_n), str(limit_n))


def _history(product_id: int, offset: str, limit: str) -> dict[str, Any]:
    offset_n, limit_n = _page(offset, limit)
    rows, total = _emulator().store.history_page(g.distributor_id, product_id, offset_n, limit_n)
    return {
        "items": [_history_json(r) for r in rows],
        "total": total,
        "offset": offset_n,
        "limit": limit_n,
    }


@api.get("/oves/codeHistory_Metadata")
def code_history_metadata() -> dict[str, Any]:
    summary = _emulator().store.history_summary(g.distributor_id)
    return {
        "distributorID": g.distributor_id,
        "itemCount": summary["items"],
        "itemsWithCodes": summary["items_with_codes"],
        "codeCount": summary["codes"],
        "lastCodeDate": summary["last_code_at"],
    }


# -- NOT part of the real API: the device simulator's and the tests' back door ----------
@extras.get("/items/<product_id>/top")
def item_top(product_id: str) -> dict[str, Any]:
    product_id_n = _path_int(product_id, "productId")
    return {"productId": product_id_n, "top": _emulator().store.top(product_id_n)}


@extras.post("/faults")
def set_faults() -> dict[str, Any]:
    body, emulator = _body(), _emulator()
    try:
        if "latency" in body:
            emulator.set_latency(body["latency"])
        if "fail_next" in body:
            emulator.fail_next(body["fail_next"]["count"], body["fail_next"]["status"])
        if "mint_then_timeout" in body:
            late = body["mint_then_timeout"]
            emulator.mint_then_timeout(late.get("count", 1), late.get("delay", 5.0))
        if "auth_failure" in body:
            emulator.refuse_tokens_as(str(body["auth_failure"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ApiError(
            400,
            "faults: latency, fail_next{count,status}, mint_then_timeout{count,delay},"
            " auth_failure (401, 403 or 200)",
        ) from None
    return {"faults": emulator.faults()}


@extras.delete("/faults")
def clear_faults() -> dict[str, Any]:
    _emulator().clear_faults()
    return {"faults": _emulator().faults()}


class EmulatorTransport(httpx.WSGITransport):
    """`httpx.WSGITransport` that honours the request's read timeout.

    The app runs in a worker thread per request; if it has not answered within the read
    timeout, `httpx.ReadTimeout` is raised while the thread finishes in the background
    (so a code minted by a slow call is still recorded, as with a real server).
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        timeout = (request.extensions.get("timeout") or {}).get("read")
        # What the worker thread ends with: its one response, or the exception it raised.
        answers: list[httpx.Response] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                response = httpx.WSGITransport.handle_request(self, request)
                content = response.read()
                answers.append(
                    httpx.Response(response.status_code, headers=response.headers, content=content)
                )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="emulator-request", daemon=True).start()
        if not done.wait(timeout):
            raise httpx.ReadTimeout(f"emulator did not answer within {timeout}s", request=request)
        if errors:
            raise errors[0]
        return answers[0]
