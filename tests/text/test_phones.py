"""Phone numbers: E.164 normalisation and masking."""

import re

import pytest

from bot.text.phones import InvalidPhone, mask, normalise, try_normalise

VALID = [
    # label, raw, region, expected
    ("e164", "+254712345678", "KE", "+254712345678"),
    ("telegram drops the plus", "254712345678", "KE", "+254712345678"),
    ("national with spaces", "0712 345 678", "KE", "+254712345678"),
    ("national with brackets and dash", "(0712) 345-678", "KE", "+254712345678"),
    ("national without trunk zero", "712345678", "KE", "+254712345678"),
    ("surrounding spaces", "  +254 712 345 678 ", "KE", "+254712345678"),
    ("dots", "0712.345.678", "KE", "+254712345678"),
    ("00 international prefix", "00254712345678", "KE", "+254712345678"),
    ("new safaricom range", "0112 345 678", "KE", "+254112345678"),
    ("foreign number with plus", "+447911123456", "KE", "+447911123456"),
    ("foreign number without plus", "447911123456", "KE", "+447911123456"),
    ("us number without plus", "14155552671", "KE", "+14155552671"),
    ("other default region", "0803 123 4567", "NG", "+2348031234567"),
    ("uganda national", "0772 123456", "UG", "+256772123456"),
]

INVALID = [
    # label, raw, words the reason contains
    ("empty", "", "empty"),
    ("spaces", "   ", "empty"),
    ("letters", "hello", "characters"),
    ("vanity letters", "0712 ABC DEF", "characters"),
    ("plus alone", "+", "no digits"),
    ("separators only", "()--", "no digits"),
    ("too short", "0712", "not a valid"),
    ("too long", "+2547123456789", "not a valid"),
    ("country code only", "+254", "not"),
    ("unknown country code", "+999712345678", "not"),
    ("very long input", "1" * 1000, "longer than"),
    ("sql", "'; DROP TABLE customers;--", "characters"),
    ("emoji", "\U0001f4de 0712345678", "characters"),
    ("plus in the middle", "0712+345678", "characters"),
]


@pytest.mark.parametrize("raw, region, expected", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_normalise(raw, region, expected):
    assert normalise(raw, region) == expected
    assert try_normalise(raw, region) == expected


@pytest.mark.parametrize("raw, reason", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid(raw, reason):
    with pytest.raises(InvalidPhone, match=reason):
        normalise(raw, "KE")
    assert try_normalise(raw, "KE") is None


def test_invalid_phone_is_a_value_error_that_does_not_echo_the_number():
    with pytest.raises(ValueError) as caught:
        normalise("+2547123456789", "KE")
    assert "712345" not in str(caught.value)


def test_non_text_is_invalid():
    with pytest.raises(InvalidPhone):
        normalise(None, "KE")  # type: ignore[arg-type]


MASKS = [
    ("+254712345678", "+254*****678"),
    ("+447911123456", "+44*****456"),
    ("+14155552671", "+1*****671"),
    ("254712345678", "*****678"),
    ("0712 345 678", "*****678"),
    ("+254 712 345 678", "+254*****678"),
    ("+25412", "+254*****"),
    ("12345", "***"),
    ("", "***"),
    ("junk", "***"),
    (None, "***"),
    (12345678, "***"),
    ("9" * 1000, "***"),
]


@pytest.mark.parametrize("phone, expected", MASKS)
def test_mask(phone, expected):
    assert mask(phone) == expected


@pytest.mark.parametrize(
    "phone",
    [
        "+254712345678",
        "+254712345679",
        "+447911123456",
        "+14155552671",
        "254712345678",
        "0712345678",
        "+2348031234567",
        "+999123456789",
        "+1",
        "+12",
        "1234567",
    ],
)
def test_mask_reveals_at_most_the_last_three_digits(phone):
    masked = mask(phone)
    country = re.match(r"\+(\d+)\*", masked)
    shown = re.sub(r"\D", "", masked[country.end() :] if country else masked)
    assert len(shown) <= 3
    assert re.sub(r"\D", "", phone).endswith(shown)
