"""Phone numbers: every number the bot stores or compares is E.164 (DESIGN.md section 3).

`normalise` accepts what channels and operators actually send: "+254712345678",
"254712345678" (Telegram contacts often drop the "+"), "0712 345 678" or "(0712) 345-678"
in the default region.  `mask` is the only form a number may take in logs and on screens.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

MAX_LENGTH = 32
# Digits, an optional leading "+", and the separators people type.  Letters are refused
# (phonenumbers would read "0712 ABC DEF" as a vanity number).
_ALLOWED = re.compile(r"\+?[0-9 ()./\-]*")
_MASK = "*****"


class InvalidPhone(ValueError):
    """The input is not a valid phone number; the message says why."""


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def normalise(raw: str, region: str) -> str:
    """Return `raw` in E.164 form, reading national numbers in `region` (e.g. "KE")."""
    if not isinstance(raw, str):
        raise InvalidPhone("a phone number must be text")
    text = raw.strip()
    if not text:
        raise InvalidPhone("the phone number is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidPhone(f"the phone number is longer than {MAX_LENGTH} characters")
    if not _ALLOWED.fullmatch(text):
        raise InvalidPhone(
            "the phone number contains characters other than digits, a leading + and separators"
        )
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise InvalidPhone("the phone number has no digits")
    if not text.startswith("+") and digits.startswith("00"):
        text, digits = "+" + digits[2:], digits[2:]  # 00 international prefix
    number = _parse(text, region)
    if (number is None or not phonenumbers.is_valid_number(number)) and not text.startswith(
        ("+", "0")
    ):
        # "254712345678": an international number that lost its "+".
        number = _parse("+" + digits, None)
    if number is None:
        raise InvalidPhone(f"{mask(raw)} is not a phone number")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(
            f"{mask(raw)} is not a valid phone number for region {region} or in international form"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=4096)  # a sender writes again and again: parse them once
def try_normalise(raw: str, region: str) -> str | None:
    """Like `normalise`, but None instead of an exception."""
    try:
        return normalise(raw, region)
    except InvalidPhone:
        return None


def mask(phone: object) -> str:
    """A number safe for logs: "+254712345678" -> "+254*****678".

    Keeps the country code (when there is one) and at most the last 3 digits; the mask
    has a fixed width so it does not reveal the length.  Junk becomes "***".
    """
    if not isinstance(phone, str) or len(phone) > 64:
        return "***"
    digits = re.sub(r"\D", "", phone)
    prefix = ""
    if phone.strip().startswith("+"):
        number = _parse("+" + digits, None)
        if number is not None and number.country_code:
            prefix = f"+{number.country_code}"
            digits = digits[len(str(number.country_code)) :]
    if len(digits) < 7:  # too short to show any of it without giving most of it away
        return prefix + _MASK if prefix else "***"
    return prefix + _MASK + digits[-3:]
