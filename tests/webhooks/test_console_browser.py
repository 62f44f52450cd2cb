"""The console in a real browser: Debian's Chromium, driven by Playwright for Python.

Serves the app on a free local port (werkzeug, in a thread) and goes through what an
operator does: sign in, find a device by its owner's phone, assign an unmatched payment
and see its code in the device's timeline, retry a failed message, sign out.

Skipped, saying how to run it, without Playwright or the browser:
    pip install playwright          (the dev extras have it; no `playwright install`)
    apt-get install -y chromium     (the test drives /usr/bin/chromium)
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from bot.storage.models import Code, OutboxMessage, Payment
from tests.harness import (
    CONSOLE_ADMIN,
    CONSOLE_PASSWORD,
    OWNER,
    add_operators,
    queue_messages,
)

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CONSOLE_BROWSER", "/usr/bin/chromium")
HOW = "pip install playwright and apt-get install -y chromium (it drives /usr/bin/chromium)"
sync_api = pytest.importorskip("playwright.sync_api", reason=f"no Playwright: {HOW}")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no browser at {CHROMIUM}: {HOW}", allow_module_level=True)


@pytest.fixture
def served(sqlite_world) -> Iterator[tuple[object, str]]:
    """The app on 127.0.0.1 (plain http: no Secure cookie), an admin, and something to do."""
    world = add_operators(sqlite_world)
    world.customer(OWNER, 1001, name="Amina")
    with world.session() as s:
        world.ledger.record_payment(
            s, reference="R-LOST", device=None, days=7, source="webhook", product_ref="99x"
        )
    (failed,) = queue_messages(world.services.sessions, "Your code did not go out", phone=OWNER)
    with world.session() as s:
        row = s.get(OutboxMessage, failed)
        row.status, row.last_error = "failed", "provider said no"
    from webhooks.app import create_app

    services = dataclasses.replace(
        world.services, settings=world.services.settings.replace(public_base_url=None)
    )
    server = make_server("127.0.0.1", 0, create_app(deps=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield world, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def page(served):
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-background-networking", "--no-first-run"],
            )
        except sync_api.Error as exc:
            pytest.skip(f"{CHROMIUM} did not start ({exc.message.splitlines()[0]}): {HOW}")
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        browser.close()


def test_an_operator_finds_a_device_assigns_a_payment_retries_a_message(served, page):
    world, base = served
    expect = sync_api.expect

    # Sign in: a stranger is sent to the login page first.
    page.goto(f"{base}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(CONSOLE_ADMIN)
    page.get_by_label("Password").fill(CONSOLE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("svg.chart")).to_be_visible()

    # Find the device by its owner's phone, as a customer on the phone would give it.
    page.get_by_label("Find a device").fill("0712 345 678")
    page.get_by_label("Find a device").press("Enter")
    expect(page.get_by_role("heading", name="Device 1001")).to_be_visible()
    expect(page.get_by_text("Your code did not go out")).to_be_visible()

    # Assign the unmatched payment: its code shows in the device's timeline.
    page.get_by_role("link", name="Unmatched payments").click()
    page.get_by_label("Device for R-LOST").fill("1001")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_role("heading", name="Device 1001")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Payment R-LOST assigned to device 1001")
    with world.session() as s:
        payment = s.scalar(select(Payment).where(Payment.reference == "R-LOST"))
        code = s.get(Code, payment.code_id).code
    expect(page.locator("table.timeline code.code").first).to_have_text(code)

    # Retry the failed message from the timeline.
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("queued again")
    with world.session() as s:
        statuses = set(s.scalars(select(OutboxMessage.status)))
    assert "failed" not in statuses

    # Sign out: the console asks for a sign-in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{base}/console/devices/1001")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
