"""The emulator's state: one SQLite file that every process serving the emulator shares.

Each mint is one `BEGIN IMMEDIATE` transaction (read index and counters, compute the
code, write them and the history row), so an item has one chain whoever mints it.
Chain checkpoints are stored per item on first use; a mint then costs < 1000 hashes.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.omnivoltaic import acp1

BUSY_SECONDS = 30.0
POOL_SIZE = 8
ALLOWANCE = 5  # free codes, and reset codes, per item
JUMPS = {"free": acp1.FREE_JUMP, "reset": acp1.RESET_JUMP}
DEMO_FLEET = 100  # the demo distributor's items by default: 1001-1100
LARGE_FLEET_START = 200001  # beyond 100 items, the demo distributor's ids start here
MAX_FLEET = 1_000_000


def demo_items(fleet: int) -> list[int]:
    """The demo distributor's product ids for a fleet of `fleet` items (OMNIVOLTAIC.md §4):
    1001-1100 first, then 200001 upward; 1101-1110 stay the other distributor's."""
    if not 1 <= fleet <= MAX_FLEET:
        raise ValueError(f"the emulator's fleet must be 1 to {MAX_FLEET} items, got {fleet}")
    first = list(range(1001, 1001 + min(fleet, DEMO_FLEET)))
    return first + list(range(LARGE_FLEET_START, LARGE_FLEET_START + fleet - len(first)))


DISTRIBUTORS = [
    (1, "demo@example.com", "demo"),
    (2, "other@example.com", "other"),
]
OTHER_ITEMS = range(1101, 1111)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS distributors (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, password TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, distributor_id INTEGER NOT NULL REFERENCES distributors(id),
    expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    product_id INTEGER PRIMARY KEY, distributor_id INTEGER NOT NULL REFERENCES distributors(id),
    assignment_id INTEGER NOT NULL, oem_sn TEXT NOT NULL UNIQUE, payg_sn TEXT NOT NULL,
    oem_item_id TEXT NOT NULL, seller_item_id TEXT NOT NULL, firmware TEXT NOT NULL,
    value_per_day INTEGER NOT NULL, assigned_at TEXT NOT NULL, activated_at TEXT,
    days_total INTEGER NOT NULL DEFAULT 0, idx INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 0,
    free_used INTEGER NOT NULL DEFAULT 0, reset_used INTEGER NOT NULL DEFAULT 0, checkpoints TEXT);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, product_id INTEGER NOT NULL REFERENCES items(product_id),
    code_index INTEGER NOT NULL, code_hex TEXT NOT NULL, code_days TEXT NOT NULL,
    created_at TEXT NOT NULL, UNIQUE (product_id, code_index));
