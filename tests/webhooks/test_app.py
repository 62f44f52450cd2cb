"""The app factory: health, what every route refuses before a channel sees it, in each
provider's language, and the warning when a channel is off."""

import dataclasses
import logging

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.storage import db
from bot.text import logs
from bot.text.templates import Messages
from tests.harness import SECRETS
from webhooks import telegram, ussd
from webhooks.app import MAX_BODY, create_app

MESSAGES = Messages.load()
USSD_REFUSED = "END " + MESSAGES.render("en", "ussd_bad_request")


@pytest.fixture
def client(sqlite_world):
    return create_app(deps=sqlite_world.services).test_client()


def test_healthz_answers_while_the_database_does(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_healthz_is_503_when_the_database_does_not_answer(sqlite_world, tmp_path):
    (tmp_path / "db-is-a-directory").mkdir()
    engine = db.make_engine(f"sqlite:///{tmp_path / 'db-is-a-directory'}")
    broken = dataclasses.replace(sqlite_world.services, engine=engine)
    response = create_app(deps=broken).test_client().get("/healthz")
    assert response.status_code == 503
    engine.dispose()


OVERSIZED = [
    # Signed channels refuse before reading the body (403); the others cannot read it (413);
    # USSD answers every request with a 200 END screen.
    pytest.param("/webhooks/payments", (413,), id="payments"),
    pytest.param("/webhooks/twilio/sms", (403, 413), id="twilio"),
    pytest.param("/webhooks/telegram", (403, 413), id="telegram"),
    pytest.param("/webhooks/ussd", (200,), id="ussd"),
]


@pytest.mark.parametrize("path, statuses", OVERSIZED)
def test_an_oversized_body_is_refused_and_changes_nothing(client, sqlite_world, path, statuses):
    response = client.post(
        path, data=b"x" * (MAX_BODY + 1), headers={"Content-Type": "application/json"}
    )
    assert response.status_code in statuses
    with sqlite_world.services.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar() == 0


FORM = "application/x-www-form-urlencoded"
# label, method, path, request keyword arguments, status, how the answer is written
REFUSALS = [
    pytest.param("POST", "/webhooks/payments", {}, 401, "json", id="payments unsigned"),
    pytest.param("GET", "/webhooks/payments", {}, 405, "json", id="payments GET"),
    pytest.param(
        "POST",
        "/webhooks/payments",
        dict(data=b"{}" + b" " * MAX_BODY, content_type="application/json"),
        413,
        "json",
        id="payments too large",
    ),
    pytest.param("POST", "/webhooks/telegram", {}, 403, "json", id="telegram without secret"),
    pytest.param(
        "POST",
        "/webhooks/telegram",
        dict(
            data="{not json",
            content_type="application/json",
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
        ),
        400,
        "json",
        id="telegram malformed",
    ),
    pytest.param(
        "POST",
        "/webhooks/telegram",
        dict(
            data=b"{}" + b" " * MAX_BODY,
            content_type="application/json",
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
        ),
        413,
        "json",
        id="telegram too large",
    ),
    pytest.param("GET", "/webhooks/telegram", {}, 405, "json", id="telegram GET"),
    pytest.param("POST", "/webhooks/twilio/sms", {}, 403, "text", id="twilio unsigned"),
    pytest.param("GET", "/webhooks/twilio/sms", {}, 405, "text", id="twilio GET"),
    pytest.param(
        "POST",
        "/webhooks/twilio/sms",
        dict(data=b"x" * (MAX_BODY + 1), content_type=FORM, headers={"X-Twilio-Signature": "x"}),
        413,
        "text",
        id="twilio too large",
    ),
    pytest.param(
        "POST",
        "/webhooks/ussd",
        dict(data=b"x" * (MAX_BODY + 1), content_type=FORM),
        200,
        "ussd",
        id="ussd too large",
    ),
    pytest.param("GET", "/webhooks/ussd", {}, 200, "ussd", id="ussd GET"),
    pytest.param("PUT", "/webhooks/ussd", {}, 200, "ussd", id="ussd PUT"),
    pytest.param("GET", "/nowhere", {}, 404, "json", id="unknown path"),
    pytest.param("POST", "/webhooks/ussd/", {}, 404, "json", id="ussd path with a slash"),
    pytest.param("POST", "/healthz", {}, 405, "json", id="healthz POST"),
]


@pytest.mark.parametrize("method, path, kwargs, status, kind", REFUSALS)
def test_refusals_answer_in_the_routes_language_and_keep_their_status(
    client, sqlite_world, method, path, kwargs, status, kind
):
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status
    body = response.get_data(as_text=True)
    if kind == "json":
        assert response.is_json, body
        answer = response.get_json()
        assert answer["status"] == "rejected" and answer["error"], answer
        assert set(answer) <= {"status", "error", "field"}
    elif kind == "text":
        assert response.mimetype == "text/plain" and body.strip() and "<" not in body
    else:
        assert (response.mimetype, body) == ("text/plain", USSD_REFUSED)
    if status == 405:
        assert method not in response.headers["Allow"]
    with sqlite_world.services.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar() == 0


def test_a_refusal_names_the_field_when_the_channel_knows_it(client):
    response = client.post(
        "/webhooks/telegram",
        json={"update_id": 2**63},
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
    )
    assert response.status_code == 400 and response.get_json()["field"] == "update_id"


def _broken(*args):
    raise RuntimeError("boom")


def test_an_error_inside_a_view_is_a_json_500_not_a_page(client, monkeypatch):
    monkeypatch.setattr(telegram, "parse", _broken)
    response = client.post(
        "/webhooks/telegram",
        json={"update_id": 1},
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_secret_token"]},
    )
    assert response.status_code == 500
    assert response.get_json()["status"] == "rejected"


def test_an_error_inside_the_ussd_view_is_still_a_200_end_screen(client, monkeypatch):
    monkeypatch.setattr(ussd, "guard", _broken)
    response = client.post("/webhooks/ussd", data={"sessionId": "s1", "text": ""})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "END " + MESSAGES.render("en", "error_try_again")


# -- start-up: channels without their secrets ------------------------------------------------

NO_SECRETS = dict(
    twilio_auth_token=None,
    public_base_url=None,
    telegram_secret_token=None,
    payments_secret=None,
    africastalking_callback_token=None,
)
# label, settings changed, the channels (and what turns each on) the warning must name
OFF = [
    pytest.param({}, [], id="every secret set: silent"),
    pytest.param(
        NO_SECRETS,
        [
            "Twilio SMS and WhatsApp (set TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL)",
            "Telegram (set TELEGRAM_SECRET_TOKEN)",
            "payments (set PAYMENTS_SECRET)",
            "Africa's Talking SMS (set AFRICASTALKING_CALLBACK_TOKEN)",
        ],
        id="no secrets",
    ),
    pytest.param(
        {"telegram_secret_token": None}, ["Telegram (set TELEGRAM_SECRET_TOKEN)"], id="Telegram"
    ),
    pytest.param({"payments_secret": ""}, ["payments (set PAYMENTS_SECRET)"], id="payments"),
    pytest.param(
        {"public_base_url": None},
        ["Twilio SMS and WhatsApp (set PUBLIC_BASE_URL)"],
        id="Twilio token without the public URL",
    ),
    pytest.param(
        {"twilio_auth_token": None},
        ["Twilio SMS and WhatsApp (set TWILIO_AUTH_TOKEN)"],
        id="Twilio without its token",
    ),
    pytest.param(
        {"console_secret_key": None},
        ["operator console (set CONSOLE_SECRET_KEY)"],
        id="the console without its key",
    ),
    pytest.param(dict(NO_SECRETS, demo=True), [], id="demo: unsigned requests are accepted"),
]


@pytest.mark.parametrize("settings, named", OFF)
def test_start_up_warns_once_of_channels_that_refuse_everything(
    sqlite_world, caplog, settings, named
):
    services = sqlite_world.services
    services = dataclasses.replace(services, settings=services.settings.replace(**settings))
    with caplog.at_level(logging.INFO, logger="webhooks.app"):
        create_app(deps=services)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    if not named:
        assert warnings == []
        return
    (warning,) = warnings
    assert warning.levelno == logging.WARNING and warning.name == "webhooks.app"
    message = warning.getMessage()
    for channel in named:
        assert channel in message
    assert message.count("(set ") == len(named)
    for name, value in SECRETS.items():
        assert value not in message, name


# -- /readyz: the schema at the migrations' head --------------------------------------------


def app_on(sqlite_world, engine):
    return create_app(deps=dataclasses.replace(sqlite_world.services, engine=engine))


@pytest.fixture
def bare_engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    yield engine
    engine.dispose()


def test_readyz_is_200_at_head(client):
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ready"})


def test_readyz_is_503_without_a_schema_while_healthz_is_200(sqlite_world, bare_engine):
    client = app_on(sqlite_world, bare_engine).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "not ready",
        "reason": "no schema: run `ovbot db upgrade`",
    }
    assert client.get("/healthz").status_code == 200  # alive: do not restart it


