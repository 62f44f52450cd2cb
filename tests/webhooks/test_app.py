"""The app factory: health, and what every route refuses before a channel sees it."""

import dataclasses

import pytest
from sqlalchemy import text

from bot.storage import db
from webhooks.app import MAX_BODY, create_app


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


@pytest.mark.parametrize(
    "path", ["/webhooks/payments", "/webhooks/twilio/sms", "/webhooks/telegram", "/webhooks/ussd"]
)
def test_an_oversized_body_is_refused_with_413_and_changes_nothing(client, sqlite_world, path):
    response = client.post(
        path, data=b"x" * (MAX_BODY + 1), headers={"Content-Type": "application/json"}
    )
    # Signed channels refuse before reading the body (403); the others cannot read it (413).
    assert response.status_code in (
        (403, 413) if "twilio" in path or "telegram" in path else (413,)
    )
    with sqlite_world.services.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar() == 0
