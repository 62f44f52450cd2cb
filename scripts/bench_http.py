"""Whole HTTP requests under load: `ovbot serve` against a bare Flask app, in one run.

Usage: python scripts/bench_http.py [--duration S] [--connections N] [--customers N]

Starts, one after the other, each on its own port and with the same gunicorn settings
(the project's own, from `config/gunicorn.conf.py`):

- a bare Flask app answering `POST /webhooks/twilio/sms` with an empty TwiML;
- `ovbot serve` on SQLite (and on PostgreSQL when TEST_DATABASE_URL is set), seeded through
  the CLI with the embedded emulator's fleet and `--customers` owners.

Then loads each with signed Twilio requests, every one with its own `MessageSid`, from
`--customers` phones, using `wrk` (installed with `apt-get install wrk`) or, where wrk is
missing, a Python load generator in another process; it says which. It prints requests/s
as a ratio of bare Flask's and p50/p99 latencies, for STATUS, for a repeated delivery (one
`MessageSid` again and again), and for a CODE that mints (a payment, then CODE, one at a
time). Every figure comes from this one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PATH = "/webhooks/twilio/sms"
BASE_URL = "https://bench.example.test"
SECRETS = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "bench-twilio-token",
    "TWILIO_FROM_NUMBER": "+15005550006",
    "TELEGRAM_SECRET_TOKEN": "bench-telegram-secret",
    "PAYMENTS_SECRET": "bench-pay-secret",
    "PUBLIC_BASE_URL": BASE_URL,
}
FIRST_PRODUCT = 1001
BARE_APP = """
from flask import Flask, Response
app = Flask(__name__)
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'
@app.post("/webhooks/twilio/sms")
def sms():
    return Response(EMPTY, mimetype="text/xml")
"""
WRK_SCRIPT = r"""
-- Each thread sends its share of the pre-signed requests of args[1], in turn.
local requests, n, i = {}, 0, 0
function setup(thread)
  counter = (counter or 0) + 1
  thread:set("id", counter)
end
function init(args)
  local threads = tonumber(args[2])
  local k = 0
  for line in io.lines(args[1]) do
    k = k + 1
    if k % threads == (id - 1) or args[3] == "all" then
      local tab = line:find("\t")
      n = n + 1
      requests[n] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = line:sub(1, tab - 1),
      }, line:sub(tab + 1))
    end
  end
end
function request()
  i = i % n + 1
  return requests[i]
end
"""


def phone(i: int) -> str:
    return f"+2547{10000000 + i:08d}"


def signed_form(body: str, sender: str, sid: str) -> tuple[str, str]:
    """(signature, urlencoded body) of one Twilio SMS, signed as Twilio signs it."""
    form = {
        "MessageSid": "SM" + hashlib.sha256(sid.encode()).hexdigest()[:32],
        "AccountSid": SECRETS["TWILIO_ACCOUNT_SID"],
        "From": sender,
        "To": SECRETS["TWILIO_FROM_NUMBER"],
        "Body": body,
    }
    payload = BASE_URL + PATH + "".join(k + form[k] for k in sorted(form))
    digest = hmac.new(SECRETS["TWILIO_AUTH_TOKEN"].encode(), payload.encode(), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode(), urllib.parse.urlencode(form)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float


# -- servers ---------------------------------------------------------------------------------


def ovbot(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        cwd=env["BENCH_DIR"],
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"ovbot {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], port: int, cwd: str) -> Iterator[str]:
    log = open(Path(cwd) / f"server-{port}.log", "w")
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited early; see {log.name}")
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"server did not start; see {log.name}") from None
                time.sleep(0.2)
        time.sleep(1.0)  # let every gunicorn worker boot
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def gunicorn(app: str, port: int) -> list[str]:
    conf = ROOT / "config" / "gunicorn.conf.py"
    return [sys.executable, "-m", "gunicorn", "-c", str(conf), "-b", f"127.0.0.1:{port}", app]


def product_env(directory: Path, database_url: str, fleet: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SECRETS)
    env.update(
        BENCH_DIR=str(directory),
        DATABASE_URL=database_url,
        OMNIVOLTAIC_EMULATOR_STATE=str(directory / f"emulator-{fleet}.db"),
        OMNIVOLTAIC_EMULATOR_FLEET=str(fleet),
        MINT_ON_PAYMENT="false",  # a payment waits for the customer's CODE, which mints
        PYTHONPATH=str(ROOT),
    )
    env.pop("OMNIVOLTAIC_API_URL", None)
    return env


def fleet_ids(fleet: int) -> list[int]:
    """The demo distributor's product ids (OMNIVOLTAIC.md section 4)."""
    first = list(range(FIRST_PRODUCT, FIRST_PRODUCT + min(fleet, 100)))
    return first + list(range(200001, 200001 + fleet - len(first)))


