"""ACP-1 hash chain: h64, walking, the decimal code form and checkpoints."""

import hashlib

import pytest

from bot.omnivoltaic import acp1

VECTOR_HEX = "9184C537B9EFDD01"
VECTOR_CODE = "*024 413 975 593 119 504 641#"


def test_vector_hex_to_code():
    assert acp1.format_code(VECTOR_HEX) == VECTOR_CODE


@pytest.mark.parametrize(
    "code",
    [
        VECTOR_CODE,
        "*024413975593119504641#",
        "024 413 975 593 119 504 641",
        " *024 413 975 593 119 504 641# ",
    ],
)
def test_vector_code_to_hex(code):
    assert acp1.parse_code(code) == VECTOR_HEX


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "*124 413 975 593 119 504 641#",  # first digit must be 0
        "*024 413 975 593 119 504 64#",
        "*024 413 975 593 119 504 641 1#",  # 20 and 22 digits
        "*099 999 999 990 000 000 000#",  # a half above 0xFFFFFFFF
        "*024-413-975-593-119-504-641#",
        "**024413975593119504641#",
    ],
)
def test_parse_rejects_garbage(bad):
    with pytest.raises(ValueError):
        acp1.parse_code(bad)


def test_format_rejects_non_hex():
    for bad in ("9184c537b9efdd01", "9184C537", "XYZ4C537B9EFDD01"):
        with pytest.raises(ValueError):
            acp1.format_code(bad)


def test_h64_folds_sha1_words():
    digest = hashlib.sha1(b"hello").hexdigest()
    w = [int(digest[i : i + 8], 16) for i in range(0, 40, 8)]
    assert acp1.h64("hello") == f"{w[0] ^ w[2] ^ w[4]:08X}{w[1] ^ w[3]:08X}"


def test_walk_is_repeated_h64():
    value = VECTOR_HEX
    for _ in range(5):
        value = acp1.h64(value)
    assert acp1.walk(VECTOR_HEX, 5) == value
    assert acp1.walk(VECTOR_HEX, 0) == VECTOR_HEX
    with pytest.raises(ValueError):
        acp1.walk(VECTOR_HEX, -1)


def test_root_is_deterministic_per_seed_and_product():
    assert acp1.root_for("s", 1001) == acp1.root_for("s", 1001)
    assert len({acp1.root_for("s", 1001), acp1.root_for("s", 1002), acp1.root_for("t", 1001)}) == 3


def test_checkpoints_and_value_at():
    root = acp1.root_for("test", 1)
    points = acp1.checkpoints(root)
    assert len(points) == 101 and points[0] == root
    assert points[3] == acp1.walk(root, 3000)
    for position in (0, 1, 999, 1000, 54321, acp1.CHAIN_LENGTH):
        expected = acp1.walk(points[position // 1000], position % 1000)
        assert acp1.value_at(points, position) == expected
    assert acp1.value_at(root, 1234) == acp1.value_at(points, 1234)
    with pytest.raises(ValueError):
        acp1.value_at(points, acp1.CHAIN_LENGTH + 1)
