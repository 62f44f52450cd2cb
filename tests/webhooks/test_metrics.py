"""`GET /metrics` over HTTP: the text format, METRICS_TOKEN, the outbox gauge, and the
multiprocess mode (values written by several processes, summed).

Counters are process-global (xdist runs other tests in this process): values of this
process are asserted as deltas; a multiprocess directory is the test's own, so its sums
are exact.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from twilio.request_validator import RequestValidator

from bot import metrics
from bot.settings import Settings
from tests.harness import SECRETS, queue_messages

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-0123456789"


def samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    assert response.status_code == 200, response.get_data(as_text=True)
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def read(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client, **headers):
    return client.get("/metrics", headers=headers)


@pytest.fixture
def client(world):
    return world.client()


# -- the text format and the guard ------------------------------------------------------------


def test_metrics_are_served_in_the_prometheus_text_format(client):
    response = scrape(client)
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    for name in (
        "ovbot_inbound_messages",
        "ovbot_mints",
        "ovbot_upstream_request_duration_seconds",
        "ovbot_agent_lockouts",
        "ovbot_outbox_messages",
    ):
        assert name in names


def test_openmetrics_is_served_when_asked_for(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n") and "# TYPE ovbot_mints counter" in response.text


@pytest.mark.parametrize(
    "authorization, status",
    [
        pytest.param(None, 401, id="missing"),
        pytest.param("", 401, id="empty"),
        pytest.param("Bearer wrong-token", 401, id="wrong"),
        pytest.param(f"Bearer {TOKEN}x", 401, id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", 401, id="a prefix"),
        pytest.param(f"Basic {TOKEN}", 401, id="another scheme"),
        pytest.param(TOKEN, 401, id="no scheme"),
        pytest.param("Bearer \u00e9t\u00e9", 401, id="not ascii"),
        pytest.param(f"Bearer {TOKEN}", 200, id="right"),
        pytest.param(f"bearer {TOKEN}", 200, id="scheme in lower case"),
    ],
)
def test_metrics_token_guards_the_route(world, authorization, status):
    client = world.client(metrics_token=TOKEN)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
        assert response.get_json() == {"status": "rejected", "error": "Unauthorized"}
        assert b"ovbot_" not in response.data
    else:
        assert b"# TYPE ovbot_mints_total counter" in response.data


def test_the_series_alerts_watch_are_there_at_zero_from_the_start(tmp_path, world):
    directory = tmp_path / "empty"
    directory.mkdir()
    run_worker(directory, 0)  # a process that counted nothing but the lock-out
    found = samples(scrape(world.client(prometheus_multiproc_dir=str(directory))))
    assert read(found, "ovbot_mints_total", kind="days", outcome="unknown") == 0
    assert ("ovbot_mints_total", (("kind", "days"), ("outcome", "unknown"))) in found
    assert ("ovbot_integrity_alarms_total", (("kind", "late_answer"),)) in found
    assert ("ovbot_reconciliations_total", (("result", "released"),)) in found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(authorization=st.text(max_size=80))
def test_any_other_authorization_header_is_refused_never_a_server_error(world, authorization):
    client = world.client(metrics_token=TOKEN)
    try:
        response = client.get("/metrics", headers={"Authorization": authorization})
    except ValueError:  # werkzeug refuses to send a header with a newline: nothing to test
        return
    scheme, _, given_token = authorization.partition(" ")
    right = scheme.lower() == "bearer" and given_token.strip() == TOKEN
    assert response.status_code == (200 if right else 401)


def test_metrics_answer_only_get(client):
    response = client.post("/metrics")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]


# -- what a scrape shows ----------------------------------------------------------------------


def test_a_signed_sms_code_shows_in_the_scrape(world, client):
    world.customer("+254712345678", 1001)
    world.pay(1001, 5, "p-scrape")
    before = samples(scrape(client))
    form = {
        "MessageSid": "SM" + "a1" * 16,
        "AccountSid": SECRETS["twilio_account_sid"],
        "From": "+254712345678",
        "To": SECRETS["twilio_from_number"],
        "Body": "code",
    }
    url = SECRETS["public_base_url"] + "/webhooks/twilio/sms"
    signature = RequestValidator(SECRETS["twilio_auth_token"]).compute_signature(url, form)
    reply = client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert reply.status_code == 200 and "*" in reply.text
    after = samples(scrape(client))
    for name, labels in (
        ("ovbot_inbound_messages_total", {"channel": "sms", "command": "code"}),
        ("ovbot_replies_total", {"channel": "sms"}),
        ("ovbot_mints_total", {"kind": "days", "outcome": "minted"}),
    ):
        assert read(after, name, **labels) - read(before, name, **labels) == 1, name


def test_the_outbox_gauge_counts_rows_by_status_and_channel(world, client):
    queue_messages(world.services.sessions, "one", "two")
    queue_messages(world.services.sessions, "three", phone="+254722000444", telegram_chat=77)
    found = samples(scrape(client))
    assert read(found, "ovbot_outbox_messages", status="pending", channel="sms") == 2
    assert read(found, "ovbot_outbox_messages", status="pending", channel="telegram") == 1
    # Every known pair is there from the start, zeros included.
    assert ("ovbot_outbox_messages", (("channel", "sms"), ("status", "failed"))) in found


def test_a_database_that_does_not_answer_leaves_the_outbox_out_not_the_scrape(world, tmp_path):
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    deps = dataclasses.replace(world.services, engine=broken)
    from webhooks.app import create_app

    response = scrape(create_app(deps=deps).test_client())
    assert response.status_code == 200
    assert b"ovbot_outbox_messages" not in response.data
    assert b"ovbot_mints_total" in response.data


# -- multiprocess mode -------------------------------------------------------------------------

WORKER = """
import sys
from bot import metrics
from bot.settings import Settings
for _ in range(int(sys.argv[1])):
    metrics.delivery_receipt("twilio", "delivered")
    metrics.mint("days", "minted")
