"""The rules of the domain that several layers share: one home for each, nothing imported.

Settings, the schema's CHECK constraints, the parsers and the ledger all read these; a
change here changes them all.
"""

from __future__ import annotations

import re

# The most days one code can carry: a jump of 1096 or more reads as FREE on the device
# (OMNIVOLTAIC.md section 2; bot/omnivoltaic/acp1.py walks the same chain).
MAX_CODE_DAYS = 1095

LANGUAGES = ("en", "fr", "sw")  # every reply template exists in these
AGENT_ROLES = ("agent", "admin")
ADMIN = "admin"

# An agent's PIN: 4 to 8 ASCII digits, what a phone keypad sends.
PIN_PATTERN = re.compile(r"[0-9]{4,8}")
PIN_RULE = "PIN must be 4 to 8 digits"


def is_pin(value: object) -> bool:
    """Whether `value` has the shape of a PIN (not whether it is anyone's)."""
    return isinstance(value, str) and PIN_PATTERN.fullmatch(value) is not None
