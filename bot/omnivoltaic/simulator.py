"""A device keypad, simulated: it accepts codes exactly as OMNIVOLTAIC.md section 2 says.

The device stores the last accepted chain value (at first the provisioned `top`) and
hashes an entered code forward until it meets it; the number of steps decides the effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.omnivoltaic import acp1

OUTCOMES = ("days", "free", "reset", "rejected")


@dataclass(frozen=True)
class Entry:
    """What one keypad entry did: `days` is the days it added (0 unless outcome is days)."""

    outcome: str
    days: int = 0


REJECTED = Entry("rejected")


class Device:
    """One device's keypad state: last accepted value, days credited, free and locked flags."""

    def __init__(self, top: str) -> None:
        self.last = top
        self.days_credited = 0  # every day ever added by a days code
        self.balance = 0  # days added since the last reset
        self.free = False
        self.locked = True

    def enter(self, code: str) -> Entry:
        try:
            value = acp1.parse_code(code)
        except ValueError:
            return REJECTED
        steps = self._steps_to_last(value)
        if steps is None:
            return REJECTED
        self.last = value
        if steps < acp1.FREE_JUMP:
            self.days_credited += steps
            self.balance += steps
            self.locked = False
            return Entry("days", steps)
        if steps < acp1.RESET_JUMP:
            self.free, self.locked = True, False
            return Entry("free")
        self.free, self.locked, self.balance = False, True, 0
        return Entry("reset")

    def _steps_to_last(self, value: str) -> int | None:
        """Steps (1..RESET_JUMP) from `value` forward to the stored value, or None."""
        for steps in range(1, acp1.RESET_JUMP + 1):
            value = acp1.h64(value)
            if value == self.last:
                return steps
        return None