metrics.agent_locked_out()
"""


def run_worker(directory: Path, times: int) -> None:
    """A separate process in multiprocess mode, as a gunicorn worker is, moving counters."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory))
    subprocess.run([sys.executable, "-c", WORKER, str(times)], env=env, check=True, cwd=ROOT)


def test_values_written_by_two_processes_are_summed(world, tmp_path):
    directory = tmp_path / "multiproc"
    directory.mkdir()
    run_worker(directory, 2)
    run_worker(directory, 3)
    client = world.client(prometheus_multiproc_dir=str(directory))
    found = samples(scrape(client))
    assert read(found, "ovbot_delivery_receipts_total", provider="twilio", status="delivered") == 5
    assert read(found, "ovbot_mints_total", kind="days", outcome="minted") == 5
    assert read(found, "ovbot_agent_lockouts_total") == 2
    # The database's gauge is read by the scraping process, once, not summed.
    assert read(found, "ovbot_outbox_messages", status="pending", channel="sms") == 0


def test_a_fresh_directory_is_made_when_none_is_set(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = Path(metrics.prepare_multiprocess_dir(None))
    assert made.parent == tmp_path and made.is_dir() and list(made.iterdir()) == []


def test_the_operators_directory_is_emptied_of_an_earlier_runs_values(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    run_worker(directory, 4)
    (directory / "notes.txt").write_text("not ours")
    assert list(directory.glob("*.db"))
    assert metrics.prepare_multiprocess_dir(str(directory)) == str(directory)
    assert [p.name for p in directory.iterdir()] == ["notes.txt"]
    made = tmp_path / "new" / "dir"
    assert metrics.prepare_multiprocess_dir(str(made)) == str(made) and made.is_dir()


def test_prepare_for_workers_exports_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "placeholder")  # restored afterwards
    directory = tmp_path / "workers"
    settings = Settings(prometheus_multiproc_dir=str(directory))
    assert metrics.prepare_for_workers(settings) == str(directory)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory) and directory.is_dir()


def test_child_exit_drops_a_dead_workers_live_gauges_and_keeps_its_counters(tmp_path, monkeypatch):
    directory = tmp_path / "metrics"
    directory.mkdir()
    for name in ("gauge_livesum_4242.db", "gauge_liveall_4242.db", "counter_4242.db"):
        (directory / name).write_bytes(b"")
    (directory / "gauge_livesum_4343.db").write_bytes(b"")  # a live worker's
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    metrics.child_exit(object(), type("Worker", (), {"pid": 4242})())
    assert sorted(p.name for p in directory.iterdir()) == [
        "counter_4242.db",
        "gauge_livesum_4343.db",
    ]


def test_child_exit_does_nothing_without_a_directory(monkeypatch, tmp_path):
    """Single-process mode: prometheus_client's mark_process_dead(pid, None) would raise
    (TypeError) in gunicorn's master at every worker exit."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")  # not ours to touch here
    metrics.child_exit(object(), type("Worker", (), {"pid": 4242})())
    assert [p.name for p in tmp_path.iterdir()] == ["gauge_livesum_4242.db"]


def test_gunicorns_config_installs_the_child_exit_hook():
    code = (
        "import runpy, bot.metrics; "
        "ns = runpy.run_path('config/gunicorn.conf.py'); "
        "assert ns['child_exit'] is bot.metrics.child_exit"
    )
    # In a child process: the config sets up logging, which stays there.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- the real thing: `ovbot serve`, two gunicorn workers ---------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, seconds: float = 60.0):
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:  # not up yet
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting")
        time.sleep(0.2)


def test_gunicorn_workers_write_to_one_directory_and_a_scrape_sums_them(tmp_path):
    """On loopback only: `ovbot serve` with two workers, USSD requests, then scrapes."""
    import signal

    import httpx

    directory, port = tmp_path / "multiproc", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIVOLTAIC", "TWILIO"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        OMNIVOLTAIC_EMULATOR_STATE=str(tmp_path / "emulator.db"),
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="1",
        METRICS_TOKEN=TOKEN,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def menu_count() -> float:
                found = samples(_Wrapped(http.get("/metrics", headers=auth)))
                return read(found, "ovbot_inbound_messages_total", channel="ussd", command="menu")

            wait_until(lambda: http.get("/healthz").status_code == 200)
            for n in range(20):
                form = {"sessionId": f"s{n}", "serviceCode": "*384#", "phoneNumber": "+254799"}
                assert http.post("/webhooks/ussd", data=form).status_code == 200
            assert menu_count() == 20
            workers = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")}
            workers.discard(server.pid)  # the master's (it loads the config, hence bot.metrics)
            assert workers, "no worker wrote to the directory"
            os.kill(sorted(workers)[0], signal.SIGTERM)  # gunicorn replaces it; child_exit runs
            wait_until(lambda: http.get("/healthz").status_code == 200)
            assert menu_count() == 20  # a dead worker's counts stay in the total
            assert http.get("/metrics").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


class _Wrapped:
    """An httpx response as `samples` reads a Flask one."""

    def __init__(self, response) -> None:
        self.status_code, self._text = response.status_code, response.text

    def get_data(self, as_text: bool = False) -> str:
        return self._text
