"""The GSM 7-bit default alphabet (3GPP TS 23.038, formerly GSM 03.38).

An SMS segment holds 160 septets when every character is in this alphabet.  Characters of
the basic table take one septet; those of the extension table are sent as ESC + character
and take two.  Anything else forces UCS-2 (70 characters a segment), which is why every
reply template must stay inside this alphabet.
"""

from __future__ import annotations

SEGMENT_SEPTETS = 160

# The basic table, row by row in code order (0x00-0x7F).  0x1B is the escape to the
# extension table, not a character, so it is left out.
_BASIC_ROWS = (
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
)
BASIC = frozenset("".join(_BASIC_ROWS))

# The extension table: form feed, ^ { } \ [ ~ ] | and the euro sign.
EXTENSION = frozenset("\f^{}\\[~]|€")


def is_gsm7(text: str) -> bool:
    """True when every character of `text` can be sent in the GSM 7-bit alphabet."""
    return all(ch in BASIC or ch in EXTENSION for ch in text)


def septets(text: str) -> int:
    """Septets `text` takes in GSM-7 (extension characters count two).

    Raises ValueError if a character is outside the alphabet.
    """
    total = 0
    for ch in text:
        if ch in BASIC:
            total += 1
        elif ch in EXTENSION:
            total += 2
        else:
            raise ValueError(f"{ch!r} (U+{ord(ch):04X}) is not in the GSM-7 alphabet")
    return total


def fits_one_sms(text: str) -> bool:
    """True when `text` is GSM-7 only and fits a single 160-septet segment."""
    return is_gsm7(text) and septets(text) <= SEGMENT_SEPTETS