def test_readyz_names_the_schema_and_the_head_when_behind(sqlite_world, bare_engine):
    oldest = list(ScriptDirectory.from_config(db.alembic_config()).walk_revisions())[-1].revision
    db.upgrade(bare_engine, oldest)
    head = db.head_revision()
    assert oldest != head
    response = app_on(sqlite_world, bare_engine).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == (
        f"schema at {oldest}, head is {head}: run `ovbot db upgrade`"
    )
    db.upgrade(bare_engine)  # the release step: ready, without a restart
    assert app_on(sqlite_world, bare_engine).test_client().get("/readyz").status_code == 200


def test_readyz_refuses_a_schema_newer_than_the_code(sqlite_world, bare_engine):
    db.upgrade(bare_engine)
    with bare_engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))
    response = app_on(sqlite_world, bare_engine).test_client().get("/readyz")
    assert response.status_code == 503
    assert "schema at from-the-future, which this code does not know" in response.text


def test_readyz_is_503_when_the_database_does_not_answer(sqlite_world, tmp_path):
    (tmp_path / "db-is-a-directory").mkdir()
    engine = db.make_engine(f"sqlite:///{tmp_path / 'db-is-a-directory'}")
    response = app_on(sqlite_world, engine).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "database unavailable"
    engine.dispose()


