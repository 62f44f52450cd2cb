"""A plain install runs anywhere: the wheel, built from this tree and installed into a fresh
venv, works from an empty directory (no checkout beside it, no `config/` under the cwd).

One test, slow on purpose (about a minute: a build and an install), run by `make test`
and CI alike; `-m "not wheel"` leaves it out.  It skips, saying why, only when no wheel
can be built here.  The processes it starts cannot reach the network: the Omnivoltaic API
is the embedded emulator, and every proxy variable points at a closed local port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from bot.text.templates import Messages

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[1]
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "instance", "*.egg-info", "__pycache__", ".*_cache"
)
OWNER = "+254712345678"
APP = "webhooks.app:create_app()"
TWILIO_TOKEN = "wheel-test-twilio-token"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing answers there
WAIT = 90.0  # seconds a process may take to answer before the test gives up on it


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of this tree (a build in the tree would leave build/ behind).
    Build isolation first (setuptools from the configured index), else this venv's own."""
    source, dist = tmp / "source", tmp / "dist"
    shutil.copytree(REPO, source, ignore=NOT_COPIED)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist)]
    errors = []
    for extra in ([], ["--no-build-isolation"]):
        result = run([*pip_wheel, *extra, str(source)])
        wheels = sorted(dist.glob("ovbot-*.whl"))
        if result.returncode == 0 and wheels:
            return wheels[0]
        errors.append(result.stderr[-2000:])
    pytest.skip("cannot build a wheel here (no setuptools offline?):\n" + "\n".join(errors))


def install(wheel: Path, tmp: Path) -> Path:
    """A fresh venv holding the wheel and its dependencies, fetched from the configured
    index.  Without an index, the dependencies are borrowed from this venv by a .pth (the
    wheel's own code and data still come from the wheel: its site-packages is first)."""
    home = tmp / "venv"
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    result = run([str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)])
    if result.returncode != 0:
        run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)]).check_returncode()
        ours = next(p for p in map(Path, sys.path) if p.name == "site-packages")
        theirs = next((home / "lib").glob("python*/site-packages"))
        (theirs / "borrowed-dependencies.pth").write_text(f"{ours}\n")
    where = "import bot, webhooks; print(bot.__file__, webhooks.__file__)"
    shown = run([str(python), "-c", where], cwd=tmp, env=environment(tmp))
    assert str(REPO) not in shown.stdout, shown.stdout  # the wheel's code, not this checkout
    return home / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(data: Path, **extra: str) -> dict[str, str]:
    """A clean environment: nothing of this checkout, no network, data under `data`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data),
        "LANG": "C.UTF-8",
        "DATABASE_URL": f"sqlite:///{data / 'ovbot.db'}",
        "OMNIVOLTAIC_EMULATOR_STATE": str(data / "emulator.db"),
        "LOG_FORMAT": "json",
        "NO_PROXY": "",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env[name] = DEAD_PROXY
    env.update(extra)
    return env


class Server:
    """A process serving HTTP on a port, its output collected, stopped at the end."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = cwd.parent / f"server-{port}.log"
        self.out = self.log.open("w")
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self.out, stderr=subprocess.STDOUT, text=True
        )
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=30)

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                self.http.get("/healthz")
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"{self.url} did not answer:\n{self.output()}")

    def stop(self) -> str:
        if self.out.closed:
            return self.output()
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.out.close()
        return self.output()

    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return self.log.read_text()


