"""Time the emulator's mint call end to end (Flask app + SQLite state) and count its hashes.

Usage: python scripts/bench_emulator.py [--mints N] [--items K]
Prints the first-use cost (checkpoints) and median/p95 of later mints; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from bot.omnivoltaic import acp1
from bot.omnivoltaic.emulator.app import create_emulator


class HashCounter:
    """Counts chain steps by wrapping acp1.walk (instrumentation for this script only)."""

    def __init__(self) -> None:
        self.steps, self._walk = 0, acp1.walk
        acp1.walk = self._counting_walk

    def _counting_walk(self, value: str, steps: int) -> str:
        self.steps += steps
        return self._walk(value, steps)

    def take(self) -> int:
        steps, self.steps = self.steps, 0
        return steps


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mints", type=int, default=500, help="timed mints in all")
    parser.add_argument("--items", type=int, default=5, help="items to spread them over")
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_emulator(str(Path(tmp) / "state.db"), "bench-seed")
        client, counter = app.test_client(), HashCounter()
        token = client.post(
            "/user/login", json={"username": "demo@example.com", "password": "demo"}
        ).get_json()["accessToken"]
        headers = {"Authorization": token}

        def mint(product_id: int) -> tuple[float, int]:
            started = time.perf_counter()
            reply = client.post(
                "/otp/daysCode",
                headers=headers,
                json={"productId": product_id, "days": rng.randint(1, 30)},
            )
            assert reply.status_code == 200, reply.get_json()
            return time.perf_counter() - started, counter.take()

        items = list(range(1001, 1001 + args.items))
        first = [mint(product_id) for product_id in items]
        timed = [mint(items[i % len(items)]) for i in range(args.mints)]
    seconds = [t for t, _ in timed]
    hashes = [h for _, h in timed]
    first_ms = statistics.median(t for t, _ in first) * 1000
    print(
        f"first mint per item (builds checkpoints): median {first_ms:.1f} ms, {first[0][1]} hashes"
    )
    print(
        f"later mints: n={len(timed)} median {statistics.median(seconds) * 1000:.2f} ms,"
        f" p95 {percentile(seconds, 0.95) * 1000:.2f} ms, max {max(seconds) * 1000:.2f} ms"
    )
    print(
        f"hashes per mint: median {statistics.median(hashes):.0f}, max {max(hashes)},"
        f" mean {statistics.mean(hashes):.0f}"
    )


if __name__ == "__main__":
    main()
