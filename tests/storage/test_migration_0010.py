"""Migration 0010 (the operator console): over and back with rows in its tables."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from bot.storage import db


def test_0010_creates_the_console_tables_and_drops_them_again(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0009")
    with engine.begin() as c:  # an existing agent is untouched either way
        c.execute(
            text(
                "INSERT INTO agents (id, phone, name, pin_hash, role, failed_attempts, created_at)"
                " VALUES (1, '+254700000100', 'Jane', 'scrypt$x', 'agent', 0, CURRENT_TIMESTAMP)"
            )
        )
    db.upgrade(engine, "0010")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO operators (id, email, password_hash, session_token, created_at)"
                " VALUES (1, 'ops@example.com', 'scrypt$x', 't', CURRENT_TIMESTAMP)"
            )
        )
        c.execute(
            text(
                "INSERT INTO audit_log (operator_id, actor, action, target, after, created_at)"
                " VALUES (1, 'ops@example.com', 'agent.unlock', 'agent:1', '{}',"
                " CURRENT_TIMESTAMP)"
            )
        )
    with engine.connect() as c:
        assert c.execute(text("SELECT role, failed_logins FROM operators")).one() == ("viewer", 0)
        assert c.execute(text("SELECT action FROM audit_log")).scalar_one() == "agent.unlock"
    command.downgrade(db.alembic_config(engine.url), "0009")
    tables = set(inspect(engine).get_table_names())
    assert {"operators", "audit_log"}.isdisjoint(tables)
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM agents")).scalar_one() == "Jane"
    db.upgrade(engine, "0010")  # and up again
    assert {"operators", "audit_log"} <= set(inspect(engine).get_table_names())
    engine.dispose()
