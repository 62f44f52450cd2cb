"""Signing in and out of the console: redirects, CSRF, cookies, lock-out, expiry, and
one operator's browser never acting as another."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.operators.accounts import add_operator
from bot.storage.models import AuditEntry, Operator, utcnow
from tests.harness import (
    CONSOLE_ADMIN,
    CONSOLE_PASSWORD,
    CONSOLE_VIEWER,
    console_login,
    console_post,
    csrf_token,
    queue_messages,
)

PAGES = [
    "/console/",
    "/console/find?q=1001",
    "/console/devices/1001",
    "/console/payments",
    "/console/outbox",
    "/console/agents",
    "/console/alarms",
    "/console/audit",
    "/console/exports",
]
ACTIONS = [
    "/console/payments/R-1/assign",
    "/console/outbox/1/retry",
    "/console/devices/1001/resend",
    "/console/customers/1/preferences",
    "/console/agents/add",
    "/console/agents/1/unlock",
    "/console/agents/1/remove",
    "/console/exports/payments.csv",
    "/console/logout",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_the_login_page(ops, path):
    answer = ops.client().get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/console/login?next=")


@pytest.mark.parametrize("path", ACTIONS)
def test_every_action_sends_a_stranger_to_the_login_page_and_changes_nothing(ops, path):
    answer = console_post(ops.client(), path, csrf=False, product_id="1001")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]
    with ops.session() as s:  # only the two operators' creation
        assert s.scalars(select(AuditEntry.action)).all() == ["operator.add"] * 2


def test_sign_in_goes_where_it_was_asked_within_the_console_only(ops):
    client = ops.client()
    page = client.get("/console/login?next=/console/agents")
    token = csrf_token(page.text)
    form = {"email": CONSOLE_ADMIN, "password": CONSOLE_PASSWORD, "csrf_token": token}
    answer = client.post("/console/login?next=/console/agents", data=form)
    assert answer.headers["Location"] == "/console/agents"
    other = ops.client()
    token = csrf_token(other.get("/console/login").text)
    form["csrf_token"] = token
    answer = other.post("/console/login?next=https://evil.example/", data=form)
    assert answer.headers["Location"] == "/console/"


def test_a_login_without_its_csrf_token_is_refused(ops):
    client = ops.client()
    client.get("/console/login")
    answer = client.post(
        "/console/login", data={"email": CONSOLE_ADMIN, "password": CONSOLE_PASSWORD}
    )
    assert answer.status_code == 400
    assert client.get("/console/").status_code == 302  # not signed in


def test_a_wrong_password_is_refused_and_counted(ops):
    answer = console_login(ops.client(), CONSOLE_ADMIN, "not the password")
    assert answer.status_code == 401 and "Wrong email or password" in answer.text
    unknown = console_login(ops.client(), "nobody@ops.example", "not the password")
    assert unknown.status_code == 401 and "Wrong email or password" in unknown.text
    with ops.session() as s:
        operator = s.scalar(select(Operator).where(Operator.email == CONSOLE_ADMIN))
        assert operator.failed_logins == 1


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(ops):
    client = ops.client()
    answers = [console_login(client, CONSOLE_ADMIN, f"wrong {n}").status_code for n in range(5)]
    assert answers == [401, 401, 401, 401, 429]
    locked = console_login(client, CONSOLE_ADMIN)
    assert locked.status_code == 429 and "locked until" in locked.text
    assert client.get("/console/").status_code == 302
    assert console_login(ops.client(), CONSOLE_VIEWER).status_code == 302  # others unaffected


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [
        pytest.param("https://bot.example.test", True, id="https: Secure"),
        pytest.param("http://localhost:8000", False, id="http: not Secure"),
    ],
)
def test_the_session_cookie_is_httponly_samesite_and_secure_on_https(ops, base_url, secure):
    answer = console_login(ops.client(public_base_url=base_url), CONSOLE_ADMIN)
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("ovbot_console=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert ("Secure" in cookie) is secure


def test_sign_out_ends_the_session_and_needs_its_token(admin):
    assert console_post(admin, "/console/logout", csrf=False).status_code == 400
    assert admin.get("/console/").status_code == 200  # still signed in
    answer = console_post(admin, "/console/logout")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/login"
    assert admin.get("/console/").status_code == 302


def test_a_session_ends_after_twelve_hours_whatever_its_use(ops):
    now = [utcnow()]
    services = dataclasses.replace(ops.services, clock=lambda: now[0])
    from webhooks.app import create_app

    client = create_app(deps=services).test_client()
    assert console_login(client, CONSOLE_ADMIN).status_code == 302
    now[0] += timedelta(hours=11)
    assert client.get("/console/").status_code == 200
    now[0] += timedelta(hours=2)
    answer = client.get("/console/")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_a_new_password_signs_the_old_browsers_out(ops, admin):
    assert admin.get("/console/").status_code == 200
    with ops.session() as s:
        add_operator(s, CONSOLE_ADMIN, "a brand new password", "admin")
    assert admin.get("/console/").status_code == 302


def test_each_browser_acts_as_its_own_operator(ops, admin, viewer):
    """Two operators signed in at once: each request is its own operator's; the viewer's
    browser cannot act, and the audit names the admin for the admin's action."""
    assert "admin@ops.example (admin)" in admin.get("/console/").text
    assert "viewer@ops.example (viewer)" in viewer.get("/console/").text
    form = {"phone": "0700000555", "name": "Zawadi", "pin": "4321", "role": "agent"}
    assert console_post(viewer, "/console/agents/add", **form).status_code == 403
    assert console_post(admin, "/console/agents/add", **form).status_code == 302
    with ops.session() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        admin_id = s.scalar(select(Operator.id).where(Operator.email == CONSOLE_ADMIN))
    assert (entry.actor, entry.operator_id, entry.action) == (CONSOLE_ADMIN, admin_id, "agent.add")


def test_a_token_from_another_session_is_refused(ops, admin, viewer):
    """The viewer's CSRF token does not let the admin's browser be driven."""
    theirs = csrf_token(viewer.get("/console/").text)
    answer = console_post(admin, "/console/agents/1/unlock", csrf=theirs)
    assert answer.status_code == 400


def test_without_its_key_the_console_is_off(ops):
    client = ops.client(console_secret_key=None)
    assert client.get("/console/").status_code == 404
    assert client.get("/console/login").status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("https://evil.example/", id="another site"),
        pytest.param("//evil.example/console/", id="scheme-relative"),
        pytest.param("/console/\\evil.example", id="backslash"),
        pytest.param("/console//evil.example", id="double slash"),
    ],
)
def test_a_form_never_sends_the_browser_to_another_site(admin, ops, target):
    (message,) = queue_messages(ops.services.sessions, "hello")
    answer = console_post(admin, f"/console/outbox/{message}/retry", back=target)
    assert answer.headers["Location"] == "/console/outbox"