def seed(env: dict[str, str], fleet: int) -> tuple[float, float]:
    """Migrate, sync the fleet and give every device an owner; (sync s, import s)."""
    ovbot(env, "db", "upgrade")
    started = time.perf_counter()
    ovbot(env, "sync-devices")
    synced = time.perf_counter() - started
    owners = Path(env["BENCH_DIR"]) / f"owners-{fleet}.csv"
    with owners.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["product_id", "customer_phone", "customer_name"])
        for i, product_id in enumerate(fleet_ids(fleet)):
            writer.writerow([product_id, phone(i), f"Customer {i}"])
    started = time.perf_counter()
    ovbot(env, "import-owners", str(owners))
    return synced, time.perf_counter() - started


def logins(env: dict[str, str]) -> int:
    """Logins the emulator answered so far: each one left a token in its state file."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(env["OMNIVOLTAIC_EMULATOR_STATE"])) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0])


def settle(database_url: str) -> None:
    """After a bulk load, PostgreSQL's statistics and visibility map (what autovacuum would
    soon do, while competing for the same two cores)."""
    if not database_url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine

    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def workers() -> int:
    """gunicorn's worker count under config/gunicorn.conf.py (WEB_CONCURRENCY or 2×cores+1)."""
    return int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) * 2 + 1))


def server(env: dict[str, str], port: int) -> list[str]:
    return [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip


# -- load ------------------------------------------------------------------------------------


def request_file(directory: Path, name: str, lines: list[tuple[str, str]]) -> Path:
    path = directory / f"{name}.tsv"
    path.write_text("".join(f"{sig}\t{body}\n" for sig, body in lines))
    return path


def load(url: str, requests: Path, duration: float, connections: int) -> Result:
    if shutil.which("wrk"):
        return load_wrk(url, requests, duration, connections)
    return load_python(url, requests, duration, connections)


def load_wrk(url: str, requests: Path, duration: float, connections: int) -> Result:
    script = requests.parent / "signed.lua"
    script.write_text(WRK_SCRIPT)
    threads = 2
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:.0f}s", "--latency",
         "-s", str(script), url + PATH, "--", str(requests), str(threads), share(requests)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw refused requests:\n{out}")
    rps = float(out.split("Requests/sec:")[1].split()[0])
    latency = out.split("Latency Distribution")[1]
    return Result(
        rps, _ms(latency.split("50%")[1].split()[0]), _ms(latency.split("99%")[1].split()[0])
    )


def share(requests: Path) -> str:
    """ "all" when every thread sends every request (too few to share), else "split"."""
    return "all" if len(requests.read_text().splitlines()) < 100 else "split"


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


