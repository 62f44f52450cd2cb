"""The console's fixtures: a world with an admin and a viewer, and their browsers."""

from __future__ import annotations

import pytest

from tests.harness import CONSOLE_ADMIN, CONSOLE_VIEWER, add_operators, console_login


@pytest.fixture
def ops(world):
    return add_operators(world)


@pytest.fixture
def admin(ops):
    client = ops.client()
    assert console_login(client, CONSOLE_ADMIN).status_code == 302
    return client


@pytest.fixture
def viewer(ops):
    client = ops.client()
    assert console_login(client, CONSOLE_VIEWER).status_code == 302
    return client