CREATE INDEX IF NOT EXISTS items_by_distributor ON items (distributor_id, product_id);
"""


class ApiError(Exception):
    """A refusal the API answers with `status` and `{"message": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Minted:
    count: int  # the item's code counter after this code (= its codeIndex)
    value: str  # the code as 16 hex digits


@functools.lru_cache(maxsize=256)
def _computed_checkpoints(seed: str, product_id: int) -> tuple[str, ...]:
    """~100k hashes, done once per process per item (several stores may share a seed)."""
    return tuple(acp1.checkpoints(acp1.root_for(seed, product_id)))


def _not_assigned(product_id: int) -> ApiError:
    return ApiError(404, f"product {product_id} is not assigned to this distributor")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EmulatorStore:
    def __init__(self, path: str, seed: str, fleet: int = DEMO_FLEET) -> None:
        self.path, self.seed, self.fleet = path, seed, fleet
        demo_items(fleet)  # refuse a fleet out of range before touching the file
        self._points: dict[int, Sequence[str]] = {}  # immutable, so a plain cache is safe
        self._idle: list[sqlite3.Connection] = []
        self._lock, self._pid = threading.Lock(), os.getpid()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._create()

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction on a pooled connection (closing the last one would checkpoint)."""
        conn, healthy = self._acquire(), False
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                healthy = True
        finally:
            self._release(conn) if healthy else conn.close()

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._pid != os.getpid():  # forked: never use the parent's connections
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        conn = sqlite3.connect(
            self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def _create(self) -> None:
        conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
        finally:
            conn.close()
        with self._connect(write=True) as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            fingerprint = acp1.h64("seed-check:" + self.seed)
            row = conn.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('seed', ?)", (fingerprint,))
                self._seed_distributors(conn)
            elif row["value"] != fingerprint:
                raise ValueError(
                    f"emulator state {self.path} was created with another seed; "
                    "use that seed or a new state file"
                )
            self._grow_fleet(conn)

    @staticmethod
    def _seed_distributors(conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO distributors VALUES (?, ?, ?)", DISTRIBUTORS)
        EmulatorStore._add_items(conn, 2, OTHER_ITEMS)

    def _grow_fleet(self, conn: sqlite3.Connection) -> None:
        """The demo distributor holds `fleet` items: those missing are added (a state file
        made with a smaller fleet grows; items are never taken away)."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'fleet'").fetchone()
        if row is not None and int(row["value"]) >= self.fleet:
            return
        self._add_items(conn, 1, demo_items(self.fleet))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('fleet', ?)", (str(self.fleet),))

    @staticmethod
    def _add_items(conn: sqlite3.Connection, dist_id: int, product_ids: Iterable[int]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO items (product_id, distributor_id, assignment_id, oem_sn,"
            " payg_sn,"
            " oem_item_id, seller_item_id, firmware, value_per_day, assigned_at, idx)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, '1.0.3', 50, '2025-01-06T08:00:00.000Z', ?)",
            [
                (
                    pid,
                    dist_id,
                    pid - 1000,
                    f"OVES{pid:06d}",
                    f"PAYG{pid:06d}",
                    f"TEST2501{pid:06d}",
                    f"ACC{pid:06d}",
                    acp1.CHAIN_LENGTH,
                )
                for pid in product_ids
            ],
        )

    # -- distributors and tokens ------------------------------------------------------
    def login(self, username: str, password: str, ttl: float) -> str | None:
        """A new access token for these credentials, or None if they are wrong."""
        with self._connect(write=True) as conn:
            row = conn.execute(
                "SELECT id, password FROM distributors WHERE username = ?", (username,)
            ).fetchone()
            if row is None or not hmac.compare_digest(row["password"].encode(), password.encode()):
                return None
            token, now = secrets.token_urlsafe(32), time.time()
            conn.execute("DELETE FROM tokens WHERE expires < ?", (now,))
            conn.execute("INSERT INTO tokens VALUES (?, ?, ?)", (token, row["id"], now + ttl))
            return token

    def distributor_for(self, token: str) -> int | None:
        """The distributor id of an unexpired token, or None."""
        with self._connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT distributor_id FROM tokens WHERE token = ? AND expires > ?",
                (token, time.time()),
            ).fetchone()
        return None if row is None else row[0]

    # -- items ------------------------------------------------------------------------
    def item(self, distributor_id: int, product_id: int) -> sqlite3.Row:
        with self._connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM items WHERE product_id = ? AND distributor_id = ?",
                (product_id, distributor_id),
            ).fetchone()
        if row is None:
            raise _not_assigned(product_id)
        return row

    def find(self, distributor_id: int, ref: str) -> int:
        """The product id of the distributor's item named by a v2 string id."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT product_id FROM items WHERE distributor_id = ?"
                " AND ? IN (oem_sn, oem_item_id, seller_item_id)",
                (distributor_id, ref),
            ).fetchone()
        if row is None:
            raise ApiError(404, f"product {ref} is not assigned to this distributor")
        return int(row[0])

    def expire_tokens(self) -> None:
        """TEST ONLY: every access token issued so far stops working now."""
        with self._connect(write=True) as conn:
            conn.execute("DELETE FROM tokens")

    def items_page(
        self, distributor_id: int, offset: int, limit: int
    ) -> tuple[list[sqlite3.Row], int]:
        with self._connect() as conn:
            rows: list[sqlite3.Row] = conn.execute(
                "SELECT * FROM items WHERE distributor_id = ? ORDER BY product_id LIMIT ? OFFSET ?",
                (distributor_id, limit, offset),
            ).fetchall()
            total: int = conn.execute(
                "SELECT COUNT(*) FROM items WHERE distributor_id = ?", (distributor_id,)
            ).fetchone()[0]
        return rows, total

    def top(self, product_id: int) -> str:
        """The value a device is provisioned with (any distributor's item)."""
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM items WHERE product_id = ?", (product_id,)).fetchone()
        if row is None:
            raise ApiError(404, f"unknown product {product_id}")
        return self._checkpoints(product_id)[-1]

    def _checkpoints(self, product_id: int) -> Sequence[str]:
        """Load the item's checkpoints, computing and storing them on first use."""
        points = self._points.get(product_id)
        if points is None:
            with self._connect() as conn:
                stored = conn.execute(
                    "SELECT checkpoints FROM items WHERE product_id = ?", (product_id,)
                ).fetchone()[0]
            if stored:
                points = [stored[i : i + 16] for i in range(0, len(stored), 16)]
            else:  # outside any write lock; every process computes the same values
                points = _computed_checkpoints(self.seed, product_id)
                with self._connect(write=True) as conn:
                    conn.execute(
                        "UPDATE items SET checkpoints = ? WHERE product_id = ?"
                        " AND checkpoints IS NULL",
                        ("".join(points), product_id),
                    )
            self._points[product_id] = points
        return points

    # -- codes ------------------------------------------------------------------------
    def mint(self, distributor_id: int, product_id: int, kind: str, days: int = 0) -> Minted:
        """Mint and record one code: kind is "days" (with days), "free" or "reset"."""
        if product_id not in self._points:
            self.item(distributor_id, product_id)  # 404 before hashing a whole chain
        points = self._checkpoints(product_id)
        jump = days if kind == "days" else JUMPS[kind]
        with self._connect(write=True) as conn:
            row = conn.execute(
                "SELECT * FROM items WHERE product_id = ? AND distributor_id = ?",
                (product_id, distributor_id),
            ).fetchone()
            if row is None:
                raise _not_assigned(product_id)
            if kind != "days" and row[f"{kind}_used"] >= ALLOWANCE:
                raise ApiError(403, f"{kind} code allowance ({ALLOWANCE}) used up for {product_id}")
            position = row["idx"] - jump
            if position < 0:
                raise ApiError(409, f"code chain exhausted for product {product_id}")
            value, count, now = acp1.value_at(points, position), row["count"] + 1, utc_now()
            conn.execute(
                "UPDATE items SET idx = ?, count = ?, days_total = days_total + ?,"
                " activated_at = COALESCE(activated_at, ?), free_used = free_used + ?,"
                " reset_used = reset_used + ? WHERE product_id = ?",
                (
                    position,
                    count,
                    days if kind == "days" else 0,
                    now,
                    kind == "free",
                    kind == "reset",
                    product_id,
                ),
            )
            conn.execute(
                "INSERT INTO history (product_id, code_index, code_hex, code_days,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (product_id, count, value, str(days) if kind == "days" else kind, now),
            )
        return Minted(count, value)

    def history_page(
        self, distributor_id: int, product_id: int, offset: int, limit: int
    ) -> tuple[list[sqlite3.Row], int]:
        """The item's codes, newest first, and how many it has."""
        self.item(distributor_id, product_id)
        with self._connect() as conn:
            rows: list[sqlite3.Row] = conn.execute(
                "SELECT * FROM history WHERE product_id = ? ORDER BY code_index"
                " DESC LIMIT ? OFFSET ?",
                (product_id, limit, offset),
            ).fetchall()
            total: int = conn.execute(
                "SELECT COUNT(*) FROM history WHERE product_id = ?", (product_id,)
            ).fetchone()[0]
        return rows, total

    def history_summary(self, distributor_id: int) -> sqlite3.Row:
        """Counts over the distributor's items: items, items_with_codes, codes, last_code_at."""
        with self._connect() as conn:
            summary: sqlite3.Row = conn.execute(
                "SELECT COUNT(DISTINCT i.product_id) AS items,"
                " COUNT(DISTINCT h.product_id) AS items_with_codes, COUNT(h.id) AS codes,"
                " MAX(h.created_at) AS last_code_at FROM items i"
                " LEFT JOIN history h ON h.product_id = i.product_id WHERE i.distributor_id = ?",
                (distributor_id,),
            ).fetchone()
            return summary
