"""Fixtures of the `ovbot` tests: a clean environment under tmp_path, its database, a fleet.

`tests.harness.ovbot` runs the command line as an operator would (click's CliRunner).
"""

from __future__ import annotations

import logging

import pytest

from bot.storage import db
from tests.harness import ovbot, variables_read


@pytest.fixture(autouse=True)
def keep_logging():
    """`ovbot` configures the root logger; give the test runner its logging back."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "alembic", "werkzeug")}
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A clean environment: only the database and the emulator state, both in tmp_path."""
    for name in variables_read():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ovbot.db'}")
    monkeypatch.setenv("OMNIVOLTAIC_EMULATOR_STATE", str(tmp_path / "emulator.db"))
    return tmp_path


@pytest.fixture
def Session(home):
    engine = db.make_engine(f"sqlite:///{home / 'ovbot.db'}")
    yield db.make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def fleet(home):
    assert ovbot("sync-devices").exit_code == 0
    return home