@pytest.fixture
def started() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def signed_sms(url: str, body: str) -> tuple[dict[str, str], str]:
    form = {
        "MessageSid": "SM" + "7" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": OWNER,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    return form, RequestValidator(TWILIO_TOKEN).compute_signature(url, form)


def json_lines(text: str, strict: bool = True) -> list[dict[str, object]]:
    """The lines of a LOG_FORMAT=json process's output, parsed: every line (`strict`), or
    the lines that open an object (a command also prints to stderr, progress for one)."""
    lines = [line.strip("\r") for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines if strict or line.startswith("{")]


def test_the_wheel_runs_from_an_empty_directory(tmp_path, started):
    bin_ = install(build_wheel(tmp_path), tmp_path)
    ovbot = str(bin_ / "ovbot")
    empty, data = tmp_path / "empty", tmp_path / "data"
    empty.mkdir(), data.mkdir()
    wording = Messages.load()  # this checkout's; the wheel's must say the same
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = environment(
        data,
        PUBLIC_BASE_URL=base_url,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_FROM_NUMBER="+15005550006",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
    )

    # The web process starts before the release step: alive, but not ready, and says why.
    server = Server([ovbot, "serve", "--host", "127.0.0.1", "--port", str(port)], empty, env, port)
    started.append(server)
    server.wait_until_up()
    not_ready = server.http.get("/readyz")
    assert not_ready.status_code == 503, not_ready.text
    assert "ovbot db upgrade" in not_ready.json()["reason"]

    # The release step, then the operator's commands, all from the empty directory.
    upgraded = run([ovbot, "db", "upgrade"], cwd=empty, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    ready = server.http.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready"), ready.text
    owners = data / "owners.csv"
    owners.write_text(f"product_id,customer_phone,customer_name\n1001,{OWNER},Amina\n")
    for command in (
        ["sync-devices"],
        ["import-owners", str(owners)],
        ["credit", "1001", "30", "--reference", "WHEEL-1"],
        ["worker", "--once"],
    ):
        done = run([ovbot, *command], cwd=empty, env=env)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        for record in json_lines(done.stderr, strict=False):  # the CLI logs JSON too
            assert "request_id" not in record, record  # no web request behind it
    # gunicorn on its own, without the project's -c file: it loads the app (--check-config
    # builds it, wording included) and exits.
    bare = run([str(bin_ / "gunicorn"), "--check-config", APP], cwd=empty, env=env)
    assert bare.returncode == 0, bare.stderr
    chat = run([ovbot, "chat", "--from", OWNER], cwd=empty, env=env, input="HELP\n")
    assert chat.returncode == 0, chat.stderr
    assert wording.render("en", "help") in chat.stdout

    # A signed SMS through gunicorn: the wheel's wording, and the request id echoed.
    url = base_url + "/webhooks/twilio/sms"
    form, signature = signed_sms(url, "HELP")
    answer = server.http.post(
        "/webhooks/twilio/sms",
        data=form,
        headers={"X-Twilio-Signature": signature, "X-Request-ID": "wheel-test-1"},
    )
    assert answer.status_code == 200, answer.text
    replies = [m.text for m in ET.fromstring(answer.text).iter("Message")]
    assert replies == [wording.render("en", "help")]
    assert answer.headers["X-Request-ID"] == "wheel-test-1"

    # Every line the web process wrote is JSON, gunicorn's own included; the SMS's access
    # line carries its request id; the customer's number is nowhere in clear.
    output = server.stop()
    records = json_lines(output)
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "gunicorn.access"} <= loggers, loggers
    sms_lines = [r for r in records if r["logger"] == "gunicorn.access" and "/twilio/sms" in str(r)]
    assert [r.get("request_id") for r in sms_lines] == ["wheel-test-1"], sms_lines
    assert OWNER[4:] not in output and "712345678" not in output

    # The demo, on its own database.
    demo_data = tmp_path / "demo"
    demo_data.mkdir()
    demo_port = free_port()
    demo = Server(
        [ovbot, "demo", "--port", str(demo_port)], empty, environment(demo_data), demo_port
    )
    started.append(demo)
    demo.wait_until_up()
    assert demo.http.get("/readyz").status_code == 200
    # The console's templates and stylesheet are package data: they came with the wheel.
    login = demo.http.get("/console/login")
    assert login.status_code == 200 and "<h1>Sign in</h1>" in login.text, login.text[:500]
    css = demo.http.get("/console/static/console.css")
    assert css.status_code == 200 and "--brand" in css.text
    assert not any(empty.iterdir()), list(empty.iterdir())  # nothing was written to the cwd
