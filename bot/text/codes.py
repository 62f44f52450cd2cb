"""The wording of codes, shared by replies and pushes: one message per code, in entry order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bot.text.templates import format_date


class ShownCode(Protocol):
    @property
    def code(self) -> str | None: ...
    @property
    def days(self) -> int | None: ...
    @property
    def credit_until_after(self) -> datetime | None: ...


def code_texts(
    say: Callable[..., str],
    ref: str,
    codes: Sequence[ShownCode],
    many: str = "codes_minted_many",
) -> tuple[str, ...]:
    """One message per code, so each fits one SMS; several come in the order to enter them,
    after a header (`many`: the template that says how many and in which order)."""
    if len(codes) == 1:
        c = codes[0]
        return (
            say(
                "code_minted",
                code=c.code,
                device=ref,
                days=c.days,
                until=format_date(c.credit_until_after),
            ),
        )
    return (
        say(many, count=len(codes), device=ref),
        *(
            say("code_part", index=i, count=len(codes), code=c.code, days=c.days)
            for i, c in enumerate(codes, start=1)
        ),
    )
