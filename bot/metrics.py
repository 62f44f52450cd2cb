"""Prometheus metrics: what happened (counters), how long the code service took (histogram).

Counters and the histogram are process-global, as prometheus_client wants them; the
functions below are the one way the rest of `bot/` moves them, and they keep every label
bounded: a label value is a short lower-case word from a known set or becomes "other",
never a phone number, a device id or free text.

Under gunicorn each worker is its own process: with `PROMETHEUS_MULTIPROC_DIR` set (before
prometheus_client is first imported: `ovbot serve` sets it), every process writes its
values to files in that directory and `exposition` sums them; gunicorn's `child_exit` hook
calls `child_exit` below. The outbox is a gauge read from the database at scrape time:
its messages are sent by `ovbot worker` processes, which may run on other machines, so
only the database knows them all.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.settings import Settings, export, multiprocess_dir
from bot.storage.models import CUSTOMER_CHANNELS, OUTBOX_STATUSES, OutboxMessage

log = logging.getLogger(__name__)
# In multiprocess mode prometheus_client opens a file in its directory for each metric
# as it is defined, just below: a directory that does not exist yet would fail the import.
if (_directory := multiprocess_dir()) is not None:
    Path(_directory).mkdir(parents=True, exist_ok=True)

OTHER = "other"
_WORD = re.compile(r"[a-z][a-z_]{0,31}")  # no digits: never a phone, an id or a code

INBOUND = Counter(
    "ovbot_inbound_messages",
    "Inbound messages received, by channel and parsed command (unknown text is other).",
    ["channel", "command"],
)
INBOUND_ERRORS = Counter(
    "ovbot_inbound_errors",
    "Inbound messages whose handling failed and got the apology, by channel.",
    ["channel"],
)
REPLIES = Counter("ovbot_replies", "Replies given to inbound messages, by channel.", ["channel"])
MINTS = Counter(
    "ovbot_mints",
    "Code mints by kind and outcome: the answer to each mint call (minted, unknown, "
    "failed), and adopted when reconciliation finds an open attempt in the code history.",
    ["kind", "outcome"],
)
RECONCILIATIONS = Counter(
    "ovbot_reconciliations",
    "Open mint attempts examined by reconciliation, by result (adopted, released, "
    "waiting, unavailable: the history could not be read).",
    ["result"],
)
ALARMS = Counter("ovbot_integrity_alarms", "Integrity alarms raised, by kind.", ["kind"])
RECEIPTS = Counter(
    "ovbot_delivery_receipts",
    "Delivery receipts received from the SMS providers, by provider and status.",
    ["provider", "status"],
)
LOCKOUTS = Counter("ovbot_agent_lockouts", "Agents locked out after too many wrong PINs.")
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

MINT_KINDS = ("days", "free", "reset")
MINT_OUTCOMES = ("minted", "unknown", "failed", "adopted")
RECONCILE_RESULTS = ("adopted", "released", "waiting", "unavailable")
RECEIPT_PROVIDERS = ("twilio", "africastalking")
# Twilio's MessageStatus values and Africa's Talking's delivery statuses, lower-cased.
RECEIPT_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "accepted",
    "canceled",
    "submitted",
    "buffered",
    "rejected",
    "success",
)
ALARM_KINDS = ("late_answer", "answer_differs")  # bot/ledger/book.py's `_alarm` calls
# The series an alert watches exist from the start, at zero (a labelled series would
# otherwise appear only with its first event).
for _kind in MINT_KINDS:
    for _outcome in MINT_OUTCOMES:
        MINTS.labels(_kind, _outcome)
for _result in RECONCILE_RESULTS:
    RECONCILIATIONS.labels(_result)
for _alarm in ALARM_KINDS:
    ALARMS.labels(_alarm)


def label(value: object, allowed: Iterable[str] | None = None) -> str:
    """`value` as a label if it is a short lower-case word (from `allowed`), else "other"."""
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        return OTHER
    if allowed is not None and value not in allowed:
        return OTHER
    return value


# -- events: what the rest of bot/ calls ------------------------------------------------


def inbound(channel: str, command: str) -> None:
    INBOUND.labels(label(channel), label(command)).inc()


def replied(channel: str) -> None:
    REPLIES.labels(label(channel)).inc()


def inbound_failed(channel: str) -> None:
    INBOUND_ERRORS.labels(label(channel)).inc()


def mint(kind: str, outcome: str) -> None:
    MINTS.labels(label(kind, MINT_KINDS), label(outcome, MINT_OUTCOMES)).inc()


def reconciled(kind: str, result: str) -> None:
    """One open attempt examined; an adopted one is also a mint whose outcome is adopted."""
    RECONCILIATIONS.labels(label(result, RECONCILE_RESULTS)).inc()
    if result == "adopted":
        mint(kind, "adopted")


def integrity_alarm(kind: str) -> None:
    ALARMS.labels(label(kind)).inc()


def delivery_receipt(provider: str, status: str) -> None:
    """A provider's delivery report (Twilio's MessageStatus, e.g. "undelivered")."""
    status = status.lower() if isinstance(status, str) else status
    RECEIPTS.labels(label(provider, RECEIPT_PROVIDERS), label(status, RECEIPT_STATUSES)).inc()


def agent_locked_out() -> None:
    LOCKOUTS.inc()


# -- upstream latency: a transport wrapper, so the API client itself stays unaware -------

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


# -- the scrape ---------------------------------------------------------------------------


class OutboxCollector(Collector):
    """`ovbot_outbox_messages{status,channel}`: one grouped count of the outbox table.

    Every known (status, channel) pair is reported, zeros included, so that an alert on
    `failed > 0` has a series to watch from the start. A database that does not answer
    leaves the family out (the scrape itself still succeeds) and is logged.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        counts = {(s, c): 0 for s in OUTBOX_STATUSES for c in CUSTOMER_CHANNELS}
        query = select(OutboxMessage.status, OutboxMessage.channel, func.count()).group_by(
            OutboxMessage.status, OutboxMessage.channel
        )
        try:
            with self.engine.connect() as connection:
                for status, channel, count in connection.execute(query):
                    counts[(label(status), label(channel))] = int(count)
        except Exception:
            log.exception("metrics: the outbox count failed; ovbot_outbox_messages left out")
            return []
        family = GaugeMetricFamily(
            "ovbot_outbox_messages",
            "Outbox messages in the database, by status and channel.",
            labels=["status", "channel"],
        )
        for (status, channel), count in sorted(counts.items()):
            family.add_metric([status, channel], count)
        return [family]


