"""Prometheus metrics: what happened (counters), how long the code service took (histogram).

`events` holds the counters and the functions the rest of `bot/` calls to move them,
with bounded labels; `upstream` times the Omnivoltaic API's calls by call (bootstrap
builds the adapter's httpx client as a `TimedClient`); `scrape` renders `GET /metrics`,
with the outbox read from the database, and keeps gunicorn's workers summed.

Metrics are process-global, as prometheus_client wants them. Under gunicorn each worker
is its own process: with `PROMETHEUS_MULTIPROC_DIR` set before prometheus_client defines
a metric (`ovbot serve` sets it), every process writes its values to files there and a
scrape sums them; gunicorn's `child_exit` hook calls `child_exit`.
"""

from __future__ import annotations

from pathlib import Path

from bot.settings import multiprocess_dir

# In multiprocess mode prometheus_client opens a file in its directory for each metric
# as it is defined (in the modules imported below): a directory that does not exist yet
# would fail the import.
if (_directory := multiprocess_dir()) is not None:
    Path(_directory).mkdir(parents=True, exist_ok=True)

from bot.metrics.events import (
    agent_locked_out,
    console_login,
    delivery_receipt,
    inbound,
    inbound_failed,
    integrity_alarm,
    label,
    mint,
    reconciled,
    replied,
)
from bot.metrics.scrape import (
    child_exit,
    exposition,
    prepare_for_workers,
    prepare_multiprocess_dir,
)
from bot.metrics.upstream import TimedClient, call_name

__all__ = [
    "TimedClient",
    "agent_locked_out",
    "call_name",
    "child_exit",
    "console_login",
    "delivery_receipt",
    "exposition",
    "inbound",
    "inbound_failed",
    "integrity_alarm",
    "label",
    "mint",
    "prepare_for_workers",
    "prepare_multiprocess_dir",
    "reconciled",
    "replied",
]
