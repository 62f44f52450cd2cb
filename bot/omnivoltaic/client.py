"""The one seam to the Omnivoltaic API (OMNIVOLTAIC.md §3). No httpx exception leaves it.

    OmnivoltaicError
     ├── InvalidRequest        our own validation failed; nothing was sent
     ├── AuthFailed            login rejected, or 401 again right after a fresh login
     ├── Rejected              a 4xx with the upstream .message and .status (400, 403, 409…);
     │    └── NotAssigned      404: unknown product, or not assigned to our account
     ├── Unavailable           nothing we rely on happened: could not connect, or a read
     │    │                    call (or login) still failing after its retries: transport
     │    │                    error, 5xx, 429; a mint that was surely never sent or got 429
     │    ├── ProtocolError    a 2xx answer to a read call that we cannot understand
     │    └── DeadlinePassed   a mint whose send deadline had passed: surely not sent
     └── OutcomeUnknown        a MINT call that may have been executed: timeout or lost
                               connection after sending, a 5xx, or an answer we cannot
                               read or whose code does not match its otpHash.
                               Reconcile with the code history before minting again.

A mint is sent exactly once; only login and GETs are retried. An auth failure (a 401, a
403 whose message speaks of the token, or a 200 whose body carries such an error) triggers
one fresh login (shared by every thread that saw the same stale token) and one repeat of
the call. A mint is repeated only after a 401 or 403: those are answered before anything
is minted. A 200 carrying an auth error to a mint is OutcomeUnknown (the ledger reconciles
from the history, with a fresh token), so no mint is ever sent twice.

Generations (OMNIVOLTAIC.md section 3): `v1` addresses a product by its integer
`productItemID`; `v2` (the `/v2` paths) by a string, the OEM item id. The login URL may be
on another host; the token goes out raw or as `Bearer <token>` (`auth_scheme`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from bot.domain import MAX_CODE_DAYS
from bot.omnivoltaic import tokens
from bot.omnivoltaic.types import (
    API_VERSIONS,
    ApiVersion,
    HistoryPage,
    HistoryRow,
    Item,
    ItemPage,
    MintedCode,
    history_row_from_api,
    item_from_api,
    minted_code_from_api,
)

__all__ = [
    "OmnivoltaicClient",
    "Item",
    "ItemPage",
    "MintedCode",
    "HistoryRow",  # results re-exported
    "OmnivoltaicError",
    "InvalidRequest",
    "AuthFailed",
    "Rejected",
    "NotAssigned",
    "Unavailable",
    "ProtocolError",
    "DeadlinePassed",
    "OutcomeUnknown",
    "LoginSeen",
    "AUTH_SCHEMES",
]
log = logging.getLogger(__name__)

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Page(Protocol[_T_co]):
    """What `_paged` walks: an ItemPage or a HistoryPage."""

    @property
    def items(self) -> tuple[_T_co, ...]: ...

    @property
    def total(self) -> int | None: ...


class OmnivoltaicError(Exception):
    pass


class InvalidRequest(OmnivoltaicError):
    pass


class AuthFailed(OmnivoltaicError):
    pass


class Rejected(OmnivoltaicError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(f"{status}: {message}")
        self.message, self.status = message, status


class NotAssigned(Rejected):
    pass


class Unavailable(OmnivoltaicError):
    pass


class ProtocolError(Unavailable):
    pass


class DeadlinePassed(Unavailable):
    """A mint refused before sending: its send deadline (its fence) had passed."""


class OutcomeUnknown(OmnivoltaicError):
    pass


# Failures raised before any byte of the request left us: a mint that hit one did nothing.
# The refusals the API answers before minting anything (OMNIVOLTAIC.md section 3): only
# these mean "not minted". Any other status to a mint (408, 499, a 3xx, a 5xx...) may
# have minted, so it is outcome-unknown.
NOT_MINTED = frozenset({400, 401, 403, 404, 409, 422, 429})
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)
MAX_DAYS, MAX_LIMIT = MAX_CODE_DAYS, 100
AUTH_SCHEMES = ("raw", "bearer")
LOGIN_PATH = "/user/login"
MINT_PATHS = {
    "days": "/otp/daysCode",
    "free": "/code/code/freecodeotp",
    "reset": "/code/code/resetcode",
}
TOKEN_KEYS = ("accessToken", "access_token", "token")
# A message that says the token (not the request) was refused: how a 403 or a 200 error
# body tells an expiry apart from a refusal such as "free code allowance used up".
_AUTH_WORDS = re.compile(
    r"token|jwt|expired|unauthori[sz]ed|unauthenticated|not authenticated|authentication"
    r"|log ?in again|session",
    re.IGNORECASE,
)
_AUTH_CODES = {"UNAUTHENTICATED", "UNAUTHORIZED", "FORBIDDEN", "INVALID_TOKEN", "TOKEN_EXPIRED"}
MAX_API_ID = 64


@dataclass(frozen=True)
class LoginSeen:
    """What the last login answered, without the token: for `ovbot api check`."""

    fields: tuple[str, ...]  # the answer's top-level field names
    token_at: str  # where the token was found, e.g. "accessToken" or "data.login.accessToken"
    shape: tokens.TokenShape
    renew_after: float  # seconds after the login at which the client logs in again


class OmnivoltaicClient:
    def __init__(
        self,
        http: httpx.Client,
        username: str,
        password: str,
        *,
        api_version: ApiVersion = "v1",
        auth_scheme: str = "raw",
        login_url: str = LOGIN_PATH,
        timeout: float = 10.0,
        token_ttl: float = 3600.0,
        renew_margin: float = 300.0,
        retries: int = 2,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {API_VERSIONS}, got {api_version!r}")
        if auth_scheme not in AUTH_SCHEMES:
            raise ValueError(f"auth_scheme must be one of {AUTH_SCHEMES}, got {auth_scheme!r}")
        self._http, self._username, self._password = http, username, password
        self.api_version, self.auth_scheme, self.login_url = api_version, auth_scheme, login_url
        self._timeout = httpx.Timeout(timeout)
        self._token_ttl, self._renew_margin = token_ttl, renew_margin
        self._token_life = max(token_ttl - renew_margin, 0.0)
        self._retries, self._backoff = retries, backoff
        self._sleep, self._clock, self._wall_clock = sleep, clock, wall_clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.last_login: LoginSeen | None = None

    def __repr__(self) -> str:
        return f"OmnivoltaicClient(host={self._http.base_url.host!r}, username={self._username!r})"

    # --- authentication ---------------------------------------------------------------

    def login(self) -> None:
        with self._lock:
            self._login_locked()

    def renew_token(self) -> None:
        """The API renews by logging in again with the full credentials."""
        self.login()

    def _login_locked(self) -> str:
        """Log in, store the new token and return it."""
        started = self._clock()  # the token's hour runs from before we asked
        body = {"username": self._username, "password": self._password}
        response = self._exchange("POST", self.login_url, body, token=None, mint=False)
        if 400 <= response.status_code < 500:
            raise AuthFailed(f"login rejected ({response.status_code}: {_message(response)})")
        answer = self._decode(response, mint=False, login=True)
        token, where = _find_token(answer)
        if token is None:
            raise ProtocolError("login answer has no accessToken")
        shape = tokens.describe(token)
        life = self._life(shape)
        self._token, self._renew_at = token, started + life
        fields = tuple(answer) if isinstance(answer, dict) else ()
        self.last_login = LoginSeen(fields=fields, token_at=where, shape=shape, renew_after=life)
        return token

    def _life(self, shape: tokens.TokenShape) -> float:
        """How long to use a token: the documented hour, or less when a JWT says so."""
        life = self._token_ttl
        if shape.expires_at is not None:
            own = shape.lifetime
            if own is None:  # no `iat`: measure from our own wall clock
                own = (shape.expires_at - self._wall_clock()).total_seconds()
            life = min(life, max(own, 0.0))
        return max(life - min(self._renew_margin, life / 10), 0.0)

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                return self._login_locked()
            return self._token

    def _token_after_refusal(self, stale: str) -> str:
        with self._lock:
            # nobody else has logged in since (or nobody ever did): we do
            if self._token is None or self._token == stale:
                return self._login_locked()
            return self._token

    def _forget(self, stale: str) -> None:
        """The API refused `stale`: the next call logs in (once, whoever gets there first)."""
        with self._lock:
            if self._token == stale:
                self._token = None

    # --- calls ----------------------------------------------------------------------------

    def assigned_items(self, offset: int = 0, limit: int = MAX_LIMIT) -> ItemPage:
        rows, total = _rows(self._call("GET", self.items_path(offset, limit)))
        parse: Callable[[Any], Item] = lambda row: item_from_api(row, self.api_version)  # noqa: E731
        return ItemPage(items=tuple(_parse(parse, row) for row in rows), total=total)

    def iter_assigned_items(self, page_size: int = MAX_LIMIT) -> Iterator[Item]:
        return _paged(lambda offset: self.assigned_items(offset, page_size), page_size)

    def assigned_item(self, product_id: int) -> Item:
        """One item by its integer `productItemID` (there is no v2 of this call)."""
        body = self._call("GET", f"/oves/assignedItems/{_v1_product(product_id)}")
        if isinstance(body, dict) and "productItemID" not in body:
            body = body.get("item", body.get("data", body))
        return _parse(lambda row: item_from_api(row, self.api_version), body)

    def items_path(self, offset: int, limit: int) -> str:
        _check_window(offset, limit)
        return f"/oves/assignedItemsList/{offset}/{limit}"

    def history_path(self, api_id: int | str, offset: int, limit: int) -> str:
        _check_window(offset, limit)
        product = quote(str(self._product(api_id)), safe="")
        if self.api_version == "v2":
            return f"/oves/v2/codeHistoryList/{product}/{offset}/{limit}"
        return f"/oves/codeHistoryList/{product}/{offset}/{limit}"

    def read(self, path: str) -> Any:
        """A GET of `path` and its decoded JSON, unparsed: what `ovbot api check` looks at."""
        return self._call("GET", path)

    # A mint's `send_by` is its fence: the moment (UTC, on `wall_clock`) after which the
    # request may not start to be sent. Past it (a slow login, a paused process) the mint
    # is refused with DeadlinePassed, nothing sent; the request's connect, pool and write
    # phases share what is left, so no byte leaves after it. `timeout` bounds the answer.

    def days_code(
        self,
        product: int | str,
        days: int,
        *,
        timeout: float | None = None,
        send_by: datetime | None = None,
    ) -> MintedCode:
        """`product` is the device's API id (its `productItemID` in v1, OEM item id in v2)."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise InvalidRequest(f"days must be an integer 1..{MAX_DAYS}, got {days!r}")
        body = {"productId": self._product(product), "days": days}
        return self._mint(self._mint_path("days"), body, timeout, send_by)

    def free_code(
        self, product: int | str, *, timeout: float | None = None, send_by: datetime | None = None
    ) -> MintedCode:
        body = {"productId": self._product(product)}
        return self._mint(self._mint_path("free"), body, timeout, send_by)

    def reset_code(
        self, product: int | str, *, timeout: float | None = None, send_by: datetime | None = None
    ) -> MintedCode:
        body = {"productId": self._product(product)}
        return self._mint(self._mint_path("reset"), body, timeout, send_by)

    def _mint_path(self, kind: str) -> str:
        path = MINT_PATHS[kind]
        return f"{path}/v2" if self.api_version == "v2" else path

    def _product(self, product: Any) -> int | str:
        """The product as this generation sends it: an integer (v1) or a string (v2)."""
        if self.api_version == "v1":
            return _v1_product(product)
        return _v2_product(product)

    def code_history(
        self,
        product_id: int | str,
        offset: int = 0,
        limit: int = MAX_LIMIT,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> list[HistoryRow]:
        """Newest first. `timeout` and `retries` narrow this read (a request's budget)."""
        return list(self._history_page(product_id, offset, limit, timeout, retries).items)

    def iter_code_history(
        self, product_id: int | str, page_size: int = MAX_LIMIT
    ) -> Iterator[HistoryRow]:
        return _paged(lambda offset: self._history_page(product_id, offset, page_size), page_size)

    def code_history_metadata(self) -> dict[str, Any]:
        body = self._call("GET", "/oves/codeHistory_Metadata")
        if not isinstance(body, dict):
            raise ProtocolError("codeHistory_Metadata answer is not an object")
        return body

    def _history_page(
        self,
        product_id: int | str,
        offset: int,
        limit: int,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> HistoryPage:
        path = self.history_path(product_id, offset, limit)
        rows, total = _rows(self._call("GET", path, timeout=timeout, retries=retries))
        items = tuple(_parse(history_row_from_api, row) for row in rows)
        return HistoryPage(items=items, total=total)

    def _mint(
        self,
        path: str,
        body: dict[str, Any],
        timeout: float | None,
        send_by: datetime | None = None,
    ) -> MintedCode:
        """A mint; `timeout` may shorten the wait (USSD screens cannot wait long)."""
        answer = self._call("POST", path, body, mint=True, timeout=timeout, send_by=send_by)
        try:
            return minted_code_from_api(answer)
        except ValueError as exc:
            raise OutcomeUnknown(f"POST {path}: unusable answer ({exc})") from None

    # --- transport --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        mint: bool = False,
        timeout: float | None = None,
        retries: int | None = None,
        send_by: datetime | None = None,
    ) -> Any:
        def exchange(token: str) -> httpx.Response:
            return self._exchange(
                method,
                path,
                body,
                token=token,
                mint=mint,
                timeout=timeout,
                retries=retries,
                send_by=send_by,
            )

        token = self._current_token()
        response = exchange(token)
        if _auth_refused(response):
            if mint and response.status_code not in (401, 403):
                # A 200 carrying an auth error: perhaps nothing was minted, perhaps not.
                self._forget(token)
                raise OutcomeUnknown(f"{method} {path}: an auth error in a 200 answer")
            log.info(
                "%s %s: token refused (%d); logging in again", method, path, response.status_code
            )
            token = self._token_after_refusal(token)
            response = exchange(token)
            if _auth_refused(response):
                if mint and response.status_code not in (401, 403):
                    self._forget(token)
                    raise OutcomeUnknown(f"{method} {path}: an auth error in a 200 answer")
                raise AuthFailed(f"{method} {path}: {response.status_code} after a fresh login")
        return self._decode(response, mint=mint)

    def _exchange(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        token: str | None,
        mint: bool,
        timeout: float | None = None,
        retries: int | None = None,
        send_by: datetime | None = None,
    ) -> httpx.Response:
        """One logical request. Read calls retry failures; a mint is sent once, whatever happens."""
        headers = {"Authorization": tokens.authorization(token, self.auth_scheme)} if token else {}
        retries = self._retries if retries is None else retries
        attempts = 1 if mint else 1 + max(retries, 0)
        for attempt in range(attempts):
            if attempt:
                self._sleep(self._backoff * 2 ** (attempt - 1))
            started = self._clock()
            limits = self._limits(timeout, send_by, f"{method} {path}")
            try:
                response = self._http.request(
                    method, path, json=body, headers=headers, timeout=limits
                )
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                log.warning(
                    "%s %s failed after %.3fs: %s",
                    method,
                    path,
                    self._clock() - started,
                    type(exc).__name__,
                )
                if mint and not isinstance(exc, _NOT_SENT):
                    raise OutcomeUnknown(f"{method} {path}: {type(exc).__name__}") from exc
                failure: OmnivoltaicError = Unavailable(f"{method} {path}: {type(exc).__name__}")
                failure.__cause__ = exc  # what `ovbot api check` explains (host, TLS...)
                continue
            status = response.status_code
            log.info("%s %s -> %d in %.3fs", method, path, status, self._clock() - started)
            if mint and not 200 <= status < 300 and status not in NOT_MINTED:
                raise OutcomeUnknown(f"{method} {path}: {status}")
            if status != 429 and status < 500:
                return response
            failure = Unavailable(f"{method} {path}: {status}")
        raise failure

    def _limits(self, timeout: float | None, send_by: datetime | None, what: str) -> httpx.Timeout:
        """The request's timeouts; past `send_by`, DeadlinePassed (nothing is sent).

        A call's `timeout` only ever shortens the client's own (a request's budget).
        """
        default = self._timeout.read
        read = default if timeout is None or default is None else min(timeout, default)
        read = timeout if read is None else read
        if send_by is None:
            return self._timeout if timeout is None else httpx.Timeout(read)
        left = (send_by - self._wall_clock()).total_seconds()
        if left <= 0:
            raise DeadlinePassed(f"{what}: its send deadline passed {-left:.3f}s ago; not sent")
        return httpx.Timeout(read, connect=left / 3, pool=left / 3, write=left / 3)

    def _decode(self, response: httpx.Response, *, mint: bool, login: bool = False) -> Any:
        status, where = response.status_code, f"{response.request.method} {response.url.path}"
        if 200 <= status < 300:
            try:
                body = response.json()
            except ValueError:
                error = OutcomeUnknown if mint else ProtocolError
                raise error(f"{where}: answer is not JSON") from None
            problem = body_error(body)
            if problem is not None and login:
                raise AuthFailed(f"login refused: {problem}")
            if problem is not None:
                error = OutcomeUnknown if mint else ProtocolError
                raise error(f"{where}: the answer carries an error: {problem}")
            return body
        if 400 <= status < 500:
            message = _message(response)
            raise (NotAssigned if status == 404 else Rejected)(message, status)
        raise (OutcomeUnknown if mint else ProtocolError)(f"{where}: unexpected status {status}")


def body_error(body: Any) -> str | None:
    """The error a 2xx body carries, if any: GraphQL `errors`, an `error`, or a failed
    `status`/`code`/`success`. None for an ordinary answer."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        texts = [_text_of(e) for e in errors]
        return "; ".join(t for t in texts if t)[:200] or "errors"
    if body.get("error") not in (None, "", False):
        return _text_of(body.get("error")) or _text_of(body) or "error"
    failed = body.get("success") is False or any(
        isinstance(body.get(k), int) and 400 <= body[k] <= 599
        for k in ("status", "statusCode", "code")
    )
    return (_text_of(body) or "failed") if failed else None


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, dict):
        for key in ("message", "error", "msg", "detail"):
            if isinstance(value.get(key), str):
                return str(value[key])[:200]
        code = (
            (value.get("extensions") or {}).get("code")
            if isinstance(value.get("extensions"), dict)
            else None
        )
        return str(code) if code else ""
    return ""


def _auth_refused(response: httpx.Response) -> bool:
    """Our token was refused: a 401; a 403 or a 200 whose error speaks of the token."""
    status = response.status_code
    if status == 401:
        return True
    if status not in (200, 403):
        return False
    try:
        body = response.json()
    except ValueError:
        return status == 403 and not response.text.strip()
    if status == 403:
        message = _text_of(body) if isinstance(body, dict) else ""
        return not message or _is_auth_error(body)
    return body_error(body) is not None and _is_auth_error(body)


def _is_auth_error(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    listed = body.get("errors")
    errors: list[Any] = listed if isinstance(listed, list) else [body]
    for error in errors:
        if not isinstance(error, dict):
            if isinstance(error, str) and _AUTH_WORDS.search(error):
                return True
            continue
        extensions = error.get("extensions")
        code = extensions.get("code") if isinstance(extensions, dict) else None
        status = [error.get(k) for k in ("status", "statusCode", "code")]
        if (isinstance(code, str) and code.upper() in _AUTH_CODES) or 401 in status:
            return True
        if _AUTH_WORDS.search(_text_of(error)):
            return True
    return False


def _find_token(answer: Any) -> tuple[str | None, str]:
    """The token of a login answer: at the top, under `data`, or one level below it."""
    places: list[tuple[str, Any]] = [("", answer)]
    data = answer.get("data") if isinstance(answer, dict) else None
    if isinstance(data, dict):
        places.append(("data.", data))
        places += [(f"data.{k}.", v) for k, v in data.items() if isinstance(v, dict)]
    for prefix, place in places:
        if not isinstance(place, dict):
            continue
        for key in TOKEN_KEYS:
            value = place.get(key)
            if isinstance(value, str) and tokens.strip_scheme(value):
                return tokens.strip_scheme(value), prefix + key
    return None, ""


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return response.text.strip()[:200] or response.reason_phrase


def page_rows(body: Any) -> tuple[list[Any], int | None]:
    """The rows of a page answer and its total, if it says one (see `_rows`)."""
    return _rows(body)


def _rows(body: Any) -> tuple[list[Any], int | None]:
    """A page in any of the shapes we tolerate: a bare list, or items/data/rows (+ total)."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict):
        for key in ("items", "data", "rows"):
            if isinstance(body.get(key), list):
                total = body.get("total")
                known = isinstance(total, int) and not isinstance(total, bool)
                return body[key], total if known else None
        if isinstance(body.get("data"), dict):
            return _rows(body["data"])
    raise ProtocolError("page answer has no list of rows")


def _paged(fetch: Callable[[int], _Page[_T]], page_size: int) -> Iterator[_T]:
    offset = 0
    while True:
        page = fetch(offset)
        yield from page.items
        offset += len(page.items)
        if (
            not page.items
            or (page.total is None and len(page.items) < page_size)
            or (page.total is not None and offset >= page.total)
        ):
            return


def _parse(parser: Callable[[Any], _T], row: Any) -> _T:
    try:
        return parser(row)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def _v1_product(product_id: Any) -> int:
    """v1 takes the integer productItemID; the device's API id is its text, e.g. "1001"."""
    if isinstance(product_id, str) and product_id.isascii() and product_id.isdigit():
        product_id = int(product_id) if len(product_id) <= 15 else product_id
    if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id < 1:
        raise InvalidRequest(
            f"product id must be a positive integer in v1, got {product_id!r}"
            " (after changing OMNIVOLTAIC_API_VERSION, run `ovbot sync-devices`)"
        )
    return product_id


_V2_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def _v2_product(product: Any) -> str:
    """v2 takes a string id (an OEM item id such as TEST2503000017, an account number)."""
    if isinstance(product, int) and not isinstance(product, bool) and product > 0:
        product = str(product)
    if not isinstance(product, str) or len(product) > MAX_API_ID or not _V2_ID.fullmatch(product):
        raise InvalidRequest(
            f"product id must be up to {MAX_API_ID} letters, digits, '.', '_', ':' or '-' in v2,"
            f" got {product!r}"
        )
    return product


def _check_window(offset: Any, limit: Any) -> None:
    for name, value, low in (("offset", offset, 0), ("limit", limit, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidRequest(f"{name} must be an integer >= {low}, got {value!r}")
    if limit > MAX_LIMIT:
        raise InvalidRequest(f"limit must be at most {MAX_LIMIT}, got {limit}")
