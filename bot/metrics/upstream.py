"""The upstream latency: the Omnivoltaic API's calls timed by their httpx client, by call.

Measured outside bot/omnivoltaic/ (the adapter knows nothing of the product above it):
bootstrap builds the adapter's httpx client as a `TimedClient`.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from prometheus_client import Counter, Histogram

from bot.metrics.events import OTHER

UPSTREAM_SECONDS = Histogram(
    "ovbot_upstream_request_duration_seconds",
    "Omnivoltaic API requests: time from sending to the end of the answer, by call.",
    ["call"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)
UPSTREAM_REQUESTS = Counter(
    "ovbot_upstream_requests",
    "Omnivoltaic API requests by call and status class (2xx, 4xx, 5xx; error: no answer).",
    ["call", "status"],
)


# Path endings of both API generations (OMNIVOLTAIC.md section 3), after any base path.
_CALLS = (
    ("login", re.compile(r"(^|/)(user/)?login/?$")),
    ("assigned_items", re.compile(r"(^|/)oves/(v2/)?assignedItems(List)?/")),
    ("code_history", re.compile(r"(^|/)oves/(v2/)?codeHistoryList/")),
    ("days_code", re.compile(r"(^|/)otp/daysCode(/v2)?/?$")),
    ("free_code", re.compile(r"(^|/)code/code/freecodeotp(/v2)?/?$")),
    ("reset_code", re.compile(r"(^|/)code/code/resetcode(/v2)?/?$")),
)


def call_name(path: str) -> str:
    """The API call a request path is: login, days_code, code_history, ... or other."""
    return next((name for name, pattern in _CALLS if pattern.search(path)), OTHER)


class TimedClient(httpx.Client):
    """The Omnivoltaic client's httpx client, timing each request by call: from sending
    until its answer has been read, or until it failed.

    A subclass rather than a transport wrapper: handing httpx a transport of our own
    would turn off the proxies it takes from the environment (HTTPS_PROXY...).
    """

    def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        call, started = call_name(request.url.path), time.perf_counter()
        status = "error"
        try:
            response = super().send(request, **options)
            status = f"{response.status_code // 100}xx"
            return response
        finally:
            UPSTREAM_SECONDS.labels(call).observe(time.perf_counter() - started)
            UPSTREAM_REQUESTS.labels(call, status).inc()
