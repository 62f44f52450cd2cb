"""The console's pages: what each shows, masked numbers for viewers, bounded lists."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.storage.models import Device, OutboxMessage
from bot.text.phones import mask
from tests.harness import OWNER, queue_messages

MASKED_OWNER = mask(OWNER)


@pytest.fixture
def sold(ops):
    """1001 owned by Amina, paid 5 days, its code minted and queued for her."""
    ops.customer(OWNER, 1001, name="Amina Wanjiku")
    ops.pay(1001, 5, "R-SOLD")
    with ops.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        from bot.outbox import queue

        result = ops.ledger.mint_days(s, device, request_key="payment:R-SOLD:1", channel="cli")
        queue.notify_codes(s, ops.services.messages, device, result.codes)
        code = result.codes[0].code
    return code


def test_the_overview_counts_today_and_draws_thirty_days(admin, sold):
    page = admin.get("/console/")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    assert '<th scope="row">Today</th><td>1</td><td>5</td><td>1</td>' in text
    assert "<strong>1</strong> messages waiting" in text
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert svg.count("<rect") == 60  # payments and codes, for each of 30 days
    assert svg.count(": 1 payments") == 1 and svg.count(": 1 codes") == 1


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("1001", id="product id"),
        pytest.param("0712345678", id="national phone"),
        pytest.param("+254 712 345 678", id="international phone"),
        pytest.param("wanjiku", id="part of the name"),
    ],
)
def test_find_goes_straight_to_the_one_device(admin, sold, query):
    answer = admin.get("/console/find", query_string={"q": query})
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/devices/1001"


def test_find_by_serial(admin, ops, sold):
    serial = ops.device(1002).oem_serial
    answer = admin.get("/console/find", query_string={"q": serial.lower()})
    assert answer.headers["Location"] == "/console/devices/1002"


def test_find_lists_several_devices_and_says_when_there_is_none(admin, ops):
    ops.customer("+254722000333", 1002, 1003, name="Juma")
    page = admin.get("/console/find", query_string={"q": "juma"})
    assert page.status_code == 200
    assert (
        'href="/console/devices/1002"' in page.text and 'href="/console/devices/1003"' in page.text
    )
    none = admin.get("/console/find", query_string={"q": "nobody at all"})
    assert none.status_code == 200 and "No device found" in none.text


def test_the_device_page_tells_the_whole_story(admin, sold):
    page = admin.get("/console/devices/1001").text
    for shown in ("Amina Wanjiku", OWNER, "5 days paid", "ref R-SOLD", "5 days code", sold):
        assert shown in page, shown
    assert "message out by sms" in page and "Resend latest code" in page
    assert page.count(sold) >= 2  # the code, and the message that carries it


def test_a_viewer_sees_masked_numbers_and_no_actions(viewer, sold):
    page = viewer.get("/console/devices/1001").text
    assert OWNER not in page and MASKED_OWNER in page
    assert "Resend latest code" not in page and "Opted out of messages" not in page
    assert sold in page  # the code itself: viewers answer customers' calls


def test_an_unknown_device_is_a_404_page(admin):
    answer = admin.get("/console/devices/424242")
    assert answer.status_code == 404 and "no device 424242" in answer.text
    assert answer.mimetype == "text/html"


def test_the_outbox_page_lists_by_status(admin, ops):
    (failed, pending) = queue_messages(ops.services.sessions, "it failed", "still waiting")
    with ops.session() as s:
        s.get(OutboxMessage, failed).status = "failed"
    page = admin.get("/console/outbox").text
    assert "it failed" in page and "still waiting" not in page
    assert f'action="/console/outbox/{failed}/retry"' in page
    waiting = admin.get("/console/outbox?status=pending").text
    assert "still waiting" in waiting and "it failed" not in waiting
    assert admin.get("/console/outbox?status=nonsense").status_code == 400


def test_the_unmatched_payments_page_offers_to_assign(admin, viewer, ops):
    with ops.session() as s:
        ops.ledger.record_payment(
            s, reference="R-LOST", device=None, days=3, source="webhook", product_ref="99x"
        )
    page = admin.get("/console/payments").text
    assert "R-LOST" in page and "99x" in page and 'action="/console/payments/R-LOST/assign"' in page
    assert "R-LOST" in viewer.get("/console/payments").text
    assert "/assign" not in viewer.get("/console/payments").text


@pytest.mark.parametrize(
    "path", ["/console/agents", "/console/alarms", "/console/audit", "/console/exports"]
)
def test_every_list_page_answers(admin, path):
    page = admin.get(path)
    assert page.status_code == 200 and "<h1>" in page.text


def test_the_stylesheet_is_served_from_the_package(admin, ops):
    css = ops.client().get("/console/static/console.css")  # no sign-in needed
    assert css.status_code == 200 and "text/css" in css.content_type
    assert 'href="/console/static/console.css"' in admin.get("/console/").text
    assert "http" not in admin.get("/console/").text.split("<body>")[0].replace("http-equiv", "")