def exposition(
    engine: Engine | None, directory: str | None, accept: str | None = None
) -> tuple[bytes, str]:
    """The scrape, in the format the `accept` header asks for (Prometheus text 0.0.4 by
    default, OpenMetrics on request), and its content type.

    With `directory` (PROMETHEUS_MULTIPROC_DIR), the values of every process that wrote
    there are summed; without, this process's own values (and its process metrics).
    """
    registry = CollectorRegistry()
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Process())
    if engine is not None:
        registry.register(OutboxCollector(engine))
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type


class _Process(Collector):
    """This process's metrics from the default registry (ours, plus process and gc)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


# -- multiprocess mode: the directory and gunicorn's hook ---------------------------------


def prepare_multiprocess_dir(directory: str | None) -> str:
    """The directory for `ovbot serve`'s workers, emptied: the operator's, or a new one.

    Files left by an earlier run would be summed into this one's values, so a directory
    the operator set is cleared of them (only prometheus_client's `*.db` files).
    """
    if not directory:
        return tempfile.mkdtemp(prefix="ovbot-metrics-")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        if stale.is_file():
            stale.unlink()
        elif stale.is_dir():
            shutil.rmtree(stale)
    return str(path)


def prepare_for_workers(settings: Settings) -> str:
    """For `ovbot serve`: the workers' directory, emptied, exported for gunicorn to inherit."""
    directory = prepare_multiprocess_dir(settings.prometheus_multiproc_dir)
    export("PROMETHEUS_MULTIPROC_DIR", directory)
    return directory


def child_exit(server: object, worker: Any) -> None:
    """gunicorn's `child_exit` hook (config/gunicorn.conf.py): a worker has exited.

    prometheus_client drops the files of its live gauges; its counters and histograms
    stay in the directory and keep counting in the totals, as they should.
    """
    directory = Settings.from_env().prometheus_multiproc_dir
    if directory:
        multiprocess.mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]
