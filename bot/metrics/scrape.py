"""The scrape: the text format, the outbox gauge, and multiprocess mode for gunicorn.

The outbox is a gauge read from the database at scrape time (one grouped count), not
counters of transitions: its messages are sent by `ovbot worker` processes, which may
run on other machines and are never scraped, so only the database knows them all.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.metrics.events import label
from bot.settings import Settings, export
from bot.storage.models import CUSTOMER_CHANNELS, OUTBOX_STATUSES, OutboxMessage

log = logging.getLogger(__name__)


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
        # Channel first: grouped by status first, SQLite walks the (status, next_attempt_at)
        # index and looks every row up, about twice as slow as the plain scan it does now.
        query = select(OutboxMessage.status, OutboxMessage.channel, func.count()).group_by(
            OutboxMessage.channel, OutboxMessage.status
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
