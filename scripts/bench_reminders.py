"""Time a reminder pass at 100 and at 100,000 devices, in this one run.

Usage: python scripts/bench_reminders.py [--devices N] [--postgres URL]
Each fleet: every device owned by its own customer, credit ending anywhere from 15 days ago
to 45 days ahead, so about one in twelve is due for a reminder. The first pass queues them
all (what the first pass after a deploy does); the second finds nothing new (every pass
after). Prints both times at each size and their ratio; asserts nothing. On PostgreSQL
(`--postgres`, or TEST_DATABASE_URL) also prints the plan of the pass's query: it must use
`ix_devices_credit_until`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bot import bootstrap
from bot.customers import reminders
from bot.settings import Settings
from bot.storage import db
from bot.storage.models import Customer, Device
from tests.harness import postgres_schema_url

CHUNK = 10_000


def load(deps, count: int, now: datetime) -> None:
    rng = random.Random(count)
    with deps.engine.begin() as connection:
        for start in range(0, count, CHUNK):
            ids = range(start + 1, min(start + CHUNK, count) + 1)
            connection.execute(
                insert(Customer),
                [
                    dict(id=i, phone=f"+2547{i:08d}", language=("en", "fr", "sw")[i % 3])
                    for i in ids
                ],
            )
            connection.execute(
                insert(Device),
                [
                    dict(
                        id=i,
                        product_id=100_000 + i,
                        api_id=str(100_000 + i),
                        oem_serial=f"OVES{i:08d}",
                        owner_id=i,
                        credit_until=now + timedelta(minutes=rng.randrange(-15 * 1440, 45 * 1440)),
                    )
                    for i in ids
                ],
            )
    if deps.engine.dialect.name == "postgresql":
        with deps.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))


def measure(url: str, directory: Path, count: int, now: datetime) -> tuple[float, float, int]:
    settings = Settings(
        database_url=url, omnivoltaic_emulator_state=str(directory / f"emulator-{count}.db")
    )
    deps = bootstrap.build(settings)
    try:
        db.upgrade(deps.engine)
        load(deps, count, now)
        started = time.perf_counter()
        queued = reminders.run(deps, now=now).queued
        first = time.perf_counter() - started
        started = time.perf_counter()
        again = reminders.run(deps, now=now).queued
        second = time.perf_counter() - started
        assert again == 0, again
        if deps.engine.dialect.name == "postgresql" and count >= 1000:
            explain(deps, now)
        return first, second, queued
    finally:
        deps.close()


def explain(deps, now: datetime) -> None:
    window = reminders.Schedule.of(deps.settings).windows(now)[0]
    query = reminders._due(window, now).limit(reminders.BATCH)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with deps.engine.connect() as connection:
        plan = connection.execute(text("EXPLAIN " + sql)).scalars().all()
    print("    plan of the pass's query (offset 3):")
    for line in plan:
        print("     ", line)
    if not any("ix_devices_credit_until" in line for line in plan):
        print("    WARNING: the plan does not use ix_devices_credit_until")


def run(name: str, urls, directory: Path, sizes: list[int], now: datetime) -> None:
    results = {}
    for count, url in zip(sizes, urls, strict=True):
        results[count] = measure(url, directory, count, now)
    small, large = sizes
    print(f"{name}: a reminder pass")
    for count, (first, second, queued) in results.items():
        print(
            f"  {count:>7,} devices: first pass {first:7.3f} s ({queued:,} queued),"
            f" next pass {second:7.3f} s"
        )
    (f_small, s_small, _), (f_large, s_large, _) = results[small], results[large]
    print(
        f"  ratio {large:,}/{small:,}: first pass x{f_large / f_small:.0f},"
        f" next pass x{s_large / s_small:.0f} (devices x{large // small})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    arguments = parser.parse_args()
    sizes = [100, arguments.devices]
    zone = ZoneInfo(Settings.timezone)
    # Noon today, local: outside the default quiet hours.
    now = datetime.combine(datetime.now(zone).date(), clock_time(12), zone)
    directory = Path(tempfile.mkdtemp(prefix="ovbot-bench-reminders-"))
    urls = [f"sqlite:///{directory / f'bench-{n}.db'}" for n in sizes]
    run("SQLite", urls, directory, sizes, now)
    if arguments.postgres:
        with (
            postgres_schema_url(arguments.postgres) as a,
            postgres_schema_url(arguments.postgres) as b,
        ):
            run("PostgreSQL", [a, b], directory, sizes, now)


if __name__ == "__main__":
    main()
