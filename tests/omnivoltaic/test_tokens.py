"""Token shapes: a JWT's dates read by hand (never verified), anything else opaque."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from bot.omnivoltaic import tokens


def b64(value) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_jwt_gives_its_algorithm_claim_names_and_dates():
    token = f"{b64({'alg': 'RS256'})}.{b64({'sub': 'd1', 'iat': 1700000000, 'exp': 1700003600})}.x"
    shape = tokens.describe(token)
    assert (shape.kind, shape.algorithm, shape.claims) == ("JWT", "RS256", ("exp", "iat", "sub"))
    assert shape.expires_at == datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC)
    assert shape.lifetime == 3600 and shape.length == len(token)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("tok-1-xxxxxxxx", id="plain text"),
        pytest.param("a.b.c", id="three parts, not base64 JSON"),
        pytest.param(f"{b64([1])}.{b64({'exp': 1})}.s", id="header not an object"),
        pytest.param(f"{b64({'alg': 'x'})}.{b64(b'not json')}.s", id="payload not JSON"),
        pytest.param(f"{b64({'alg': 'x'})}.{b64({'exp': 1})}", id="two parts"),
    ],
)
def test_anything_else_is_opaque(token):
    shape = tokens.describe(token)
    assert shape.kind == "opaque" and shape.expires_at is None and shape.lifetime is None


@pytest.mark.parametrize(
    "claims",
    [{"exp": "soon"}, {"exp": True}, {"exp": 10**20}, {}],
    ids=["text", "bool", "out of range", "none"],
)
def test_unreadable_dates_are_left_out(claims):
    shape = tokens.describe(f"{b64({'alg': 'none'})}.{b64(claims)}.s")
    assert shape.kind == "JWT" and shape.expires_at is None


@pytest.mark.parametrize(
    "given, scheme, header",
    [
        ("abc", "raw", "abc"),
        ("abc", "bearer", "Bearer abc"),
        ("Bearer abc", "bearer", "Bearer abc"),
        ("bearer  abc ", "raw", "abc"),
    ],
)
def test_the_header_carries_the_bare_token_in_the_chosen_scheme(given, scheme, header):
    assert tokens.authorization(tokens.strip_scheme(given), scheme) == header
