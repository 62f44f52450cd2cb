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

A mint is sent exactly once; only login and GETs are retried. A 401 triggers one fresh
login and one repeat of the call (the 401 means it was not executed, mints included).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import httpx

from bot.domain import MAX_CODE_DAYS
from bot.omnivoltaic.types import (
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


class OmnivoltaicClient:
    def __init__(
        self,
        http: httpx.Client,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        token_ttl: float = 3600.0,
        renew_margin: float = 300.0,
        retries: int = 2,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http, self._username, self._password = http, username, password
        self._timeout = httpx.Timeout(timeout)
        self._token_life = max(token_ttl - renew_margin, 0.0)
        self._retries, self._backoff = retries, backoff
        self._sleep, self._clock, self._wall_clock = sleep, clock, wall_clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

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
        response = self._exchange("POST", "/user/login", body, token=None, mint=False)
        if 400 <= response.status_code < 500:
            raise AuthFailed(f"login rejected ({response.status_code})")
        answer = self._decode(response, mint=False)
        token = answer.get("accessToken") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError("login answer has no accessToken")
        self._token, self._renew_at = token, started + self._token_life
        return token

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                return self._login_locked()
            return self._token

    def _token_after_401(self, stale: str) -> str:
        with self._lock:
            # nobody else has logged in since (or nobody ever did): we do
            if self._token is None or self._token == stale:
                return self._login_locked()
            return self._token

    # --- calls ----------------------------------------------------------------------------

    def assigned_items(self, offset: int = 0, limit: int = MAX_LIMIT) -> ItemPage:
        _check_window(offset, limit)
        rows, total = _rows(self._call("GET", f"/oves/assignedItemsList/{offset}/{limit}"))
        return ItemPage(items=tuple(_parse(item_from_api, row) for row in rows), total=total)

    def iter_assigned_items(self, page_size: int = MAX_LIMIT) -> Iterator[Item]:
        return _paged(lambda offset: self.assigned_items(offset, page_size), page_size)

    def assigned_item(self, product_id: int) -> Item:
        body = self._call("GET", f"/oves/assignedItems/{_product(product_id)}")
        if isinstance(body, dict) and "productItemID" not in body:
            body = body.get("item", body.get("data", body))
        return _parse(item_from_api, body)

    # A mint's `send_by` is its fence: the moment (UTC, on `wall_clock`) after which the
    # request may not start to be sent. Past it (a slow login, a paused process) the mint
    # is refused with DeadlinePassed, nothing sent; the request's connect, pool and write
    # phases share what is left, so no byte leaves after it. `timeout` bounds the answer.

    def days_code(
        self,
        product_id: int,
        days: int,
        *,
        timeout: float | None = None,
        send_by: datetime | None = None,
    ) -> MintedCode:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise InvalidRequest(f"days must be an integer 1..{MAX_DAYS}, got {days!r}")
        body = {"productId": _product(product_id), "days": days}
        return self._mint("/otp/daysCode", body, timeout, send_by)

    def free_code(
        self, product_id: int, *, timeout: float | None = None, send_by: datetime | None = None
    ) -> MintedCode:
        body = {"productId": _product(product_id)}
        return self._mint("/code/code/freecodeotp", body, timeout, send_by)

    def reset_code(
        self, product_id: int, *, timeout: float | None = None, send_by: datetime | None = None
    ) -> MintedCode:
        body = {"productId": _product(product_id)}
        return self._mint("/code/code/resetcode", body, timeout, send_by)

    def code_history(
        self,
        product_id: int,
        offset: int = 0,
        limit: int = MAX_LIMIT,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> list[HistoryRow]:
        """Newest first. `timeout` and `retries` narrow this read (a request's budget)."""
        return list(self._history_page(product_id, offset, limit, timeout, retries).items)

    def iter_code_history(
        self, product_id: int, page_size: int = MAX_LIMIT
    ) -> Iterator[HistoryRow]:
        return _paged(lambda offset: self._history_page(product_id, offset, page_size), page_size)

    def code_history_metadata(self) -> dict[str, Any]:
        body = self._call("GET", "/oves/codeHistory_Metadata")
        if not isinstance(body, dict):
            raise ProtocolError("codeHistory_Metadata answer is not an object")
        return body

    def _history_page(
        self,
        product_id: int,
        offset: int,
        limit: int,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> HistoryPage:
        _check_window(offset, limit)
        path = f"/oves/codeHistoryList/{_product(product_id)}/{offset}/{limit}"
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
        if response.status_code == 401:
            token = self._token_after_401(token)
            response = exchange(token)
            if response.status_code == 401:
                raise AuthFailed(f"{method} {path}: 401 after a fresh login")
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
        headers = {"Authorization": token} if token else {}
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

    def _decode(self, response: httpx.Response, *, mint: bool) -> Any:
        status, where = response.status_code, f"{response.request.method} {response.url.path}"
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                error = OutcomeUnknown if mint else ProtocolError
                raise error(f"{where}: answer is not JSON") from None
        if 400 <= status < 500:
            message = _message(response)
            raise (NotAssigned if status == 404 else Rejected)(message, status)
        raise (OutcomeUnknown if mint else ProtocolError)(f"{where}: unexpected status {status}")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return response.text.strip()[:200] or response.reason_phrase


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


def _product(product_id: Any) -> int:
    if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id < 1:
        raise InvalidRequest(f"product id must be a positive integer, got {product_id!r}")
    return product_id


def _check_window(offset: Any, limit: Any) -> None:
    for name, value, low in (("offset", offset, 0), ("limit", limit, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidRequest(f"{name} must be an integer >= {low}, got {value!r}")
    if limit > MAX_LIMIT:
        raise InvalidRequest(f"limit must be at most {MAX_LIMIT}, got {limit}")