PY_LOADER = textwrap.dedent(
    """
    import sys, time, threading, json, httpx
    url, path = sys.argv[1], sys.argv[2]
    duration, connections = float(sys.argv[3]), int(sys.argv[4])
    lines = [l.rstrip("\\n").split("\\t", 1) for l in open(path)]
    latencies, lock, stop = [], threading.Lock(), time.monotonic() + duration
    def run(k):
        with httpx.Client() as client:
            i = k
            while time.monotonic() < stop:
                sig, body = lines[i % len(lines)]
                i += connections
                t = time.perf_counter()
                r = client.post(url, content=body, headers={"X-Twilio-Signature": sig,
                    "Content-Type": "application/x-www-form-urlencoded"})
                assert r.status_code == 200, r.status_code
                with lock:
                    latencies.append(time.perf_counter() - t)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(connections)]
    start = time.monotonic()
    [t.start() for t in threads]; [t.join() for t in threads]
    print(json.dumps({"n": len(latencies), "s": time.monotonic() - start, "lat": latencies}))
    """
)


def load_python(url: str, requests: Path, duration: float, connections: int) -> Result:
    done = subprocess.run(
        [sys.executable, "-c", PY_LOADER, url + PATH, str(requests), str(duration),
         str(connections)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    data = json.loads(done.stdout)
    lat = sorted(data["lat"])
    return Result(data["n"] / data["s"], _pct(lat, 50) * 1000, _pct(lat, 99) * 1000)


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def minting_codes(url: str, customers: int, count: int) -> Result:
    """A payment of one day, then the owner's CODE (which mints), one pair at a time."""
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        started = time.perf_counter()
        for i in range(count):
            owner = i % customers
            body = json.dumps(
                {"reference": f"bench-{uuid.uuid4().hex}", "product_id": FIRST_PRODUCT + owner,
                 "days": 1}
            )  # fmt: skip
            sig = hmac.new(SECRETS["PAYMENTS_SECRET"].encode(), body.encode(), hashlib.sha256)
            paid = client.post(
                "/webhooks/payments", content=body,
                headers={"X-Signature": sig.hexdigest(), "Content-Type": "application/json"},
            )  # fmt: skip
            assert paid.status_code in (200, 201, 202), paid.text
            signature, form = signed_form("CODE", phone(owner), f"mint-{uuid.uuid4().hex}")
            t = time.perf_counter()
            answer = client.post(
                PATH, content=form,
                headers={"X-Twilio-Signature": signature,
                         "Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
            latencies.append(time.perf_counter() - t)
            assert answer.status_code == 200 and "*" in answer.text, answer.text
        elapsed = time.perf_counter() - started
    lat = sorted(latencies)
    return Result(count / elapsed, _pct(lat, 50) * 1000, _pct(lat, 99) * 1000)


def sequential(url: str, requests: Path, count: int) -> Result:
    """One connection, one request at a time: the latency a single customer sees."""
    lines = [line.split("\t", 1) for line in requests.read_text().splitlines()][:count]
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for sig, body in lines:
            t = time.perf_counter()
            r = client.post(
                PATH, content=body,
                headers={"X-Twilio-Signature": sig,
                         "Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
            latencies.append(time.perf_counter() - t)
            assert r.status_code == 200, r.status_code
    lat = sorted(latencies)
    return Result(len(lat) / sum(lat), _pct(lat, 50) * 1000, _pct(lat, 99) * 1000)


@dataclass(frozen=True)
class Paired:
    """A figure of ours and bare Flask's, taken in alternating rounds: `ratio` is the
    median of the rounds' ratios, so a load that comes and goes on a noisy machine falls
    on both sides alike."""

    ours: Result
    bare: Result
    ratio: float


def paired(measure, url: str, bare_url: str, rounds: int) -> Paired:
    ours, bare = [], []
    for _ in range(rounds):
        bare.append(measure(bare_url))
        ours.append(measure(url))
    ratios = sorted(o.rps / b.rps for o, b in zip(ours, bare, strict=True))
    return Paired(_merged(ours), _merged(bare), ratios[len(ratios) // 2])


def _merged(results: list[Result]) -> Result:
    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    return Result(
        sum(r.rps for r in results) / len(results),
        median([r.p50_ms for r in results]),
        median([r.p99_ms for r in results]),
    )


# -- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per figure")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--mints", type=int, default=60, help="CODEs that mint, per database")
    parser.add_argument("--fleet", type=int, default=100_000, help="devices of the large fleet")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of ours and bare Flask per figure"
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ovbot-bench-http-"))
    tool = "wrk" if shutil.which("wrk") else "a Python load generator (wrk not installed)"
    print(
        f"load: {tool}, {args.connections} connections, {args.duration:.0f} s per figure,"
        f" in {args.rounds} rounds alternating with bare Flask (the ratio: their median)"
    )

    lines = [
        signed_form("STATUS", phone(i % args.customers), f"status-{i}")
        for i in range(max(20000, int(args.duration * 3000)))
    ]
    status = request_file(directory, "status", lines)
    # All over the fleet; --fleet 0 leaves the large fleet out.
    far_away = [phone((i * 7919) % args.fleet) for i in range(400)] if args.fleet else []
    # A customer's first message records their channel (a write); the second is the read.
    first = request_file(
        directory, "first", [signed_form("STATUS", p, f"first-{p}") for p in far_away]
    )
    spread = request_file(
        directory, "spread", [signed_form("STATUS", p, f"again-{p}") for p in far_away]
    )
    first_small = request_file(
        directory,
        "first-small",
        [signed_form("STATUS", phone(i), f"first-small-{i}") for i in range(args.customers)],
    )
    repeat = request_file(directory, "repeat", [signed_form("STATUS", phone(0), "one-sid")])
    (directory / "bare_app.py").write_text(BARE_APP)

    port = free_port()
    bare_env = dict(os.environ, PYTHONPATH=str(directory))
    stack = contextlib.ExitStack()
    bare_url = stack.enter_context(
        serving(gunicorn("bare_app:app", port), bare_env, port, str(directory))
    )
    share_s = max(1.0, round(args.duration / args.rounds))

    def loaded(requests: Path):
        return lambda url: load(url, requests, share_s, args.connections)

    def one_by_one(requests: Path, count: int):
        return lambda url: sequential(url, requests, count)

    backends = [("SQLite", lambda tag: f"sqlite:///{directory / f'ovbot-{tag}.db'}")]
    schemas: list[str] = []
    if os.environ.get("TEST_DATABASE_URL"):
        backends.append(
            ("PostgreSQL", lambda tag: _postgres_url(os.environ["TEST_DATABASE_URL"], schemas))
        )
    try:
        for name, url_for in backends:
            small = product_env(directory, url_for("small"), args.customers)
            seed(small, args.customers)
            port = free_port()
            with contextlib.ExitStack() as servers:
                url = servers.enter_context(
                    serving(server(small, port), small, port, str(directory))
                )
                sequential(url, first_small, args.customers)
                before = logins(small)
                ovbot_status = paired(loaded(status), url, bare_url, args.rounds)
                ovbot_repeat = paired(loaded(repeat), url, bare_url, args.rounds)
                one = paired(one_by_one(status, 300), url, bare_url, args.rounds)
                mint = minting_codes(url, args.customers, args.mints)
                made = logins(small) - before
                if not args.fleet:  # leaving the with: the server stops
                    report(name, ovbot_status, ovbot_repeat, one, mint, made)
                    continue
                large = product_env(directory, url_for("large"), args.fleet)
                synced, imported = seed(large, args.fleet)
                settle(large["DATABASE_URL"])  # the steady state, not autovacuum's pass
                port = free_port()
                large_url = servers.enter_context(
                    serving(server(large, port), large, port, str(directory))
                )
                sequential(large_url, first, 400)
                # The large fleet against the small one, in alternating rounds too.
                # (each fleet's own customers: the large one's spread all over it)
                far_url = large_url
                sizes = paired(
                    lambda u, far_url=far_url: sequential(
                        u, spread if u == far_url else status, 400
                    ),
                    large_url,
                    url,
                    args.rounds,
                )
            far, near = sizes.ours, sizes.bare
            report(name, ovbot_status, ovbot_repeat, one, mint, made)
            print(
                f"  {args.fleet} devices: sync-devices {synced:.0f} s,"
                f" import-owners {imported:.0f} s; STATUS p50 {far.p50_ms:.2f} ms"
                f" = {far.p50_ms / near.p50_ms:.2f}x the p50 at {args.customers} devices"
            )
    finally:
        stack.close()
        _drop(schemas)
    profile_one_status(directory)
    shutil.rmtree(directory, ignore_errors=True)


def report(name: str, status: Paired, repeat: Paired, one: Paired, mint: Result, made: int) -> None:
    print(f"{name}:  (bare Flask: {status.bare.rps:.0f} req/s under load,"
          f" {one.bare.rps:.0f} req/s one at a time)")  # fmt: skip
    _line("STATUS", status.ours, status.ratio)
    _line("repeated delivery", repeat.ours, repeat.ratio)
    _line("STATUS, one at a time", one.ours, one.ratio)
    _line("CODE that mints, one at a time", mint, mint.rps / one.bare.rps)
    print(
        f"  logins to the API during the load and the mints: {made}"
        f" ({workers()} gunicorn workers: at most one each per token life)"
    )


def profile_one_status(directory: Path) -> None:
    """Where a STATUS's time goes, in-process (cProfile, this project's functions)."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from tests.harness import SECRETS as TEST_SECRETS
    from tests.harness import build_world
    from webhooks.app import create_app

    world = build_world(f"sqlite:///{directory / 'profile.db'}", directory / "profile")
    world.customer(phone(0), FIRST_PRODUCT)
    client = create_app(deps=world.services).test_client()
    token = TEST_SECRETS["twilio_auth_token"]

    def once(i: int) -> None:
        form = {
            "MessageSid": "SM" + hashlib.sha256(f"p{i}".encode()).hexdigest()[:32],
            "AccountSid": TEST_SECRETS["twilio_account_sid"],
            "From": phone(0),
            "To": TEST_SECRETS["twilio_from_number"],
            "Body": "STATUS",
        }
        url = TEST_SECRETS["public_base_url"] + PATH
        payload = url + "".join(k + form[k] for k in sorted(form))
        sig = base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest())
        response = client.post(PATH, data=form, headers={"X-Twilio-Signature": sig.decode()})
        assert response.status_code == 200

    for i in range(50):
        once(i)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(50, 550):
        once(i)
    profiler.disable()
    world.services.close()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"profile of a STATUS in-process: {total / 500 * 1000:.2f} ms of CPU each, of which")
    ours = (str(ROOT / "bot"), str(ROOT / "webhooks"))
    rows = []
    for (path, _line_no, function), (_cc, _nc, _tt, cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if path.startswith(ours):
            rows.append((cum, f"{Path(path).relative_to(ROOT)}:{function}"))
    for cum, where in sorted(rows, reverse=True)[:14]:
        print(f"  {cum / total * 100:5.1f}%  {where}")
    print("  (the rest: the test client, Flask and Werkzeug around the view)")


def _line(label: str, result: Result, ratio: float) -> None:
    print(
        f"  {label:32s} {result.rps:8.0f} req/s = {ratio:5.2f}x bare Flask"
        f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
    )


def _postgres_url(base: str, schemas: list[str]) -> str:
    """A fresh schema of TEST_DATABASE_URL's database, for this run only (see `_drop`)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    schemas.append(schema)
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _drop(schemas: list[str]) -> None:
    if not schemas:
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(os.environ["TEST_DATABASE_URL"])
    with engine.begin() as connection:
        for schema in schemas:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


if __name__ == "__main__":
    main()