# -- request ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("3f2a9c1e-5b7d-4e2f-9a1c-0d8e7f6a5b4c", id="a UUID"),
        pytest.param("lb.node-7:req/0042+x=", id="a load balancer's"),
        pytest.param("a" * 128, id="128 characters"),
    ],
)
def test_a_sane_request_id_is_kept_and_echoed(client, given):
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] == given


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 129, id="too long"),
        pytest.param("id with spaces", id="spaces"),
        pytest.param("x\u00e9", id="not ASCII"),
        pytest.param("-leading-dash", id="leading punctuation"),
        pytest.param('x"},{"level":"CRITICAL', id="JSON injection"),
    ],
)
def test_another_request_id_is_replaced_by_a_new_one(client, given):
    response = client.get("/healthz", headers={"X-Request-ID": given})
    new = response.headers["X-Request-ID"]
    assert new != given and len(new) == 32 and int(new, 16) >= 0


def test_every_request_gets_its_own_id_even_a_refused_one(client):
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(3)}
    refused = client.post("/webhooks/twilio/sms", data={})
    assert refused.status_code == 403 and refused.headers["X-Request-ID"] not in ids
    assert len(ids) == 3


def test_the_lines_logged_in_a_request_carry_its_id(sqlite_world, tmp_path):
    import io
    import json

    (tmp_path / "db-is-a-directory").mkdir()
    engine = db.make_engine(f"sqlite:///{tmp_path / 'db-is-a-directory'}")
    stream = io.StringIO()
    handler = logs.handler(stream, log_format="json")
    logging.getLogger().addHandler(handler)
    try:
        app_on(sqlite_world, engine).test_client().get("/readyz", headers={"X-Request-ID": "r-9"})
    finally:
        logging.getLogger().removeHandler(handler)
        engine.dispose()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failed = [line for line in lines if line["message"].startswith("readiness check")]
    assert [line["request_id"] for line in failed] == ["r-9"]
    assert logs.REQUEST_ID.get() is None  # unbound once the request is over


def test_readyz_follows_the_release_step_on_each_backend(sqlite_world, database_url, tmp_path):
    if database_url.startswith("sqlite"):  # the world's own file is in tmp_path too
        database_url = f"sqlite:///{tmp_path / 'fresh' / 'ovbot.db'}"
    engine = db.make_engine(database_url)
    try:
        client = app_on(sqlite_world, engine).test_client()
        before = client.get("/readyz")
        db.upgrade(engine)
        after = client.get("/readyz")
    finally:
        engine.dispose()
    assert (before.status_code, before.get_json()["reason"]) == (
        503,
        "no schema: run `ovbot db upgrade`",
    )
    assert (after.status_code, after.get_json()) == (200, {"status": "ready"})
